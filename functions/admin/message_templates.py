"""The texts of patient messages: a clinic's own, its organization's, else the built-in ones, per
kind, channel and locale (admins write a clinic's, org admins an organization's, staff read)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import ConfigDict, Field

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.errors import NotFound
from clinicpay.domain.model import Model
from clinicpay.domain.text import MultiLine, OneLine
from clinicpay.notify.builtin import CHANNELS, KINDS, LOCALES, Text, builtin
from clinicpay.repositories.templates import TemplateRepository, clinic_owner, org_owner
from clinicpay.settings import get_settings
from clinicpay.usecases import clinics as usecase

app = loading_routes()
stores = function_module(__file__, "stores")

KindPath = Annotated[str, Path(json_schema_extra={"enum": list(KINDS)}, examples=["appointment_created"])]
ChannelPath = Annotated[str, Path(json_schema_extra={"enum": list(CHANNELS)}, examples=["email"])]
LocalePath = Annotated[str, Path(json_schema_extra={"enum": list(LOCALES)}, examples=["es"])]


class TemplateRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"subject": "Tu hora en $clinic_name", "body": "Hola $patient_name, te esperamos el $starts_at. $payment_line"}]})

    subject: OneLine = Field(default="", max_length=300)
    body: MultiLine = Field(min_length=1, max_length=5000)


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


def _put_template(owner: str, source: str, kind: str, channel: str, locale: str,
                  body: TemplateRequest) -> dict[str, Any]:
    _template_path(kind, channel, locale)
    TemplateRepository(get_settings().app_table).put(owner, kind, channel, locale, Text(body.subject, body.body),
                                                     usecase.now_iso())
    return {"kind": kind, "channel": channel, "locale": locale, "source": source, **body.model_dump()}


@app.put("/v1/clinics/<clinic_id>/message-templates/<kind>/<channel>/<locale>", access=Access.ADMIN)
def put_clinic_template(clinic_id: Annotated[str, Path()], kind: KindPath, channel: ChannelPath, locale: LocalePath,
                        body: Annotated[TemplateRequest, Body()]) -> dict[str, Any]:
    return _put_template(clinic_owner(clinic_id), "clinic", kind, channel, locale, body)


@app.get("/v1/clinics/<clinic_id>/message-templates/<kind>/<channel>/<locale>", access=Access.STAFF)
def get_clinic_template(clinic_id: Annotated[str, Path()], kind: KindPath, channel: ChannelPath,
                        locale: LocalePath) -> dict[str, Any]:
    _template_path(kind, channel, locale)
    clinic = stores.clinics().get(clinic_id)
    return _template_view(clinic_owner(clinic_id), kind, channel, locale, clinic_id, clinic.org_id)


@app.get("/v1/clinics/<clinic_id>/message-templates", access=Access.STAFF)
def list_clinic_templates(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    clinic = stores.clinics().get(clinic_id)
    views = [_template_view(clinic_owner(clinic_id), k, c, lo, clinic_id, clinic.org_id)
             for k in KINDS for c in CHANNELS for lo in LOCALES]
    return {"templates": views}


@app.put("/v1/orgs/<org_id>/message-templates/<kind>/<channel>/<locale>", access=Access.ORG_ADMIN)
def put_org_template(org_id: Annotated[str, Path()], kind: KindPath, channel: ChannelPath, locale: LocalePath,
                     body: Annotated[TemplateRequest, Body()]) -> dict[str, Any]:
    return _put_template(org_owner(org_id), "org", kind, channel, locale, body)


@app.get("/v1/orgs/<org_id>/message-templates/<kind>/<channel>/<locale>", access=Access.ORG_ADMIN)
def get_org_template(org_id: Annotated[str, Path()], kind: KindPath, channel: ChannelPath,
                     locale: LocalePath) -> dict[str, Any]:
    _template_path(kind, channel, locale)
    return _template_view(org_owner(org_id), kind, channel, locale, None, org_id)
