"""Apply verified provider events to appointments: each event once, in any order, harmlessly
repeated, and only for what is ours.

- An event counts only for an appointment of THIS clinic that holds the event's provider session
  (checkout session / invoice id we stored when we created it) and, where the event names an amount,
  for the price we asked for; an event whose metadata names another clinic is not this endpoint's.
  Anything else is `foreign` (see usecases/ownership.py): recorded under this clinic's key, counted,
  and nothing changes.
- `succeeded` records the payment in one transaction with the event record and the payment row,
  moving the appointment's ledger (`amount_paid`, status: `paid`, or `deposit_paid` when a deposit
  came in); the ownership check is part of that transaction's condition, so it costs no extra read.
  A second delivery (same event id) is a duplicate; another event for the same payment (same
  provider payment id) is `already_paid`. A second real payment (e.g. an older session paid after a
  newer one) is recorded too: it is money we hold, and staff can refund it.
- `pending`, `failed`, `expired` change nothing once money has come in, and an older one never
  overrides a newer one (`last_event_at`).
- `refunded` with a refund notice goes to the refund ledger (usecases/refunds.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from clinicpay.domain.appointment import PaymentStatus
from clinicpay.domain.money import Money
from clinicpay.notify.sender import AwsNotifier
from clinicpay.observability import logger, metrics
from clinicpay.ports.payments import PaymentEvent
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
from clinicpay.usecases.receipts import send_payment_receipt, send_refund_message

_STATUS_FOR = {"pending": "pending", "failed": "unpaid", "expired": None, "refunded": None}

RefundLedger = Callable[[str, PaymentEvent], tuple[str, str | None]]  # (clinic_id, event) -> (outcome, reason)


def apply_payment_events(clinic_id: str, events: list[PaymentEvent],
                         appointments: AppointmentRepository | None = None,
                         on_paid: Callable[[str, str, Money], object] | None = None) -> list[str]:
    """`on_paid(clinic_id, appointment_id, amount)` runs once per payment this call records; by
    default it sends the patient's payment receipt for that amount."""
    settings = get_settings()
    repo = appointments or AppointmentRepository(settings.app_table)
    templates, notifier = TemplateRepository(settings.app_table), AwsNotifier(settings.email_sender)
    if on_paid is None:
        on_paid = partial(send_payment_receipt, repo, templates, notifier, public_base_url=settings.public_base_url)
    refunds = None
    if any(e.refund is not None for e in events):
        refunds = _refund_ledger(repo, settings.app_table, partial(send_refund_message, repo, templates, notifier))
    outcomes = []
    for event in events:
        outcome = apply_payment_event(repo, clinic_id, event, refunds=refunds)
        if outcome == "applied" and event.kind == "succeeded" and event.appointment_id and event.amount:
            on_paid(clinic_id, event.appointment_id, event.amount)
        outcomes.append(outcome)
    return outcomes


def _refund_ledger(repo: AppointmentRepository, table_name: str,
                   notify: Callable[[str, str, Money], object]) -> RefundLedger:
    from clinicpay.providers.registry import refunding_gateway
    from clinicpay.repositories.ledger import LedgerRepository
    from clinicpay.usecases.refunds import RefundDeps, apply_refund_notice

    deps = RefundDeps(appointments=repo, ledger=LedgerRepository(table_name), gateway_for=refunding_gateway,
                      notify=notify)
    return lambda clinic_id, event: apply_refund_notice(deps, clinic_id, event)


def apply_payment_event(repo: AppointmentRepository, clinic_id: str, event: PaymentEvent, *,
                        refunds: RefundLedger | None = None) -> str:
    outcome, reason = _apply(repo, clinic_id, event, refunds)
    logger.info("payment event", extra={"clinic_id": clinic_id, "provider": event.provider, "event_id": event.event_id,
                                        "kind": event.kind, "appointment_id": event.appointment_id,
                                        "outcome": outcome, "reason": reason})
    if outcome == FOREIGN and reason:
        count_foreign(event.provider, clinic_id, event.event_id, reason)
    if outcome == "applied" and event.kind == "succeeded":
        metrics.add_metric(name="AppointmentPaid", unit="Count", value=1)
    return outcome


def _apply(repo: AppointmentRepository, clinic_id: str, event: PaymentEvent,
           refunds: RefundLedger | None) -> tuple[str, str | None]:
    """-> (outcome, reason). Outcomes: applied, duplicate, foreign, ignored, recorded, already_paid,
    stale, refused (a refund above what is left)."""
    if event.kind == "ignored":
        return _record(repo, clinic_id, event, "ignored", None)
    if names_other_clinic(event.details.get("clinic_id"), clinic_id):
        return _record(repo, clinic_id, event, FOREIGN, OTHER_CLINIC)
    if event.kind == "refunded":
        if event.refund is not None and refunds is not None:
            # The refund's payment proves whose it is (usecases/refunds.py): no appointment id needed.
            return refunds(clinic_id, event)
        # A provider reversal without a refund notice: kept for the audit trail.
        return _record(repo, clinic_id, event, "recorded", None)
    if not event.appointment_id:
        return _record(repo, clinic_id, event, FOREIGN, UNKNOWN_OBJECT)
    return _apply_to_appointment(repo, clinic_id, event)


def _apply_to_appointment(repo: AppointmentRepository, clinic_id: str, event: PaymentEvent) -> tuple[str, str | None]:
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
    if attempt.outcome == "already_applied":
        # This provider payment was applied already, under another event (a payment intent's
        # event and its session's event name the same payment).
        return _record(repo, clinic_id, event, "already_paid", None)
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
    if event.amount is not None and not current.asked(event.session_id, event.amount):
        return FOREIGN, AMOUNT_MISMATCH
    if current.appointment.payment_status not in (PaymentStatus.UNPAID, PaymentStatus.PENDING):
        return ("already_paid", None) if event.kind == "succeeded" else ("stale", "already_paid")
    if current.session is None or current.session.session_id != event.session_id:
        return "stale", "replaced"
    return "stale", "older_than_last_event"


def _record(repo: AppointmentRepository, clinic_id: str, event: PaymentEvent, outcome: str,
            reason: str | None) -> tuple[str, str | None]:
    if not repo.record_event(clinic_id, event, outcome, reason):
        return "duplicate", None
    return outcome, reason

