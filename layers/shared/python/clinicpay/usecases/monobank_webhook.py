"""monobank webhooks (`POST /webhooks/monobank/{clinic_id}`): QR payments and link payments.

The signature is verified first, on the raw bytes, with the clinic's merchant key (401 and nothing
changes when it does not verify). A valid X-Sign proves only that monobank sent it (one key signs
every merchant's webhooks), so the invoice must then prove it is this clinic's (usecases/qr_payments):
- a QR invoice of this clinic (our record of it, or monobank's own confirmation asked with this
  clinic's token): its status is applied by modifiedDate, a paid one becomes a QR payment exactly
  once and is fiscalized at once. Register trouble (shift closed, Checkbox down) leaves it pending
  and still answers 200: the payment is safely recorded, and a 5xx would only make monobank retry;
- a QR-looking invoice that is not this clinic's is `foreign`: 200, recorded, counted, nothing else;
- anything else is a `/pay/{token}` link payment: MonobankGateway translates it and the payment
  events use case applies it only to an appointment that holds this invoice id, for its price.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clinicpay import secrets
from clinicpay.domain.errors import ClinicpayError, GatewayNotConfigured, NotFound
from clinicpay.domain.fiscal import FiscalStatus
from clinicpay.domain.qr import InvoiceUpdate
from clinicpay.observability import logger, metrics
from clinicpay.providers.monobank.adapter import MonobankGateway, MonobankQrAcquirer, UnsupportedInvoiceStatus
from clinicpay.providers.monobank.client import MonobankApiError
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
    decision = qr_payments.receive(store, lambda invoice_id: _ask_monobank(acquirer, invoice_id), clinic_id, update,
                                   _now())
    if decision.route == "link":
        return _link_payment(clinic_id, credentials, raw_body, headers)
    answer: dict[str, Any] = {"received": 1, "kind": "qr", "invoice_id": update.invoice_id,
                              "status": update.status.value, "outcome": decision.outcome}
    payment = decision.payment
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


def _ask_monobank(acquirer: MonobankQrAcquirer, invoice_id: str) -> InvoiceUpdate | None:
    """invoice/status with this clinic's token. monobank answers another merchant's invoice as one
    it does not have (a 4xx), which is what makes it foreign here. Any other failure is raised: an
    answer we did not get is not a "no", and monobank retries a webhook we did not answer 200."""
    try:
        return acquirer.invoice_status(invoice_id)
    except MonobankApiError as error:
        if error.http_status in (400, 404):
            return None
        raise


def _link_payment(clinic_id: str, credentials: Mapping[str, Any], raw_body: bytes,
                  headers: Mapping[str, str]) -> dict[str, Any]:
    from clinicpay.usecases.payment_events import apply_payment_events

    events = MonobankGateway(credentials, get_settings()).parse_webhook(raw_body, headers)
    outcomes = apply_payment_events(clinic_id, events)
    return {"received": len(events), "kind": "link", "outcomes": outcomes}
