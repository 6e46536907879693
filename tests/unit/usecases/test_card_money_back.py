"""Undecided charges, taking over a stale claim, refunds, disputes and reconciliation (issue 9),
as use cases with fakes. The same rules against moto and the Stripe sandbox are in
tests/integration/test_tokenize_refunds.py and test_tokenize_undecided.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clinicpay.domain.card import ChargeReason, ConsentChannel, ConsentGrant
from clinicpay.domain.errors import AlreadyPaid, ProviderOutcomeUnknown, ProviderUnavailable
from clinicpay.domain.money import Money
from clinicpay.ports import CardEvent, ChargeResult, DisputeObservation, RefundObservation, RefundResult
from clinicpay.repositories.shards import shard_of
from clinicpay.usecases import card_refunds, cards
from clinicpay.usecases.card_events import apply_card_event
from clinicpay.usecases.card_reconcile import ReconcileDeps, reconcile_charges
from tests.unit.usecases.cards_fakes import World

GRANT = ConsentGrant(granted=True, text_version="cards-2026-02", channel=ConsentChannel.STAFF, granted_by="reception")


@pytest.fixture
def world() -> World:
    w = World()
    w.vault.add_card("pm_1")
    cards.save_card(w.deps, "cl_a", "p-1", "pm_1", GRANT)
    w.appointments.add("cl_a", "ap_1", "p-1", price=8000)
    return w


def charge_appointment(world: World, key: str | None = None) -> dict:
    return cards.charge_card(world.deps, "cl_a", "p-1", reason=ChargeReason.APPOINTMENT, amount=None, card_id=None,
                             appointment_id="ap_1", idempotency_key=key)


def refund(world: World, charge_id: str, amount: int | None = None, key: str | None = None) -> dict:
    money = Money(amount=amount, currency="CAD") if amount is not None else None
    return card_refunds.refund_charge(world.deps, "cl_a", "p-1", charge_id, amount=money, reason=None,
                                      idempotency_key=key)


def stored_charge(world: World, charge_id: str):  # noqa: ANN201 - a Charge
    return world.cards.get_charge("cl_a", "p-1", charge_id)


# ------------------------------------------------------------------ taking over a stale claim
def needs_action(world: World) -> dict:
    world.vault.outcomes.append(ChargeResult(status="requires_action", reference="pi_old",
                                             failure_code="authentication_required", action_url="https://x/auth"))
    first = charge_appointment(world)
    world.vault.intents["pi_old"]["status"] = "requires_action"
    return first


def test_a_fresh_claim_awaiting_authentication_holds_off_a_second_charge(world: World) -> None:
    needs_action(world)
    with pytest.raises(cards.AlreadyCharged) as refused:
        charge_appointment(world)
    assert refused.value.details[0]["status"] == "pending"
    assert world.vault.cancelled == []


def test_a_stale_claim_is_taken_over_only_after_its_payment_intent_is_cancelled(world: World) -> None:
    first = needs_action(world)
    world.clock.advance(minutes=16)
    # When staff charge again after the patient never authenticated
    second = charge_appointment(world)
    # Then the old PaymentIntent was cancelled first, the old charge failed, and the new one went through
    assert world.vault.cancelled == ["pi_old"]
    assert stored_charge(world, first["charge_id"]).status == "failed"
    assert stored_charge(world, first["charge_id"]).failure_code == "canceled"
    assert second["status"] == "succeeded" and second["charge_id"] != first["charge_id"]
    assert world.appointments.get("cl_a", "ap_1")["payment_status"] == "paid"


def test_if_the_patient_completed_the_old_charge_first_it_wins_and_the_new_one_is_refused(world: World) -> None:
    first = needs_action(world)
    world.clock.advance(minutes=16)
    world.vault.intents["pi_old"]["status"] = "succeeded"  # 3-D Secure done; its webhook not here yet
    with pytest.raises(AlreadyPaid):
        charge_appointment(world)
    assert world.vault.cancelled == [] and len(world.vault.charges) == 1
    assert stored_charge(world, first["charge_id"]).status == "succeeded"
    assert world.appointments.get("cl_a", "ap_1")["payment"]["reference"] == "pi_old"


def test_a_stale_undecided_charge_the_processor_never_made_is_failed_then_replaced(world: World) -> None:
    world.vault.charge = lambda request: (_ for _ in ()).throw(ProviderOutcomeUnknown())  # type: ignore[method-assign]
    first = charge_appointment(world)
    assert first["status"] == "processing"
    del world.vault.charge  # back to the class's own
    world.clock.advance(minutes=16)
    second = charge_appointment(world)
    assert stored_charge(world, first["charge_id"]).failure_code == "not_created"
    assert second["status"] == "succeeded"


# ------------------------------------------------------------------ refunds
def test_a_partial_then_a_full_refund_never_give_back_more_than_was_charged(world: World) -> None:
    charged = charge_appointment(world)
    part = refund(world, charged["charge_id"], 3000)
    assert part["status"] == "succeeded" and part["amount"] == {"amount": 3000, "currency": "CAD"}
    view = cards.get_charge(world.deps, "cl_a", "p-1", charged["charge_id"])
    assert view["status"] == "partially_refunded" and view["amount_refunded"]["amount"] == 3000
    appointment = world.appointments.get("cl_a", "ap_1")
    assert appointment["payment_status"] == "partially_refunded" and appointment["amount_refunded"]["amount"] == 3000
    rest = refund(world, charged["charge_id"])  # the rest
    assert rest["amount"]["amount"] == 5000
    with pytest.raises(card_refunds.RefundExceedsRemaining) as refused:
        refund(world, charged["charge_id"], 1)
    assert refused.value.details[0]["refundable"]["amount"] == 0
    assert cards.get_charge(world.deps, "cl_a", "p-1", charged["charge_id"])["status"] == "refunded"
    assert world.appointments.get("cl_a", "ap_1")["payment_status"] == "refunded"
    assert [r.amount.amount for r in world.vault.refund_requests] == [3000, 5000]
    # The patient was told of each, once, by email and SMS
    kinds = [(m.kind, m.channel) for m in world.notifier.sent if m.kind == "refund_issued"]
    assert kinds == [("refund_issued", "email"), ("refund_issued", "sms")] * 2
    assert "30,00 CAD" in next(m.body for m in world.notifier.sent if m.kind == "refund_issued")  # fr locale


def test_the_same_click_twice_is_one_refund(world: World) -> None:
    charged = charge_appointment(world)
    first = refund(world, charged["charge_id"], 2000, key="click-1")
    again = refund(world, charged["charge_id"], 2000, key="click-1")
    assert first == again and len(world.vault.refund_requests) == 1
    assert stored_charge(world, charged["charge_id"]).amount_refunded == 2000


def test_a_refused_refund_gives_its_reservation_back(world: World) -> None:
    charged = charge_appointment(world)
    world.vault.refund_outcomes.append(RefundResult(status="failed", failure_code="charge_disputed"))
    refused = refund(world, charged["charge_id"])
    assert refused["status"] == "failed" and refused["failure_code"] == "charge_disputed"
    assert stored_charge(world, charged["charge_id"]).amount_refunded == 0
    assert world.appointments.get("cl_a", "ap_1")["payment_status"] == "paid"
    assert not [m for m in world.notifier.sent if m.kind == "refund_issued"]


def test_an_undecided_refund_stays_pending_and_reserved(world: World) -> None:
    charged = charge_appointment(world)
    world.vault.refund = lambda request: (_ for _ in ()).throw(ProviderOutcomeUnknown())  # type: ignore[method-assign]
    pending = refund(world, charged["charge_id"], 8000, key="k")
    assert pending["status"] == "pending" and pending["undecided"] is True
    with pytest.raises(card_refunds.RefundExceedsRemaining):
        refund(world, charged["charge_id"], 1)  # the whole amount is spoken for
    del world.vault.refund
    done = refund(world, charged["charge_id"], 8000, key="k")  # the same click again: asked again, same key
    assert done["status"] == "succeeded" and len(world.vault.refund_requests) == 1


def test_a_refund_that_never_reached_the_processor_is_released_and_can_be_retried(world: World) -> None:
    charged = charge_appointment(world)
    world.vault.refund = lambda request: (_ for _ in ()).throw(ProviderUnavailable())  # type: ignore[method-assign]
    with pytest.raises(ProviderUnavailable):
        refund(world, charged["charge_id"], 8000, key="k")
    assert stored_charge(world, charged["charge_id"]).amount_refunded == 0
    del world.vault.refund
    assert refund(world, charged["charge_id"], 8000, key="k")["status"] == "succeeded"


def refund_event(reference: str, refund_id: str, amount: int, status: str, **metadata: str) -> CardEvent:
    return CardEvent(provider="stripe", event_id=f"evt_{refund_id}_{status}", kind="refund_updated",
                     occurred_at=datetime.now(UTC), charge_reference=reference,
                     refund=RefundObservation(provider_refund_id=refund_id, payment_reference=reference,
                                              amount=Money(amount=amount, currency="CAD"), status=status,  # type: ignore[arg-type]
                                              failure_code="expired_or_canceled_card" if status == "failed" else None,
                                              metadata=metadata))


def test_a_dashboard_refund_is_recorded_reserved_and_told_like_ours(world: World) -> None:
    charged = charge_appointment(world)
    reference = stored_charge(world, charged["charge_id"]).reference
    assert apply_card_event(world.deps, "cl_a", refund_event(reference, "re_dash", 8000, "succeeded")) == "applied"
    # A repeat of the same event, and another event about the same refund, change nothing
    assert apply_card_event(world.deps, "cl_a", refund_event(reference, "re_dash", 8000, "succeeded")) == "duplicate"
    again = refund_event(reference, "re_dash", 8000, "succeeded").model_copy(update={"event_id": "evt_other"})
    assert apply_card_event(world.deps, "cl_a", again) == "already_applied"
    [recorded] = card_refunds.list_refunds(world.deps, "cl_a", "p-1", charged["charge_id"])
    assert recorded["source"] == "processor" and recorded["status"] == "succeeded"
    assert stored_charge(world, charged["charge_id"]).amount_refunded == 8000
    assert world.appointments.get("cl_a", "ap_1")["payment_status"] == "refunded"
    assert len([m for m in world.notifier.sent if m.kind == "refund_issued"]) == 2  # email + SMS, once


def test_a_card_refund_that_fails_after_succeeding_is_taken_back(world: World) -> None:
    charged = charge_appointment(world)
    made = refund(world, charged["charge_id"], 3000)
    reference = stored_charge(world, charged["charge_id"]).reference
    failed = refund_event(reference, "re_1", 3000, "failed", clinicpay_refund_id=made["refund_id"], clinic_id="cl_a")
    assert apply_card_event(world.deps, "cl_a", failed) == "applied"
    assert stored_charge(world, charged["charge_id"]).amount_refunded == 0
    appointment = world.appointments.get("cl_a", "ap_1")
    assert appointment["payment_status"] == "paid" and appointment["amount_refunded"]["amount"] == 0
    # An older "succeeded" arriving late does not bring it back
    late = refund_event(reference, "re_1", 3000, "succeeded").model_copy(update={"event_id": "evt_late"})
    assert apply_card_event(world.deps, "cl_a", late) == "stale"


def test_another_clinics_refund_event_changes_nothing_here(world: World) -> None:
    charged = charge_appointment(world)
    reference = stored_charge(world, charged["charge_id"]).reference
    assert apply_card_event(world.deps, "cl_b", refund_event(reference, "re_x", 100, "succeeded")) == "not_a_card_charge"
    assert stored_charge(world, charged["charge_id"]).amount_refunded == 0


# ------------------------------------------------------------------ disputes
def test_a_dispute_shows_on_the_charge_and_its_appointment(world: World) -> None:
    charged = charge_appointment(world)
    reference = stored_charge(world, charged["charge_id"]).reference

    def dispute(status: str, event_id: str) -> CardEvent:
        return CardEvent(provider="stripe", event_id=event_id, kind="dispute_updated", occurred_at=world.clock(),
                         charge_reference=reference, dispute=DisputeObservation(
                             dispute_id="dp_1", payment_reference=reference, amount=Money(amount=8000, currency="CAD"),
                             reason="fraudulent", status=status))

    assert apply_card_event(world.deps, "cl_a", dispute("needs_response", "evt_d1")) == "applied"
    assert apply_card_event(world.deps, "cl_a", dispute("lost", "evt_d2")) == "applied"
    view = cards.get_charge(world.deps, "cl_a", "p-1", charged["charge_id"])
    assert view["dispute"] == {"dispute_id": "dp_1", "status": "lost", "amount": {"amount": 8000, "currency": "CAD"},
                               "reason": "fraudulent"}
    assert world.appointments.get("cl_a", "ap_1")["dispute"]["status"] == "lost"
    assert apply_card_event(world.deps, "cl_b", dispute("won", "evt_d3")) == "foreign"


# ------------------------------------------------------------------ reconciliation
def reconcile(world: World, later: timedelta = timedelta(minutes=10)) -> dict:
    """A run `later` from now (the world's clock moves on)."""
    world.clock.advance(seconds=later.total_seconds())
    deps = ReconcileDeps(cards=world.cards, deps_for=lambda clinic_id: world.deps)
    return reconcile_charges(deps, now=world.clock.now, shard=shard_of("cl_a"))


def test_reconciliation_settles_an_undecided_charge_it_finds_at_the_processor(world: World) -> None:
    original = world.vault.charge

    def made_but_unanswered(request):  # noqa: ANN001, ANN202
        original(request)
        raise ProviderOutcomeUnknown()

    world.vault.charge = made_but_unanswered  # type: ignore[method-assign]
    first = charge_appointment(world)
    assert first["status"] == "processing"
    assert reconcile(world, timedelta(seconds=10))["outcomes"] == {}  # not due yet
    ran = reconcile(world)
    assert ran["outcomes"] == {"applied": 1}
    assert stored_charge(world, first["charge_id"]).status == "succeeded"
    assert world.appointments.get("cl_a", "ap_1")["payment_status"] == "paid"
    assert reconcile(world)["outcomes"] == {}  # off the index: asked once
    assert len(world.vault.charges) == 1


def test_reconciliation_fails_a_charge_the_processor_never_made(world: World) -> None:
    world.vault.charge = lambda request: (_ for _ in ()).throw(ProviderOutcomeUnknown())  # type: ignore[method-assign]
    first = charge_appointment(world)
    assert reconcile(world)["outcomes"] == {"not_created": 1}
    assert stored_charge(world, first["charge_id"]).failure_code == "not_created"
    del world.vault.charge
    assert charge_appointment(world)["status"] == "succeeded"  # the appointment is free again


def test_reconciliation_asks_again_later_about_a_charge_still_awaiting_authentication(world: World) -> None:
    needs_action(world)
    assert reconcile(world, timedelta(minutes=16))["outcomes"] == {"applied": 1}  # observed requires_action
    assert reconcile(world, timedelta(minutes=1))["outcomes"] == {}  # asked again only later
    world.vault.intents["pi_old"]["status"] = "succeeded"
    assert reconcile(world, timedelta(hours=2))["outcomes"] == {"applied": 1}
    assert world.appointments.get("cl_a", "ap_1")["payment_status"] == "paid"


def test_a_retry_of_an_undecided_charge_is_sent_as_first_sent_and_a_refusal_then_decides_nothing(world: World) -> None:
    from clinicpay.domain.errors import ProviderError

    world.vault.charge = lambda request: (_ for _ in ()).throw(ProviderOutcomeUnknown())  # type: ignore[method-assign]
    first = charge_appointment(world, key="k")
    # The patient's default card changes meanwhile
    world.vault.add_card("pm_2", last4="1881")
    second_card = cards.save_card(world.deps, "cl_a", "p-1", "pm_2", GRANT)
    cards.set_default(world.deps, "cl_a", "p-1", second_card["card_id"])
    sent: list = []
    world.vault.charge = lambda request: (sent.append(request), (_ for _ in ()).throw(  # type: ignore[method-assign]
        ProviderError("idempotency_error")))[1]
    again = charge_appointment(world, key="k")
    assert sent[0].card_token == "pm_1" and sent[0].amount == Money(amount=8000, currency="CAD")
    assert again["status"] == "processing" and again["charge_id"] == first["charge_id"]
    assert stored_charge(world, first["charge_id"]).status == "processing"


def test_a_retried_refund_refused_because_the_first_attempt_refunded_counts_that_refund(world: World) -> None:
    charged = charge_appointment(world)
    original = world.vault.refund

    def refunded_but_unanswered(request):  # noqa: ANN001, ANN202
        original(request)
        raise ProviderOutcomeUnknown()

    world.vault.refund = refunded_but_unanswered  # type: ignore[method-assign]
    assert refund(world, charged["charge_id"], key="k")["status"] == "pending"
    # The retry is refused (say Stripe no longer replays the key): Stripe's own list decides
    world.vault.refund = lambda request: RefundResult(status="failed", failure_code="charge_already_refunded")  # type: ignore[method-assign]
    done = refund(world, charged["charge_id"], key="k")
    assert done["status"] == "succeeded" and stored_charge(world, charged["charge_id"]).amount_refunded == 8000
