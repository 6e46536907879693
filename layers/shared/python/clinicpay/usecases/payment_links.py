"""What happens when a patient opens `/pay/{token}`.

The link is ours and never changes; the provider checkout behind it is made at the click and made
again once it has expired, so a staff-booked link can live for ever. Nothing is written until the
provider has answered, and the provider call carries an idempotency key per attempt, so a timeout
or a double click never leaves a half-made payment behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from clinicpay.domain.appointment import PaymentStatus, ProviderSession
from clinicpay.domain.clinic import LINK_GATEWAYS, ClinicSettings, Provider
from clinicpay.domain.errors import GatewayNotConfigured
from clinicpay.observability import logger
from clinicpay.ports import CheckoutRequest, PaymentGateway
from clinicpay.repositories.appointments import AppointmentRepository, StoredAppointment
from clinicpay.repositories.clinics import ClinicRepository

# A session this close to expiry is replaced rather than sent to the patient.
_SESSION_MARGIN = timedelta(minutes=5)


@dataclass
class LinkOutcome:
    kind: Literal["redirect", "paid", "expired", "not_found", "no_payment", "pending"]
    url: str | None = None
    stored: StoredAppointment | None = None
    clinic_name: str = ""
    locale: str = "en"


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


def open_link(deps: PayDeps, token: str) -> LinkOutcome:
    found = deps.appointments.find_link(token)
    if not found:
        return LinkOutcome("not_found")
    clinic_id, appointment_id = found
    stored = deps.appointments.get(clinic_id, appointment_id, consistent=True)
    clinic = deps.clinics.get(clinic_id)
    locale = (stored.appointment.patient.locale or clinic.locale).value
    outcome = LinkOutcome("redirect", stored=stored, clinic_name=clinic.name, locale=locale)
    status = stored.appointment.payment_status
    now = deps.clock()
    if status is PaymentStatus.PAID:
        outcome.kind = "paid"
        return outcome
    if status not in (PaymentStatus.UNPAID, PaymentStatus.PENDING):
        outcome.kind = "no_payment"
        return outcome
    if stored.link_expires_at and stored.link_expires_at <= now:
        outcome.kind = "expired"
        return outcome
    session = stored.session
    if session and (session.expires_at is None or session.expires_at > now + _SESSION_MARGIN):
        outcome.url = session.url
        return outcome
    outcome.url = _new_session(deps, clinic_id, stored, now).url
    return outcome


def _new_session(deps: PayDeps, clinic_id: str, stored: StoredAppointment, now: datetime) -> ProviderSession:
    appointment = stored.appointment
    settings = deps.clinics.get_settings(clinic_id)
    configured = [g["provider"] for g in deps.clinics.list_gateways(clinic_id)]
    provider = choose_gateway(settings, configured)
    gateway = deps.gateway_for(clinic_id, provider)
    base = deps.public_base_url.rstrip("/")
    token = stored.link_token
    request = CheckoutRequest(
        clinic_id=clinic_id, appointment_id=appointment.appointment_id, amount=appointment.price,
        description=f"Appointment {appointment.appointment_id}", customer_email=appointment.patient.email,
        success_url=f"{base}/pay/{token}/result", cancel_url=f"{base}/pay/{token}/result?cancelled=1",
        # The clinic is part of the key: clinics sharing a provider account may use the same ids.
        idempotency_key=f"clinicpay-{clinic_id}-appt-{appointment.appointment_id}-{stored.session_attempts}",
        webhook_url=f"{base}/webhooks/{provider.value}/{clinic_id}",
        metadata={"clinic_id": clinic_id, "appointment_id": appointment.appointment_id})
    checkout = gateway.create_checkout(request)
    session = ProviderSession(provider=checkout.provider, session_id=checkout.session_id, url=checkout.url,
                              expires_at=checkout.expires_at)
    # Stored with its watch: should the provider's webhook never come, link-reconcile asks.
    if not deps.appointments.save_session(clinic_id, appointment.appointment_id, session, stored.session_attempts,
                                          now=now):
        # Another click stored a session first (or the payment just landed): use what is there.
        latest = deps.appointments.get(clinic_id, appointment.appointment_id, consistent=True)
        if latest.session:
            return latest.session
    logger.info("provider session created", extra={"clinic_id": clinic_id, "provider": provider.value,
                                                   "appointment_id": appointment.appointment_id})
    return session
