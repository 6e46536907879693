"""Applying provider events exactly once and in order, with fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clinicpay.domain.appointment import Appointment, BookedBy, Patient, PaymentStatus, ProviderSession
from clinicpay.domain.money import Money
from clinicpay.ports import PaymentEvent
from clinicpay.repositories.appointments import StoredAppointment
from clinicpay.usecases.payment_events import apply_payment_event
from tests.fakes.payments import FakeAppointments

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PRICE = Money(amount=25000, currency="CLP")


def _repo() -> FakeAppointments:
    repo = FakeAppointments()
    appointment = Appointment(appointment_id="ap1", clinic_id="c1", patient=Patient(id="p1", name="Ana"),
                              service_id="s1", starts_at=T0 + timedelta(days=1), booked_by=BookedBy.STAFF, price=PRICE,
                              payment_status=PaymentStatus.UNPAID, created_at=T0)
    session = ProviderSession(provider="fintoc", session_id="cs_1", url="u")
    repo.add(StoredAppointment(appointment, "tok", None, session, 1, []))
    return repo


def _event(kind: str, event_id: str, at: datetime, amount: Money | None = PRICE) -> PaymentEvent:
    return PaymentEvent(provider="fintoc", event_id=event_id, kind=kind, occurred_at=at, session_id="cs_1",  # type: ignore[arg-type]
                        payment_reference="pi_1", appointment_id="ap1", amount=amount)


def test_success_pays_once_and_a_repeat_is_a_duplicate() -> None:
    repo = _repo()
    assert apply_payment_event(repo, "c1", _event("succeeded", "evt1", T0)) == "applied"  # type: ignore[arg-type]
    assert apply_payment_event(repo, "c1", _event("succeeded", "evt1", T0)) == "duplicate"  # type: ignore[arg-type]
    assert repo.get("c1", "ap1").appointment.payment_status is PaymentStatus.PAID
    assert len(repo.payments) == 1


def test_failure_after_success_does_not_unpay() -> None:
    repo = _repo()
    apply_payment_event(repo, "c1", _event("succeeded", "evt1", T0))  # type: ignore[arg-type]
    assert apply_payment_event(repo, "c1", _event("failed", "evt2", T0 + timedelta(seconds=5))) == "stale"  # type: ignore[arg-type]
    assert repo.get("c1", "ap1").appointment.payment_status is PaymentStatus.PAID


def test_an_older_pending_never_overrides_a_newer_failure() -> None:
    repo = _repo()
    assert apply_payment_event(repo, "c1", _event("failed", "evt2", T0 + timedelta(seconds=10))) == "applied"  # type: ignore[arg-type]
    assert apply_payment_event(repo, "c1", _event("pending", "evt1", T0)) == "stale"  # type: ignore[arg-type]
    assert repo.get("c1", "ap1").appointment.payment_status is PaymentStatus.UNPAID


def test_pending_then_success_arrives_in_either_order() -> None:
    repo = _repo()
    apply_payment_event(repo, "c1", _event("succeeded", "evt2", T0 + timedelta(seconds=10)))  # type: ignore[arg-type]
    apply_payment_event(repo, "c1", _event("pending", "evt1", T0))  # type: ignore[arg-type]
    assert repo.get("c1", "ap1").appointment.payment_status is PaymentStatus.PAID


def test_a_failure_drops_the_session_so_the_next_click_makes_a_new_one() -> None:
    repo = _repo()
    apply_payment_event(repo, "c1", _event("failed", "evt1", T0))  # type: ignore[arg-type]
    assert repo.get("c1", "ap1").session is None


def test_an_amount_that_is_not_the_price_does_not_mark_paid() -> None:
    repo = _repo()
    outcome = apply_payment_event(repo, "c1", _event("succeeded", "evt1", T0, Money(amount=1, currency="CLP")))  # type: ignore[arg-type]
    assert outcome == "amount_mismatch"
    assert repo.get("c1", "ap1").appointment.payment_status is PaymentStatus.UNPAID
