"""tokenize's staff routes for a patient's cards on file: save (a processor token, with consent),
list, default, remove, the staff-started card setup and the card-request messages."""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import ConfigDict, Field, JsonValue

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.card import ConsentGrant
from clinicpay.domain.model import Model
from clinicpay.observability import tracer
from clinicpay.usecases import card_setup, cards

app = loading_routes()
dependencies = function_module(__file__, "dependencies")
Identifier = Annotated[str, dependencies.IDENTIFIER]
BASE = dependencies.BASE

_CONSENT_EXAMPLE: dict[str, JsonValue] = {"granted": True, "text_version": "cards-2026-02", "channel": "staff",
                                           "granted_by": "reception"}


class SaveCardRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"payment_method": "pm_card_visa", "consent": _CONSENT_EXAMPLE}]})

    payment_method: str = Field(pattern=r"^[A-Za-z0-9_]{3,255}$",
                                description="The processor's token (e.g. a Stripe PaymentMethod id), never a card.")
    consent: ConsentGrant


class StaffSetupRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"consent": _CONSENT_EXAMPLE}]})

    consent: ConsentGrant | None = Field(default=None, description="Without it, the link leads to our consent page.")


class CardRequestRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"channels": ["email"]}]})

    channels: list[Literal["email", "sms"]] = Field(min_length=1, max_length=2)


@app.post(f"{BASE}/cards", access=Access.STAFF, status_code=201)
@tracer.capture_method
def save_card(clinic_id: Identifier, patient_id: Identifier, body: Annotated[SaveCardRequest, Body()]) -> dict[str, Any]:
    ip, agent = dependencies.client(app)
    card = cards.save_card(dependencies.card_deps(clinic_id), clinic_id, patient_id, body.payment_method, body.consent, ip=ip,
                           user_agent=agent)
    return card


@app.get(f"{BASE}/cards", access=Access.STAFF)
def list_cards(clinic_id: Identifier, patient_id: Identifier) -> dict[str, Any]:
    return {"cards": cards.list_cards(dependencies.card_deps(clinic_id), clinic_id, patient_id)}


@app.put(f"{BASE}/cards/<card_id>/default", access=Access.STAFF)
def set_default(clinic_id: Identifier, patient_id: Identifier, card_id: Identifier) -> dict[str, Any]:
    return cards.set_default(dependencies.card_deps(clinic_id), clinic_id, patient_id, card_id)


@app.delete(f"{BASE}/cards/<card_id>", access=Access.STAFF, status_code=204)
@tracer.capture_method
def remove_card(clinic_id: Identifier, patient_id: Identifier, card_id: Identifier) -> Response[Any]:
    cards.remove_card(dependencies.card_deps(clinic_id), clinic_id, patient_id, card_id)
    return Response(204, None, "")


@app.post(f"{BASE}/card-setup", access=Access.STAFF, status_code=201)
@tracer.capture_method
def staff_card_setup(clinic_id: Identifier, patient_id: Identifier,
                     body: Annotated[StaffSetupRequest | None, Body()] = None) -> dict[str, Any]:
    ip, agent = dependencies.client(app)
    return card_setup.start_staff_setup(dependencies.card_deps(clinic_id), clinic_id, patient_id,
                                        body.consent if body else None, ip=ip, user_agent=agent)


@app.post(f"{BASE}/card-requests", access=Access.STAFF, status_code=202)
@tracer.capture_method
def card_request(clinic_id: Identifier, patient_id: Identifier, body: Annotated[CardRequestRequest, Body()]) -> dict[str, Any]:
    return {"card_request": card_setup.send_card_request(dependencies.card_deps(clinic_id), clinic_id, patient_id,
                                                         list(body.channels))}
