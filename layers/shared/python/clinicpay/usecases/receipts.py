"""The patient's "payment received" message, sent once, right after the payment is applied."""

from __future__ import annotations

from clinicpay.domain.errors import ClinicpayError
from clinicpay.notify.messages import TemplateSource
from clinicpay.observability import logger
from clinicpay.ports import Notifier
from clinicpay.repositories.appointments import AppointmentRepository
from clinicpay.usecases.messages import PrefetchedTemplates, clinic_template_keys, send_appointment_message

_KINDS = ("payment_receipt",)


def send_payment_receipt(appointments: AppointmentRepository, templates: TemplateSource, notifier: Notifier,
                         clinic_id: str, appointment_id: str) -> list[str]:
    """Best effort: the payment is already recorded, so a message that cannot go out is logged, not raised."""
    keys = clinic_template_keys(clinic_id, _KINDS)
    try:
        appointment, clinic, found = appointments.receipt_context(clinic_id, appointment_id, keys)
    except ClinicpayError as error:
        logger.warning("receipt not sent", extra={"clinic_id": clinic_id, "appointment_id": appointment_id,
                                                  "error_code": error.code})
        return []
    prefetched = PrefetchedTemplates(set(keys), found, templates)
    return send_appointment_message(notifier, prefetched, clinic, appointment,
                                    appointment.service_name or appointment.service_id, "payment_receipt", None)
