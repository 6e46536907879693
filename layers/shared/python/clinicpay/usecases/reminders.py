"""The `reminders` job: every due reminder sent once, with the payment link while unpaid; and the
booking confirmation held back while an online patient pays, once, if they did not pay; and, once,
a reminder to a patient who left the card step of a card-required booking.

Scheduled, it runs one shard of the RemindersDue index per invocation (clinicpay.fanout): each
invocation reads only the reminders of its shard that are due.

Each reminder is claimed with a conditional write before it is sent, so two overlapping runs never
both send it; a send that fails releases the claim and the next run tries again. A run near its
function's timeout starts no further reminder (`has_time`), so none is left claimed but unsent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clinicpay.domain.appointment import BookingStatus, PaymentStatus, pay_url
from clinicpay.domain.errors import ClinicpayError
from clinicpay.notify.messages import TemplateSource
from clinicpay.observability import logger
from clinicpay.repositories.appointments import AppointmentRepository, StoredAppointment
from clinicpay.repositories.card_requests import card_setup_url
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.usecases.messages import send_appointment_message

if TYPE_CHECKING:
    from clinicpay.ports.messaging import Notifier


@dataclass
class ReminderDeps:
    appointments: AppointmentRepository
    clinics: ClinicRepository
    templates: TemplateSource
    notifier: Notifier
    public_base_url: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Whether another reminder (claim, send, maybe release) still fits in this run; what does not
    # stays due for the next run.
    has_time: Callable[[], bool] = lambda: True


def send_due_reminders(deps: ReminderDeps, shard: int) -> dict[str, int]:
    """Every reminder of this shard (repositories/shards.py) that is due, page by page, while the
    invocation has time; `items_read` is what DynamoDB returned (only what is due)."""
    now = deps.clock()
    counts = {"sent": 0, "skipped": 0, "failed": 0, "items_read": 0}
    page: dict[str, Any] | None = None
    while deps.has_time():
        found, page = deps.appointments.due_reminders(shard, now.astimezone(UTC).isoformat(), after=page)
        counts["items_read"] += len(found)
        if not _send_page(deps, found, now, counts) or page is None:
            break
    logger.info("reminders run", extra={"shard": shard, **counts})
    return counts


def _send_page(deps: ReminderDeps, found: list[StoredAppointment], now: datetime, counts: dict[str, int]) -> bool:
    """Send one page's reminders; False when the invocation ran out of time on the way."""
    for stored in found:
        if not deps.has_time():
            logger.warning("reminders run stopped before its function's timeout; the rest stay due", extra=counts)
            return False
        appointment = stored.appointment
        due = stored.reminders_pending[0] if stored.reminders_pending else None
        if due is None:
            continue
        # Reminders already past (the appointment has started) are dropped, not sent late.
        remaining = [r for r in stored.reminders_pending[1:] if r > now.astimezone(UTC).isoformat()]
        if not deps.appointments.claim_reminder(appointment.clinic_id, appointment.appointment_id, due, remaining):
            counts["skipped"] += 1
            continue
        card_reminder = due == stored.card_reminder_due_at
        waiting_for_card = appointment.status is BookingStatus.AWAITING_CARD
        # A booking waiting for its card gets no reminder but the one about the card; the card
        # reminder is dropped once the card is saved.
        if appointment.starts_at <= now or appointment.status is BookingStatus.CANCELLED \
                or waiting_for_card != card_reminder or (
                card_reminder and not stored.card_request_token):
            counts["skipped"] += 1
            continue
        try:
            clinic = deps.clinics.get(appointment.clinic_id)
            service = deps.clinics.get_service(appointment.clinic_id, appointment.service_id)
            unpaid = appointment.payment_status in (PaymentStatus.UNPAID, PaymentStatus.PENDING)
            lapsed = stored.link_expires_at is not None and stored.link_expires_at <= now
            link = pay_url(deps.public_base_url, stored.link_token) if (
                unpaid and stored.link_token and not lapsed) else None
            # The booking confirmation held back while the patient paid (usecases/appointments.py):
            # still unpaid, so it goes now, in place of a reminder.
            settings = deps.clinics.get_settings(appointment.clinic_id)
            kind = "appointment_reminder"
            card_link = None
            if due == stored.confirmation_due_at:
                # As it would have gone at booking: with the link only if the clinic shows links in emails.
                kind = "appointment_created"
                link = link if settings.show_payment_link_in_email else None
            if card_reminder:
                kind, link = "card_booking_reminder", None
                card_link = card_setup_url(deps.public_base_url, str(stored.card_request_token))
            sent = send_appointment_message(deps.notifier, deps.templates, clinic, appointment, service.name,
                                            kind, link, settings=settings, card_link=card_link)
        except ClinicpayError:
            sent = []
        if sent or not (appointment.patient.email or appointment.patient.phone):
            counts["sent" if sent else "skipped"] += 1
            continue
        deps.appointments.release_reminder(appointment.clinic_id, appointment.appointment_id, due,
                                           stored.reminders_pending)
        counts["failed"] += 1
    return True
