"""create_link's staff routes for an appointment's ledger: its payments (a desk payment taken at
the clinic included) and its refunds. A route group (api/route_groups.py): loaded by the first
request to one of its paths."""

import json
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import ConfigDict, Field

from clinicpay.api.auth import Access
from clinicpay.api.resolver import header
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.model import Model
from clinicpay.domain.money import PositiveMoney
from clinicpay.domain.text import OneLine
from clinicpay.observability import logger, tracer
from clinicpay.repositories.appointments import AppointmentRepository
from clinicpay.repositories.ledger import LedgerRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import appointments as booking
from clinicpay.usecases import desk_payments, refunds

app = loading_routes()
dependencies = function_module(__file__, "dependencies")


class RefundRequestBody(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": {"amount": 10000, "currency": "CLP"}, "payment_reference": "pi_2Vb9Qk3nT8sLm4Xa",
         "reason": "Consulta cancelada por la clínica"}, {}]})

    amount: PositiveMoney | None = Field(default=None, description="Default: everything left on the payment.")
    payment_reference: str | None = Field(default=None, min_length=1, max_length=255,
                                          pattern=r"^[A-Za-z0-9_\-.:]+$", description=(
        "Which payment (`reference` in GET .../payments). Default: the latest online payment with "
        "something left, else the latest desk payment."))
    reason: OneLine | None = Field(default=None, max_length=500)


class DeskPaymentRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"method": "desk", "amount": {"amount": 15000, "currency": "CLP"}, "note": "Saldo pagado en recepción"}]})

    method: Literal["desk"]
    amount: PositiveMoney
    note: OneLine | None = Field(default=None, max_length=500)



def _idempotency_key() -> str | None:
    key = header(app, "idempotency-key")
    return (key.strip() or None) if isinstance(key, str) else None


@app.get("/v1/clinics/<clinic_id>/appointments/<appointment_id>/payments", access=Access.STAFF)
def list_payments(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()]) -> dict[str, Any]:
    settings = get_settings()
    stored = AppointmentRepository(settings.app_table).get(clinic_id, appointment_id, consistent=True)
    payments = LedgerRepository(settings.app_table).payments_of(stored)
    shown = stored.appointment.model_dump(mode="json", include={"amount_paid", "amount_refunded", "balance_due",
                                                                 "payment_status", "price", "deposit"})
    return {**shown, "payments": [p.view() for p in payments]}


@app.post("/v1/clinics/<clinic_id>/appointments/<appointment_id>/payments", access=Access.STAFF, status_code=201,
          responses={201: {"description": "The desk payment, recorded, and the appointment"},
                     200: {"description": "The same Idempotency-Key again: the payment it recorded, unchanged"}})
@tracer.capture_method
def take_desk_payment(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()],
                      body: Annotated[DeskPaymentRequest, Body()]) -> Response[Any]:
    settings = get_settings()
    deps = desk_payments.DeskDeps(appointments=AppointmentRepository(settings.app_table),
                                  ledger=LedgerRepository(settings.app_table))
    payment, stored, created = desk_payments.take_desk_payment(deps, clinic_id, appointment_id, body.amount,
                                                               note=body.note, idempotency_key=_idempotency_key())
    result = {"payment": payment.view(), "appointment": booking.view(stored, settings.public_base_url)}
    return Response(201 if created else 200, "application/json", json.dumps(result))


@app.post("/v1/clinics/<clinic_id>/appointments/<appointment_id>/refunds", access=Access.STAFF, status_code=201,
          responses={201: {"description": "The refund, asked of the provider: succeeded, pending (the provider "
                                          "is still deciding; its event or our asking settles it) or failed"},
                     200: {"description": "The same Idempotency-Key again: that refund as it is now"}})
@tracer.capture_method
def create_refund(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()],
                  body: Annotated[RefundRequestBody | None, Body()] = None) -> Response[Any]:
    ask = body or RefundRequestBody()
    refund, created = refunds.request_refund(dependencies.refund_deps(), clinic_id, appointment_id, refunds.RefundAsk(
        amount=ask.amount, payment_reference=ask.payment_reference, reason=ask.reason,
        idempotency_key=_idempotency_key()))
    logger.info("refund asked", extra={"clinic_id": clinic_id, "appointment_id": appointment_id,
                                       "refund_id": refund.refund_id, "status": refund.status, "new_refund": created})
    return Response(201 if created else 200, "application/json", json.dumps(refund.view()))


@app.get("/v1/clinics/<clinic_id>/appointments/<appointment_id>/refunds", access=Access.STAFF)
def list_refunds(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()]) -> dict[str, Any]:
    return {"refunds": [r.view() for r in refunds.list_refunds(dependencies.refund_deps(), clinic_id, appointment_id)]}

