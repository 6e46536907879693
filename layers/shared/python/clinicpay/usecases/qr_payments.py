"""Apply a verified monobank report about a QR invoice: status kept by modifiedDate, and a paid
invoice becomes a QR payment exactly once (its receipt id minted right then) - only if the invoice
is this clinic's.

monobank signs every merchant's webhooks with one key, so a signature says nothing about whose
invoice it is. An invoice is this clinic's when:
- we hold its record (we put the amount on the register: QRINV), and a paid one is for the amount
  and currency we asked for; or we already recorded its payment (QRPAY); or
- monobank itself, asked with THIS clinic's token (`invoice/status`), knows it: needed for invoices
  we made but whose record was lost (our `qr:` reference names one of this clinic's registers), and
  for registers whose amount is set outside our API (`fix` / `client`), whose invoices monobank
  makes itself. A reference alone is never proof: anyone can write it on an invoice.
Anything else is foreign (usecases/ownership.py). Invoices that are none of these are left to the
payment-link flow, which has its own check (the invoice id stored on the appointment).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from clinicpay.domain.ids import new_uuid
from clinicpay.domain.qr import (
    AMOUNT_SET_ELSEWHERE,
    UAH,
    BasketLine,
    CardPayment,
    InvoiceStatus,
    InvoiceUpdate,
    QrInvoice,
    QrPayment,
    iso,
    parse_qr_reference,
    payment_id_for,
)
from clinicpay.observability import logger
from clinicpay.ports import QrStore
from clinicpay.usecases.ownership import (
    AMOUNT_MISMATCH,
    FOREIGN,
    NOT_AT_PROVIDER,
    OTHER_CLINIC,
    UNKNOWN_OBJECT,
    count_foreign,
    names_other_clinic,
)

FALLBACK_GOOD_NAME = "Медичні послуги"
PROVIDER = "monobank"

# Asks monobank about an invoice with this clinic's token: its status, or None when monobank says
# it has no such invoice for this merchant (another merchant's invoice looks exactly like that).
Confirm = Callable[[str], InvoiceUpdate | None]


@dataclass
class QrDecision:
    """Where a monobank webhook went: `qr` (handled here) or `link` (for the payment-link flow)."""

    route: Literal["qr", "link"]
    payment: QrPayment | None = None
    outcome: str = "applied"  # applied, foreign, ignored, duplicate
    reason: str | None = None


def receive(store: QrStore, confirm: Confirm, clinic_id: str, update: InvoiceUpdate, now: datetime) -> QrDecision:
    """Route one verified webhook and, when it is a QR invoice of this clinic, apply it."""
    invoice, payment = store.invoice_and_payment(clinic_id, update.invoice_id)
    if invoice is not None:
        if update.status is InvoiceStatus.SUCCESS and update.invoice_amount != invoice.amount:
            return _foreign(store, clinic_id, update, now, AMOUNT_MISMATCH)
        return QrDecision("qr", _apply(store, clinic_id, update, now, invoice))
    if payment is not None:
        if update.status is InvoiceStatus.SUCCESS and update.invoice_amount != payment.amount:
            return _foreign(store, clinic_id, update, now, AMOUNT_MISMATCH)
        return QrDecision("qr", _apply(store, clinic_id, update, now, None, payment.qr_id, payment.appointment_id))
    reference = parse_qr_reference(update.reference)
    if reference is not None:
        if names_other_clinic(reference.clinic_id, clinic_id):
            return _foreign(store, clinic_id, update, now, OTHER_CLINIC)
        if store.get_register(clinic_id, reference.qr_id) is None:
            return _foreign(store, clinic_id, update, now, UNKNOWN_OBJECT)
        return _confirmed(store, confirm, clinic_id, update, now, reference.qr_id, reference.appointment_id)
    if not update.reference:
        elsewhere = [r for r in store.list_registers(clinic_id) if r.active and r.amount_type in AMOUNT_SET_ELSEWHERE]
        if elsewhere:
            # monobank's invoice for a payment on a fixed- or payer-amount register: it does not say
            # which register, so it is named only when the clinic has one such register.
            qr_id = elsewhere[0].qr_id if len(elsewhere) == 1 else None
            return _confirmed(store, confirm, clinic_id, update, now, qr_id, None)
    return QrDecision("link")


def _confirmed(store: QrStore, confirm: Confirm, clinic_id: str, update: InvoiceUpdate, now: datetime,
               qr_id: str | None, appointment_id: str | None) -> QrDecision:
    """An invoice we hold no record of: only a paid one matters, and only once monobank, asked with
    this clinic's token, confirms it. Its answer (not the webhook's body) is what gets recorded."""
    if update.status is not InvoiceStatus.SUCCESS:
        # Nothing to record until it is paid; no call to monobank for it either.
        logger.info("qr invoice without our record, not paid: nothing to do", extra={
            "clinic_id": clinic_id, "invoice_id": update.invoice_id, "status": update.status.value})
        return QrDecision("qr", outcome="ignored", reason="unconfirmed_not_paid")
    if store.event_recorded(clinic_id, update.event_id):
        return QrDecision("qr", outcome="duplicate")  # decided before: no second call to monobank
    answer = confirm(update.invoice_id)
    if answer is None or answer.invoice_id != update.invoice_id:
        return _foreign(store, clinic_id, update, now, NOT_AT_PROVIDER)
    if answer.status not in (InvoiceStatus.SUCCESS, InvoiceStatus.REVERSED):
        return _record(store, clinic_id, update, now, "ignored", "not_paid_at_provider")
    if answer.invoice_amount is None or answer.invoice_amount.currency != UAH or answer.invoice_amount.amount <= 0:
        return _foreign(store, clinic_id, update, now, AMOUNT_MISMATCH)
    paid = answer.model_copy(update={"amount": answer.invoice_amount, "status": InvoiceStatus.SUCCESS})
    payment = _apply(store, clinic_id, paid, now, None, qr_id, appointment_id)
    if answer.status is InvoiceStatus.REVERSED:
        _apply(store, clinic_id, answer, now, None, qr_id, appointment_id)
    store.record_event(clinic_id, update.event_id, kind=update.status.value, outcome="applied", reason="confirmed",
                       at=now)
    logger.info("qr invoice confirmed by monobank", extra={"clinic_id": clinic_id, "invoice_id": update.invoice_id,
                                                          "qr_id": qr_id})
    return QrDecision("qr", payment)


def _foreign(store: QrStore, clinic_id: str, update: InvoiceUpdate, now: datetime, reason: str) -> QrDecision:
    decision = _record(store, clinic_id, update, now, FOREIGN, reason)
    if decision.outcome == FOREIGN:
        count_foreign(PROVIDER, clinic_id, update.event_id, reason)
    return decision


def _record(store: QrStore, clinic_id: str, update: InvoiceUpdate, now: datetime, outcome: str,
            reason: str) -> QrDecision:
    if not store.record_event(clinic_id, update.event_id, kind=update.status.value, outcome=outcome, reason=reason,
                              at=now):
        return QrDecision("qr", outcome="duplicate")
    return QrDecision("qr", outcome=outcome, reason=reason)


def apply_invoice_update(store: QrStore, clinic_id: str, update: InvoiceUpdate, now: datetime) -> QrPayment | None:
    """Apply an update about an invoice already proven to be this clinic's (`receive` decides that);
    its QRINV record, if any, is read here, and our reference names the register otherwise."""
    reference = parse_qr_reference(update.reference)
    return _apply(store, clinic_id, update, now, store.get_invoice(clinic_id, update.invoice_id),
                  reference.qr_id if reference else None, reference.appointment_id if reference else None)


def _apply(store: QrStore, clinic_id: str, update: InvoiceUpdate, now: datetime, invoice: QrInvoice | None,
           qr_id: str | None = None, appointment_id: str | None = None) -> QrPayment | None:
    """Returns the QR payment when the invoice is paid (new or already recorded), else None.

    Out-of-order deliveries: the invoice keeps the status with the greatest (modifiedDate, rank),
    by a conditional write. A `success` is a fact whatever arrived before it, so it always makes
    sure the payment exists; an older `processing` arriving afterwards changes nothing.
    """
    newer = store.advance_invoice(clinic_id, update) if invoice is not None else False
    log = {"clinic_id": clinic_id, "invoice_id": update.invoice_id, "status": update.status.value,
           "event_id": update.event_id, "newer": newer}
    if update.status is InvoiceStatus.SUCCESS:
        payment = _new_payment(clinic_id, update, invoice, now, qr_id, appointment_id)
        if store.create_payment(payment):
            logger.info("qr payment recorded", extra={**log, "payment_id": payment.payment_id})
        else:
            existing = store.get_payment(clinic_id, payment.payment_id)
            logger.info("qr payment already recorded", extra={**log, "payment_id": payment.payment_id})
            payment = existing or payment
        if invoice is not None:
            store.clear_register_amount(clinic_id, invoice.qr_id, invoice.invoice_id)
        return payment
    if update.status is InvoiceStatus.REVERSED:
        # Refunded after payment. The sale receipt stays valid; a return receipt is not made here.
        changed = store.advance_payment_invoice_status(clinic_id, payment_id_for(update.invoice_id), update)
        logger.warning("qr payment reversed", extra={**log, "payment_changed": changed})
        return None
    if update.status in (InvoiceStatus.FAILURE, InvoiceStatus.EXPIRED) and invoice is not None and newer:
        store.clear_register_amount(clinic_id, invoice.qr_id, invoice.invoice_id)
    logger.info("qr invoice update", extra=log)
    return None


def _new_payment(clinic_id: str, update: InvoiceUpdate, invoice: QrInvoice | None, now: datetime,
                 qr_id: str | None, appointment_id: str | None) -> QrPayment:
    qr_id = invoice.qr_id if invoice else qr_id
    appointment_id = invoice.appointment_id if invoice else appointment_id
    amount = update.amount or (invoice.amount if invoice else None)
    if amount is None:
        raise ValueError("a paid invoice without an amount")  # monobank always sends one
    basket = invoice.basket if invoice and sum(line.total for line in invoice.basket) == amount.amount else []
    if not basket and amount.amount > 0 and amount.currency == UAH:
        basket = [BasketLine(name=FALLBACK_GOOD_NAME, code=appointment_id or f"qr-{qr_id or 'payment'}", qty=1,
                             unit_price=amount.amount)]
    # A `reversed` that overtook this `success` is already on the invoice: the payment starts refunded.
    reversed_first = invoice is not None and invoice.status is InvoiceStatus.REVERSED
    return QrPayment(
        payment_id=payment_id_for(update.invoice_id),
        clinic_id=clinic_id,
        invoice_id=update.invoice_id,
        qr_id=qr_id,
        appointment_id=appointment_id,
        amount=amount,
        paid_at=iso(update.modified_at),
        card=update.card or CardPayment(),
        basket=basket,
        invoice_status=InvoiceStatus.REVERSED if reversed_first else InvoiceStatus.SUCCESS,
        invoice_order_ms=invoice.order_ms if invoice is not None and reversed_first else update.order_ms,
        invoice_rank=invoice.status_rank if invoice is not None and reversed_first else update.rank,
        created_at=iso(now),
        # Made now, before any attempt, and sent on every retry: one payment, one receipt.
        receipt_id=new_uuid(),
    )
