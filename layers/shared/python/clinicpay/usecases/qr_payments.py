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
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from clinicpay.domain.fiscal import FiscalizedBy, FiscalStatus
from clinicpay.domain.ids import new_uuid
from clinicpay.domain.qr import (
    AMOUNT_SET_ELSEWHERE,
    STATUS_RANK,
    UAH,
    BasketLine,
    CardPayment,
    InvoiceStatus,
    InvoiceUpdate,
    QrInvoice,
    QrPayment,
    QrRefund,
    iso,
    parse_qr_reference,
    payment_id_for,
)
from clinicpay.observability import logger
from clinicpay.usecases import qr_refunds
from clinicpay.usecases.ownership import (
    AMOUNT_MISMATCH,
    FOREIGN,
    NOT_AT_PROVIDER,
    OTHER_CLINIC,
    UNKNOWN_OBJECT,
    count_foreign,
    names_other_clinic,
)

if TYPE_CHECKING:
    from clinicpay.ports.qr import QrStore

FALLBACK_GOOD_NAME = "Медичні послуги"
# Where a new payment's sale receipt starts, by who makes it.
_FIRST_FISCAL_STATUS: dict[str, FiscalStatus] = {"clinicpay": FiscalStatus.PENDING,
                                                  "monobank": FiscalStatus.EXTERNAL,
                                                  "none": FiscalStatus.NOT_REQUIRED}
PROVIDER = "monobank"

# Asks monobank about an invoice with this clinic's token: its status, or None when monobank says
# it has no such invoice for this merchant (another merchant's invoice looks exactly like that).
Confirm = Callable[[str], InvoiceUpdate | None]
# Who makes the receipts of a payment recorded now (the clinic's `fiscalization` setting); asked
# only when a payment is created, so a repeated webhook reads nothing more.
FiscalMode = Callable[[], FiscalizedBy]
# Payments paid or refunded: these statuses carry money that moved (a `reversed` invoice was paid).
_PAID = (InvoiceStatus.SUCCESS, InvoiceStatus.REVERSED)


def _clinicpay() -> FiscalizedBy:
    return "clinicpay"


@dataclass
class QrDecision:
    """Where a monobank webhook went: `qr` (handled here) or `link` (for the payment-link flow)."""

    route: Literal["qr", "link"]
    payment: QrPayment | None = None
    outcome: str = "applied"  # applied, foreign, ignored, duplicate
    reason: str | None = None
    returns_due: list[QrRefund] = field(default_factory=list)  # refunds whose return receipt awaits


def receive(store: QrStore, confirm: Confirm, clinic_id: str, update: InvoiceUpdate, now: datetime,
            fiscal_mode: FiscalMode = _clinicpay) -> QrDecision:
    """Route one verified webhook (or monobank's answer to our asking) and, when it is a QR invoice
    of this clinic, apply it."""
    invoice, payment = store.invoice_and_payment(clinic_id, update.invoice_id)
    if invoice is not None:
        if update.status in _PAID and update.invoice_amount != invoice.amount:
            return _foreign(store, clinic_id, update, now, AMOUNT_MISMATCH)
        return _apply(store, clinic_id, update, now, invoice, fiscal_mode=fiscal_mode, existing=payment)
    if payment is not None:
        if update.status in _PAID and update.invoice_amount != payment.amount:
            return _foreign(store, clinic_id, update, now, AMOUNT_MISMATCH)
        return _apply(store, clinic_id, update, now, None, payment.qr_id, payment.appointment_id,
                      fiscal_mode=fiscal_mode, existing=payment)
    reference = parse_qr_reference(update.reference)
    if reference is not None:
        if names_other_clinic(reference.clinic_id, clinic_id):
            return _foreign(store, clinic_id, update, now, OTHER_CLINIC)
        if store.get_register(clinic_id, reference.qr_id) is None:
            return _foreign(store, clinic_id, update, now, UNKNOWN_OBJECT)
        return _confirmed(store, confirm, clinic_id, update, now, reference.qr_id, reference.appointment_id,
                          fiscal_mode)
    if not update.reference:
        elsewhere = [r for r in store.list_registers(clinic_id) if r.active and r.amount_type in AMOUNT_SET_ELSEWHERE]
        if elsewhere:
            # monobank's invoice for a payment on a fixed- or payer-amount register: it does not say
            # which register, so it is named only when the clinic has one such register.
            qr_id = elsewhere[0].qr_id if len(elsewhere) == 1 else None
            return _confirmed(store, confirm, clinic_id, update, now, qr_id, None, fiscal_mode)
    return QrDecision("link")


def _confirmed(store: QrStore, confirm: Confirm, clinic_id: str, update: InvoiceUpdate, now: datetime,
               qr_id: str | None, appointment_id: str | None, fiscal_mode: FiscalMode = _clinicpay) -> QrDecision:
    """An invoice we hold no record of: only a paid one matters, and only once monobank, asked with
    this clinic's token, confirms it. Its answer (not the webhook's body) is what gets recorded."""
    if update.status not in _PAID:
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
    # monobank's answer (not the webhook's body) is what gets recorded: paid, then what came back.
    decision = _apply(store, clinic_id, answer, now, None, qr_id, appointment_id, fiscal_mode=fiscal_mode)
    store.record_event(clinic_id, update.event_id, kind=update.status.value, outcome="applied", reason="confirmed",
                       at=now)
    logger.info("qr invoice confirmed by monobank", extra={"clinic_id": clinic_id, "invoice_id": update.invoice_id,
                                                          "qr_id": qr_id})
    return decision


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


def apply_invoice_update(store: QrStore, clinic_id: str, update: InvoiceUpdate, now: datetime,
                         fiscal_mode: FiscalMode = _clinicpay) -> QrPayment | None:
    """Apply an update about an invoice already proven to be this clinic's (`receive` decides that);
    its QRINV record, if any, is read here, and our reference names the register otherwise."""
    reference = parse_qr_reference(update.reference)
    return _apply(store, clinic_id, update, now, store.get_invoice(clinic_id, update.invoice_id),
                  reference.qr_id if reference else None, reference.appointment_id if reference else None,
                  fiscal_mode=fiscal_mode).payment


def _apply(store: QrStore, clinic_id: str, update: InvoiceUpdate, now: datetime, invoice: QrInvoice | None,
           qr_id: str | None = None, appointment_id: str | None = None, *, fiscal_mode: FiscalMode = _clinicpay,
           existing: QrPayment | None = None) -> QrDecision:
    """The payment, when the invoice was paid (new or already recorded), and what came back from it.

    Out-of-order deliveries: the invoice keeps the status furthest along (status rank, then date),
    by a conditional write. A `success` is a fact whatever arrived before it, so it always makes
    sure the payment exists; so is a `reversed` (money came back: it was paid first), which also
    records the refunds. An older `processing` arriving afterwards changes nothing. Refunds are
    facts too (each cancelList entry once), so their order does not matter either.
    """
    newer = store.advance_invoice(clinic_id, update) if invoice is not None else False
    log = {"clinic_id": clinic_id, "invoice_id": update.invoice_id, "status": update.status.value,
           "event_id": update.event_id, "newer": newer}
    if update.status in _PAID:
        payment = existing
        if payment is None:
            payment = _new_payment(clinic_id, update, invoice, now, qr_id, appointment_id, fiscal_mode())
            if store.create_payment(payment):
                logger.info("qr payment recorded", extra={**log, "payment_id": payment.payment_id,
                                                          "fiscalized_by": payment.fiscalized_by})
            else:
                logger.info("qr payment already recorded", extra={**log, "payment_id": payment.payment_id})
                payment = store.get_payment(clinic_id, payment.payment_id) or payment
        if invoice is not None:
            store.clear_register_amount(clinic_id, invoice.qr_id, invoice.invoice_id)
        if update.status is InvoiceStatus.REVERSED:
            store.advance_payment_invoice_status(clinic_id, payment.payment_id, update)
            logger.warning("qr payment reversed", extra={**log, "payment_id": payment.payment_id})
        due = qr_refunds.apply_refund_facts(store, clinic_id, payment, update, now)
        if update.cancels or update.status is InvoiceStatus.REVERSED:
            payment = store.get_payment(clinic_id, payment.payment_id) or payment
        return QrDecision("qr", payment, returns_due=due)
    if update.status in (InvoiceStatus.FAILURE, InvoiceStatus.EXPIRED) and invoice is not None and newer:
        store.clear_register_amount(clinic_id, invoice.qr_id, invoice.invoice_id)
    logger.info("qr invoice update", extra=log)
    return QrDecision("qr")


def _new_payment(clinic_id: str, update: InvoiceUpdate, invoice: QrInvoice | None, now: datetime,
                 qr_id: str | None, appointment_id: str | None, fiscalized_by: FiscalizedBy) -> QrPayment:
    qr_id = invoice.qr_id if invoice else qr_id
    appointment_id = invoice.appointment_id if invoice else appointment_id
    # What the patient paid (the invoice's `amount`): never `finalAmount`, which a refund shrinks.
    amount = update.invoice_amount or update.amount or (invoice.amount if invoice else None)
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
        invoice_rank=invoice.status_rank if invoice is not None and reversed_first else STATUS_RANK[InvoiceStatus.SUCCESS],
        created_at=iso(now),
        fiscalized_by=fiscalized_by,
        fiscal_status=_FIRST_FISCAL_STATUS[fiscalized_by],
        # Made now, before any attempt, and sent on every retry: one payment, one receipt.
        receipt_id=new_uuid(),
    )
