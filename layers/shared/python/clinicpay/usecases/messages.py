"""Sending the messages that carry a payment link: creation, reminder, (re)send."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clinicpay.domain.appointment import Appointment
from clinicpay.domain.clinic import Clinic, ClinicSettings, localized_name
from clinicpay.domain.errors import ClinicpayError
from clinicpay.domain.money import Money
from clinicpay.notify.builtin import CHANNELS, LOCALES, Text
from clinicpay.notify.formatting import format_money, format_time
from clinicpay.notify.messages import TemplateSource, render, resolve_template
from clinicpay.observability import logger
from clinicpay.ports.messaging import OutgoingMessage

if TYPE_CHECKING:
    from clinicpay.ports.messaging import Notifier


def template_sk(kind: str, channel: str, locale: str) -> str:
    return f"TEMPLATE#{kind}#{channel}#{locale}"


def clinic_template_keys(clinic_id: str, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """The clinic's own templates that a booking might need, so they come in the same read."""
    return [(f"CLINIC#{clinic_id}", template_sk(k, c, lo)) for k in kinds for c in CHANNELS for lo in LOCALES]


@dataclass
class PrefetchedTemplates:
    """Templates already read in a batch; anything not asked for goes to the repository."""

    asked: set[tuple[str, str]]
    found: dict[str, Text]
    fallback: TemplateSource
    _extra: dict[tuple[str, str], Text | None] = field(default_factory=dict)

    def get(self, owner: str, kind: str, channel: str, locale: str) -> Text | None:
        key = (owner, template_sk(kind, channel, locale))
        if key in self.asked:
            return self.found.get(f"{owner}/{key[1]}")
        if key not in self._extra:
            self._extra[key] = self.fallback.get(owner, kind, channel, locale)
        return self._extra[key]


# The receipt of a payment the patient has just made on screen goes by email, where they keep it;
# by SMS only to a patient with no email. Everything else (booking confirmations, links, reminders,
# refunds: news the patient is not watching happen) goes both ways.
EMAIL_FIRST = frozenset({"payment_receipt"})


def contact_values(settings: ClinicSettings | None) -> dict[str, str]:
    """The clinic's address, phone and site for the foot of an email (`$clinic_contact`)."""
    if settings is None:
        return {}
    return {"clinic_address": settings.address or "", "clinic_phone": settings.phone or "",
            "clinic_website": settings.website or ""}


def patient_locale(appointment: Appointment, clinic: Clinic) -> str:
    return (appointment.patient.locale or clinic.locale).value


def send_appointment_message(notifier: Notifier, templates: TemplateSource, clinic: Clinic, appointment: Appointment,
                             service_name: str, kind: str, payment_link: str | None,
                             amount: Money | None = None, *, settings: ClinicSettings | None = None,
                             receipt_link: str | None = None, card_link: str | None = None) -> list[str]:
    """Email always when there is an address; SMS too when there is a phone (for EMAIL_FIRST kinds,
    only when there is no address). Returns channels sent.
    `$amount` is `amount` (what the link asks now, what was paid, what was refunded), else the price.

    A transport failure is logged and reported, never raised: the booking itself has succeeded."""
    locale = patient_locale(appointment, clinic)
    values = {"patient_name": appointment.patient.name, "clinic_name": clinic.name,
              "service_name": localized_name(service_name, appointment.service_names, locale),
              "amount": format_money(amount or appointment.price, locale), "payment_link": payment_link or "",
              **contact_values(settings), "booking_reference": appointment.appointment_id,
              "receipt_link": receipt_link or "", "card_link": card_link or ""}
    if kind == "payment_receipt" and appointment.payment:
        values["payment_reference"] = appointment.payment.reference
    sent = []
    for channel, address in (("email", appointment.patient.email), ("sms", appointment.patient.phone)):
        if not address or (channel == "sms" and kind in EMAIL_FIRST and appointment.patient.email):
            continue
        values["starts_at"] = format_time(appointment.starts_at, clinic.timezone, locale, brief=channel == "sms")
        text, _ = resolve_template(templates, kind, channel, locale, clinic.clinic_id, clinic.org_id)
        filled = render(text, locale, values)
        try:
            notifier.send(OutgoingMessage(channel=channel, to=address, subject=filled.subject or None,  # type: ignore[arg-type]
                                          body=filled.body, kind=kind, clinic_id=clinic.clinic_id,
                                          locale=locale))
            sent.append(channel)
        except ClinicpayError as error:
            logger.warning("message not sent", extra={"kind": kind, "channel": channel, "error_code": error.code,
                                                      "appointment_id": appointment.appointment_id})
    return sent
