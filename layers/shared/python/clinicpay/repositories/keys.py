"""API keys in KeysTable, stored as hashes only (plus a short, non-secret prefix to recognise one by).

Only the admin function may write this table (template.yaml); the others may read one key by its
hash. A revoked key keeps its record (who may see it was revoked, and when) but no longer resolves.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from boto3.dynamodb.conditions import Key

from clinicpay.domain.ids import new_token
from clinicpay.repositories.dynamo import conditional, table, translated_errors

BY_CLINIC_INDEX = "ByClinic"
# What a listing shows of a key: the role part and four random letters ("cp_staff_kqmd"), enough
# for a person to tell keys apart, 16 of the key's 192 random bits (domain/ids.py: 4 bits a letter).
PREFIX_RANDOM_CHARS = 4


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(role: str) -> str:
    return f"cp_{role}_{new_token()}"


def key_prefix(key: str) -> str:
    """"cp_staff_kqmd" for "cp_staff_kqmd...". Keys minted before letters-only ids (URL-safe base64)
    may hold "_" in their random part, hence the bounded split."""
    brand, role, random_part = key.split("_", 2)
    return f"{brand}_{role}_{random_part[:PREFIX_RANDOM_CHARS]}"


@dataclass(frozen=True)
class KeyRecord:
    clinic_id: str
    role: str
    key_id: str


@dataclass(frozen=True)
class StoredKey:
    """A key as a listing shows it: never the key, never its hash."""

    key_id: str
    clinic_id: str
    role: str
    prefix: str
    created_at: str
    revoked_at: str | None

    def view(self) -> dict[str, str | None]:
        return {"key_id": self.key_id, "role": self.role, "prefix": self.prefix, "created_at": self.created_at,
                "revoked_at": self.revoked_at, "status": "revoked" if self.revoked_at else "active"}


class KeyCache:
    """Known keys, remembered per container for `ttl` seconds so most requests cost no key read.

    The price is the revocation delay: a key revoked in another container keeps working here until
    its entry is `ttl` old. The container that revokes forgets the key at once.
    """

    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, tuple[float, KeyRecord]] = {}

    def get(self, digest: str) -> KeyRecord | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if self.clock() - entry[0] >= self.ttl:
            del self._entries[digest]
            return None
        return entry[1]

    def put(self, digest: str, record: KeyRecord) -> None:
        self._entries[digest] = (self.clock(), record)

    def forget(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def clear(self) -> None:
        self._entries.clear()


# One per container, shared by every KeyRepository the handlers create per request.
known_keys = KeyCache()


class KeyRepository:
    def __init__(self, table_name: str, cache: KeyCache = known_keys):
        self._table_name = table_name
        self._cache = cache

    def put(self, key: str, clinic_id: str, role: str, created_at: str) -> KeyRecord:
        digest = hash_key(key)
        record = KeyRecord(clinic_id=clinic_id, role=role, key_id=digest[:12])
        with translated_errors():
            table(self._table_name).put_item(
                Item={"pk": _pk(digest), "clinic_id": clinic_id, "role": role, "key_id": record.key_id,
                      "prefix": key_prefix(key), "created_at": created_at},
                ConditionExpression="attribute_not_exists(pk)",
            )
        return record

    def find(self, digest: str) -> KeyRecord | None:
        """The active key with this hash, or None (unknown or revoked)."""
        remembered = self._cache.get(digest)
        if remembered is not None:
            return remembered
        with translated_errors():
            item = table(self._table_name).get_item(Key={"pk": _pk(digest)}).get("Item")
        if not item or item.get("revoked_at"):
            return None
        record = KeyRecord(clinic_id=item["clinic_id"], role=item["role"], key_id=item["key_id"])
        self._cache.put(digest, record)
        return record

    def revoked(self, digest: str) -> bool:
        """Whether this hash is a key that was revoked (not one that never existed)."""
        with translated_errors():
            item = table(self._table_name).get_item(Key={"pk": _pk(digest)},
                                                    ProjectionExpression="revoked_at").get("Item")
        return bool(item and item.get("revoked_at"))

    def list(self, clinic_id: str) -> list[StoredKey]:
        items: list[dict[str, str]] = []
        args = {"IndexName": BY_CLINIC_INDEX, "KeyConditionExpression": Key("clinic_id").eq(clinic_id)}
        with translated_errors():
            while True:
                page = table(self._table_name).query(**args)
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted((_stored(item) for item in items), key=lambda k: (k.created_at, k.key_id))

    def get(self, clinic_id: str, key_id: str) -> tuple[str, StoredKey] | None:
        """(hash, key) for one of the clinic's keys, by its key_id."""
        with translated_errors():
            items = table(self._table_name).query(
                IndexName=BY_CLINIC_INDEX,
                KeyConditionExpression=Key("clinic_id").eq(clinic_id) & Key("key_id").eq(key_id),
            ).get("Items", [])
        if not items:
            return None
        return str(items[0]["pk"]).removeprefix("KEY#"), _stored(items[0])

    def revoke(self, digest: str, revoked_at: str, revoked_by: str) -> bool:
        """Mark the key revoked; False when it already was (the first revocation's time stays)."""
        revoked = conditional(lambda: table(self._table_name).update_item(
            Key={"pk": _pk(digest)},
            UpdateExpression="SET revoked_at = :at, revoked_by = :by",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(revoked_at)",
            ExpressionAttributeValues={":at": revoked_at, ":by": revoked_by},
        ))
        self._cache.forget(digest)
        return revoked


def _pk(digest: str) -> str:
    return f"KEY#{digest}"


def _stored(item: dict[str, str]) -> StoredKey:
    role = item["role"]
    # Keys made before prefixes were stored show only their role part.
    prefix = item.get("prefix") or f"cp_{'pub' if role == 'publishable' else role}_"
    return StoredKey(key_id=item["key_id"], clinic_id=item["clinic_id"], role=role, prefix=prefix,
                     created_at=item.get("created_at", ""), revoked_at=item.get("revoked_at"))
