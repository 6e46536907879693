"""QR cash registers: sync them from monobank, put an amount on one (for an appointment or not),
clear it. No HTTP or boto3 here: the acquirer and the store come in as ports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from clinicpay.domain.errors import ConditionFailed, Conflict, NotFound, ValidationFailed
from clinicpay.domain.money import Money
from clinicpay.domain.qr import (
    UAH,
    BasketLine,
    QrAmountRequest,
    QrAmountType,
    QrInvoice,
    QrRegister,
    iso,
    qr_reference,
)
from clinicpay.observability import logger

if TYPE_CHECKING:
    from clinicpay.ports.qr import QrAcquirer, QrStore

# What the patient's bank statement and the fiscal receipt say when staff give no description.
DEFAULT_DESCRIPTION = "Медичні послуги"


def sync_registers(store: QrStore, acquirer: QrAcquirer, clinic_id: str, now: datetime) -> list[QrRegister]:
    """The clinic's registers as monobank lists them now; ones no longer listed become inactive."""
    listed = acquirer.list_registers()
    registers = store.put_registers(clinic_id, listed, iso(now))
    logger.info("qr registers synced", extra={"clinic_id": clinic_id, "listed": len(listed),
                                               "active": sum(1 for r in registers if r.active)})
    return registers


def put_amount(store: QrStore, acquirer: QrAcquirer, clinic_id: str, qr_id: str, amount: Money, *,
               appointment_id: str | None, description: str | None, webhook_url: str, now: datetime,
               appointment_exists: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Put `amount` on register `qr_id` for the patient to scan. The invoice is recorded before we
    answer, and its reference names the register, so its webhook is recognised as a QR payment."""
    register = store.get_register(clinic_id, qr_id)
    if register is None:
        raise NotFound("No such QR register; sync the clinic's registers first.")
    if not register.active:
        raise Conflict("That QR register is no longer listed by monobank.", code="qr_register_inactive")
    if register.amount_type != QrAmountType.MERCHANT:
        raise Conflict(f"A '{register.amount_type}' QR register takes no amount from us.", code="qr_amount_not_settable")
    if amount.currency != UAH:
        raise ValidationFailed(f"monobank QR registers take UAH, not {amount.currency}.", code="currency_not_supported",
                               details=[{"field": "amount.currency", "message": "must be UAH"}])
    if amount.amount <= 0:
        raise ValidationFailed("The amount must be above zero.", details=[{"field": "amount.amount",
                                                                            "message": "must be above zero"}])
    if appointment_id and appointment_exists is not None and not appointment_exists(appointment_id):
        raise NotFound("No such appointment.")
    text = (description or DEFAULT_DESCRIPTION).strip() or DEFAULT_DESCRIPTION
    basket = [BasketLine(name=text[:128], code=appointment_id or f"qr-{qr_id}", qty=1, unit_price=amount.amount)]
    request = QrAmountRequest(qr_id=qr_id, amount=amount, reference=qr_reference(qr_id, appointment_id, clinic_id),
                              destination=text, basket=basket, webhook_url=webhook_url)
    invoice_id = acquirer.put_amount(request)
    invoice = QrInvoice(clinic_id=clinic_id, invoice_id=invoice_id, qr_id=qr_id, amount=amount,
                        appointment_id=appointment_id, basket=basket, created_at=iso(now))
    store.put_invoice(invoice)
    _show_on_register(store, register, invoice)
    logger.info("qr amount put", extra={"clinic_id": clinic_id, "qr_id": qr_id, "invoice_id": invoice_id,
                                        "appointment_id": appointment_id})
    return {"qr_id": qr_id, "invoice_id": invoice_id, "amount": amount.model_dump(), "appointment_id": appointment_id,
            "page_url": register.page_url, "status": "created", "created_at": invoice.created_at}


def _show_on_register(store: QrStore, register: QrRegister, invoice: QrInvoice) -> None:
    try:
        store.set_register_amount(register, invoice)
    except ConditionFailed:
        # Another amount landed meanwhile. monobank shows the invoice created last, which is the one
        # whose create answered last; ours just answered, so it is the one to show.
        fresh = store.get_register(register.clinic_id, register.qr_id)
        if fresh is not None:
            store.set_register_amount(fresh, invoice)


def reset_amount(store: QrStore, acquirer: QrAcquirer, clinic_id: str, qr_id: str) -> QrRegister:
    register = store.get_register(clinic_id, qr_id)
    if register is None:
        raise NotFound("No such QR register; sync the clinic's registers first.")
    acquirer.reset_amount(qr_id)
    store.clear_register_amount(clinic_id, qr_id, None)
    logger.info("qr amount cleared", extra={"clinic_id": clinic_id, "qr_id": qr_id})
    return store.get_register(clinic_id, qr_id) or register
