"""Apply verified provider events to appointments: each event once, in any order, harmlessly
repeated, and only for what is ours.

- An event counts only for an appointment of THIS clinic that holds the event's provider session
  (checkout session / invoice id we stored when we created it) and, where the event names an amount,
  for the price we asked for; an event whose metadata names another clinic is not this endpoint's.
  Anything else is `foreign` (see usecases/ownership.py): recorded under this clinic's key, counted,
  and nothing changes.
- `succeeded` marks the appointment paid in one transaction with the event record and the payment
  row; the ownership check is part of that transaction's condition, so it costs no extra read. A
  second delivery (same event id) or another event for the same payment finds it paid.
- `pending`, `failed`, `expired` change nothing once the appointment is paid, and an older one never
  overrides a newer one (`last_event_at`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from clinicpay.domain.appointment import PaymentStatus
from clinicpay.notify.sender import AwsNotifier
from clinicpay.observability import logger, metrics
from clinicpay.ports import PaymentEvent
from clinicpay.repositories.appointments import AppointmentRepository, StoredAppointment
from clinicpay.repositories.templates import TemplateRepository
from clinicpay.settings import get_settings
from clinicpay.usecases.ownership import (
    AMOUNT_MISMATCH,
    FOREIGN,
    OTHER_CLINIC,
    UNKNOWN_OBJECT,
    UNKNOWN_SESSION,
    count_foreign,
    names_other_clinic,
)
from clinicpay.usecases.receipts import send_payment_receipt

_STATUS_FOR = {"pending": "pending", "failed": "unpaid", "expired": None, "refunded": None}


def apply_payment_events(clinic_id: str, events: list[PaymentEvent],
                         appointments: AppointmentRepository | None = None,
                         on_paid: Callable[[str, str], object] | None = None) -> list[str]:
    """`on_paid(clinic_id, appointment_id)` runs once per appointment this call marks paid; by
    default it sends the patient's payment receipt."""
    settings = get_settings()
    repo = appointments or AppointmentRepository(settings.app_table)
    if on_paid is None:
        on_paid = partial(send_payment_receipt, repo, TemplateRepository(settings.app_table),
                          AwsNotifier(settings.email_sender))
    outcomes = []
    for event in events:
        outcome = apply_payment_event(repo, clinic_id, event)
        if outcome == "applied" and event.kind == "succeeded" and event.appointment_id:
            on_paid(clinic_id, event.appointment_id)
        outcomes.append(outcome)
    return outcomes


def apply_payment_event(repo: AppointmentRepository, clinic_id: str, event: PaymentEvent) -> str:
    outcome, reason = _apply(repo, clinic_id, event)
    logger.info("payment event", extra={"clinic_id": clinic_id, "provider": event.provider, "event_id": event.event_id,
                                        "kind": event.kind, "appointment_id": event.appointment_id,
                                        "outcome": outcome, "reason": reason})
    if outcome == FOREIGN and reason:
        count_foreign(event.provider, clinic_id, event.event_id, reason)
    if outcome == "applied" and event.kind == "succeeded":
        metrics.add_metric(name="AppointmentPaid", unit="Count", value=1)
    return outcome


def _apply(repo: AppointmentRepository, clinic_id: str, event: PaymentEvent) -> tuple[str, str | None]:
    """-> (outcome, reason). Outcomes: applied, duplicate, foreign, ignored, recorded, already_paid, stale."""
    if event.kind == "ignored":
        return _record(repo, clinic_id, event, "ignored", None)
    if names_other_clinic(event.details.get("clinic_id"), clinic_id):
        return _record(repo, clinic_id, event, FOREIGN, OTHER_CLINIC)
    if not event.appointment_id:
        return _record(repo, clinic_id, event, FOREIGN, UNKNOWN_OBJECT)
    if event.kind == "refunded":
        # Refunds are recorded for the audit trail; moving money back is out of scope here.
        return _record(repo, clinic_id, event, "recorded", None)
    if not event.session_id:
        # Nothing in the event names the session we created (e.g. a Fintoc payment intent whose
        # metadata does not carry it): it proves nothing. The session's own event, which names it
        # (checkout_session.finished), applies the same payment.
        return _record(repo, clinic_id, event, "ignored", "no_session")
    if event.kind == "succeeded":
        if not event.payment_reference or event.amount is None:
            return _record(repo, clinic_id, event, "ignored", "no_payment")
        attempt = repo.apply_paid(clinic_id, event)
    else:
        clear = event.session_id if event.kind in ("expired", "failed") else None
        attempt = repo.apply_status(clinic_id, event, to_status=_STATUS_FOR.get(event.kind), clear_session_id=clear)
        if attempt.outcome == "refused" and clear and _refusal(attempt.current, event) == ("stale", "replaced"):
            # The session was already replaced by a newer one; the status part still applies.
            attempt = repo.apply_status(clinic_id, event, to_status=_STATUS_FOR.get(event.kind))
    if attempt.outcome != "refused":
        return attempt.outcome, None
    outcome, reason = _refusal(attempt.current, event)
    if reason == AMOUNT_MISMATCH:
        # Our own session, and money we did not ask for: loud, beyond the foreign count.
        logger.error("paid amount differs from the price", extra={"clinic_id": clinic_id,
                                                                  "appointment_id": event.appointment_id})
        metrics.add_metric(name="PaymentAmountMismatch", unit="Count", value=1)
    return _record(repo, clinic_id, event, outcome, reason)


def _refusal(current: StoredAppointment | None, event: PaymentEvent) -> tuple[str, str | None]:
    """Why the appointment's condition refused the event, from the appointment as it was."""
    if current is None:
        return FOREIGN, UNKNOWN_OBJECT
    if not current.owns_session(event.session_id):
        return FOREIGN, UNKNOWN_SESSION
    if event.amount is not None and event.amount != current.appointment.price:
        return FOREIGN, AMOUNT_MISMATCH
    if current.appointment.payment_status in (PaymentStatus.PAID, PaymentStatus.REFUNDED):
        return ("already_paid", None) if event.kind == "succeeded" else ("stale", "already_paid")
    if current.session is None or current.session.session_id != event.session_id:
        return "stale", "replaced"
    return "stale", "older_than_last_event"


def _record(repo: AppointmentRepository, clinic_id: str, event: PaymentEvent, outcome: str,
            reason: str | None) -> tuple[str, str | None]:
    if not repo.record_event(clinic_id, event, outcome, reason):
        return "duplicate", None
    return outcome, reason

