"""The patient's money messages, each sent once, right after the ledger moved: "payment received"
(`payment_receipt`) and "refund issued" (`refund_issued`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clinicpay.domain.appointment import pay_url
from clinicpay.domain.errors import ClinicpayError
from clinicpay.domain.money import Money
from clinicpay.notify.messages import TemplateSource
from clinicpay.observability import logger
from clinicpay.repositories.appointments import AppointmentRepository
from clinicpay.usecases.messages import PrefetchedTemplates, clinic_template_keys, send_appointment_message

if TYPE_CHECKING:
    from clinicpay.ports.messaging import Notifier


def send_payment_receipt(appointments: AppointmentRepository, templates: TemplateSource, notifier: Notifier,
                         clinic_id: str, appointment_id: str, amount: Money | None = None, *,
                         public_base_url: str | None = None) -> list[str]:
    """Best effort: the payment is already recorded, so a message that cannot go out is logged, not raised."""
    return _send(appointments, templates, notifier, clinic_id, appointment_id, "payment_receipt", amount,
                 public_base_url)


def send_refund_message(appointments: AppointmentRepository, templates: TemplateSource, notifier: Notifier,
                        clinic_id: str, appointment_id: str, amount: Money) -> list[str]:
    """The refund has succeeded (recorded first); the message is best effort, like the receipt."""
    return _send(appointments, templates, notifier, clinic_id, appointment_id, "refund_issued", amount, None)


def _send(appointments: AppointmentRepository, templates: TemplateSource, notifier: Notifier, clinic_id: str,
          appointment_id: str, kind: str, amount: Money | None, public_base_url: str | None) -> list[str]:
    keys = clinic_template_keys(clinic_id, (kind,))
    try:
        context = appointments.receipt_context(clinic_id, appointment_id, keys)
    except ClinicpayError as error:
        logger.warning("message not sent", extra={"clinic_id": clinic_id, "appointment_id": appointment_id,
                                                  "kind": kind, "error_code": error.code})
        return []
    prefetched = PrefetchedTemplates(set(keys), context.templates, templates)
    appointment = context.appointment
    # The appointment's own page (the payment link) shows the receipt and its calendar file once paid.
    page = pay_url(public_base_url, context.link_token) if (public_base_url and context.link_token) else None
    return send_appointment_message(notifier, prefetched, context.clinic, appointment,
                                    appointment.service_name or appointment.service_id, kind, None, amount,
                                    settings=context.settings, receipt_link=page)
