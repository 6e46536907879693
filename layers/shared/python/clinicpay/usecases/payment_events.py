"""Apply verified provider events to appointments: each event once, in any order, harmlessly repeated.

- `succeeded` marks the appointment paid in one transaction with the event record and the payment
  row; a second delivery (same event id) or another event for the same payment finds it paid.
- `pending`, `failed`, `expired` change nothing once the appointment is paid, and an older one never
  overrides a newer one (`last_event_at`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from clinicpay.domain.errors import NotFound
from clinicpay.notify.sender import AwsNotifier
from clinicpay.observability import logger, metrics
from clinicpay.ports import PaymentEvent
from clinicpay.repositories.appointments import AppointmentRepository
from clinicpay.repositories.templates import TemplateRepository
from clinicpay.settings import get_settings
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
    log = {"clinic_id": clinic_id, "provider": event.provider, "event_id": event.event_id, "kind": event.kind,
           "appointment_id": event.appointment_id}
    if event.kind == "ignored" or not event.appointment_id:
        outcome = "ignored" if repo.record_event(clinic_id, event, "ignored") else "duplicate"
    elif event.kind == "succeeded":
        outcome = _apply_succeeded(repo, clinic_id, event)
    elif event.kind == "refunded":
        # Refunds are recorded for the audit trail; moving money back is out of scope here.
        outcome = "recorded" if repo.record_event(clinic_id, event, "recorded") else "duplicate"
    else:
        outcome = _apply_non_final(repo, clinic_id, event)
    logger.info("payment event", extra={**log, "outcome": outcome})
    if outcome == "applied" and event.kind == "succeeded":
        metrics.add_metric(name="AppointmentPaid", unit="Count", value=1)
    return outcome


def _apply_succeeded(repo: AppointmentRepository, clinic_id: str, event: PaymentEvent) -> str:
    if not event.payment_reference:
        return "ignored" if repo.record_event(clinic_id, event, "ignored") else "duplicate"
    outcome = repo.apply_paid(clinic_id, event)
    if outcome == "not_applicable":
        # Already paid, unknown appointment, or an amount that is not the price: keep the event so a
        # repeat is cheap, and make the amount case loud, because money arrived that we did not ask for.
        stored = None
        try:
            stored = repo.get(clinic_id, event.appointment_id or "")
        except NotFound:
            pass  # an unknown appointment: nothing more to check
        if stored and event.amount and stored.appointment.price != event.amount:
            logger.error("paid amount differs from the price", extra={"clinic_id": clinic_id,
                                                                      "appointment_id": event.appointment_id})
            metrics.add_metric(name="PaymentAmountMismatch", unit="Count", value=1)
            outcome = "amount_mismatch"
        repo.record_event(clinic_id, event, outcome)
    return outcome


def _apply_non_final(repo: AppointmentRepository, clinic_id: str, event: PaymentEvent) -> str:
    if not repo.record_event(clinic_id, event, "received"):
        return "duplicate"
    clear = event.session_id if event.kind in ("expired", "failed") else None
    changed = repo.apply_status(clinic_id, event, to_status=_STATUS_FOR.get(event.kind), clear_session_id=clear)
    if not changed and clear:
        # The session may already have been replaced; the status part still applies.
        changed = repo.apply_status(clinic_id, event, to_status=_STATUS_FOR.get(event.kind))
    return "applied" if changed else "stale"
