"""The `reminders` job: every due reminder sent once, with the payment link while unpaid.

Each reminder is claimed with a conditional write before it is sent, so two overlapping runs never
both send it; a send that fails releases the claim and the next run tries again. A run near its
function's timeout starts no further reminder (`has_time`), so none is left claimed but unsent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from clinicpay.domain.appointment import BookingStatus, PaymentStatus
from clinicpay.domain.errors import ClinicpayError
from clinicpay.notify.messages import TemplateSource
from clinicpay.observability import logger
from clinicpay.ports import Notifier
from clinicpay.repositories.appointments import AppointmentRepository
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.usecases.appointments import pay_url
from clinicpay.usecases.messages import send_appointment_message


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


def send_due_reminders(deps: ReminderDeps) -> dict[str, int]:
    now = deps.clock()
    counts = {"sent": 0, "skipped": 0, "failed": 0}
    for stored in deps.appointments.due_reminders(now.astimezone(UTC).isoformat()):
        if not deps.has_time():
            logger.warning("reminders run stopped before its function's timeout; the rest stay due", extra=counts)
            break
        appointment = stored.appointment
        due = stored.reminders_pending[0] if stored.reminders_pending else None
        if due is None:
            continue
        # Reminders already past (the appointment has started) are dropped, not sent late.
        remaining = [r for r in stored.reminders_pending[1:] if r > now.astimezone(UTC).isoformat()]
        if not deps.appointments.claim_reminder(appointment.clinic_id, appointment.appointment_id, due, remaining):
            counts["skipped"] += 1
            continue
        if appointment.starts_at <= now or appointment.status is BookingStatus.AWAITING_CARD:
            counts["skipped"] += 1
            continue
        try:
            clinic = deps.clinics.get(appointment.clinic_id)
            service = deps.clinics.get_service(appointment.clinic_id, appointment.service_id)
            unpaid = appointment.payment_status in (PaymentStatus.UNPAID, PaymentStatus.PENDING)
            link = pay_url(deps.public_base_url, stored.link_token) if (unpaid and stored.link_token) else None
            sent = send_appointment_message(deps.notifier, deps.templates, clinic, appointment, service.name,
                                            "appointment_reminder", link)
        except ClinicpayError:
            sent = []
        if sent or not (appointment.patient.email or appointment.patient.phone):
            counts["sent" if sent else "skipped"] += 1
            continue
        deps.appointments.release_reminder(appointment.clinic_id, appointment.appointment_id, due,
                                           stored.reminders_pending)
        counts["failed"] += 1
    logger.info("reminders run", extra=counts)
    return counts
