"""Reconciliation of payment links (issue 9 item 3) with fakes: which watches are asked about, what an
answer does (through the webhooks' own path, usecases/payment_events.py), and when a watch ends."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clinicpay.domain.appointment import Appointment, BookedBy, Patient, PaymentStatus, ProviderSession
from clinicpay.domain.clinic import Provider
from clinicpay.domain.errors import GatewayNotConfigured, ProviderOutcomeUnknown, ProviderUnavailable
from clinicpay.domain.money import Money
from clinicpay.ports import PaymentEvent, PaymentGateway, SessionAnswer, asked_event_id
from clinicpay.repositories.appointments import StoredAppointment
from clinicpay.repositories.link_watches import (
    BACKOFF,
    FIRST_ASK,
    UNDERWAY_WATCH,
    LinkWatch,
    next_ask,
    watch_item,
)
from clinicpay.usecases.link_reconcile import LinkReconcileDeps, run_link_reconcile
from clinicpay.usecases.payment_events import apply_payment_events
from tests.fakes.payments import FakeAppointments

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
PRICE = Money(amount=25000, currency="CLP")


@dataclass
class FakeWatches:
    """The repository's semantics: due by time, claimed by a conditional move, closed out of the index."""

    watches: dict[str, LinkWatch] = field(default_factory=dict)
    closed: dict[str, str] = field(default_factory=dict)
    lose_claims: bool = False

    def add(self, clinic_id: str, appointment_id: str, session_id: str, *, made_at: datetime = T0,
            expires_at: datetime | None = None) -> None:
        item = watch_item(clinic_id, appointment_id, ProviderSession(provider="fintoc", session_id=session_id, url="u",
                                                                     expires_at=expires_at or made_at + timedelta(days=1)),
                          made_at)
        self.watches[session_id] = LinkWatch(clinic_id, appointment_id, "fintoc", session_id, made_at,
                                             datetime.fromisoformat(item["watch_until"]), 0, item["due_sk"])

    def due(self, shard: int, now: datetime, *, limit: int = 100,
            after: dict[str, Any] | None = None) -> tuple[list[LinkWatch], dict[str, Any] | None]:
        return sorted((w for w in self.watches.values() if w.due_at <= now), key=lambda w: w.due_sk), None

    def claim(self, watch: LinkWatch, now: datetime, *, watch_until: datetime | None = None) -> LinkWatch | None:
        if self.lose_claims or self.watches.get(watch.session_id) != watch:
            return None
        asks = watch.asks + 1
        at = next_ask(asks, now, watch.watch_until)
        claimed = replace(watch, asks=asks, due_sk=f"{at.isoformat(timespec='seconds')}#{watch.clinic_id}#x")
        self.watches[watch.session_id] = claimed
        return claimed

    def extend(self, watch: LinkWatch, until: datetime) -> LinkWatch:
        extended = replace(watch, watch_until=max(until, watch.watch_until))
        self.watches[watch.session_id] = extended
        return extended

    def close(self, watch: LinkWatch, outcome: str, now: datetime) -> bool:
        if self.watches.get(watch.session_id) != watch:
            return False
        del self.watches[watch.session_id]
        self.closed[watch.session_id] = outcome
        return True


@dataclass
class AskedGateway:
    """A provider asked about sessions: answers by session id, or fails as told."""

    answers: dict[str, SessionAnswer] = field(default_factory=dict)
    failing: Exception | None = None
    asked: list[str] = field(default_factory=list)
    name: str = "fintoc"

    def session_status(self, session_id: str) -> SessionAnswer:
        self.asked.append(session_id)
        if self.failing is not None:
            raise self.failing
        return self.answers[session_id]


def _appointment(repo: FakeAppointments, clinic_id: str, appointment_id: str, session_id: str) -> None:
    appointment = Appointment(appointment_id=appointment_id, clinic_id=clinic_id, patient=Patient(id="p1", name="Ana"),
                              service_id="s1", starts_at=T0 + timedelta(days=2), booked_by=BookedBy.STAFF, price=PRICE,
                              payment_status=PaymentStatus.UNPAID, created_at=T0)
    session = ProviderSession(provider="fintoc", session_id=session_id, url="u", expires_at=T0 + timedelta(days=1))
    repo.add(StoredAppointment(appointment, f"tok-{appointment_id}", None, session, 1, [], frozenset({session_id})))


def _answer(session_id: str, kind: str, *, settled: bool, clinic_id: str = "c1", appointment_id: str = "ap1",
            amount: Money = PRICE) -> SessionAnswer:
    reference = "pi_1" if kind in ("succeeded", "pending", "failed") else None
    return SessionAnswer(settled=settled, event=PaymentEvent(
        provider="fintoc", event_id=asked_event_id(session_id, kind, reference), kind=kind,  # type: ignore[arg-type]
        occurred_at=T0 + timedelta(minutes=1), session_id=session_id, payment_reference=reference,
        appointment_id=appointment_id, amount=amount, details={"clinic_id": clinic_id}))


@dataclass
class World:
    repo: FakeAppointments = field(default_factory=FakeAppointments)
    watches: FakeWatches = field(default_factory=FakeWatches)
    gateway: AskedGateway = field(default_factory=AskedGateway)
    receipts: list[tuple[str, str]] = field(default_factory=list)
    gateway_clinics: list[str] = field(default_factory=list)
    has_time: bool = True

    def deps(self) -> LinkReconcileDeps:
        def gateway_for(clinic_id: str, provider: Provider) -> PaymentGateway:
            self.gateway_clinics.append(clinic_id)
            return self.gateway  # type: ignore[return-value]

        def apply(clinic_id: str, events: list[PaymentEvent]) -> list[str]:
            return apply_payment_events(clinic_id, events, self.repo,  # type: ignore[arg-type]
                                        on_paid=lambda cid, aid, *_: self.receipts.append((cid, aid)))

        return LinkReconcileDeps(watches=self.watches, appointments=self.repo, gateway_for=gateway_for, apply=apply,
                                 has_time=lambda: self.has_time)

    def run(self, at: datetime) -> dict[str, Any]:
        return run_link_reconcile(self.deps(), 3, at)

    def status(self, clinic_id: str = "c1", appointment_id: str = "ap1") -> PaymentStatus:
        return self.repo.get(clinic_id, appointment_id).appointment.payment_status


@pytest.fixture
def world() -> World:
    w = World()
    _appointment(w.repo, "c1", "ap1", "cs_1")
    w.watches.add("c1", "ap1", "cs_1")
    return w


def test_nothing_is_asked_before_the_first_ask_is_due(world: World) -> None:
    result = world.run(T0 + FIRST_ASK - timedelta(seconds=1))
    assert result["due"] == 0 and world.gateway.asked == []


def test_a_session_paid_without_its_webhook_is_paid_once_and_its_late_webhook_changes_nothing(world: World) -> None:
    world.gateway.answers["cs_1"] = _answer("cs_1", "succeeded", settled=True)
    result = world.run(T0 + timedelta(minutes=4))
    assert result["asked"] == 1 and result["outcomes"] == {"succeeded:applied": 1}
    assert world.status() is PaymentStatus.PAID and world.receipts == [("c1", "ap1")]
    assert world.watches.closed == {"cs_1": "succeeded:applied"}
    # the webhook Fintoc could not deliver arrives at last: the appointment is already paid
    late = _answer("cs_1", "succeeded", settled=True).event.model_copy(update={"event_id": "evt_late"})
    assert apply_payment_events("c1", [late], world.repo, on_paid=lambda *_: world.receipts.append(("x", "x"))) == [  # type: ignore[arg-type]
        "already_paid"]
    assert world.receipts == [("c1", "ap1")] and len(world.repo.payments) == 1
    # and the next run has nothing left to ask
    assert world.run(T0 + timedelta(hours=1))["due"] == 0


def test_a_watch_whose_webhook_came_is_closed_without_asking(world: World) -> None:
    paid = _answer("cs_1", "succeeded", settled=True).event.model_copy(update={"event_id": "evt_webhook"})
    assert apply_payment_events("c1", [paid], world.repo, on_paid=lambda *_: None) == ["applied"]  # type: ignore[arg-type]
    result = world.run(T0 + timedelta(minutes=4))
    assert result["outcomes"] == {"settled_before": 1} and result["asked"] == 0
    assert world.gateway.asked == [] and world.watches.closed == {"cs_1": "settled_before"}


def test_no_answer_leaves_the_watch_for_its_next_ask(world: World) -> None:
    for error in (ProviderUnavailable(), ProviderOutcomeUnknown()):
        world.gateway.failing = error
        first = world.run(T0 + timedelta(minutes=4))
        assert first["outcomes"] == {"unanswered": 1}
        assert world.status() is PaymentStatus.UNPAID and "cs_1" in world.watches.watches
        # nothing is due again before the backoff has passed
        assert world.run(T0 + timedelta(minutes=5))["due"] == 0
        world.watches.watches["cs_1"] = replace(world.watches.watches["cs_1"], asks=0,
                                                due_sk=f"{(T0 + FIRST_ASK).isoformat()}#c1#x")
    world.gateway.failing = None
    world.gateway.answers["cs_1"] = _answer("cs_1", "succeeded", settled=True)
    assert world.run(T0 + timedelta(minutes=20))["outcomes"] == {"succeeded:applied": 1}
    assert world.status() is PaymentStatus.PAID


def test_an_expired_session_leaves_the_appointment_unpaid_and_ends_the_watch(world: World) -> None:
    world.gateway.answers["cs_1"] = _answer("cs_1", "expired", settled=True)
    assert world.run(T0 + timedelta(minutes=4))["outcomes"] == {"expired:applied": 1}
    stored = world.repo.get("c1", "ap1")
    assert stored.appointment.payment_status is PaymentStatus.UNPAID
    assert stored.session is None  # the patient's next click makes a new session
    assert world.watches.closed == {"cs_1": "expired:applied"} and world.receipts == []


def test_money_underway_is_shown_pending_and_watched_for_days(world: World) -> None:
    world.gateway.answers["cs_1"] = _answer("cs_1", "pending", settled=False)
    assert world.run(T0 + timedelta(minutes=4))["outcomes"] == {"pending:applied": 1}
    assert world.status() is PaymentStatus.PENDING
    watch = world.watches.watches["cs_1"]
    assert watch.watch_until == T0 + UNDERWAY_WATCH
    # asked again later: still pending changes nothing more; then Fintoc decides
    assert world.run(watch.due_at)["outcomes"] == {"pending:duplicate": 1}
    world.gateway.answers["cs_1"] = _answer("cs_1", "succeeded", settled=True)
    assert world.run(T0 + timedelta(days=3))["outcomes"] == {"succeeded:applied": 1}
    assert world.status() is PaymentStatus.PAID


def test_a_session_that_waits_for_its_patient_is_asked_with_backoff_then_given_up_after_expiry(world: World) -> None:
    world.gateway.answers["cs_1"] = _answer("cs_1", "ignored", settled=False)
    moment, asks = T0 + FIRST_ASK, []
    while "cs_1" in world.watches.watches:
        result = world.run(moment)
        asks.append(result["outcomes"])
        if "cs_1" in world.watches.watches:
            moment = world.watches.watches["cs_1"].due_at
        assert len(asks) < 20
    # every 10 min, 30 min, 2 h, then 6 h, the last ask at expiry + 10 min, when it is given up
    assert asks[:-1] == [{"ignored:waiting": 1}] * (len(asks) - 1) and asks[-1] == {"gave_up": 1}
    assert moment == T0 + timedelta(days=1, minutes=10)
    assert world.status() is PaymentStatus.UNPAID and world.watches.closed["cs_1"] == "gave_up:ignored"


def test_backoff_grows_and_never_passes_the_end_of_the_watch() -> None:
    until = T0 + timedelta(hours=5)
    waits = [next_ask(n, T0, until) - T0 for n in range(1, 6)]
    assert waits == [BACKOFF[0], BACKOFF[1], BACKOFF[2], timedelta(hours=5), timedelta(hours=5)]


def test_an_answer_naming_another_clinic_changes_nothing_here(world: World) -> None:
    # a watch of c1 (its own key) about a session the provider says belongs to clinic c2
    world.gateway.answers["cs_1"] = _answer("cs_1", "succeeded", settled=True, clinic_id="c2")
    assert world.run(T0 + timedelta(minutes=4))["outcomes"] == {"succeeded:foreign": 1}
    assert world.status() is PaymentStatus.UNPAID and world.receipts == []
    assert world.gateway_clinics == ["c1"]  # asked with c1's own credentials


def test_a_watch_is_applied_only_to_its_own_clinic() -> None:
    w = World()
    _appointment(w.repo, "c1", "ap1", "cs_1")
    _appointment(w.repo, "c2", "ap1", "cs_2")  # same appointment id in another clinic
    # a watch in c1's keys about c2's session (e.g. two clinics on one provider account)
    w.watches.add("c1", "ap1", "cs_2")
    w.gateway.answers["cs_2"] = _answer("cs_2", "succeeded", settled=True, clinic_id="")
    assert w.run(T0 + timedelta(minutes=4))["outcomes"] == {"succeeded:foreign": 1}
    assert w.status("c1") is PaymentStatus.UNPAID and w.status("c2") is PaymentStatus.UNPAID
    assert w.receipts == [] and w.gateway_clinics == ["c1"]


def test_a_paid_amount_other_than_the_price_is_not_applied(world: World) -> None:
    world.gateway.answers["cs_1"] = _answer("cs_1", "succeeded", settled=True, amount=Money(amount=100, currency="CLP"))
    assert world.run(T0 + timedelta(minutes=4))["outcomes"] == {"succeeded:foreign": 1}
    assert world.status() is PaymentStatus.UNPAID


def test_a_shard_run_twice_asks_once(world: World) -> None:
    world.watches.lose_claims = True
    result = world.run(T0 + timedelta(minutes=4))
    assert result["outcomes"] == {"taken": 1} and world.gateway.asked == []


def test_out_of_time_nothing_is_claimed(world: World) -> None:
    world.has_time = False
    result = world.run(T0 + timedelta(minutes=4))
    assert result["outcomes"] == {"not_reached": 1} and world.watches.watches["cs_1"].asks == 0


def test_a_clinic_without_its_gateway_keeps_its_watch_until_long_past_expiry(world: World,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from clinicpay.usecases import link_reconcile

    counted: list[str] = []
    monkeypatch.setattr(link_reconcile.metrics, "add_metric", lambda name, **_: counted.append(name))

    def no_gateway(clinic_id: str, provider: Provider) -> PaymentGateway:
        raise GatewayNotConfigured()

    deps = replace(world.deps(), gateway_for=no_gateway)
    assert run_link_reconcile(deps, 3, T0 + timedelta(minutes=4))["outcomes"] == {"unanswered": 1}
    world.watches.watches["cs_1"] = replace(world.watches.watches["cs_1"], due_sk=f"{T0.isoformat()}#c1#x")
    assert counted == []
    assert run_link_reconcile(deps, 3, T0 + timedelta(days=3))["outcomes"] == {"gave_up": 1}
    assert world.watches.closed["cs_1"].startswith("gave_up:")
    assert counted == ["LinkWatchGivenUp"]  # the LinkWatchGivenUp alarm rings


def test_a_watch_without_its_appointment_is_closed(world: World) -> None:
    world.watches.add("c1", "gone", "cs_9")
    world.gateway.answers["cs_1"] = _answer("cs_1", "ignored", settled=False)
    result = world.run(T0 + timedelta(minutes=4))
    assert result["outcomes"]["no_appointment"] == 1 and world.watches.closed["cs_9"] == "no_appointment"


def test_money_that_came_through_another_session_proves_nothing_about_this_one(world: World) -> None:
    # the appointment holds money paid through an earlier session (a deposit, say): this session
    # is asked about all the same
    _appointment(world.repo, "c1", "ap2", "cs_new")
    stored = world.repo.get("c1", "ap2")
    stored.session_ids = stored.session_ids | {"cs_old"}
    paid = _answer("cs_old", "succeeded", settled=True, appointment_id="ap2").event.model_copy(
        update={"event_id": "evt_old"})
    assert apply_payment_events("c1", [paid], world.repo, on_paid=lambda *_: None) == ["applied"]  # type: ignore[arg-type]
    assert stored.appointment.payment_status is PaymentStatus.PAID and stored.session.session_id == "cs_new"
    world.watches.add("c1", "ap2", "cs_new")
    world.gateway.answers["cs_1"] = _answer("cs_1", "ignored", settled=False)
    world.gateway.answers["cs_new"] = _answer("cs_new", "ignored", settled=False, appointment_id="ap2")
    world.run(T0 + timedelta(minutes=4))
    assert "cs_new" in world.gateway.asked
