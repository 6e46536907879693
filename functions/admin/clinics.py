"""Clinics (the operator creates them), their settings and the services they offer (staff read,
admins change)."""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import ConfigDict, Field, StrictBool, StrictInt

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.clinic import ClinicSettings, DepositRule, Locale, Provider, Service, ShiftSchedule, WebsiteUrl
from clinicpay.domain.errors import ValidationFailed
from clinicpay.domain.model import Model
from clinicpay.domain.money import CURRENCY_EXPONENTS, SUPPORTED_CURRENCIES, Money
from clinicpay.domain.text import OneLine
from clinicpay.observability import logger, metrics, tracer
from clinicpay.usecases import clinics as usecase

app = loading_routes()
stores = function_module(__file__, "stores")


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


# ------------------------------------------------------------------ clinics
@app.post("/v1/clinics", access=Access.OPERATOR, status_code=201)
@tracer.capture_method
def create_clinic(body: Annotated[CreateClinicRequest, Body()]) -> dict[str, Any]:
    if body.currency not in CURRENCY_EXPONENTS:  # the schema's enum documents it; this enforces it
        raise ValidationFailed(details=[{"field": "currency", "message": "unsupported currency"}])
    created = usecase.create_clinic(stores.clinics(), stores.keys(), **body.model_dump())
    metrics.add_metric(name="ClinicCreated", unit="Count", value=1)
    logger.info("clinic created", extra={"clinic_id": created["clinic"]["clinic_id"]})
    return created


@app.get("/v1/clinics/<clinic_id>", access=Access.STAFF)
def get_clinic(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return {"clinic": stores.clinics().get(clinic_id).model_dump(mode="json")}


# ------------------------------------------------------------------ settings
@app.get("/v1/clinics/<clinic_id>/settings", access=Access.STAFF)
def get_settings_route(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return stores.clinics().get_settings(clinic_id).model_dump(mode="json")


@app.patch("/v1/clinics/<clinic_id>/settings", access=Access.ADMIN)
def patch_settings(clinic_id: Annotated[str, Path()], body: Annotated[SettingsPatch, Body()]) -> dict[str, Any]:
    # Only fields the caller sent change; an explicit null clears a nullable one.
    changes = body.model_dump(exclude_unset=True)
    updated: ClinicSettings = usecase.update_settings(stores.clinics(), clinic_id, changes)
    return updated.model_dump(mode="json")


# ------------------------------------------------------------------ services
@app.get("/v1/clinics/<clinic_id>/services", access=Access.STAFF)
def list_services(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return {"services": [s.model_dump(mode="json") for s in stores.clinics().list_services(clinic_id)]}


@app.put("/v1/clinics/<clinic_id>/services/<service_id>", access=Access.ADMIN)
def put_service(clinic_id: Annotated[str, Path()],
                service_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,64}$", examples=["consulta"])],
                body: Annotated[ServiceRequest, Body()]) -> dict[str, Any]:
    service = usecase.put_service(stores.clinics(), clinic_id, Service(service_id=service_id, **body.model_dump()))
    return service.model_dump(mode="json")
