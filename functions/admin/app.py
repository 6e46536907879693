"""admin: clinics, settings, services, gateway credentials, message templates, keys; health and docs."""


from clinicpay import coldstart  # first: the garbage collector waits while this module loads

# isort: split
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.logging import correlation_paths
from pydantic import ConfigDict, Field, StrictBool, StrictInt

from clinicpay.api import pages
from clinicpay.api.auth import Access, Caller
from clinicpay.api.resolver import error_response, make_resolver
from clinicpay.deadline import lambda_deadline
from clinicpay.domain.clinic import ClinicSettings, DepositRule, Locale, Provider, Service, ShiftSchedule, WebsiteUrl
from clinicpay.domain.errors import NotFound, ValidationFailed
from clinicpay.domain.model import Model
from clinicpay.domain.money import CURRENCY_EXPONENTS, SUPPORTED_CURRENCIES, Money
from clinicpay.domain.phones import calling_code
from clinicpay.domain.text import MultiLine, OneLine
from clinicpay.notify.builtin import CHANNELS, KINDS, LOCALES, Text, builtin
from clinicpay.observability import logger, metrics, tracer
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.repositories.keys import KeyRepository
from clinicpay.repositories.patient_tokens import PatientTokenSecrets
from clinicpay.repositories.templates import TemplateRepository, clinic_owner, org_owner
from clinicpay.settings import get_settings
from clinicpay.usecases import clinics as usecase
from clinicpay.usecases import patient_tokens

app = make_resolver()

ProviderPath = Annotated[str, Path(json_schema_extra={"enum": [p.value for p in Provider]}, examples=["stripe"])]
KindPath = Annotated[str, Path(json_schema_extra={"enum": list(KINDS)}, examples=["appointment_created"])]
ChannelPath = Annotated[str, Path(json_schema_extra={"enum": list(CHANNELS)}, examples=["email"])]
LocalePath = Annotated[str, Path(json_schema_extra={"enum": list(LOCALES)}, examples=["es"])]
CREDENTIALS_DESCRIPTION = ("That provider's credentials: fintoc {secret_key, public_key, webhook_secret}, monobank "
                           "{token}, stripe {secret_key, publishable_key, webhook_secret}, checkbox {license_key, "
                           "pin_code, webhook_secret?}. Stored in Secrets Manager, never returned.")
STRIPE_EXAMPLE = {"secret_key": "sk_test_clinicpay_example", "publishable_key": "pk_test_clinicpay",
                  "webhook_secret": "whsec_clinicpay_example"}


def _clinics() -> ClinicRepository:
    return ClinicRepository(get_settings().app_table)


def _keys() -> KeyRepository:
    return KeyRepository(get_settings().keys_table)


def _caller() -> Caller:
    """Who the resolver authenticated (every route calling this declares a key-taking access)."""
    caller = app.caller
    assert caller is not None
    return caller


class CreateClinicRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Clínica Providencia", "country": "CL", "currency": "CLP", "timezone": "America/Santiago",
         "locale": "es"}]})

    name: OneLine = Field(min_length=1, max_length=200)
    country: str = Field(pattern=r"^[A-Za-z]{2}$")
    currency: str = Field(description="ISO 4217; one we support", json_schema_extra={"enum": SUPPORTED_CURRENCIES})
    timezone: str = Field(min_length=1, max_length=64, description="IANA time zone, e.g. America/Santiago")
    locale: Locale
    org_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    clinic_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{3,64}$")


class SettingsPatch(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"show_payment_link_in_email": True, "reminder_hours_before": [24, 2]}]})

    # Strict: `0`, `"yes"` or `"10"` are refused, not read as false, true or 10.
    show_payment_link_in_email: StrictBool | None = None
    card_required_for_online_booking: StrictBool | None = None
    online_link_ttl_minutes: Annotated[StrictInt, Field(ge=5, le=60 * 24 * 30)] | None = None
    reminder_hours_before: list[Annotated[StrictInt, Field(ge=1, le=24 * 14)]] | None = Field(default=None, max_length=10)
    default_gateway: Provider | None = None
    fiscalization: Literal["clinicpay", "monobank", "none"] | None = None
    fiscal_shift_schedule: ShiftSchedule | None = None
    website: WebsiteUrl | None = Field(default=None, description=(
        "The clinic's site (https), linked from the patient's receipt and card pages; null removes it."),
        examples=["https://clinica-ejemplo.cl"])
    address: OneLine | None = Field(default=None, min_length=1, max_length=300, description=(
        "The clinic's street address, one line, shown at the foot of patient emails; null removes it."),
        examples=["Av. Providencia 1234, Providencia, Santiago"])
    phone: str | None = Field(default=None, pattern=r"^\+[1-9]\d{6,14}$", description=(
        "The number patients call (E.164), shown at the foot of patient emails; null removes it."),
        examples=["+56221234567"])


class ServiceRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Consulta", "names": {"en": "Consultation"}, "price": {"amount": 25000, "currency": "CLP"},
         "requires_online_payment": True, "requires_card_on_file": False,
         "no_show_fee": {"amount": 10000, "currency": "CLP"}}]})

    name: OneLine = Field(min_length=1, max_length=200)
    names: dict[Locale, Annotated[OneLine, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, description="The name in other languages (es, en, fr, uk, nb): patients read the one of "
                                  "their language in messages and pages, else `name`.")
    price: Money
    requires_online_payment: StrictBool = False
    requires_card_on_file: StrictBool = False
    no_show_fee: Money | None = None
    deposit: DepositRule | None = Field(default=None, description=(
        "Ask this first online instead of the whole price: {type: fixed, amount: Money} or "
        "{type: percent, percent: 1..100} (rounded half up to the minor unit). Needs requires_online_payment."))


class TemplateRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"subject": "Tu hora en $clinic_name", "body": "Hola $patient_name, te esperamos el $starts_at. $payment_line"}]})

    subject: OneLine = Field(default="", max_length=300)
    body: MultiLine = Field(min_length=1, max_length=5000)


# ------------------------------------------------------------------ clinics and keys
@app.post("/v1/clinics", access=Access.OPERATOR, status_code=201)
@tracer.capture_method
def create_clinic(body: Annotated[CreateClinicRequest, Body()]) -> dict[str, Any]:
    if body.currency not in CURRENCY_EXPONENTS:  # the schema's enum documents it; this enforces it
        raise ValidationFailed(details=[{"field": "currency", "message": "unsupported currency"}])
    created = usecase.create_clinic(_clinics(), _keys(), **body.model_dump())
    metrics.add_metric(name="ClinicCreated", unit="Count", value=1)
    logger.info("clinic created", extra={"clinic_id": created["clinic"]["clinic_id"]})
    return created


@app.get("/v1/clinics/<clinic_id>", access=Access.STAFF)
def get_clinic(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return {"clinic": _clinics().get(clinic_id).model_dump(mode="json")}


@app.post("/v1/clinics/<clinic_id>/staff-keys", access=Access.ADMIN, status_code=201)
def create_staff_key(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return usecase.create_staff_key(_clinics(), _keys(), clinic_id)


@app.post("/v1/clinics/<clinic_id>/admin-keys", access=Access.OPERATOR, status_code=201)
def create_admin_key(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    """The operator issues a further admin key (shown once), e.g. to replace a revoked one."""
    created = usecase.create_admin_key(_clinics(), _keys(), clinic_id)
    logger.info("admin key issued", extra={"clinic_id": clinic_id, "key_id": created["key_id"]})
    return created


@app.get("/v1/clinics/<clinic_id>/keys", access=Access.ADMIN_OR_OPERATOR)
def list_keys(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    """The clinic's keys (admin of the clinic, or the operator): ids, roles, prefixes, never a key."""
    return {"keys": usecase.list_keys(_clinics(), _keys(), clinic_id)}


@app.delete("/v1/clinics/<clinic_id>/keys/<key_id>", access=Access.ADMIN_OR_OPERATOR, status_code=204)
def revoke_key(clinic_id: Annotated[str, Path()],
               key_id: Annotated[str, Path(examples=["3f2a9c1b7d4e"])]) -> Response[Any]:
    """An admin revokes its clinic's staff keys; the operator, admin and staff keys of any clinic."""
    caller = _caller()
    usecase.revoke_key(_keys(), clinic_id, key_id, revoked_by=caller.role.value, revoker_key_id=caller.key_id)
    logger.info("key revoked", extra={"clinic_id": clinic_id, "key_id": key_id, "by": caller.role.value})
    return Response(204, None, "")


# ------------------------------------------------------------------ settings
@app.get("/v1/clinics/<clinic_id>/settings", access=Access.STAFF)
def get_settings_route(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return _clinics().get_settings(clinic_id).model_dump(mode="json")


@app.patch("/v1/clinics/<clinic_id>/settings", access=Access.ADMIN)
def patch_settings(clinic_id: Annotated[str, Path()], body: Annotated[SettingsPatch, Body()]) -> dict[str, Any]:
    # Only fields the caller sent change; an explicit null clears a nullable one.
    changes = body.model_dump(exclude_unset=True)
    updated: ClinicSettings = usecase.update_settings(_clinics(), clinic_id, changes)
    return updated.model_dump(mode="json")


# ------------------------------------------------------------------ gateways
@app.get("/v1/clinics/<clinic_id>/gateways", access=Access.ADMIN)
def list_gateways(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return {"gateways": _clinics().list_gateways(clinic_id)}


@app.put("/v1/clinics/<clinic_id>/gateways/<provider>", access=Access.ADMIN)
def put_gateway(clinic_id: Annotated[str, Path()], provider: ProviderPath,
                body: Annotated[dict[str, str], Body(description=CREDENTIALS_DESCRIPTION, examples=[STRIPE_EXAMPLE])],
                ) -> dict[str, Any]:
    # Provider code and Secrets Manager load with the first gateway change, not with every admin
    # container (the booking widget's service list is served here too).
    from clinicpay import secrets
    from clinicpay.providers.registry import probe_credentials

    chosen = _provider(provider)
    values = usecase.parse_credentials(chosen, body)
    verified = probe_credentials(chosen, values)
    secrets.store_credentials(clinic_id, chosen.value, values)
    masked = usecase.masked(values)
    _clinics().put_gateway(clinic_id, chosen.value, masked, verified, usecase.now_iso())
    logger.info("gateway credentials stored", extra={"clinic_id": clinic_id, "provider": chosen.value,
                                                     "verified": verified})
    return {"provider": chosen.value, "masked": masked, "verified": verified}


@app.delete("/v1/clinics/<clinic_id>/gateways/<provider>", access=Access.ADMIN, status_code=204)
def delete_gateway(clinic_id: Annotated[str, Path()], provider: ProviderPath) -> Response[Any]:
    from clinicpay import secrets

    chosen = _provider(provider)
    _clinics().delete_gateway(clinic_id, chosen.value)
    secrets.delete_credentials(clinic_id, chosen.value)
    settings = _clinics().get_settings(clinic_id)
    if settings.default_gateway == chosen:
        usecase.update_settings(_clinics(), clinic_id, {"default_gateway": None})
    return Response(204, None, "")


def _provider(value: str) -> Provider:
    try:
        return Provider(value)
    except ValueError:
        raise NotFound("No such provider.") from None


# ------------------------------------------------------------------ services
@app.get("/v1/clinics/<clinic_id>/services", access=Access.STAFF)
def list_services(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return {"services": [s.model_dump(mode="json") for s in _clinics().list_services(clinic_id)]}


@app.put("/v1/clinics/<clinic_id>/services/<service_id>", access=Access.ADMIN)
def put_service(clinic_id: Annotated[str, Path()],
                service_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,64}$", examples=["consulta"])],
                body: Annotated[ServiceRequest, Body()]) -> dict[str, Any]:
    service = usecase.put_service(_clinics(), clinic_id, Service(service_id=service_id, **body.model_dump()))
    return service.model_dump(mode="json")


@app.get("/v1/public/clinics/<clinic_id>/services", access=Access.PUBLISHABLE, limit="read")
def public_services(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    clinic = _clinics().get(clinic_id)
    settings = _clinics().get_settings(clinic_id)
    services = [{"service_id": s.service_id, "name": s.name, "names": s.names, "price": s.price.model_dump(),
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


@app.get("/v1/clinics/<clinic_id>/patient-token-secret", access=Access.ADMIN)
def get_patient_token_secret(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    """Whether the clinic's site can sign patient tokens, and since when (never the secret)."""
    return patient_tokens.describe(_token_secrets(), clinic_id, datetime.now(UTC))


@app.post("/v1/clinics/<clinic_id>/patient-token-secret", access=Access.ADMIN, status_code=201)
def rotate_patient_token_secret(clinic_id: Annotated[str, Path()]) -> Response[Any]:
    """A new secret for the clinic's site to sign patient tokens with, shown this once; the one it
    replaces is honoured for 24 hours more."""
    _clinics().get(clinic_id)
    made = patient_tokens.rotate(_token_secrets(), clinic_id, datetime.now(UTC))
    logger.info("patient token secret rotated", extra={"clinic_id": clinic_id, "kid": made["kid"]})
    return Response(201, "application/json", json.dumps(made), headers={"Cache-Control": "no-store"})


@app.delete("/v1/clinics/<clinic_id>/patient-token-secret", access=Access.ADMIN, status_code=204)
def revoke_patient_token_secret(clinic_id: Annotated[str, Path()]) -> Response[Any]:
    """Every patient token stops working at once (a leaked secret); public bookings go on as new patients."""
    _token_secrets().delete(clinic_id)
    logger.info("patient token secret revoked", extra={"clinic_id": clinic_id})
    return Response(204, None, "")


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


@app.put("/v1/clinics/<clinic_id>/message-templates/<kind>/<channel>/<locale>", access=Access.ADMIN)
def put_clinic_template(clinic_id: Annotated[str, Path()], kind: KindPath, channel: ChannelPath, locale: LocalePath,
                        body: Annotated[TemplateRequest, Body()]) -> dict[str, Any]:
    _template_path(kind, channel, locale)
    TemplateRepository(get_settings().app_table).put(clinic_owner(clinic_id), kind, channel, locale,
                                                     Text(body.subject, body.body), usecase.now_iso())
    return {"kind": kind, "channel": channel, "locale": locale, "source": "clinic", **body.model_dump()}


@app.get("/v1/clinics/<clinic_id>/message-templates/<kind>/<channel>/<locale>", access=Access.STAFF)
def get_clinic_template(clinic_id: Annotated[str, Path()], kind: KindPath, channel: ChannelPath,
                        locale: LocalePath) -> dict[str, Any]:
    _template_path(kind, channel, locale)
    clinic = _clinics().get(clinic_id)
    return _template_view(clinic_owner(clinic_id), kind, channel, locale, clinic_id, clinic.org_id)


@app.get("/v1/clinics/<clinic_id>/message-templates", access=Access.STAFF)
def list_clinic_templates(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    clinic = _clinics().get(clinic_id)
    views = [_template_view(clinic_owner(clinic_id), k, c, lo, clinic_id, clinic.org_id)
             for k in KINDS for c in CHANNELS for lo in LOCALES]
    return {"templates": views}


@app.put("/v1/orgs/<org_id>/message-templates/<kind>/<channel>/<locale>", access=Access.ORG_ADMIN)
def put_org_template(org_id: Annotated[str, Path()], kind: KindPath, channel: ChannelPath, locale: LocalePath,
                     body: Annotated[TemplateRequest, Body()]) -> dict[str, Any]:
    _template_path(kind, channel, locale)
    TemplateRepository(get_settings().app_table).put(org_owner(org_id), kind, channel, locale,
                                                     Text(body.subject, body.body), usecase.now_iso())
    return {"kind": kind, "channel": channel, "locale": locale, "source": "org", **body.model_dump()}


@app.get("/v1/orgs/<org_id>/message-templates/<kind>/<channel>/<locale>", access=Access.ORG_ADMIN)
def get_org_template(org_id: Annotated[str, Path()], kind: KindPath, channel: ChannelPath,
                     locale: LocalePath) -> dict[str, Any]:
    _template_path(kind, channel, locale)
    return _template_view(org_owner(org_id), kind, channel, locale, None, org_id)


# ------------------------------------------------------------------ operations
# Health answers anyone: check names say what is wrong, never a table name or an error text.
HEALTH_RETRY_AFTER_SECONDS = 30


@app.get("/health", access=Access.NONE)
def health() -> Response[Any]:
    from clinicpay.repositories import health as probes
    from clinicpay.usecases.health import run_checks

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


@app.get("/openapi.json", access=Access.NONE)
def openapi() -> Response[Any]:
    document = resources.files("clinicpay.api").joinpath("openapi.json").read_text()
    return Response(200, "application/json", document)


@app.get("/docs", access=Access.NONE, responses=pages.html_responses(200))
def docs() -> Response[Any]:
    from clinicpay.api import docs_page

    page, headers = docs_page.render(get_settings().docs_viewer_url)
    return Response(200, "text/html; charset=utf-8", page, headers=headers)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
@lambda_deadline
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)


coldstart.loaded()
