"""Apply a verified monobank report about a QR invoice: status kept by modifiedDate, and a paid
invoice becomes a QR payment exactly once (its receipt id minted right then)."""

from __future__ import annotations

from datetime import datetime

from clinicpay.domain.ids import new_uuid
from clinicpay.domain.qr import (
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

FALLBACK_GOOD_NAME = "Медичні послуги"


def is_qr_invoice(store: QrStore, clinic_id: str, update: InvoiceUpdate) -> bool:
    """Ours and on a QR register: an invoice record, our reference format, or a QR payment for it."""
    if store.get_invoice(clinic_id, update.invoice_id) is not None:
        return True
    if parse_qr_reference(update.reference) is not None:
        return True
    return store.is_qr_invoice(clinic_id, update.invoice_id)


def apply_invoice_update(store: QrStore, clinic_id: str, update: InvoiceUpdate, now: datetime) -> QrPayment | None:
    """Returns the QR payment when the invoice is paid (new or already recorded), else None.

    Out-of-order deliveries: the invoice keeps the status with the greatest (modifiedDate, rank),
    by a conditional write. A `success` is a fact whatever arrived before it, so it always makes
    sure the payment exists; an older `processing` arriving afterwards changes nothing.
    """
    invoice = store.get_invoice(clinic_id, update.invoice_id)
    newer = store.advance_invoice(clinic_id, update) if invoice is not None else False
    log = {"clinic_id": clinic_id, "invoice_id": update.invoice_id, "status": update.status.value,
           "event_id": update.event_id, "newer": newer}
    if update.status is InvoiceStatus.SUCCESS:
        payment = _new_payment(clinic_id, update, invoice, now)
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


def _new_payment(clinic_id: str, update: InvoiceUpdate, invoice: QrInvoice | None, now: datetime) -> QrPayment:
    reference = parse_qr_reference(update.reference)
    qr_id = invoice.qr_id if invoice else (reference[0] if reference else None)
    appointment_id = invoice.appointment_id if invoice else (reference[1] if reference else None)
    amount = update.amount or (invoice.amount if invoice else None)
    if amount is None:
        raise ValueError("a paid invoice without an amount")  # monobank always sends one
    if invoice is not None and invoice.amount != amount:
        logger.error("qr payment amount differs from the amount put", extra={
            "clinic_id": clinic_id, "invoice_id": update.invoice_id})
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
