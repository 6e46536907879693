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


def _add(repo: FakeAppointments, clinic_id: str = "c1", session_id: str = "cs_1", appointment_id: str = "ap1",
         price: Money = PRICE) -> None:
    appointment = Appointment(appointment_id=appointment_id, clinic_id=clinic_id, patient=Patient(id="p1", name="Ana"),
                              service_id="s1", starts_at=T0 + timedelta(days=1), booked_by=BookedBy.STAFF, price=price,
                              payment_status=PaymentStatus.UNPAID, created_at=T0)
    session = ProviderSession(provider="fintoc", session_id=session_id, url="u")
    repo.add(StoredAppointment(appointment, "tok", None, session, 1, [], frozenset({session_id})))


def _repo() -> FakeAppointments:
    repo = FakeAppointments()
    _add(repo)
    return repo


def _event(kind: str, event_id: str, at: datetime, amount: Money | None = PRICE, *, session_id: str | None = "cs_1",
           clinic_id: str | None = None, appointment_id: str | None = "ap1") -> PaymentEvent:
    return PaymentEvent(provider="fintoc", event_id=event_id, kind=kind, occurred_at=at, session_id=session_id,  # type: ignore[arg-type]
                        payment_reference="pi_1", appointment_id=appointment_id, amount=amount,
                        details={"clinic_id": clinic_id} if clinic_id else {})


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


def test_an_amount_or_currency_that_is_not_the_price_is_foreign_and_does_not_mark_paid() -> None:
    repo = _repo()
    for event_id, amount in (("evt1", Money(amount=1, currency="CLP")), ("evt2", Money(amount=25000, currency="MXN"))):
        outcome = apply_payment_event(repo, "c1", _event("succeeded", event_id, T0, amount))  # type: ignore[arg-type]
        assert outcome == "foreign"
        assert repo.reasons[f"c1#fintoc#{event_id}"] == "amount_mismatch"
    assert repo.get("c1", "ap1").appointment.payment_status is PaymentStatus.UNPAID
    assert repo.payments == []


def test_a_session_we_never_stored_is_foreign_even_with_the_right_amount_and_appointment() -> None:
    # A monobank invoice of another merchant, replayed with our appointment id as its reference
    repo = _repo()
    outcome = apply_payment_event(repo, "c1", _event("succeeded", "evt1", T0, session_id="p2_not_ours"))  # type: ignore[arg-type]
    assert outcome == "foreign" and repo.reasons["c1#fintoc#evt1"] == "unknown_session"
    assert apply_payment_event(repo, "c1", _event("failed", "evt2", T0, session_id="p2_not_ours")) == "foreign"  # type: ignore[arg-type]
    assert repo.get("c1", "ap1").appointment.payment_status is PaymentStatus.UNPAID
    assert repo.get("c1", "ap1").session is not None


def test_an_event_naming_another_clinic_is_foreign_here_and_applies_at_its_own_clinic() -> None:
    # Given two clinics with the same appointment id, each with its own session
    repo = _repo()
    _add(repo, clinic_id="c2", session_id="cs_2")
    event = _event("succeeded", "evt1", T0, session_id="cs_2", clinic_id="c2")
    # When clinic c1's endpoint receives c2's event first, then c2's endpoint does
    assert apply_payment_event(repo, "c1", event) == "foreign"  # type: ignore[arg-type]
    assert apply_payment_event(repo, "c2", event) == "applied"  # type: ignore[arg-type]
    # Then only c2's appointment is paid, and each clinic recorded the event under its own key
    assert repo.get("c1", "ap1").appointment.payment_status is PaymentStatus.UNPAID
    assert repo.get("c2", "ap1").appointment.payment_status is PaymentStatus.PAID
    assert repo.reasons["c1#fintoc#evt1"] == "other_clinic" and repo.events["c2#fintoc#evt1"] == "applied"


def test_the_same_appointment_id_in_another_clinic_without_metadata_does_not_cross() -> None:
    # monobank sends no clinic: the stored invoice id alone keeps the two apart
    repo = _repo()
    _add(repo, clinic_id="c2", session_id="cs_2")
    event = _event("succeeded", "evt1", T0, session_id="cs_2")
    assert apply_payment_event(repo, "c1", event) == "foreign"  # type: ignore[arg-type]
    assert apply_payment_event(repo, "c2", event) == "applied"  # type: ignore[arg-type]
    assert apply_payment_event(repo, "c2", event) == "duplicate"  # type: ignore[arg-type]
    assert repo.get("c1", "ap1").appointment.payment_status is PaymentStatus.UNPAID


def test_an_event_that_names_no_session_proves_nothing_and_changes_nothing() -> None:
    repo = _repo()
    assert apply_payment_event(repo, "c1", _event("succeeded", "evt1", T0, session_id=None)) == "ignored"  # type: ignore[arg-type]
    assert repo.reasons["c1#fintoc#evt1"] == "no_session"
    assert repo.get("c1", "ap1").appointment.payment_status is PaymentStatus.UNPAID


def test_a_payment_for_no_appointment_is_foreign() -> None:
    repo = _repo()
    assert apply_payment_event(repo, "c1", _event("succeeded", "evt1", T0, appointment_id=None)) == "foreign"  # type: ignore[arg-type]
    assert apply_payment_event(repo, "c1", _event("succeeded", "evt2", T0, appointment_id="ap_other")) == "foreign"  # type: ignore[arg-type]
    assert repo.reasons["c1#fintoc#evt2"] == "unknown_object"


def test_a_replaced_session_still_counts_for_its_own_payment() -> None:
    # The patient paid the first checkout just as a second click replaced it
    repo = _repo()
    stored = repo.get("c1", "ap1")
    assert repo.save_session("c1", "ap1", ProviderSession(provider="fintoc", session_id="cs_new", url="u"), 1)
    assert stored.session is not None and stored.session.session_id == "cs_new"
    assert apply_payment_event(repo, "c1", _event("succeeded", "evt1", T0, session_id="cs_1")) == "applied"  # type: ignore[arg-type]
