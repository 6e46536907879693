"""monobank webhooks (`POST /webhooks/monobank/{clinic_id}`): QR payments and link payments.

The signature is verified first, on the raw bytes, with the clinic's merchant key (401 and nothing
changes when it does not verify). A valid X-Sign proves only that monobank sent it (one key signs
every merchant's webhooks), so the invoice must then prove it is this clinic's (usecases/qr_payments):
- a QR invoice of this clinic (our record of it, or monobank's own confirmation asked with this
  clinic's token): its status is applied in order (status rank, then date), a paid one becomes a
  QR payment exactly once and is fiscalized at once; each refund it reports (cancelList,
  `reversed`) is recorded once and gets its return receipt at once. Register trouble (shift closed,
  Checkbox down) leaves receipts pending and still answers 200: the payment is safely recorded,
  and a 5xx would only make monobank retry. Reconciliation applies monobank's answers to our
  asking through the same `apply_qr_update`;
- a QR-looking invoice that is not this clinic's is `foreign`: 200, recorded, counted, nothing else;
- anything else is a `/pay/{token}` link payment: MonobankGateway translates it and the payment
  events use case applies it only to an appointment that holds this invoice id, for its price.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clinicpay import secrets
from clinicpay.domain.errors import ClinicpayError, GatewayNotConfigured, NotFound
from clinicpay.domain.fiscal import AWAITING_STATES, FiscalizedBy
from clinicpay.domain.qr import InvoiceUpdate
from clinicpay.observability import logger, metrics
from clinicpay.providers.monobank.adapter import MonobankGateway, MonobankQrAcquirer, UnsupportedInvoiceStatus
from clinicpay.providers.monobank.client import MonobankApiError
from clinicpay.providers.registry import fiscal_register
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.repositories.qr import QrRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import fiscalization, qr_payments
from clinicpay.usecases.fiscalization import Clock, RegisterFactory

if TYPE_CHECKING:
    from clinicpay.ports.qr import QrAcquirer, QrStore


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
    answer = apply_qr_update(store, acquirer, clinic_id, update, _now(),
                             registers=lambda cid: fiscal_register(cid, quick=True),
                             fiscal_mode=lambda: fiscal_mode_of(clinic_id))
    if answer is None:
        return _link_payment(clinic_id, credentials, raw_body, headers)
    metrics.add_metric(name="QrPaymentWebhook", unit="Count", value=1)
    return {"received": 1, **answer}


def fiscal_mode_of(clinic_id: str) -> FiscalizedBy:
    """The clinic's `fiscalization` setting (who makes its QR receipts); clinicpay when unreadable."""
    try:
        return ClinicRepository(get_settings().app_table).get_settings(clinic_id).fiscalization
    except NotFound:
        return "clinicpay"


def apply_qr_update(store: QrStore, acquirer: QrAcquirer, clinic_id: str, update: InvoiceUpdate, now: datetime, *,
                    registers: RegisterFactory, fiscal_mode: qr_payments.FiscalMode,
                    clock: Clock = _now) -> dict[str, Any] | None:
    """What a verified monobank report does to this clinic's QR payments, whether it came as a
    webhook or as monobank's answer to our asking (reconciliation): ownership first, then the
    payment exactly once, its refunds each once, and the receipts now due (sale, then returns).
    None when the invoice is not a QR one (the payment-link flow's)."""
    decision = qr_payments.receive(store, lambda invoice_id: _ask_monobank(acquirer, invoice_id), clinic_id, update,
                                   now, fiscal_mode)
    if decision.route == "link":
        return None
    answer: dict[str, Any] = {"kind": "qr", "invoice_id": update.invoice_id, "status": update.status.value,
                              "outcome": decision.outcome}
    payment = decision.payment
    if payment is None:
        return answer
    answer["payment_id"] = payment.payment_id
    fiscal_status = payment.fiscal_status
    checks = (lambda _cid: acquirer) if payment.fiscalized_by == "clinicpay" else None
    try:
        if fiscal_status in AWAITING_STATES:
            result = fiscalization.fiscalize_payment(store, registers, clinic_id, payment.payment_id, clock=clock,
                                                     checks=checks)
            fiscal_status = result.doc.fiscal_status if result.doc else fiscal_status
            answer["fiscalization"] = result.outcome.value
            returns = result.returns
        else:
            returns = []
        if decision.returns_due and not returns:
            current = store.get_payment(clinic_id, payment.payment_id) or payment
            returns = fiscalization.fiscalize_returns(store, registers, current, clock=clock, checks=checks)
        if returns:
            answer["returns"] = [r.outcome.value for r in returns]
    except ClinicpayError as error:
        # Storage trouble while fiscalizing: the payment is recorded and waits in the index.
        logger.warning("fiscalization after webhook did not run", extra={
            "clinic_id": clinic_id, "payment_id": payment.payment_id, "error_code": error.code})
    answer["fiscal_status"] = fiscal_status.value
    return answer


def _ask_monobank(acquirer: QrAcquirer, invoice_id: str) -> InvoiceUpdate | None:
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
