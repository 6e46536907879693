"""Who is calling: operator, clinic admin, clinic staff, or the booking widget.

Every route declares the credential it takes (`Access`). The resolver checks it before the body or
the parameters are validated, so a caller without a valid key learns nothing about field rules; the
same declaration gives each operation its OpenAPI `security`.

Keys are random, shown once, and stored only as SHA-256 hashes (KeysTable). A key used on another
clinic's path is answered 404 so that the other clinic's existence is never revealed. A known key of
a kind the route does not take is a 403; anything else (no key, a malformed, unknown or revoked one)
is a 401. A revoked key is refused within the key cache's TTL (repositories/keys.py).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from clinicpay.domain.errors import Forbidden, InvalidSignature, NotFound, StorageUnavailable, Unauthorized
from clinicpay.repositories.keys import KeyRecord, KeyRepository, hash_key


class Role(StrEnum):
    OPERATOR = "operator"
    ADMIN = "admin"
    STAFF = "staff"
    PUBLISHABLE = "publishable"


class Access(StrEnum):
    """The credential a route takes (declared on the route: `@app.get(path, access=Access.STAFF)`)."""

    NONE = "none"  # public: health, the OpenAPI document, its page
    LINK_TOKEN = "link_token"  # the unguessable token in the path is the credential (payment links, card requests)
    PROVIDER_SIGNATURE = "provider_signature"  # webhooks: the handler verifies the signature on the raw body
    OPERATOR = "operator"  # Authorization: Bearer <operator key>
    ORG_ADMIN = "org_admin"  # the operator, or an admin key of a clinic in the path's {org_id}
    ADMIN_OR_OPERATOR = "admin_or_operator"  # Bearer <admin key> of the path's {clinic_id}, or the operator
    ADMIN = "admin"  # Bearer <admin key> of the path's {clinic_id}
    STAFF = "staff"  # Bearer <staff or admin key> of the path's {clinic_id}
    PUBLISHABLE = "publishable"  # X-Clinic-Key: <publishable key> of the path's {clinic_id}

    @property
    def checked_by_resolver(self) -> bool:
        return self not in (Access.NONE, Access.LINK_TOKEN, Access.PROVIDER_SIGNATURE)

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles that satisfy it, in the order the OpenAPI document lists them."""
        return {Access.OPERATOR: ("operator",), Access.ORG_ADMIN: ("operator", "admin"),
                Access.ADMIN_OR_OPERATOR: ("operator", "admin"), Access.ADMIN: ("admin",),
                Access.STAFF: ("admin", "staff"), Access.PUBLISHABLE: ("publishable",)}.get(self, ())

    @property
    def takes_operator(self) -> bool:
        return self in (Access.OPERATOR, Access.ORG_ADMIN, Access.ADMIN_OR_OPERATOR)


# The header each provider signs its webhooks in (the same names as providers/<name>/signature.py;
# a unit test keeps them equal). A delivery without it is refused before any secret is read.
SIGNATURE_HEADERS = {"fintoc": "Fintoc-Signature", "monobank": "X-Sign", "stripe": "Stripe-Signature",
                     "checkbox": "X-Request-Signature"}


@dataclass(frozen=True)
class Caller:
    role: Role
    clinic_id: str | None = None
    key_id: str | None = None  # the key's id (None for the operator, whose key is no stored key)


# Which stored roles may act for a route that takes a given access: an admin may do what staff may.
_ACCEPTED = {Access.STAFF: {Role.STAFF, Role.ADMIN}, Access.ADMIN: {Role.ADMIN}, Access.PUBLISHABLE: {Role.PUBLISHABLE},
             Access.ORG_ADMIN: {Role.ADMIN}, Access.ADMIN_OR_OPERATOR: {Role.ADMIN}}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(name.lower()) or headers.get(name)


def bearer(headers: Mapping[str, str]) -> str | None:
    value = _header(headers, "Authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_operator(headers: Mapping[str, str], operator_key: str) -> bool:
    token = bearer(headers)
    return bool(token and operator_key and hmac.compare_digest(token.encode(), operator_key.encode()))


def operator_key() -> str:
    """The operator key: an env value locally, a per-stage Secrets Manager secret in AWS (cached 5
    minutes). Secrets Manager down, or the secret missing or unreadable, is a 503, never a 500."""
    from clinicpay.settings import get_settings

    settings = get_settings()
    if settings.operator_key:
        return settings.operator_key
    if not settings.operator_key_secret:
        return ""
    from aws_lambda_powertools.utilities import parameters

    try:
        return str(parameters.get_secret(settings.operator_key_secret, max_age=300))
    except parameters.exceptions.GetParameterError:
        from clinicpay.observability import logger

        logger.error("operator key unreadable", extra={"secret": "OPERATOR_KEY_SECRET"})
        raise StorageUnavailable() from None


def _is_operator_if_readable(headers: Mapping[str, str], operator: Callable[[], str]) -> bool:
    """Only to tell a 403 from a 401 on a clinic's route: an unreadable operator secret then makes
    the answer a 401, not a 503 (clinic keys never depend on the operator's secret)."""
    try:
        return is_operator(headers, operator())
    except StorageUnavailable:
        return False


def require_signature_header(provider: str, headers: Mapping[str, str]) -> None:
    """A webhook route's first check: the provider's signature header is there (verifying it is the
    handler's job, on the raw body, with the clinic's secret)."""
    if not (_header(headers, SIGNATURE_HEADERS[provider]) or "").strip():
        raise InvalidSignature()


def authenticate(access: Access, headers: Mapping[str, str], path: Mapping[str, str], keys: KeyRepository, *,
                 operator: Callable[[], str] = operator_key,
                 org_of: Callable[[str], str | None] | None = None) -> Caller | None:
    """Check the declared credential for one request: at most one key read (the key cache spares most).

    `path` holds the route's path parameters; `org_of(clinic_id)` answers a clinic's organization
    (only ORG_ADMIN routes ask). On routes an admin may use as well as the operator, the key is looked
    up first, so admins never depend on reading the operator's secret."""
    if not access.checked_by_resolver:
        return None
    token = _header(headers, "X-Clinic-Key") if access is Access.PUBLISHABLE else bearer(headers)
    if access is Access.OPERATOR and token and is_operator(headers, operator()):
        return Caller(role=Role.OPERATOR)
    record = keys.find(hash_key(token)) if token else None
    if record is None:
        if not token:
            raise Unauthorized()
        if access in (Access.ORG_ADMIN, Access.ADMIN_OR_OPERATOR):
            # No clinic key: the operator's, or nobody's (an unreadable operator secret is a 503 here).
            if is_operator(headers, operator()):
                return Caller(role=Role.OPERATOR)
        elif access in (Access.ADMIN, Access.STAFF) and _is_operator_if_readable(headers, operator):
            raise Forbidden()  # the operator's key is known, but it does not act for a clinic
        raise Unauthorized()
    if access is Access.OPERATOR or record.role not in _ACCEPTED[access]:
        # Only a key of this clinic may learn that its role falls short; another clinic's key sees 404.
        _same_clinic(record, access, path, org_of)
        raise Forbidden()
    _same_clinic(record, access, path, org_of)
    return Caller(role=Role(record.role), clinic_id=record.clinic_id, key_id=record.key_id)


def _same_clinic(record: KeyRecord, access: Access, path: Mapping[str, str],
                 org_of: Callable[[str], str | None] | None) -> None:
    if access is Access.OPERATOR:
        return
    if access is Access.ORG_ADMIN:
        if record.role == Role.ADMIN and (org_of is None or org_of(record.clinic_id) != path.get("org_id")):
            raise NotFound("No such organization.")
        return
    if record.clinic_id != path.get("clinic_id"):
        raise NotFound("No such clinic.")
