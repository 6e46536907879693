"""monobank webhooks (`POST /webhooks/monobank/{clinic_id}`): QR payments and link payments.

The signature is verified first, on the raw bytes, with the clinic's merchant key (401 and nothing
changes when it does not verify). Then the invoice decides the route:
- a QR invoice (we put it on a register; or its reference is ours; or ByProviderRef knows it):
  its status is applied by modifiedDate, a paid one becomes a QR payment exactly once and is
  fiscalized at once. Register trouble (shift closed, Checkbox down) leaves it pending and still
  answers 200: the payment is safely recorded, and a 5xx would only make monobank retry;
- anything else is a `/pay/{token}` link payment: MonobankGateway translates it and the payment
  events use case applies it to the appointment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clinicpay import secrets
from clinicpay.domain.errors import ClinicpayError, GatewayNotConfigured, NotFound
from clinicpay.domain.fiscal import FiscalStatus
from clinicpay.observability import logger, metrics
from clinicpay.providers.monobank.adapter import MonobankGateway, MonobankQrAcquirer, UnsupportedInvoiceStatus
from clinicpay.providers.registry import fiscal_register
from clinicpay.repositories.qr import QrRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import fiscalization, qr_payments


def _now() -> datetime:
    return datetime.now(UTC)


def handle(clinic_id: str, raw_body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    settings = get_settings()
    try:
        credentials = secrets.read_credentials(clinic_id, "monobank")
    except GatewayNotConfigured:
        # No key to verify with, and no clinic we would tell about: as unknown as a wrong path.
        raise NotFound("No such clinic.") from None
    acquirer = MonobankQrAcquirer(credentials, settings)
    try:
        update = acquirer.parse_webhook(raw_body, headers)  # InvalidSignature (401) before anything else
    except UnsupportedInvoiceStatus:
        logger.warning("monobank webhook with an unknown status ignored", extra={"clinic_id": clinic_id})
        return {"received": 1, "outcome": "ignored"}
    store = QrRepository(settings.app_table)
    if not qr_payments.is_qr_invoice(store, clinic_id, update):
        return _link_payment(clinic_id, credentials, raw_body, headers)
    payment = qr_payments.apply_invoice_update(store, clinic_id, update, _now())
    answer: dict[str, Any] = {"received": 1, "kind": "qr", "invoice_id": update.invoice_id,
                              "status": update.status.value}
    if payment is None:
        return answer
    answer["payment_id"] = payment.payment_id
    fiscal_status = payment.fiscal_status
    if fiscal_status is not FiscalStatus.FISCALIZED:
        try:
            result = fiscalization.fiscalize_payment(store, lambda cid: fiscal_register(cid, quick=True), clinic_id,
                                                     payment.payment_id, clock=_now)
            fiscal_status = result.payment.fiscal_status if result.payment else fiscal_status
            answer["fiscalization"] = result.outcome.value
        except ClinicpayError as error:
            # Storage trouble while fiscalizing: the payment is recorded and waits in the index.
            logger.warning("fiscalization after webhook did not run", extra={
                "clinic_id": clinic_id, "payment_id": payment.payment_id, "error_code": error.code})
    answer["fiscal_status"] = fiscal_status.value
    metrics.add_metric(name="QrPaymentWebhook", unit="Count", value=1)
    return answer


def _link_payment(clinic_id: str, credentials: Mapping[str, Any], raw_body: bytes,
                  headers: Mapping[str, str]) -> dict[str, Any]:
    from clinicpay.usecases.payment_events import apply_payment_events

    events = MonobankGateway(credentials, get_settings()).parse_webhook(raw_body, headers)
    outcomes = apply_payment_events(clinic_id, events)
    return {"received": len(events), "kind": "link", "outcomes": outcomes}
