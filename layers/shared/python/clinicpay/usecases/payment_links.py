"""What happens when a patient opens `/pay/{token}`.

The link is ours and never changes; the provider checkout behind it is made at the click and made
again once it has expired, so a staff-booked link can live for ever. Nothing is written until the
provider has answered, and the provider call carries an idempotency key per attempt, so a timeout
or a double click never leaves a half-made payment behind.

What the link asks (`to_collect`): the deposit first when the service takes one, else the price;
once something is paid, nothing more unless staff asked the link to collect the balance (then a
NEW provider session for the balance, whose id joins `session_ids`). A session is reused only while
it asks what is due now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from clinicpay.domain.appointment import BookingStatus, PaymentStatus, ProviderSession, SessionPurpose, settled_status
from clinicpay.domain.clinic import LINK_GATEWAYS, Clinic, ClinicSettings, Provider, localized_name
from clinicpay.domain.errors import GatewayNotConfigured, StorageUnavailable
from clinicpay.domain.money import Money
from clinicpay.observability import logger
from clinicpay.ports.payments import CheckoutRequest
from clinicpay.repositories.appointments import AppointmentRepository, StoredAppointment
from clinicpay.repositories.clinics import ClinicRepository

if TYPE_CHECKING:
    from clinicpay.ports.payments import PaymentGateway

# A session this close to expiry is replaced rather than sent to the patient.
_SESSION_MARGIN = timedelta(minutes=5)


@dataclass
class LinkOutcome:
    kind: Literal["redirect", "paid", "deposit_paid", "expired", "not_found", "no_payment", "pending"]
    url: str | None = None
    stored: StoredAppointment | None = None
    clinic_name: str = ""
    locale: str = "en"
    clinic: Clinic | None = None


@dataclass
class PayDeps:
    appointments: AppointmentRepository
    clinics: ClinicRepository
    gateway_for: Callable[[str, Provider], PaymentGateway]
    public_base_url: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def choose_gateway(settings: ClinicSettings, configured: list[str]) -> Provider:
    if settings.default_gateway and settings.default_gateway.value in configured:
        return settings.default_gateway
    for provider in LINK_GATEWAYS:
        if provider.value in configured:
            return provider
    raise GatewayNotConfigured("The clinic has not set up online payments yet.")


def to_collect(stored: StoredAppointment) -> tuple[Money, SessionPurpose] | None:
    """What the link asks now, and why; None when it asks nothing."""
    appointment = stored.appointment
    if appointment.payment_status in (PaymentStatus.NOT_REQUIRED, PaymentStatus.REFUNDED) or not stored.link_token:
        return None
    if appointment.status is BookingStatus.CANCELLED:
        return None  # a cancelled appointment's link takes no money
    due = appointment.balance_due
    if due.amount <= 0:
        return None
    if stored.balance_requested:
        return due, "balance"
    if appointment.amount_paid.amount > 0:
        return None  # a deposit came in: the balance is paid at the desk unless staff send the link
    if appointment.deposit is not None and 0 < appointment.deposit.amount < due.amount:
        return appointment.deposit, "deposit"
    return due, "full"


def open_link(deps: PayDeps, token: str) -> LinkOutcome:
    found = deps.appointments.find_link(token)
    if not found:
        return LinkOutcome("not_found")
    clinic_id, appointment_id = found
    stored = deps.appointments.get(clinic_id, appointment_id, consistent=True)
    clinic = deps.clinics.get(clinic_id)
    locale = (stored.appointment.patient.locale or clinic.locale).value
    outcome = LinkOutcome("redirect", stored=stored, clinic_name=clinic.name, locale=locale, clinic=clinic)
    now = deps.clock()
    for _ in range(3):
        outcome.stored = stored
        status = stored.appointment.payment_status
        collect = to_collect(stored)
        if collect is None:
            outcome.kind = "paid" if status is PaymentStatus.PAID else (
                "deposit_paid" if status is PaymentStatus.DEPOSIT_PAID else "no_payment")
            return outcome
        if stored.link_expires_at and stored.link_expires_at <= now:
            outcome.kind = "expired"
            return outcome
        session = stored.session if _usable(stored.session, collect[0], stored, now) else \
            _new_session(deps, clinic_id, stored, *collect)
        if session is not None:
            outcome.url = session.url
            return outcome
        # Another click stored a session first, or a payment just landed: look again.
        stored = deps.appointments.get(clinic_id, appointment_id, consistent=True)
    raise StorageUnavailable("The appointment kept changing; try again.")


@dataclass(frozen=True)
class Receipt:
    """What the patient's paid page shows: everything read from the appointment and the clinic."""

    clinic_name: str
    service_name: str
    amount: Money
    starts_at: datetime
    timezone: str
    appointment_id: str
    provider: str | None
    provider_reference: str | None
    paid_at: datetime | None
    receipt_email: str | None  # masked
    website: str | None
    service_names: dict[str, str] | None = None  # the service's name in other languages

    def service_in(self, locale: str) -> str:
        return localized_name(self.service_name, self.service_names, locale)


def mask_email(address: str) -> str:
    """`ana.rojas@example.cl` -> `a***@example.cl`: enough for the patient to recognise, not to read."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def receipt(stored: StoredAppointment, clinic: Clinic, settings: ClinicSettings | None) -> Receipt:
    appointment = stored.appointment
    payment = appointment.payment
    # The receipt email goes out on the paid webhook whenever the patient has an address (a refused
    # send is kept and retried by the message-retry job), so the address on the appointment is where it went.
    return Receipt(clinic_name=clinic.name, service_name=appointment.service_name or appointment.service_id,
                   # everything paid for it (online and at the desk), not just the latest payment
                   amount=appointment.amount_paid if appointment.amount_paid.amount else appointment.price,
                   starts_at=appointment.starts_at,
                   timezone=clinic.timezone, appointment_id=appointment.appointment_id,
                   provider=payment.provider if payment else None,
                   provider_reference=payment.reference if payment else None,
                   paid_at=payment.paid_at if payment else None,
                   receipt_email=mask_email(appointment.patient.email) if appointment.patient.email and payment else None,
                   website=settings.website if settings else None, service_names=appointment.service_names)


def _usable(session: ProviderSession | None, amount: Money, stored: StoredAppointment, now: datetime) -> bool:
    """A live session that asks what is due now (sessions made before the ledger asked the price)."""
    return session is not None and (session.expires_at is None or session.expires_at > now + _SESSION_MARGIN) \
        and (session.amount or stored.appointment.price) == amount


def _new_session(deps: PayDeps, clinic_id: str, stored: StoredAppointment, amount: Money,
                 purpose: SessionPurpose) -> ProviderSession | None:
    """A provider session for `amount`, stored on the appointment; None when another click stored
    one first or the ledger moved meanwhile (the caller looks again)."""
    appointment = stored.appointment
    settings = deps.clinics.get_settings(clinic_id)
    configured = [g["provider"] for g in deps.clinics.list_gateways(clinic_id)]
    provider = choose_gateway(settings, configured)
    gateway = deps.gateway_for(clinic_id, provider)
    base = deps.public_base_url.rstrip("/")
    token = stored.link_token
    # The clinic is part of the key: clinics sharing a provider account may use the same ids. The
    # ledger version too, once money has moved: what the session asks depends on it.
    key = f"clinicpay-{clinic_id}-appt-{appointment.appointment_id}-{stored.session_attempts}"
    if stored.ledger_version:
        key += f"-v{stored.ledger_version}"
    request = CheckoutRequest(
        clinic_id=clinic_id, appointment_id=appointment.appointment_id, amount=amount,
        description=f"Appointment {appointment.appointment_id}", customer_email=appointment.patient.email,
        success_url=f"{base}/pay/{token}/result", cancel_url=f"{base}/pay/{token}/result?cancelled=1",
        idempotency_key=key, webhook_url=f"{base}/webhooks/{provider.value}/{clinic_id}",
        metadata={"clinic_id": clinic_id, "appointment_id": appointment.appointment_id})
    checkout = gateway.create_checkout(request)
    # The ledger as it will be once this session is paid, for the paying webhook to copy.
    paid_after = Money(amount=appointment.amount_paid.amount + amount.amount, currency=amount.currency)
    session = ProviderSession(provider=checkout.provider, session_id=checkout.session_id, url=checkout.url,
                              expires_at=checkout.expires_at, purpose=purpose, amount=amount,
                              ledger_version=stored.ledger_version, paid_after=paid_after,
                              status_after=settled_status(appointment.price, paid_after, appointment.amount_refunded,
                                                          appointment.payment_status))
    # Stored with its watch: should the provider's webhook never come, link-reconcile asks.
    if not deps.appointments.save_session(clinic_id, appointment.appointment_id, session, stored.session_attempts,
                                          expected_version=stored.ledger_version, now=deps.clock()):
        return None
    logger.info("provider session created", extra={"clinic_id": clinic_id, "provider": provider.value,
                                                   "appointment_id": appointment.appointment_id, "purpose": purpose})
    return session
