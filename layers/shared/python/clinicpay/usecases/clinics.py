"""Clinic administration: create a clinic, settings, services, gateway credentials, keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from clinicpay.domain.clinic import Clinic, ClinicSettings, FixedDeposit, Locale, Provider, Service
from clinicpay.domain.credentials import CREDENTIAL_MODELS, mask
from clinicpay.domain.errors import Forbidden, NotFound, ValidationFailed
from clinicpay.domain.ids import new_id
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.repositories.keys import KeyRepository, key_prefix, new_key


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def create_clinic(clinics: ClinicRepository, keys: KeyRepository, *, name: str, country: str, currency: str,
                  timezone: str, locale: Locale, org_id: str | None, clinic_id: str | None = None) -> dict[str, Any]:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(details=[{"field": "timezone", "message": "unknown IANA time zone"}]) from None
    created = now_iso()
    clinic = Clinic(clinic_id=clinic_id or new_id("cl"), name=name, country=country.upper(),
                    currency=currency, timezone=timezone, locale=locale, org_id=org_id, created_at=created)
    clinics.create(clinic, ClinicSettings())
    admin_key, publishable_key = new_key("admin"), new_key("pub")
    keys.put(admin_key, clinic.clinic_id, "admin", created)
    keys.put(publishable_key, clinic.clinic_id, "publishable", created)
    return {"clinic": clinic.model_dump(mode="json"), "admin_key": admin_key, "publishable_key": publishable_key}


def create_staff_key(clinics: ClinicRepository, keys: KeyRepository, clinic_id: str) -> dict[str, str]:
    return _create_key(clinics, keys, clinic_id, "staff")


def create_admin_key(clinics: ClinicRepository, keys: KeyRepository, clinic_id: str) -> dict[str, str]:
    """A further admin key (the operator's: e.g. to replace one it revoked)."""
    return _create_key(clinics, keys, clinic_id, "admin")


def _create_key(clinics: ClinicRepository, keys: KeyRepository, clinic_id: str, role: str) -> dict[str, str]:
    clinics.get(clinic_id)
    key = new_key(role)
    record = keys.put(key, clinic_id, role, now_iso())
    return {"key": key, "key_id": record.key_id, "role": role, "prefix": key_prefix(key)}


def list_keys(clinics: ClinicRepository, keys: KeyRepository, clinic_id: str) -> list[dict[str, str | None]]:
    """The clinic's keys, active and revoked, oldest first: ids, roles, prefixes, never a key."""
    clinics.get(clinic_id)
    return [stored.view() for stored in keys.list(clinic_id)]


# Which keys each caller may revoke: the operator a clinic's admin and staff keys, a clinic admin
# its staff keys. Publishable keys are public by design and have no replacement route, so none.
REVOCABLE_BY: dict[str, frozenset[str]] = {"operator": frozenset({"admin", "staff"}), "admin": frozenset({"staff"})}
_KEY_ID = re.compile(r"^[0-9a-f]{12}$")


def revoke_key(keys: KeyRepository, clinic_id: str, key_id: str, *, revoked_by: str,
               revoker_key_id: str | None = None) -> None:
    """Revoke one of the clinic's keys; revoking it again changes nothing (the first time stays).
    `revoked_by` is the caller's role; `revoker_key_id` its key's id (none for the operator)."""
    found = keys.get(clinic_id, key_id) if _KEY_ID.match(key_id) else None
    if found is None:
        raise NotFound("No such key.")
    digest, stored = found
    if stored.role not in REVOCABLE_BY.get(revoked_by, frozenset()):
        raise Forbidden(f"A {revoked_by} key cannot revoke a {stored.role} key.")
    keys.revoke(digest, now_iso(), f"{revoked_by}:{revoker_key_id}" if revoker_key_id else revoked_by)


def update_settings(clinics: ClinicRepository, clinic_id: str, changes: dict[str, Any]) -> ClinicSettings:
    current = clinics.get_settings(clinic_id)
    try:
        updated = ClinicSettings.model_validate({**current.model_dump(), **changes})
    except ValidationError as error:
        raise ValidationFailed(details=[{"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                                        for e in error.errors()]) from None
    if updated.default_gateway and not clinics.has_gateway(clinic_id, updated.default_gateway):
        raise ValidationFailed("Store that gateway's credentials before making it the default.",
                               code="gateway_not_configured")
    clinics.put_settings(clinic_id, updated)
    return updated


def put_service(clinics: ClinicRepository, clinic_id: str, service: Service) -> Service:
    clinic = clinics.get(clinic_id)
    for field, money in (("price", service.price), ("no_show_fee", service.no_show_fee)):
        if money is not None and money.currency != clinic.currency:
            raise ValidationFailed(details=[{"field": field, "message": f"must be in the clinic's currency {clinic.currency}"}])
    if service.deposit is not None:
        if not service.requires_online_payment:
            raise ValidationFailed(details=[{"field": "deposit",
                                             "message": "a deposit is paid online: set requires_online_payment"}])
        if isinstance(service.deposit, FixedDeposit) and service.deposit.amount.currency != clinic.currency:
            raise ValidationFailed(details=[{"field": "deposit.amount",
                                             "message": f"must be in the clinic's currency {clinic.currency}"}])
    clinics.put_service(clinic_id, service)
    return service


def parse_credentials(provider: Provider, body: dict[str, Any]) -> dict[str, str]:
    try:
        model = CREDENTIAL_MODELS[provider].model_validate(body)
    except ValidationError as error:
        # Only field names and rules: the values are secrets.
        raise ValidationFailed(details=[{"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                                        for e in error.errors()]) from None
    return model.secret_values()


def masked(values: dict[str, str]) -> dict[str, str]:
    return {name: mask(name, value) for name, value in values.items()}
