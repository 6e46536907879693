"""Cards on file as use cases: save with consent, default, remove, charge (issue 3), with fakes."""

from __future__ import annotations

import pytest

from clinicpay.domain.card import ChargeReason, ConsentChannel, ConsentGrant
from clinicpay.domain.errors import AlreadyPaid, Conflict, NotFound, ProviderOutcomeUnknown, ProviderUnavailable, ValidationFailed
from clinicpay.domain.money import Money
from clinicpay.ports import ChargeResult
from clinicpay.usecases import cards
from tests.unit.usecases.cards_fakes import World

GRANT = ConsentGrant(granted=True, text_version="cards-2026-02", channel=ConsentChannel.STAFF, granted_by="reception")


@pytest.fixture
def world() -> World:
    return World()


def save(world: World, token: str, last4: str = "4242", patient: str = "p-1") -> dict:
    world.vault.add_card(token, last4=last4)
    return cards.save_card(world.deps, "cl_a", patient, token, GRANT, ip="203.0.113.9", user_agent="Desk/1.0")


def charge(world: World, **kwargs: object) -> dict:
    args: dict = {"reason": ChargeReason.OTHER, "amount": Money(amount=1500, currency="CAD"), "card_id": None,
                  "appointment_id": None, "idempotency_key": None, **kwargs}
    return cards.charge_card(world.deps, "cl_a", "p-1", **args)


# ------------------------------------------------------------------ consent and saving
def test_no_consent_no_card(world: World) -> None:
    # Given staff report that the patient did not agree
    world.vault.add_card("pm_1")
    refused = GRANT.model_copy(update={"granted": False})
    # When they try to save the card
    with pytest.raises(ValidationFailed) as error:
        cards.save_card(world.deps, "cl_a", "p-1", "pm_1", refused)
    # Then nothing reached the processor or our store
    assert error.value.code == "consent_required"
    assert world.vault.attached == {} and world.cards.cards == {}


def test_a_saved_card_keeps_who_when_where_and_which_text_and_never_shows_its_token(world: World) -> None:
    # When staff save a card the patient agreed to
    card = save(world, "pm_secret_1")
    # Then the card shows display data and the consent, not the token
    assert (card["brand"], card["last4"], card["exp_month"], card["exp_year"]) == ("visa", "4242", 12, 2034)
    assert card["consent"]["granted_by"] == "reception" and card["consent"]["channel"] == "staff"
    assert card["consent"]["text_version"] == "cards-2026-02" and card["consent"]["ip"] == "203.0.113.9"
    assert "pm_secret_1" not in str(card)
    # And the token went to the processor for this patient's customer
    assert world.vault.attached == {"pm_secret_1": "cus_1"}


def test_the_first_saved_card_becomes_the_default_and_the_patient_flag_follows(world: World) -> None:
    first = save(world, "pm_1")
    second = save(world, "pm_2", last4="1881")
    assert first["is_default"] and not second["is_default"]
    assert world.patients.get("cl_a", "p-1")["cards_on_file"] == 2
    assert [c["is_default"] for c in cards.list_cards(world.deps, "cl_a", "p-1")] == [True, False]


def test_saving_the_same_token_twice_keeps_one_card(world: World) -> None:
    save(world, "pm_1")
    save(world, "pm_1")
    assert len(cards.list_cards(world.deps, "cl_a", "p-1")) == 1


def test_another_clinics_patient_is_not_found(world: World) -> None:
    world.vault.add_card("pm_1")
    with pytest.raises(NotFound):
        cards.save_card(world.deps, "cl_b", "p-1", "pm_1", GRANT)
    with pytest.raises(NotFound):
        cards.list_cards(world.deps, "cl_b", "p-1")


# ------------------------------------------------------------------ default and removal
def test_staff_choose_the_default(world: World) -> None:
    save(world, "pm_1")
    second = save(world, "pm_2")
    cards.set_default(world.deps, "cl_a", "p-1", second["card_id"])
    assert [c["is_default"] for c in cards.list_cards(world.deps, "cl_a", "p-1")] == [False, True]


def test_removing_the_default_detaches_it_and_hands_the_role_to_the_newest_remaining_card(world: World) -> None:
    # Given three cards, the first being the default
    first, second, third = save(world, "pm_1"), save(world, "pm_2"), save(world, "pm_3")
    # When the default is removed
    cards.remove_card(world.deps, "cl_a", "p-1", first["card_id"])
    # Then it was detached at the processor and the newest card is now the default
    assert world.vault.detached == ["pm_1"]
    listed = {c["card_id"]: c["is_default"] for c in cards.list_cards(world.deps, "cl_a", "p-1")}
    assert listed == {second["card_id"]: False, third["card_id"]: True}
    assert world.patients.get("cl_a", "p-1")["cards_on_file"] == 2


def test_removing_the_last_card_leaves_no_default_and_no_card_on_file(world: World) -> None:
    only = save(world, "pm_1")
    cards.remove_card(world.deps, "cl_a", "p-1", only["card_id"])
    assert cards.list_cards(world.deps, "cl_a", "p-1") == []
    assert world.patients.get("cl_a", "p-1")["cards_on_file"] == 0
    with pytest.raises(NotFound):
        cards.remove_card(world.deps, "cl_a", "p-1", only["card_id"])


# ------------------------------------------------------------------ charges
def test_a_charge_without_card_id_uses_the_default_card(world: World) -> None:
    save(world, "pm_1")
    default = save(world, "pm_2")
    cards.set_default(world.deps, "cl_a", "p-1", default["card_id"])
    charged = charge(world)
    assert charged["status"] == "succeeded" and charged["card_id"] == default["card_id"]
    assert world.vault.charges[0].card_token == "pm_2"
    assert world.vault.charges[0].amount == Money(amount=1500, currency="CAD")


def test_a_successful_charge_for_an_appointment_marks_it_paid(world: World) -> None:
    save(world, "pm_1")
    world.appointments.add("cl_a", "ap_1", "p-1", price=8000)
    charged = charge(world, reason=ChargeReason.APPOINTMENT, amount=None, appointment_id="ap_1")
    assert charged["amount"] == {"amount": 8000, "currency": "CAD"}  # the appointment's price
    stored = world.appointments.get("cl_a", "ap_1")
    assert stored["payment_status"] == "paid" and stored["payment"]["reference"] == "pi_1"
    # And a second charge for the same appointment is refused before the processor is asked
    with pytest.raises(AlreadyPaid):
        charge(world, reason=ChargeReason.APPOINTMENT, appointment_id="ap_1")
    assert len(world.vault.charges) == 1


def test_a_cancelled_appointment_takes_no_charge_for_its_price_as_its_link_takes_none(world: World) -> None:
    # Given staff cancelled the appointment (its payment link already refuses money)
    save(world, "pm_1")
    world.appointments.add("cl_a", "ap_1", "p-1", price=8000, status="cancelled", payment_status="unpaid")
    # When they charge the card on file for it
    with pytest.raises(Conflict) as refused:
        charge(world, reason=ChargeReason.APPOINTMENT, amount=None, appointment_id="ap_1")
    # Then nothing reaches the processor and the appointment stays unpaid
    assert refused.value.code == "appointment_cancelled"
    assert world.vault.charges == [] and world.appointments.get("cl_a", "ap_1")["payment_status"] == "unpaid"
    # A fee the clinic charges for the late cancel is its own reason, still allowed
    assert charge(world, reason=ChargeReason.OTHER, appointment_id="ap_1")["status"] == "succeeded"


def test_a_no_show_charge_without_an_amount_takes_the_services_fee_once(world: World) -> None:
    save(world, "pm_1")
    world.appointments.add("cl_a", "ap_1", "p-1")
    charged = charge(world, reason=ChargeReason.NO_SHOW, amount=None, appointment_id="ap_1")
    assert charged["status"] == "succeeded" and charged["amount"] == {"amount": 2500, "currency": "CAD"}
    assert world.appointments.get("cl_a", "ap_1")["payment_status"] == "not_required"  # a fee, not the visit
    with pytest.raises(cards.AlreadyCharged):
        charge(world, reason=ChargeReason.NO_SHOW, amount=None, appointment_id="ap_1")
    assert len(world.cards.charges) == 1  # the refused one left no half-made charge behind


def test_a_failed_no_show_charge_can_be_tried_again(world: World) -> None:
    save(world, "pm_1")
    world.appointments.add("cl_a", "ap_1", "p-1")
    world.vault.outcomes.append(ChargeResult(status="failed", reference="pi_1", failure_code="insufficient_funds"))
    assert charge(world, reason=ChargeReason.NO_SHOW, amount=None, appointment_id="ap_1")["status"] == "failed"
    assert charge(world, reason=ChargeReason.NO_SHOW, amount=None, appointment_id="ap_1")["status"] == "succeeded"


@pytest.mark.parametrize("amount", [0])
def test_a_charge_of_zero_is_refused(world: World, amount: int) -> None:
    save(world, "pm_1")
    with pytest.raises(ValidationFailed) as error:
        charge(world, amount=Money(amount=amount, currency="CAD"))
    assert error.value.status == 422 and world.vault.charges == []


def test_a_charge_in_another_currency_is_refused(world: World) -> None:
    save(world, "pm_1")
    with pytest.raises(ValidationFailed):
        charge(world, amount=Money(amount=100, currency="NOK"))


def test_no_consent_on_record_means_no_charge(world: World) -> None:
    # Given a card whose consent is missing (e.g. imported from an older system)
    save(world, "pm_1")
    entry = next(iter(world.cards.cards.values()))
    entry["card"] = entry["card"].model_copy(update={"consent": None})
    # When / Then
    with pytest.raises(cards.NoConsentOnRecord) as error:
        charge(world)
    assert error.value.status == 409 and world.vault.charges == []


def test_a_patient_without_cards_cannot_be_charged(world: World) -> None:
    with pytest.raises(cards.NoCardOnFile):
        charge(world)


def test_a_retried_request_with_the_same_idempotency_key_charges_once(world: World) -> None:
    save(world, "pm_1")
    first = charge(world, idempotency_key="retry-me")
    again = charge(world, idempotency_key="retry-me")
    assert first == again and len(world.vault.charges) == 1


def test_a_charge_whose_answer_was_lost_stays_processing_and_is_settled_by_its_retry(world: World) -> None:
    # Given the processor may have charged but we got no answer (a timeout, a 409, a 5xx)
    save(world, "pm_1")
    world.appointments.add("cl_a", "ap_1", "p-1")
    world.vault.outcomes.append(ChargeResult(status="succeeded", reference="pi_x"))
    original = world.vault.charge
    world.vault.charge = lambda request: (_ for _ in ()).throw(ProviderOutcomeUnknown())  # type: ignore[method-assign]
    first = charge(world, reason=ChargeReason.NO_SHOW, amount=None, appointment_id="ap_1", idempotency_key="k1")
    # Then the charge is processing (undecided), never failed
    assert first["status"] == "processing" and first["undecided"] is True and "failure_code" not in first
    # And a different request for the same no-show is held off meanwhile
    world.vault.charge = original  # type: ignore[method-assign]
    with pytest.raises(cards.AlreadyCharged):
        charge(world, reason=ChargeReason.NO_SHOW, amount=None, appointment_id="ap_1")
    # When the same request is retried
    charged = charge(world, reason=ChargeReason.NO_SHOW, amount=None, appointment_id="ap_1", idempotency_key="k1")
    # Then it reaches one processor payment
    assert charged["status"] == "succeeded" and "undecided" not in charged and len(world.vault.charges) == 1


def test_a_charge_that_never_reached_the_processor_fails_and_frees_the_appointment(world: World) -> None:
    # Given the processor could not be reached at all (nothing was sent)
    save(world, "pm_1")
    world.appointments.add("cl_a", "ap_1", "p-1")
    original = world.vault.charge
    world.vault.charge = lambda request: (_ for _ in ()).throw(ProviderUnavailable())  # type: ignore[method-assign]
    with pytest.raises(ProviderUnavailable):
        charge(world, reason=ChargeReason.NO_SHOW, amount=None, appointment_id="ap_1", idempotency_key="k1")
    [stored] = world.cards.charges.values()
    assert (stored.status, stored.failure_code) == ("failed", "provider_unavailable")
    # When the same request is retried once the processor is back, it is sent and charged once
    world.vault.charge = original  # type: ignore[method-assign]
    retried = charge(world, reason=ChargeReason.NO_SHOW, amount=None, appointment_id="ap_1", idempotency_key="k1")
    assert retried["status"] == "succeeded" and retried["charge_id"] == stored.charge_id
    assert len(world.vault.charges) == 1


def test_a_card_that_needs_authentication_gives_a_link_and_a_decline_gives_its_reason(world: World) -> None:
    save(world, "pm_1")
    world.vault.outcomes += [
        ChargeResult(status="requires_action", reference="pi_a", failure_code="authentication_required",
                     action_url="https://processor.test/authenticate/pi_a"),
        ChargeResult(status="failed", reference="pi_b", failure_code="insufficient_funds")]
    needs_action = charge(world)
    declined = charge(world)
    assert needs_action["status"] == "requires_action"
    assert needs_action["action_url"] == "https://processor.test/authenticate/pi_a"
    assert declined["status"] == "failed" and declined["failure_code"] == "insufficient_funds"
    assert "action_url" not in declined
    # The patient lands on our page after authenticating
    assert world.vault.charges[0].return_url.startswith("https://pay.example/cards/authentication-complete")


# ------------------------------------------------------------------ listing charges
def test_a_patients_charges_are_listed_newest_first_with_the_card_charged(world: World) -> None:
    save(world, "pm_1", last4="4242")
    first = charge(world, amount=Money(amount=1500, currency="CAD"))
    world.clock.advance(minutes=5)
    second = charge(world, amount=Money(amount=2500, currency="CAD"))

    listed = cards.list_charges(world.deps, "cl_a", "p-1")

    assert [c["charge_id"] for c in listed] == [second["charge_id"], first["charge_id"]]
    assert [c["amount"]["amount"] for c in listed] == [2500, 1500]
    assert listed[0]["card"]["last4"] == "4242"
    with pytest.raises(NotFound):
        cards.list_charges(world.deps, "cl_b", "p-1")
