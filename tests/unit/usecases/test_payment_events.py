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


def test_a_deposit_session_then_a_balance_session_are_two_payments_on_one_ledger() -> None:
    # The link asked the deposit, then (staff asked) the balance in a new session
    repo = FakeAppointments()
    _add(repo, session_id="cs_old")
    deposit, balance = Money(amount=7500, currency="CLP"), Money(amount=17500, currency="CLP")
    assert repo.save_session("c1", "ap1", ProviderSession(provider="fintoc", session_id="cs_dep", url="u",
                                                          amount=deposit), 1)
    dep_event = _event("succeeded", "evt1", T0, deposit, session_id="cs_dep")
    assert apply_payment_event(repo, "c1", dep_event) == "applied"  # type: ignore[arg-type]
    shown = repo.get("c1", "ap1").appointment
    assert shown.payment_status is PaymentStatus.DEPOSIT_PAID and shown.balance_due == balance
    assert repo.save_session("c1", "ap1", ProviderSession(provider="fintoc", session_id="cs_bal", url="u",
                                                          amount=balance), 2, expected_version=1)
    bal_event = _event("succeeded", "evt2", T0, balance, session_id="cs_bal").model_copy(
        update={"payment_reference": "pi_2"})
    assert apply_payment_event(repo, "c1", bal_event) == "applied"  # type: ignore[arg-type]
    shown = repo.get("c1", "ap1").appointment
    assert shown.payment_status is PaymentStatus.PAID and shown.amount_paid == PRICE
    # A balance session asked 17 500: 7 500 on it is not what we asked
    odd = _event("succeeded", "evt3", T0, deposit, session_id="cs_bal").model_copy(update={"payment_reference": "pi_3"})
    assert apply_payment_event(repo, "c1", odd) == "foreign"  # type: ignore[arg-type]
    assert repo.reasons["c1#fintoc#evt3"] == "amount_mismatch"


def test_the_same_payment_under_another_event_is_already_paid() -> None:
    repo = _repo()
    assert apply_payment_event(repo, "c1", _event("succeeded", "evt1", T0)) == "applied"  # type: ignore[arg-type]
    # e.g. checkout_session.finished after payment_intent.succeeded: the same pi_1
    assert apply_payment_event(repo, "c1", _event("succeeded", "evt2", T0)) == "already_paid"  # type: ignore[arg-type]
    assert repo.get("c1", "ap1").appointment.amount_paid == PRICE and len(repo.payments) == 1


def test_a_pending_event_after_a_deposit_changes_no_status() -> None:
    repo = _repo()
    deposit = Money(amount=7500, currency="CLP")
    assert repo.save_session("c1", "ap1", ProviderSession(provider="fintoc", session_id="cs_dep", url="u",
                                                          amount=deposit), 1)
    apply_payment_event(repo, "c1", _event("succeeded", "evt1", T0, deposit, session_id="cs_dep"))  # type: ignore[arg-type]
    late = _event("failed", "evt2", T0 + timedelta(seconds=5), None, session_id="cs_dep")
    assert apply_payment_event(repo, "c1", late) == "stale"  # type: ignore[arg-type]
    assert repo.get("c1", "ap1").appointment.payment_status is PaymentStatus.DEPOSIT_PAID
