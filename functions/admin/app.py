"""admin: clinics, settings, services, gateway credentials, message templates, keys; health and docs."""


import json
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.logging import correlation_paths
from pydantic import BaseModel, ConfigDict, Field

from clinicpay import secrets
from clinicpay.api.auth import Caller, Role, authenticate_operator, bearer, is_operator, require
from clinicpay.api.public import public_caller
from clinicpay.api.resolver import error_response, make_resolver
from clinicpay.deadline import lambda_deadline
from clinicpay.domain.clinic import ClinicSettings, DepositRule, Locale, Provider, Service
from clinicpay.domain.errors import Forbidden, NotFound, StorageUnavailable, Unauthorized, ValidationFailed
from clinicpay.domain.money import CURRENCY_EXPONENTS, Money
from clinicpay.domain.phones import calling_code
from clinicpay.domain.text import MultiLine, OneLine
from clinicpay.notify.builtin import CHANNELS, KINDS, LOCALES, Text, builtin
from clinicpay.observability import logger, metrics, tracer
from clinicpay.providers.registry import probe_credentials
from clinicpay.repositories import health as probes
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.repositories.keys import KeyRepository, hash_key
from clinicpay.repositories.patient_tokens import PatientTokenSecrets
from clinicpay.repositories.templates import TemplateRepository, clinic_owner, org_owner
from clinicpay.settings import get_settings
from clinicpay.usecases import clinics as usecase
from clinicpay.usecases import patient_tokens
from clinicpay.usecases.health import run_checks

app = make_resolver()


def _clinics() -> ClinicRepository:
    return ClinicRepository(get_settings().app_table)


def _keys() -> KeyRepository:
    return KeyRepository(get_settings().keys_table)


def _auth(clinic_id: str, role: Role) -> None:
    require(app.current_event.headers, clinic_id, role)


def _operator_or(clinic_id: str, role: Role) -> Caller:
    """The operator (any clinic), or a key of this clinic allowed `role`. A clinic key is resolved
    first, so admins never depend on reading the operator's secret."""
    headers = app.current_event.headers
    token = bearer(headers)
    if token and _keys().find(hash_key(token)) is None and is_operator(headers, _operator_key()):
        return Caller(role=Role.OPERATOR)
    return require(headers, clinic_id, role)


class CreateClinicRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: OneLine = Field(min_length=1, max_length=200)
    country: str = Field(pattern=r"^[A-Za-z]{2}$")
    currency: str = Field(description=f"one of {sorted(CURRENCY_EXPONENTS)}")
    timezone: str
    locale: Locale
    org_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    clinic_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{3,64}$")


class SettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    show_payment_link_in_email: bool | None = None
    card_required_for_online_booking: bool | None = None
    online_link_ttl_minutes: int | None = None
    reminder_hours_before: list[int] | None = None
    default_gateway: Provider | None = None


class ServiceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: OneLine = Field(min_length=1, max_length=200)
    price: Money
    requires_online_payment: bool = False
    requires_card_on_file: bool = False
    no_show_fee: Money | None = None
    deposit: DepositRule | None = Field(default=None, description=(
        "Ask this first online instead of the whole price: {type: fixed, amount: Money} or "
        "{type: percent, percent: 1..100} (rounded half up to the minor unit). Needs requires_online_payment."))


class TemplateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: OneLine = Field(default="", max_length=300)
    body: MultiLine = Field(min_length=1, max_length=5000)


# ------------------------------------------------------------------ clinics and keys
@app.post("/v1/clinics")
@tracer.capture_method
def create_clinic(body: Annotated[CreateClinicRequest, Body()]) -> Response[Any]:
    authenticate_operator(app.current_event.headers, _operator_key())
    if body.currency not in CURRENCY_EXPONENTS:
        raise ValidationFailed(details=[{"field": "currency", "message": "unsupported currency"}])
    created = usecase.create_clinic(_clinics(), _keys(), **body.model_dump())
    metrics.add_metric(name="ClinicCreated", unit="Count", value=1)
    logger.info("clinic created", extra={"clinic_id": created["clinic"]["clinic_id"]})
    return Response(201, "application/json", json.dumps(created))


@app.get("/v1/clinics/<clinic_id>")
def get_clinic(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    _auth(clinic_id, Role.STAFF)
    return {"clinic": _clinics().get(clinic_id).model_dump(mode="json")}


@app.post("/v1/clinics/<clinic_id>/staff-keys")
def create_staff_key(clinic_id: Annotated[str, Path()]) -> Response[Any]:
    _auth(clinic_id, Role.ADMIN)
    created = usecase.create_staff_key(_clinics(), _keys(), clinic_id)
    return Response(201, "application/json", json.dumps(created))


@app.post("/v1/clinics/<clinic_id>/admin-keys")
def create_admin_key(clinic_id: Annotated[str, Path()]) -> Response[Any]:
    """The operator issues a further admin key (shown once), e.g. to replace a revoked one."""
    authenticate_operator(app.current_event.headers, _operator_key())
    created = usecase.create_admin_key(_clinics(), _keys(), clinic_id)
    logger.info("admin key issued", extra={"clinic_id": clinic_id, "key_id": created["key_id"]})
    return Response(201, "application/json", json.dumps(created))


@app.get("/v1/clinics/<clinic_id>/keys")
def list_keys(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    """The clinic's keys (admin of the clinic, or the operator): ids, roles, prefixes, never a key."""
    _operator_or(clinic_id, Role.ADMIN)
    return {"keys": usecase.list_keys(_clinics(), _keys(), clinic_id)}


@app.delete("/v1/clinics/<clinic_id>/keys/<key_id>")
def revoke_key(clinic_id: Annotated[str, Path()], key_id: Annotated[str, Path()]) -> Response[Any]:
    """An admin revokes its clinic's staff keys; the operator, admin and staff keys of any clinic."""
    caller = _operator_or(clinic_id, Role.ADMIN)
    usecase.revoke_key(_keys(), clinic_id, key_id, revoked_by=caller.role.value, revoker_key_id=caller.key_id)
    logger.info("key revoked", extra={"clinic_id": clinic_id, "key_id": key_id, "by": caller.role.value})
    return Response(204, "application/json", "")


# ------------------------------------------------------------------ settings
@app.get("/v1/clinics/<clinic_id>/settings")
def get_settings_route(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    _auth(clinic_id, Role.STAFF)
    return _clinics().get_settings(clinic_id).model_dump(mode="json")


@app.patch("/v1/clinics/<clinic_id>/settings")
def patch_settings(clinic_id: Annotated[str, Path()], body: Annotated[SettingsPatch, Body()]) -> dict[str, Any]:
    _auth(clinic_id, Role.ADMIN)
    # Only fields the caller sent change; an explicit null clears a nullable one.
    changes = body.model_dump(exclude_unset=True)
    updated: ClinicSettings = usecase.update_settings(_clinics(), clinic_id, changes)
    return updated.model_dump(mode="json")


# ------------------------------------------------------------------ gateways
@app.get("/v1/clinics/<clinic_id>/gateways")
def list_gateways(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    _auth(clinic_id, Role.ADMIN)
    return {"gateways": _clinics().list_gateways(clinic_id)}


@app.put("/v1/clinics/<clinic_id>/gateways/<provider>")
def put_gateway(clinic_id: Annotated[str, Path()], provider: Annotated[str, Path()]) -> dict[str, Any]:
    _auth(clinic_id, Role.ADMIN)
    chosen = _provider(provider)
    values = usecase.parse_credentials(chosen, app.current_event.json_body or {})
    verified = probe_credentials(chosen, values)
    secrets.store_credentials(clinic_id, chosen.value, values)
    masked = usecase.masked(values)
    _clinics().put_gateway(clinic_id, chosen.value, masked, verified, usecase.now_iso())
    logger.info("gateway credentials stored", extra={"clinic_id": clinic_id, "provider": chosen.value,
                                                     "verified": verified})
    return {"provider": chosen.value, "masked": masked, "verified": verified}


@app.delete("/v1/clinics/<clinic_id>/gateways/<provider>")
def delete_gateway(clinic_id: Annotated[str, Path()], provider: Annotated[str, Path()]) -> Response[Any]:
    _auth(clinic_id, Role.ADMIN)
    chosen = _provider(provider)
    _clinics().delete_gateway(clinic_id, chosen.value)
    secrets.delete_credentials(clinic_id, chosen.value)
    settings = _clinics().get_settings(clinic_id)
    if settings.default_gateway == chosen:
        usecase.update_settings(_clinics(), clinic_id, {"default_gateway": None})
    return Response(204, "application/json", "")


def _provider(value: str) -> Provider:
    try:
        return Provider(value)
    except ValueError:
        raise NotFound("No such provider.") from None


# ------------------------------------------------------------------ services
@app.get("/v1/clinics/<clinic_id>/services")
def list_services(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    _auth(clinic_id, Role.STAFF)
    return {"services": [s.model_dump(mode="json") for s in _clinics().list_services(clinic_id)]}


@app.put("/v1/clinics/<clinic_id>/services/<service_id>")
def put_service(clinic_id: Annotated[str, Path()], service_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,64}$")],
                body: Annotated[ServiceRequest, Body()]) -> dict[str, Any]:
    _auth(clinic_id, Role.ADMIN)
    service = usecase.put_service(_clinics(), clinic_id, Service(service_id=service_id, **body.model_dump()))
    return service.model_dump(mode="json")


@app.get("/v1/public/clinics/<clinic_id>/services")
def public_services(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    public_caller(app, clinic_id, "read")
    clinic = _clinics().get(clinic_id)
    settings = _clinics().get_settings(clinic_id)
    services = [{"service_id": s.service_id, "name": s.name, "price": s.price.model_dump(),
                 "requires_online_payment": s.requires_online_payment,
                 "requires_card_on_file": s.requires_card_on_file and settings.card_required_for_online_booking}
                for s in _clinics().list_services(clinic_id)]
    return {"clinic": {"clinic_id": clinic.clinic_id, "name": clinic.name, "currency": clinic.currency,
                       "locale": clinic.locale, "timezone": clinic.timezone, "country": clinic.country,
                       # texts from public bookings go only to mobiles with this calling code
                       "phone_country_code": calling_code(clinic.country)},
            "services": services}


# ------------------------------------------------------------------ patient tokens
def _token_secrets() -> PatientTokenSecrets:
    return PatientTokenSecrets(get_settings().app_table)


@app.get("/v1/clinics/<clinic_id>/patient-token-secret")
def get_patient_token_secret(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    """Whether the clinic's site can sign patient tokens, and since when (never the secret)."""
    _auth(clinic_id, Role.ADMIN)
    return patient_tokens.describe(_token_secrets(), clinic_id, datetime.now(UTC))


@app.post("/v1/clinics/<clinic_id>/patient-token-secret")
def rotate_patient_token_secret(clinic_id: Annotated[str, Path()]) -> Response[Any]:
    """A new secret for the clinic's site to sign patient tokens with, shown this once; the one it
    replaces is honoured for 24 hours more."""
    _auth(clinic_id, Role.ADMIN)
    _clinics().get(clinic_id)
    made = patient_tokens.rotate(_token_secrets(), clinic_id, datetime.now(UTC))
    logger.info("patient token secret rotated", extra={"clinic_id": clinic_id, "kid": made["kid"]})
    return Response(201, "application/json", json.dumps(made), headers={"Cache-Control": "no-store"})


@app.delete("/v1/clinics/<clinic_id>/patient-token-secret")
def revoke_patient_token_secret(clinic_id: Annotated[str, Path()]) -> Response[Any]:
    """Every patient token stops working at once (a leaked secret); public bookings go on as new patients."""
    _auth(clinic_id, Role.ADMIN)
    _token_secrets().delete(clinic_id)
    logger.info("patient token secret revoked", extra={"clinic_id": clinic_id})
    return Response(204, "application/json", "")


# ------------------------------------------------------------------ message templates
def _template_path(kind: str, channel: str, locale: str) -> None:
    if kind not in KINDS or channel not in CHANNELS or locale not in LOCALES:
        raise NotFound(f"Templates exist for kinds {list(KINDS)}, channels {list(CHANNELS)}, locales {list(LOCALES)}.")


def _template_view(owner: str, kind: str, channel: str, locale: str, clinic_id: str | None,
                   org_id: str | None) -> dict[str, Any]:
    repo = TemplateRepository(get_settings().app_table)
    for source, key in (("clinic", clinic_id and clinic_owner(clinic_id)), ("org", org_id and org_owner(org_id))):
        if key:
            found = repo.get(key, kind, channel, locale)
            if found:
                return {"kind": kind, "channel": channel, "locale": locale, "source": source,
                        "subject": found.subject, "body": found.body}
    text = builtin(kind, channel, locale)
    return {"kind": kind, "channel": channel, "locale": locale, "source": "builtin", "subject": text.subject,
            "body": text.body}


@app.put("/v1/clinics/<clinic_id>/message-templates/<kind>/<channel>/<locale>")
def put_clinic_template(clinic_id: Annotated[str, Path()], kind: Annotated[str, Path()],
                        channel: Annotated[str, Path()], locale: Annotated[str, Path()],
                        body: Annotated[TemplateRequest, Body()]) -> dict[str, Any]:
    _auth(clinic_id, Role.ADMIN)
    _template_path(kind, channel, locale)
    TemplateRepository(get_settings().app_table).put(clinic_owner(clinic_id), kind, channel, locale,
                                                     Text(body.subject, body.body), usecase.now_iso())
    return {"kind": kind, "channel": channel, "locale": locale, "source": "clinic", **body.model_dump()}


@app.get("/v1/clinics/<clinic_id>/message-templates/<kind>/<channel>/<locale>")
def get_clinic_template(clinic_id: Annotated[str, Path()], kind: Annotated[str, Path()],
                        channel: Annotated[str, Path()], locale: Annotated[str, Path()]) -> dict[str, Any]:
    _auth(clinic_id, Role.STAFF)
    _template_path(kind, channel, locale)
    clinic = _clinics().get(clinic_id)
    return _template_view(clinic_owner(clinic_id), kind, channel, locale, clinic_id, clinic.org_id)


@app.get("/v1/clinics/<clinic_id>/message-templates")
def list_clinic_templates(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    _auth(clinic_id, Role.STAFF)
    clinic = _clinics().get(clinic_id)
    views = [_template_view(clinic_owner(clinic_id), k, c, lo, clinic_id, clinic.org_id)
             for k in KINDS for c in CHANNELS for lo in LOCALES]
    return {"templates": views}


def _auth_org(org_id: str) -> None:
    """The operator, or an admin of a clinic that belongs to this organization."""
    headers = app.current_event.headers
    if is_operator(headers, _operator_key()):
        return
    token = bearer(headers)
    record = _keys().find(hash_key(token)) if token else None
    if record is None:
        raise Unauthorized()
    if record.role != Role.ADMIN:
        raise Forbidden()
    if _clinics().get(record.clinic_id).org_id != org_id:
        raise NotFound("No such organization.")


@app.put("/v1/orgs/<org_id>/message-templates/<kind>/<channel>/<locale>")
def put_org_template(org_id: Annotated[str, Path()], kind: Annotated[str, Path()], channel: Annotated[str, Path()],
                     locale: Annotated[str, Path()], body: Annotated[TemplateRequest, Body()]) -> dict[str, Any]:
    _auth_org(org_id)
    _template_path(kind, channel, locale)
    TemplateRepository(get_settings().app_table).put(org_owner(org_id), kind, channel, locale,
                                                     Text(body.subject, body.body), usecase.now_iso())
    return {"kind": kind, "channel": channel, "locale": locale, "source": "org", **body.model_dump()}


@app.get("/v1/orgs/<org_id>/message-templates/<kind>/<channel>/<locale>")
def get_org_template(org_id: Annotated[str, Path()], kind: Annotated[str, Path()], channel: Annotated[str, Path()],
                     locale: Annotated[str, Path()]) -> dict[str, Any]:
    _auth_org(org_id)
    _template_path(kind, channel, locale)
    return _template_view(org_owner(org_id), kind, channel, locale, None, org_id)


# ------------------------------------------------------------------ operations
# Health answers anyone: check names say what is wrong, never a table name or an error text.
HEALTH_RETRY_AFTER_SECONDS = 30


@app.get("/health")
def health() -> Response[Any]:
    settings = get_settings()
    report = run_checks({
        "storage": lambda: probes.probe_appointments(settings.app_table),
        "keys": lambda: probes.probe_keys(settings.keys_table),
    })
    no_store = {"Cache-Control": "no-store"}
    if report.healthy:
        return Response(200, "application/json", json.dumps({"status": "ok", "checks": report.checks}),
                        headers=no_store)
    return error_response(503, "unhealthy", f"Not ready: {', '.join(report.failing)} failing; try again shortly.",
                          [{"check": name, "status": status} for name, status in report.checks.items()],
                          headers={**no_store, "Retry-After": str(HEALTH_RETRY_AFTER_SECONDS)})


@app.get("/openapi.json")
def openapi() -> Response[Any]:
    document = resources.files("clinicpay.api").joinpath("openapi.json").read_text()
    return Response(200, "application/json", document)


@app.get("/docs")
def docs() -> Response[Any]:
    page = resources.files("clinicpay.api").joinpath("docs.html").read_text()
    return Response(200, "text/html; charset=utf-8", page)


def _operator_key() -> str:
    settings = get_settings()
    if settings.operator_key:
        return settings.operator_key
    if not settings.operator_key_secret:
        return ""
    from aws_lambda_powertools.utilities import parameters

    try:
        return str(parameters.get_secret(settings.operator_key_secret, max_age=300))
    except parameters.exceptions.GetParameterError:
        # Secrets Manager down, or the secret missing or unreadable: say so (503), never a 500.
        logger.error("operator key unreadable", extra={"secret": "OPERATOR_KEY_SECRET"})
        raise StorageUnavailable() from None


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
@lambda_deadline
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
