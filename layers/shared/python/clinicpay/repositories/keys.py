"""API keys, stored as hashes only."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from clinicpay.repositories.dynamo import table, translated_errors


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(role: str) -> str:
    return f"cp_{role}_{secrets.token_urlsafe(24)}"


@dataclass(frozen=True)
class KeyRecord:
    clinic_id: str
    role: str
    key_id: str


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
        with translated_errors():
            item = table(self._table_name).get_item(Key={"pk": f"KEY#{digest}", "sk": "KEY"}).get("Item")
        if not item:
            return None
        return KeyRecord(clinic_id=item["clinic_id"], role=item["role"], key_id=item["key_id"])
