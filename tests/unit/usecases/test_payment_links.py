"""`/pay/{token}` decisions, with fakes: no AWS, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clinicpay.domain.appointment import Appointment, BookedBy, Patient, PaymentStatus, ProviderSession
from clinicpay.domain.clinic import Clinic, ClinicSettings, Locale, Provider, Service
from clinicpay.domain.errors import GatewayNotConfigured, ProviderUnavailable
from clinicpay.domain.money import Money
from clinicpay.repositories.appointments import StoredAppointment
from clinicpay.usecases.payment_links import PayDeps, choose_gateway, open_link
from tests.fakes.payments import FakeAppointments, FakeClinics, FakeGateway

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _world(status: PaymentStatus = PaymentStatus.UNPAID, link_expires_at: datetime | None = None,
           session: ProviderSession | None = None) -> tuple[PayDeps, FakeAppointments, FakeGateway]:
    appointments = FakeAppointments()
    appointment = Appointment(appointment_id="ap1", clinic_id="c1", patient=Patient(id="p1", name="Ana"),
                              service_id="s1", starts_at=NOW + timedelta(days=1), booked_by=BookedBy.STAFF,
                              price=Money(amount=25000, currency="CLP"), payment_status=status, created_at=NOW)
    appointments.add(StoredAppointment(appointment, "tok", link_expires_at, session, 0, []))
    clinic = Clinic(clinic_id="c1", name="Demo", country="CL", currency="CLP", timezone="America/Santiago",
                    locale=Locale.ES, created_at=NOW.isoformat())
    clinics = FakeClinics(clinic, ClinicSettings(default_gateway=Provider.FINTOC),
                          {"s1": Service(service_id="s1", name="Consulta", price=Money(amount=25000, currency="CLP"))})
    gateway = FakeGateway(expires_at=NOW + timedelta(days=1))
    deps = PayDeps(appointments=appointments, clinics=clinics, gateway_for=lambda clinic_id, provider: gateway,
                   public_base_url="https://pay.clinic", clock=lambda: NOW)
    return deps, appointments, gateway


def test_first_click_makes_a_provider_session_with_a_stable_idempotency_key() -> None:
    deps, appointments, gateway = _world()
    outcome = open_link(deps, "tok")
    assert outcome.kind == "redirect" and outcome.url == "https://pay.example/cs_1"
    assert gateway.requests[0].idempotency_key == "clinicpay-c1-appt-ap1-0"  # the clinic is part of the key
    assert gateway.requests[0].amount == Money(amount=25000, currency="CLP")
    assert appointments.get("c1", "ap1").session_attempts == 1


def test_a_live_session_is_reused() -> None:
    live = ProviderSession(provider="fintoc", session_id="cs_old", url="https://pay.example/old",
                           expires_at=NOW + timedelta(hours=3))
    deps, _, gateway = _world(session=live)
    assert open_link(deps, "tok").url == "https://pay.example/old"
    assert gateway.requests == []


def test_a_session_about_to_expire_is_replaced() -> None:
    stale = ProviderSession(provider="fintoc", session_id="cs_old", url="https://pay.example/old",
                            expires_at=NOW + timedelta(minutes=2))
    deps, _, gateway = _world(session=stale)
    assert open_link(deps, "tok").url == "https://pay.example/cs_1"


@pytest.mark.parametrize(("status", "kind"), [(PaymentStatus.PAID, "paid"), (PaymentStatus.NOT_REQUIRED, "no_payment")])
def test_paid_or_free_appointments_never_reach_the_provider(status: PaymentStatus, kind: str) -> None:
    deps, _, gateway = _world(status=status)
    assert open_link(deps, "tok").kind == kind
    assert gateway.requests == []


def test_an_expired_online_link_says_so() -> None:
    deps, _, gateway = _world(link_expires_at=NOW - timedelta(seconds=1))
    assert open_link(deps, "tok").kind == "expired" and gateway.requests == []


def test_an_unknown_token_is_not_found() -> None:
    deps, _, _ = _world()
    assert open_link(deps, "nope").kind == "not_found"


def test_provider_down_writes_nothing() -> None:
    deps, appointments, gateway = _world()
    gateway.down = True
    with pytest.raises(ProviderUnavailable):
        open_link(deps, "tok")
    stored = appointments.get("c1", "ap1")
    assert stored.session is None and stored.session_attempts == 0


def test_gateway_choice_prefers_the_default_then_the_first_configured() -> None:
    assert choose_gateway(ClinicSettings(default_gateway=Provider.STRIPE), ["fintoc", "stripe"]) is Provider.STRIPE
    assert choose_gateway(ClinicSettings(), ["stripe", "monobank"]) is Provider.MONOBANK
    with pytest.raises(GatewayNotConfigured):
        choose_gateway(ClinicSettings(), ["checkbox"])
