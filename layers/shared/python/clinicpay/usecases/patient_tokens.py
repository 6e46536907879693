"""The clinic's patient-token secret (admin: make, rotate, revoke, look) and proving a patient on a
public route with a token signed by it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from clinicpay.domain.ids import new_id, new_token
from clinicpay.domain.patient_tokens import SECRET_PREFIX, ProvedPatient, verify

# After a rotation the previous secret is honoured this long, so the clinic's site can switch over
# without signing anyone out; DELETE ends every secret at once.
ROTATION_GRACE = timedelta(hours=24)


class SecretStore(Protocol):
    def read(self, clinic_id: str) -> dict[str, Any] | None: ...
    def active(self, clinic_id: str, now: datetime) -> list[str]: ...
    def rotate(self, clinic_id: str, current: dict[str, str], previous: dict[str, str] | None,
               expected_version: int) -> int: ...
    def delete(self, clinic_id: str) -> None: ...


def prove_patient(store: SecretStore, clinic_id: str, token: str, now: datetime) -> ProvedPatient:
    return verify(token, store.active(clinic_id, now), clinic_id, now)


def describe(store: SecretStore, clinic_id: str, now: datetime) -> dict[str, Any]:
    """What an admin may see again: ids and dates, never a secret."""
    item = store.read(clinic_id) or {}
    current, previous = item.get("current"), item.get("previous")
    live_previous = previous if previous and str(previous.get("valid_until", "")) > now.isoformat() else None
    return {"configured": bool(current), "kid": current["kid"] if current else None,
            "created_at": current["created_at"] if current else None,
            "previous": {"kid": live_previous["kid"], "valid_until": live_previous["valid_until"]} if live_previous
            else None}


def rotate(store: SecretStore, clinic_id: str, now: datetime) -> dict[str, Any]:
    """A new secret, shown this once; the one it replaces keeps working for ROTATION_GRACE."""
    item = store.read(clinic_id) or {}
    current = {"kid": new_id("ptk", 6), "secret": SECRET_PREFIX + new_token(32), "created_at": now.isoformat()}
    old = item.get("current")
    previous = ({"kid": str(old["kid"]), "secret": str(old["secret"]), "valid_until": (now + ROTATION_GRACE).isoformat()}
                if old else None)
    store.rotate(clinic_id, current, previous, int(item.get("version", 0)))
    return {"secret": current["secret"], "kid": current["kid"], "created_at": current["created_at"],
            "previous": {"kid": previous["kid"], "valid_until": previous["valid_until"]} if previous else None}
