"""API keys, stored as hashes only."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from clinicpay.domain.ids import new_token
from clinicpay.repositories.dynamo import table, translated_errors


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(role: str) -> str:
    return f"cp_{role}_{new_token()}"


@dataclass(frozen=True)
class KeyRecord:
    clinic_id: str
    role: str
    key_id: str


# Known keys are remembered for a minute per container: most requests then cost no key read. A key
# that stops being valid (there is no revocation route yet) would keep working that long at most.
_KNOWN_TTL_SECONDS = 60.0
_known: dict[str, tuple[float, KeyRecord]] = {}


class KeyRepository:
    def __init__(self, table_name: str):
        self._table_name = table_name

    def put(self, key: str, clinic_id: str, role: str, created_at: str) -> KeyRecord:
        digest = hash_key(key)
        record = KeyRecord(clinic_id=clinic_id, role=role, key_id=digest[:12])
        with translated_errors():
            table(self._table_name).put_item(
                Item={"pk": f"KEY#{digest}", "sk": "KEY", "clinic_id": clinic_id, "role": role,
                      "key_id": record.key_id, "created_at": created_at},
                ConditionExpression="attribute_not_exists(pk)",
            )
        return record

    def find(self, digest: str) -> KeyRecord | None:
        remembered = _known.get(digest)
        if remembered and time.monotonic() - remembered[0] < _KNOWN_TTL_SECONDS:
            return remembered[1]
        with translated_errors():
            item = table(self._table_name).get_item(Key={"pk": f"KEY#{digest}", "sk": "KEY"}).get("Item")
        if not item:
            return None
        record = KeyRecord(clinic_id=item["clinic_id"], role=item["role"], key_id=item["key_id"])
        _known[digest] = (time.monotonic(), record)
        return record
