"""Telling the patient about a card charge (message kind `card_charged`, email and SMS), as the
consent they accepted promises: what was charged, to which card, why, by which clinic, and the
charge's reference.

Once per charge that succeeded, whoever learns of the success first (the charge request's own
answer, Stripe's webhook for an off-session or 3-D Secure charge, the card-reconcile job, the
takeover of a stale claim): all of them record it through `apply_charge_result`, whose write to
`succeeded` is conditional and stamps `told_at`; only the caller whose write landed calls
`tell_patient_charged`. A message SES or SNS refuses for a passing reason waits in the message
outbox (notify/sender.py) and is sent by the `message-retry` job.

A charge that pays an appointment sends this message and nothing else: the card path never sent
`payment_receipt` (that one is for payments through a link), so the patient gets one message for
the event, which names the card as well as the appointment.
"""

from __future__ import annotations

from datetime import datetime
from string import Template
from typing import Any

from clinicpay.domain.card import Charge, ChargeReason
from clinicpay.domain.clinic import Clinic, localized_name
from clinicpay.domain.errors import ClinicpayError
from clinicpay.notify.builtin import CHARGE_REASONS, LOCALES
from clinicpay.notify.formatting import format_money, format_time
from clinicpay.notify.messages import render, resolve_template
from clinicpay.observability import logger, metrics
from clinicpay.ports.messaging import OutgoingMessage
from clinicpay.usecases.cards_ports import CardDeps

CHARGE_MESSAGE = "card_charged"

# Stripe's `display_brand` (or `brand`) as a cardholder reads it on their card.
_BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express",
           "american_express": "American Express", "discover": "Discover", "diners": "Diners Club",
           "diners_club": "Diners Club", "jcb": "JCB", "unionpay": "UnionPay", "union_pay": "UnionPay",
           "cartes_bancaires": "Cartes Bancaires", "interac": "Interac", "eftpos_australia": "eftpos",
           "link": "Link"}


def card_label(brand: str | None, last4: str | None) -> str:
    """"Visa ····4242": the brand and the last four, as card statements show them."""
    name = _BRANDS.get((brand or "").lower(), "" if not brand or brand == "unknown" else brand.replace("_", " ").title())
    digits = f"····{last4}" if last4 else ""
    return " ".join(part for part in (name, digits) if part)


def charge_locale(patient: dict[str, Any], appointment: dict[str, Any] | None, clinic: Clinic) -> str:
    """The patient's language (their record, else the one their appointment was booked in), else the clinic's."""
    for candidate in (patient.get("locale"), ((appointment or {}).get("patient") or {}).get("locale")):
        if candidate in LOCALES:
            return str(candidate)
    return clinic.locale.value


def reason_key(charge: Charge, appointment: dict[str, Any] | None) -> str:
    """Which CHARGE_REASONS phrase says why: the appointment is named when we can read it."""
    if charge.reason is ChargeReason.APPOINTMENT:
        return "appointment" if appointment else "other"
    if charge.reason is ChargeReason.NO_SHOW:
        return "no_show_appointment" if appointment else "no_show"
    return "other_appointment" if appointment else "other"


def charge_values(deps: CardDeps, charge: Charge, clinic: Clinic, patient: dict[str, Any],
                  appointment: dict[str, Any] | None, locale: str, *, brief: bool = False) -> dict[str, str]:
    """`brief`: the SMS's shorter date (format_time)."""
    service_name = starts_at = ""
    if appointment:
        service_name = localized_name(str(appointment.get("service_name") or appointment.get("service_id") or ""),
                                      appointment.get("service_names"), locale)
        starts = appointment.get("starts_at")
        if starts:
            starts_at = format_time(datetime.fromisoformat(str(starts)), clinic.timezone, locale, brief=brief)
    brand, last4 = charge.card_brand, charge.card_last4
    if not last4:
        # A charge recorded before charges kept their card: the card itself (even one being removed).
        card = deps.cards.get_card(charge.clinic_id, charge.patient_id, charge.card_id, removing_too=True)
        brand, last4 = (card.brand, card.last4) if card else (None, None)
    values = {"patient_name": str(patient.get("name") or ((appointment or {}).get("patient") or {}).get("name") or ""),
              "clinic_name": clinic.name, "amount": format_money(charge.amount, locale),
              "card": card_label(brand, last4), "charge_reference": charge.charge_id,
              "service_name": service_name, "starts_at": starts_at}
    phrases = CHARGE_REASONS[reason_key(charge, appointment)]
    values["charge_reason"] = Template(phrases.get(locale) or phrases["en"]).safe_substitute(values)
    return values


def tell_patient_charged(deps: CardDeps, charge: Charge) -> list[str]:
    """Email and SMS (where the patient has an address, a phone) saying the card was charged.
    Called once per charge (see the module's note); best effort: the charge is recorded whatever
    happens here, so a failure is logged, never raised. Returns the channels handed to the notifier."""
    if deps.notifier is None or deps.templates is None:
        return []
    try:
        return _tell(deps, charge)
    except ClinicpayError as error:
        metrics.add_metric(name="ChargeMessageNotSent", unit="Count", value=1)
        logger.warning("charge message not sent", extra={"clinic_id": charge.clinic_id, "charge_id": charge.charge_id,
                                                         "error_code": error.code})
        return []


def _tell(deps: CardDeps, charge: Charge) -> list[str]:
    assert deps.notifier is not None and deps.templates is not None
    patient = deps.patients.get(charge.clinic_id, charge.patient_id) or {}
    appointment = deps.appointments.get(charge.clinic_id, charge.appointment_id) if charge.appointment_id else None
    contact = {**((appointment or {}).get("patient") or {}), **{k: v for k, v in patient.items() if v}}
    destinations = [(channel, contact.get(field)) for channel, field in (("email", "email"), ("sms", "phone"))]
    if not any(address for _, address in destinations):
        logger.info("charge not told: no email or phone", extra={"clinic_id": charge.clinic_id,
                                                                  "charge_id": charge.charge_id})
        return []
    clinic = deps.clinics.get(charge.clinic_id)
    locale = charge_locale(patient, appointment, clinic)
    sent = []
    for channel, address in destinations:
        if not address:
            continue
        values = charge_values(deps, charge, clinic, patient, appointment, locale, brief=channel == "sms")
        template, _ = resolve_template(deps.templates, CHARGE_MESSAGE, channel, locale, clinic.clinic_id, clinic.org_id)
        text = render(template, locale, values)
        try:
            deps.notifier.send(OutgoingMessage(channel=channel, to=str(address),  # type: ignore[arg-type]
                                               subject=(text.subject or None) if channel == "email" else None,
                                               body=text.body, kind=CHARGE_MESSAGE, clinic_id=clinic.clinic_id,
                                               locale=locale))
            sent.append(channel)
        except ClinicpayError as error:
            logger.warning("message not sent", extra={"kind": CHARGE_MESSAGE, "channel": channel,
                                                      "error_code": error.code, "charge_id": charge.charge_id})
    return sent


def tell_bookings_confirmed(deps: CardDeps, clinic_id: str, appointment_ids: list[str]) -> list[str]:
    """The booking confirmation (`appointment_created`) of each booking a saved card has just
    confirmed. Called with the ids whose conditional write `awaiting_card -> confirmed` landed in
    this call, so each booking is confirmed to the patient once. Best effort: the card and the
    bookings are recorded whatever happens here. Returns the ids told."""
    if deps.notifier is None or deps.templates is None or not appointment_ids:
        return []
    from pydantic import ValidationError

    from clinicpay.domain.appointment import Appointment
    from clinicpay.usecases.messages import send_appointment_message

    told = []
    try:
        clinic = deps.clinics.get(clinic_id)
        settings = deps.clinics.get_settings(clinic_id)
        for appointment_id in appointment_ids:
            item = deps.appointments.get(clinic_id, appointment_id)
            if not item:
                continue
            try:
                appointment = Appointment.model_validate(item)
            except ValidationError:
                logger.warning("booking confirmation not sent: unreadable appointment",
                               extra={"clinic_id": clinic_id, "appointment_id": appointment_id})
                continue
            if send_appointment_message(deps.notifier, deps.templates, clinic, appointment,
                                        appointment.service_name or appointment.service_id, "appointment_created",
                                        None, settings=settings):
                told.append(appointment_id)
    except ClinicpayError as error:
        logger.warning("booking confirmation not sent", extra={"clinic_id": clinic_id, "error_code": error.code})
    return told
