"""tokenize's staff routes for off-session charges on a card on file (no-show fees included) and
their refunds."""

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import ConfigDict, Field

from clinicpay.api.auth import Access
from clinicpay.api.resolver import header
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.card import ChargeReason
from clinicpay.domain.model import Model
from clinicpay.domain.money import Money
from clinicpay.domain.text import OneLine
from clinicpay.observability import tracer
from clinicpay.usecases import card_refunds, cards

app = loading_routes()
dependencies = function_module(__file__, "dependencies")
Identifier = Annotated[str, dependencies.IDENTIFIER]
BASE = dependencies.BASE
# How long a caller waits before asking again about a charge whose outcome is not known yet.
PROCESSING_RETRY_AFTER = "10"


class ChargeRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": {"amount": 25000, "currency": "CLP"}, "reason": "other"}]})

    amount: Money | None = Field(default=None, description="Omitted on a no_show charge: the service's no_show_fee.")
    card_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    appointment_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    reason: ChargeReason


class RefundRequestBody(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": {"amount": 1500, "currency": "EUR"}, "reason": "requested_by_customer"}, {}]})

    amount: Money | None = Field(default=None, description="What to give back; omitted: all that is left to refund.")
    reason: OneLine | None = Field(default=None, min_length=1, max_length=200, description=(
        "Kept with the refund. `requested_by_customer`, `duplicate` and `fraudulent` are also passed to Stripe."))
@app.post(f"{BASE}/charges", access=Access.STAFF, status_code=201,
          responses={201: {"description": "The charge, decided by Stripe (succeeded, requires_action or failed)"},
                     202: {"description": "Stripe has not said yet: the charge, processing; ask again (Retry-After, "
                                          "Location) or send the same request with the same Idempotency-Key"}})
@tracer.capture_method
def charge(clinic_id: Identifier, patient_id: Identifier, body: Annotated[ChargeRequest, Body()]) -> Response[Any]:
    result = cards.charge_card(dependencies.card_deps(clinic_id), clinic_id, patient_id, reason=body.reason, amount=body.amount,
                               card_id=body.card_id, appointment_id=body.appointment_id,
                               idempotency_key=header(app, "idempotency-key"))
    if result["status"] != "processing":
        return Response(201, "application/json", json.dumps(result))
    # Not known yet (Stripe has not said, or is still processing): 202, the charge as it stands, and
    # where to ask. Not a 5xx: nothing failed, and the caller must not charge again with a new key.
    # The answer carries Retry-After, so it is not remembered under the Idempotency-Key: the same
    # request later asks Stripe again (same Stripe key, the same PaymentIntent).
    location = f"/v1/clinics/{clinic_id}/patients/{patient_id}/charges/{result['charge_id']}"
    return Response(202, "application/json", json.dumps(result),
                    headers={"Retry-After": PROCESSING_RETRY_AFTER, "Location": location})


@app.get(f"{BASE}/charges", access=Access.STAFF)
def list_charges(clinic_id: Identifier, patient_id: Identifier) -> dict[str, Any]:
    return {"charges": cards.list_charges(dependencies.card_deps(clinic_id), clinic_id, patient_id)}


@app.get(f"{BASE}/charges/<charge_id>", access=Access.STAFF)
def get_charge(clinic_id: Identifier, patient_id: Identifier, charge_id: Identifier) -> dict[str, Any]:
    return cards.get_charge(dependencies.card_deps(clinic_id), clinic_id, patient_id, charge_id)


@app.post(f"{BASE}/charges/<charge_id>/refunds", access=Access.STAFF, status_code=201,
          responses={201: {"description": "The refund, decided by Stripe (succeeded, pending at Stripe, or failed)"},
                     202: {"description": "Sent, and Stripe has not said whether it made it: the refund, pending "
                                          "and reserved; ask again (Retry-After, Location)"}})
@tracer.capture_method
def refund_charge(clinic_id: Identifier, patient_id: Identifier, charge_id: Identifier,
                  body: Annotated[RefundRequestBody | None, Body()] = None) -> Response[Any]:
    refund = card_refunds.refund_charge(dependencies.card_deps(clinic_id), clinic_id, patient_id, charge_id,
                                        amount=body.amount if body else None, reason=body.reason if body else None,
                                        idempotency_key=header(app, "idempotency-key"))
    if not refund.get("undecided"):
        return Response(201, "application/json", json.dumps(refund))
    # Sent, and Stripe has not said whether it made it: pending and reserved, 202 like a charge.
    location = f"/v1/clinics/{clinic_id}/patients/{patient_id}/charges/{charge_id}/refunds"
    return Response(202, "application/json", json.dumps(refund),
                    headers={"Retry-After": PROCESSING_RETRY_AFTER, "Location": location})


@app.get(f"{BASE}/charges/<charge_id>/refunds", access=Access.STAFF)
def list_charge_refunds(clinic_id: Identifier, patient_id: Identifier, charge_id: Identifier) -> dict[str, Any]:
    return {"refunds": card_refunds.list_refunds(dependencies.card_deps(clinic_id), clinic_id, patient_id, charge_id)}
