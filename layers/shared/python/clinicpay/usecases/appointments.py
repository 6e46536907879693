"""Appointments and their payment links: create (staff or online), read, list, (re)send the link."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from clinicpay.domain.appointment import (
    Appointment,
    BookedBy,
    BookingStatus,
    Patient,
    PaymentLink,
    PaymentStatus,
    pay_url,
)
from clinicpay.domain.clinic import deposit_for
from clinicpay.domain.errors import AlreadyPaid, Conflict, ProviderUnavailable, StorageUnavailable, ValidationFailed
from clinicpay.domain.ids import new_id, new_token
from clinicpay.domain.money import Money
from clinicpay.domain.patient_tokens import PatientTokenInvalid
from clinicpay.domain.phones import calling_code, sms_refusal
from clinicpay.notify.messages import TemplateSource
from clinicpay.repositories.appointments import (
    LEDGER_ATTEMPTS,
    AppointmentRepository,
    BookingContext,
    PatientWrite,
    StoredAppointment,
)
from clinicpay.repositories.card_requests import CardRequestRepository, card_setup_url
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.repositories.patient_tokens import PatientTokenSecrets
from clinicpay.repositories.patients import PatientRepository
from clinicpay.usecases.messages import PrefetchedTemplates, clinic_template_keys, send_appointment_message
from clinicpay.usecases.patient_tokens import prove_patient
from clinicpay.usecases.payment_links import to_collect

if TYPE_CHECKING:
    from clinicpay.ports.messaging import Notifier


@dataclass
class AppointmentDeps:
    appointments: AppointmentRepository
    clinics: ClinicRepository
    patients: PatientRepository
    card_requests: CardRequestRepository
    templates: TemplateSource
    notifier: Notifier
    public_base_url: str
    token_secrets: PatientTokenSecrets
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


@dataclass
class NewAppointment:
    patient: Patient
    service_id: str
    starts_at: datetime
    booked_by: BookedBy
    appointment_id: str | None = None
    price: Money | None = None


# One message per event: an online booking whose patient the widget sends straight to pay gets no
# "you can pay here" confirmation while paying. The payment receipt confirms the booking (a payment
# takes the appointment off the reminders index: repositories/appointments.py `apply_paid`); if
# nothing is paid this long after booking, the reminders job sends the confirmation, with its link.
CONFIRMATION_HELD_FOR = timedelta(minutes=10)
# A patient who left the card step of a card-required booking is reminded this long after booking
# (once, by the reminders job), unless the card was saved or the appointment has started by then.
CARD_REMINDER_AFTER = timedelta(minutes=30)


def view(stored: StoredAppointment, base_url: str) -> dict[str, Any]:
    """The appointment as the API shows it (the link token is the URL, never a separate field)."""
    data = stored.appointment.model_dump(mode="json", exclude={"payment_link"})
    if stored.link_token:
        link = PaymentLink(url=pay_url(base_url, stored.link_token), expires_at=stored.link_expires_at)
        data["payment_link"] = link.model_dump(mode="json")
    return data


def _reminder_times(starts_at: datetime, hours_before: list[int], now: datetime) -> list[str]:
    due = sorted({starts_at - timedelta(hours=h) for h in hours_before})
    return [moment.astimezone(UTC).isoformat() for moment in due if moment > now]


def create_appointment(deps: AppointmentDeps, clinic_id: str, request: NewAppointment) -> tuple[StoredAppointment, str | None]:
    """Staff (or the clinic's own software) books: the patient record takes the details sent.

    Returns the stored appointment and, for an online booking of a card-required service, the URL
    where the patient saves a card before the booking is confirmed."""
    context = _context(deps, clinic_id, request.service_id)
    online = request.booked_by is BookedBy.ONLINE
    card_on_file = online and deps.patients.has_card_on_file(clinic_id, request.patient.id)
    return _create(deps, context, request, card_on_file=card_on_file, patient_write="replace")


@dataclass
class OnlineBooking:
    """What the booking widget sends: contact details as typed, and optionally a patient token."""

    patient: dict[str, Any]  # name, email, phone, locale, as typed (an `id` is ignored: see book_online)
    service_id: str
    starts_at: datetime
    patient_token: str | None = None


def book_online(deps: AppointmentDeps, clinic_id: str, booking: OnlineBooking) -> tuple[StoredAppointment, str | None]:
    """A booking through the publishable key, which proves nothing about who is booking.

    Without a patient token the booking is for a new patient record minted here (`pt_…`), holding
    the details as typed: an existing patient's details are never touched, their card on file never
    counts, and a patient id in the body is ignored, so known and unknown ids are answered alike.
    With a token signed by the clinic's site the booking is that patient's: their stored details
    are used (typed ones only fill what we do not have) and a card on file counts."""
    context = _context(deps, clinic_id, booking.service_id)
    typed = {k: v for k, v in booking.patient.items() if k != "id" and v is not None}
    phone = typed.get("phone")
    if phone:
        refusal = sms_refusal(str(phone), context.clinic.country)
        if refusal:
            raise ValidationFailed(details=[{
                "field": "patient.phone", "type": "phone_country", "reason": refusal,
                "message": f"must be a mobile number in {context.clinic.country} "
                           f"(+{calling_code(context.clinic.country)})",
                "country": context.clinic.country, "calling_code": calling_code(context.clinic.country)}])
    if booking.patient_token:
        proved = prove_patient(deps.token_secrets, clinic_id, booking.patient_token, deps.clock())
        stored = deps.patients.get(clinic_id, proved.patient_id) or {}
        known = {k: stored.get(k) for k in ("name", "email", "phone", "locale") if stored.get(k)}
        # What we hold wins; then what the clinic's site signed; then what was typed.
        details = {**typed, **proved.claims, **known, "id": proved.patient_id}
        card_on_file = bool(stored.get("cards_on_file", 0))
        write: PatientWrite = "fill"
    else:
        details = {**typed, "id": new_id("pt")}
        card_on_file = False
        write = "create"
    if not details.get("name"):
        raise ValidationFailed(details=[{"field": "patient.name", "message": "Field required", "type": "missing"}])
    try:
        patient = Patient.model_validate(details)
    except PydanticValidationError as error:
        # Only claims from the clinic's own token can get here (typed details were checked at the edge).
        raise PatientTokenInvalid(details=[{"field": "patient_token", "message": "claims", "type": "patient_token"}]) \
            from error
    request = NewAppointment(patient=patient, service_id=booking.service_id, starts_at=booking.starts_at,
                             booked_by=BookedBy.ONLINE)
    return _create(deps, context, request, card_on_file=card_on_file, patient_write=write)


def _context(deps: AppointmentDeps, clinic_id: str, service_id: str) -> BookingContext:
    return deps.appointments.booking_context(clinic_id, service_id,
                                             clinic_template_keys(clinic_id, ("appointment_created",)))


def _create(deps: AppointmentDeps, context: BookingContext, request: NewAppointment, *, card_on_file: bool,
            patient_write: PatientWrite) -> tuple[StoredAppointment, str | None]:
    now = deps.clock()
    if request.starts_at.tzinfo is None:
        raise ValidationFailed(details=[{"field": "starts_at", "message": "must carry a UTC offset"}])
    clinic, settings, service = context.clinic, context.settings, context.service
    clinic_id = clinic.clinic_id
    price = request.price or service.price
    if price.currency != clinic.currency:
        raise ValidationFailed(details=[{"field": "price.currency", "message": f"must be {clinic.currency}"}])
    online = request.booked_by is BookedBy.ONLINE
    needs_card = (online and service.requires_card_on_file and settings.card_required_for_online_booking
                  and not card_on_file)
    needs_payment = service.requires_online_payment and price.amount > 0
    deposit = deposit_for(service.deposit, price) if needs_payment else None
    token = new_token() if needs_payment else None
    # Staff-booked links never expire; online ones lapse after the clinic's TTL (None = never).
    expires = now + timedelta(minutes=settings.online_link_ttl_minutes) if (
        token and online and settings.online_link_ttl_minutes) else None
    appointment = Appointment(
        appointment_id=request.appointment_id or new_id("ap"), clinic_id=clinic_id,
        patient=request.patient, service_id=service.service_id, service_name=service.name,
        service_names={str(k.value): v for k, v in service.names.items()} if service.names else None,
        starts_at=request.starts_at,
        booked_by=request.booked_by, price=price, deposit=deposit, amount_paid=Money(amount=0, currency=price.currency),
        amount_refunded=Money(amount=0, currency=price.currency),
        payment_status=PaymentStatus.UNPAID if needs_payment else PaymentStatus.NOT_REQUIRED,
        status=BookingStatus.AWAITING_CARD if needs_card else BookingStatus.CONFIRMED, created_at=now)
    reminders = _reminder_times(request.starts_at, settings.reminder_hours_before, now)
    held = (now + CONFIRMATION_HELD_FOR).astimezone(UTC).isoformat() if (
        online and token and not needs_card and request.starts_at > now + CONFIRMATION_HELD_FOR) else None
    if held:
        reminders = sorted({*reminders, held})
    card_token = new_token() if needs_card else None
    card_reminder = (now + CARD_REMINDER_AFTER).astimezone(UTC).isoformat() if (
        needs_card and request.starts_at > now + CARD_REMINDER_AFTER) else None
    if card_reminder:
        reminders = sorted({*reminders, card_reminder})
    deps.appointments.create(appointment, link_token=token, link_expires_at=expires, reminders_pending=reminders,
                             patient_write=patient_write, confirmation_due_at=held,
                             card_reminder_due_at=card_reminder, card_request_token=card_token)
    stored = StoredAppointment(appointment, token, expires, None, 0, [])
    card_url = None
    if needs_card:
        card_token = deps.card_requests.create(clinic_id, request.patient.id, "online_booking", now.isoformat(),
                                               appointment_id=appointment.appointment_id, token=card_token)
        card_url = card_setup_url(deps.public_base_url, card_token)
    elif not held:
        templates = PrefetchedTemplates(set(clinic_template_keys(clinic_id, ("appointment_created",))),
                                        context.templates, deps.templates)
        link = pay_url(deps.public_base_url, token) if token and settings.show_payment_link_in_email else None
        send_appointment_message(deps.notifier, templates, clinic, appointment, service.name, "appointment_created", link,
                                 deposit, settings=settings)
    return stored, card_url


def next_action(stored: StoredAppointment, card_url: str | None, base_url: str) -> dict[str, str] | None:
    if card_url:
        return {"type": "save_card", "url": card_url}
    if stored.link_token and stored.appointment.payment_status is PaymentStatus.UNPAID:
        return {"type": "pay", "url": pay_url(base_url, stored.link_token)}
    return None


def request_balance(deps: AppointmentDeps, clinic_id: str, appointment_id: str) -> StoredAppointment:
    """From now on the link collects the balance (a new provider session for it at the next click),
    and never expires. 409 when nothing is due or the appointment has no link."""
    for _ in range(LEDGER_ATTEMPTS):
        stored = deps.appointments.get(clinic_id, appointment_id, consistent=True)
        appointment = stored.appointment
        if not stored.link_token:
            raise Conflict("This appointment's service does not take online payment.", code="no_payment_required")
        if appointment.payment_status is PaymentStatus.REFUNDED or appointment.balance_due.amount <= 0:
            raise Conflict("Nothing is due on this appointment.", code="no_balance_due")
        if stored.balance_requested or deps.appointments.request_balance(clinic_id, appointment_id,
                                                                          stored.ledger_version):
            return deps.appointments.get(clinic_id, appointment_id, consistent=True)
    raise StorageUnavailable("The appointment kept changing; try again.")


def send_payment_link(deps: AppointmentDeps, clinic_id: str, appointment_id: str, *,
                      purpose: str | None = None) -> list[str]:
    """(Re)send the link. `purpose="balance"`: ask the balance (request_balance first)."""
    if purpose == "balance":
        stored = request_balance(deps, clinic_id, appointment_id)
    else:
        stored = deps.appointments.get(clinic_id, appointment_id, consistent=True)
    status = stored.appointment.payment_status
    if status is PaymentStatus.PAID:
        raise AlreadyPaid()
    if stored.appointment.status is BookingStatus.CANCELLED:
        raise Conflict("The appointment is cancelled: its link takes no money.", code="appointment_cancelled")
    collect = to_collect(stored)
    if not stored.link_token or collect is None:
        raise Conflict("This appointment has no payment to collect by link.", code="no_payment_required")
    if not (stored.appointment.patient.email or stored.appointment.patient.phone):
        raise Conflict("The patient has no email or phone to send the link to.", code="no_contact")
    clinic = deps.clinics.get(clinic_id)
    service = deps.clinics.get_service(clinic_id, stored.appointment.service_id)
    sent = send_appointment_message(deps.notifier, deps.templates, clinic, stored.appointment, service.name,
                                    "payment_link", pay_url(deps.public_base_url, stored.link_token), collect[0],
                                    settings=deps.clinics.get_settings(clinic_id))
    if not sent:
        raise ProviderUnavailable("The message could not be sent; try again.")
    return sent


def cancel_appointment(deps: AppointmentDeps, clinic_id: str, appointment_id: str, reason: str | None, *,
                       now: datetime | None = None) -> tuple[StoredAppointment, bool]:
    """Staff cancel: the appointment is marked cancelled (once; again is the same answer), its
    reminders stop and its payment link takes no more money. Money already paid stays on it until
    staff refund it (the answer's `amount_paid` / `amount_refunded` say what is left); nothing is
    refunded here, so a cancel never moves money. Returns the appointment and whether this call cancelled it."""
    changed = deps.appointments.cancel(clinic_id, appointment_id, now or datetime.now(UTC), reason)
    return deps.appointments.get(clinic_id, appointment_id, consistent=True), changed
