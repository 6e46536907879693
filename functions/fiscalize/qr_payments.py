"""Route group: one QR payment, its detail, refunds through monobank and fiscalizing it by hand (staff)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from clinicpay.api.auth import Access
from clinicpay.api.resolver import header
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.errors import ClinicpayError, Conflict, GatewayNotConfigured, NotFound, ProviderUnavailable
from clinicpay.domain.fiscal import AlreadyFiscalized, FiscalizationInProgress, FiscalRejected, ShiftClosed
from clinicpay.domain.qr import ID_PATTERN, QrRefundRequest
from clinicpay.providers.registry import qr_acquirer
from clinicpay.usecases import fiscalization, qr_refunds, qr_report
from clinicpay.usecases.fiscalization import Outcome

app = loading_routes()
dependencies = function_module(__file__, "dependencies")


@app.get("/v1/clinics/<clinic_id>/qr-payments/<payment_id>", access=Access.STAFF)
def get_payment(clinic_id: Annotated[str, Path()], payment_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> dict[str, Any]:
    store = dependencies.qr_store()
    payment = store.get_payment(clinic_id, payment_id)
    if payment is None:
        raise NotFound("No such QR payment.")
    return {"payment": qr_report.payment_detail(payment, store.refunds(clinic_id, payment_id), dependencies.checks)}


@app.post("/v1/clinics/<clinic_id>/qr-payments/<payment_id>/refunds", access=Access.STAFF, status_code=201,
          responses={201: {"description": "monobank gave the money back: the refund and the payment"},
                     202: {"description": "monobank is still deciding: the refund (pending) and the payment"}})
def refund_payment(clinic_id: Annotated[str, Path()], payment_id: Annotated[str, Path(pattern=ID_PATTERN)],
                   body: Annotated[QrRefundRequest, Body()]) -> Response[Any]:
    """Give back part or all of a QR payment through monobank; its return receipt follows."""
    store = dependencies.qr_store()
    key = header(app, "idempotency-key")
    outcome = qr_refunds.refund_payment(
        store, lambda: qr_acquirer(clinic_id), clinic_id, payment_id,
        refund_id=qr_refunds.refund_id_for(clinic_id, payment_id, key), amount=body.amount, reason=body.reason,
        now=dependencies.now())
    refund, payment = outcome.refund, outcome.payment
    if refund.status == "succeeded" and refund.fiscal_status.value == "pending":
        fiscalization.fiscalize_returns(store, dependencies.register, payment, clock=dependencies.now,
                                        checks=dependencies.checks)
        refund = store.get_refund(clinic_id, payment_id, refund.refund_id) or refund
        payment = store.get_payment(clinic_id, payment_id) or payment
    answer = {"refund": refund.view(), "payment": payment.row()}
    # 201 once monobank gave the money back, 202 while it is still deciding (webhook or our asking).
    return Response(201 if refund.status == "succeeded" else 202, "application/json", json.dumps(answer))


_MANUAL_ERRORS: dict[Outcome, type[ClinicpayError]] = {
    Outcome.ALREADY_FISCALIZED: AlreadyFiscalized,
    Outcome.IN_PROGRESS: FiscalizationInProgress,
    Outcome.SHIFT_CLOSED: ShiftClosed,
    Outcome.NOT_CONFIGURED: GatewayNotConfigured,
    Outcome.NOT_DUE: Conflict,
    Outcome.NOT_REQUIRED: AlreadyFiscalized,
    Outcome.WAITING_FOR_SALE: Conflict,
}


@app.post("/v1/clinics/<clinic_id>/qr-payments/<payment_id>/fiscalize", access=Access.STAFF,
          responses={200: {"description": "Fiscalized (or monobank made the receipt): the payment; with "
                                          "`returns` when return receipts were made"},
                     202: {"description": "The register accepted it; the receipt is on its way"}})
def fiscalize(clinic_id: Annotated[str, Path()], payment_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> Response[Any]:
    """A person asks for the receipts now: a pending or failed sale receipt, and the payment's return
    receipts still waiting or refused. Nothing left to make is a 409."""
    store = dependencies.qr_store()
    register, now, checks = dependencies.register, dependencies.now, dependencies.checks
    result = fiscalization.fiscalize_payment(store, register, clinic_id, payment_id, clock=now,
                                             allow_failed=True, respect_backoff=False, checks=checks)
    if result.outcome is Outcome.ALREADY_FISCALIZED and result.payment is not None:
        result.returns = fiscalization.fiscalize_returns(store, register, result.payment, clock=now, checks=checks,
                                                         allow_failed=True)
        if result.returns:
            after = (store.get_payment(clinic_id, payment_id) or result.payment).row()
            return Response(200, "application/json", json.dumps({"payment": after, "returns": [
                r.outcome.value for r in result.returns]}))
    row = result.payment.row() if result.payment else None
    details = [{"payment": row}] if row else []
    if result.outcome in (Outcome.FISCALIZED, Outcome.EXTERNAL):
        return Response(200, "application/json", json.dumps({"payment": row}))
    if result.outcome is Outcome.PROCESSING:
        return Response(202, "application/json", json.dumps({"payment": row}))
    if result.outcome is Outcome.UNAVAILABLE:
        raise ProviderUnavailable("The fiscal register is not answering; the payment stays pending.", retry_after=60,
                                  details=details)
    if result.outcome is Outcome.FAILED:
        message = result.error.message if result.error else None
        raise FiscalRejected(message, details=details)
    raise _MANUAL_ERRORS[result.outcome](details=details)
