"""Who is calling: operator, clinic admin, clinic staff, or the booking widget.

Keys are random, shown once, and stored only as SHA-256 hashes (KeysTable). A key used on another
clinic's path is answered 404 so that the other clinic's existence is never revealed. A revoked key
is answered 401 like an unknown one, within the key cache's TTL (repositories/keys.py).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum

from clinicpay.domain.errors import Forbidden, NotFound, Unauthorized
from clinicpay.repositories.keys import KeyRepository, hash_key
from clinicpay.settings import get_settings


class Role(StrEnum):
    OPERATOR = "operator"
    ADMIN = "admin"
    STAFF = "staff"
    PUBLISHABLE = "publishable"


@dataclass(frozen=True)
class Caller:
    role: Role
    clinic_id: str | None = None
    key_id: str | None = None


# Which roles may act for a route that allows a given role: an admin may do what staff may.
_IMPLIED = {Role.STAFF: {Role.STAFF, Role.ADMIN}, Role.ADMIN: {Role.ADMIN}, Role.PUBLISHABLE: {Role.PUBLISHABLE}}


def bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_operator(headers: dict[str, str], operator_key: str) -> bool:
    token = bearer(headers)
    return bool(token and operator_key and hmac.compare_digest(token.encode(), operator_key.encode()))


def authenticate_operator(headers: dict[str, str], operator_key: str) -> Caller:
    if not is_operator(headers, operator_key):
        raise Unauthorized()
    return Caller(role=Role.OPERATOR)


def authenticate_clinic(headers: dict[str, str], clinic_id: str, allowed: Role, keys: KeyRepository) -> Caller:
    """Resolve the key in the headers and check it belongs to `clinic_id` with at least `allowed`."""
    if allowed is Role.PUBLISHABLE:
        token = headers.get("x-clinic-key") or headers.get("X-Clinic-Key")
    else:
        token = bearer(headers)
    if not token:
        raise Unauthorized()
    record = keys.find(hash_key(token))
    if record is None:
        raise Unauthorized()
    if record.clinic_id != clinic_id:
        raise NotFound("No such clinic.")
    if record.role not in _IMPLIED[allowed]:
        raise Forbidden()
    return Caller(role=Role(record.role), clinic_id=record.clinic_id, key_id=record.key_id)


def require(headers: dict[str, str], clinic_id: str, allowed: Role) -> Caller:
    """The one call handlers make: authenticate for this clinic with at least `allowed`."""
    return authenticate_clinic(headers, clinic_id, allowed, KeyRepository(get_settings().keys_table))
