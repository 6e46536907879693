"""Money taken at the clinic's desk (cash, the clinic's own card terminal): recorded on the
appointment's ledger like a link payment, never above the balance due.

The row (`PAYMENT#desk#{payment_id}`) and the appointment's `amount_paid` and status are one
transaction, conditional on the ledger version the balance was checked against, so a desk payment
and a link payment landing together are never both counted against the same balance: the second
one to write reads the ledger again. The same Idempotency-Key is the same desk payment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from clinicpay.domain.errors import Conflict, ExceedsBalanceDue, StorageUnavailable, ValidationFailed
from clinicpay.domain.ids import id_from_digest, new_id
from clinicpay.domain.ledger import DESK, Payment, PaymentMethod, settled_status
from clinicpay.domain.money import Money
from clinicpay.observability import logger, metrics
from clinicpay.repositories.appointments import LEDGER_ATTEMPTS, AppointmentRepository, StoredAppointment
from clinicpay.repositories.ledger import LedgerRepository


@dataclass
class DeskDeps:
    appointments: AppointmentRepository
    ledger: LedgerRepository
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def take_desk_payment(deps: DeskDeps, clinic_id: str, appointment_id: str, amount: Money, *,
                      note: str | None = None, idempotency_key: str | None = None
                      ) -> tuple[Payment, StoredAppointment, bool]:
    """Returns the payment, the appointment after it and whether this call recorded it."""
    payment_id = id_from_digest("dp", clinic_id, appointment_id, "desk", idempotency_key) if idempotency_key \
        else new_id("dp")
    for _ in range(LEDGER_ATTEMPTS):
        stored = deps.appointments.get(clinic_id, appointment_id, consistent=True)
        if idempotency_key and f"{DESK}#{payment_id}" in stored.payment_keys:
            existing = deps.ledger.get_payment(clinic_id, DESK, payment_id)
            if existing is not None:
                if existing.amount != amount:
                    raise ValidationFailed("That Idempotency-Key was used for another payment.",
                                           code="idempotency_key_reused")
                return existing, stored, False
        appointment = stored.appointment
        if amount.currency != appointment.price.currency:
            raise ValidationFailed(details=[{"field": "amount.currency", "message": f"must be {appointment.price.currency}"}])
        due = appointment.balance_due
        if due.amount <= 0:
            raise Conflict("Nothing is due on this appointment.", code="no_balance_due")
        if amount.amount > due.amount:
            raise ExceedsBalanceDue(details=[{"balance_due": due.model_dump()}])
        payment = Payment(provider=DESK, reference=payment_id, appointment_id=appointment_id, amount=amount,
                          method=PaymentMethod.DESK, paid_at=deps.clock(), note=note)
        paid = Money(amount=appointment.amount_paid.amount + amount.amount, currency=amount.currency)
        status = settled_status(appointment.price, paid, appointment.amount_refunded, appointment.payment_status)
        outcome = deps.ledger.record_desk_payment(payment, stored, paid=paid, status=status)
        if outcome == "recorded":
            metrics.add_metric(name="DeskPaymentRecorded", unit="Count", value=1)
            logger.info("desk payment recorded", extra={"clinic_id": clinic_id, "appointment_id": appointment_id,
                                                        "payment_id": payment_id})
            after = appointment.model_copy(update={"amount_paid": paid, "payment_status": status})
            return payment, replace(stored, appointment=after, ledger_version=stored.ledger_version + 1,
                                    payment_keys=stored.payment_keys | {f"{DESK}#{payment_id}"}), True
        if outcome == "exists":
            existing = deps.ledger.get_payment(clinic_id, DESK, payment_id)
            if existing is not None:
                return existing, deps.appointments.get(clinic_id, appointment_id, consistent=True), False
        # moved: another payment or refund changed the ledger first; check the balance again
    raise StorageUnavailable("The appointment kept changing; try again.")
