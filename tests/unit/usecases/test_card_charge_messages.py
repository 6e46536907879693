"""The patient is told of every card charge (issue 11 item 1): message kind `card_charged`, email
and SMS, once per charge that succeeded, whoever learns of the success first; in their language.
The same against moto, the real handlers and the Stripe sandbox: tests/integration/test_tokenize_charges.py."""

from __future__ import annotations

import threading
from datetime import timedelta
from string import Template
from typing import Any

import pytest

from clinicpay.domain.card import ChargeReason, ConsentChannel, ConsentGrant
from clinicpay.domain.clinic import Locale
from clinicpay.domain.errors import ProviderOutcomeUnknown, ProviderUnavailable
from clinicpay.domain.money import Money
from clinicpay.notify.builtin import CHANNELS, LOCALES, Text, builtin
from clinicpay.ports import CardEvent, ChargeResult, OffSessionCharge, OutgoingMessage
from clinicpay.repositories.shards import shard_of
from clinicpay.usecases import cards
from clinicpay.usecases.card_events import apply_card_event
from clinicpay.usecases.card_messages import card_label
from clinicpay.usecases.card_reconcile import ReconcileDeps, reconcile_charges
from tests.unit.usecases.cards_fakes import World

GRANT = ConsentGrant(granted=True, text_version="cards-2026-02", channel=ConsentChannel.STAFF, granted_by="reception")
STARTS = "2026-03-05T15:30:00+00:00"  # 10:30 in Toronto


@pytest.fixture
def world() -> World:
    w = World()
    w.vault.add_card("pm_1")
    cards.save_card(w.deps, "cl_a", "p-1", "pm_1", GRANT)
    w.appointments.add("cl_a", "ap_1", "p-1", price=8000)
    w.appointments.items[("cl_a", "ap_1")].update(service_name="Physiothérapie", starts_at=STARTS)
    return w


def charge(world: World, reason: ChargeReason = ChargeReason.APPOINTMENT, *, appointment_id: str | None = "ap_1",
           amount: int | None = 8000, key: str | None = None) -> dict[str, Any]:
    return cards.charge_card(world.deps, "cl_a", "p-1", reason=reason,
                             amount=Money(amount=amount, currency="CAD") if amount else None, card_id=None,
                             appointment_id=appointment_id, idempotency_key=key)


def told(world: World) -> list[OutgoingMessage]:
    return [m for m in world.notifier.sent if m.kind == "card_charged"]


def succeeded_event(reference: str, event_id: str, world: World, **metadata: str) -> CardEvent:
    return CardEvent(provider="stripe", event_id=event_id, kind="charge_succeeded", occurred_at=world.clock(),
                     charge_reference=reference, amount=Money(amount=8000, currency="CAD"), metadata=metadata)


# ---------------------------------------------------------------------------- once per charge
def test_the_answer_then_the_webhook_tells_the_patient_once(world: World) -> None:
    # Given staff charged the appointment and Stripe answered "succeeded"
    charged = charge(world)
    assert charged["status"] == "succeeded"
    # When Stripe's payment_intent.succeeded for it arrives too
    assert apply_card_event(world.deps, "cl_a", succeeded_event("pi_1", "evt_1", world)) == "stale"
    # Then the patient got one email and one SMS
    assert [(m.channel, m.to) for m in told(world)] == [("email", "ana@example.ca"), ("sms", "+15145550100")]


def test_the_webhook_before_the_answer_tells_the_patient_once(world: World) -> None:
    # Given Stripe's webhook lands while our request still waits for its answer
    original = world.vault.charge

    def webhook_first(request: OffSessionCharge) -> ChargeResult:
        result = original(request)
        assert apply_card_event(world.deps, "cl_a", succeeded_event(
            str(result.reference), "evt_early", world, clinic_id="cl_a", patient_id="p-1",
            clinicpay_charge_id=request.charge_id)) == "applied"
        assert len(told(world)) == 2  # the webhook told the patient
        return result

    world.vault.charge = webhook_first  # type: ignore[method-assign]
    # When the answer then arrives
    assert charge(world)["status"] == "succeeded"
    # Then nothing more was sent
    assert [m.channel for m in told(world)] == ["email", "sms"]


def test_twenty_concurrent_deliveries_of_the_success_tell_the_patient_once(world: World) -> None:
    # Given a charge left processing (Stripe is still working on it)
    world.vault.outcomes.append(ChargeResult(status="processing", reference="pi_slow"))
    charged = charge(world)
    assert charged["status"] == "processing" and told(world) == []
    world.vault.intents["pi_slow"]["status"] = "succeeded"
    # When twenty deliveries of its success (webhook retries, separate events, our asking) land at once
    start = threading.Barrier(20)
    outcomes: list[str] = []

    def deliver(n: int) -> None:
        start.wait()
        outcomes.append(apply_card_event(world.deps, "cl_a", succeeded_event("pi_slow", f"evt_{n}", world)))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then one applied it, and the patient got one email and one SMS
    assert sorted(outcomes) == ["applied"] + ["stale"] * 19
    assert [m.channel for m in told(world)] == ["email", "sms"]


def test_a_charge_settled_by_reconciliation_is_told_once_and_not_again(world: World) -> None:
    # Given Stripe made the charge but its answer was lost
    original = world.vault.charge

    def made_but_unanswered(request: OffSessionCharge) -> ChargeResult:
        original(request)
        raise ProviderOutcomeUnknown()

    world.vault.charge = made_but_unanswered  # type: ignore[method-assign]
    assert charge(world, key="desk-1")["status"] == "processing"
    assert told(world) == []
    # When the card-reconcile job asks Stripe, twice
    world.clock.advance(minutes=10)
    deps = ReconcileDeps(cards=world.cards, deps_for=lambda clinic_id: world.deps)
    assert reconcile_charges(deps, now=world.clock.now, shard=shard_of("cl_a"))["outcomes"] == {"applied": 1}
    world.clock.advance(minutes=10)
    reconcile_charges(deps, now=world.clock.now, shard=shard_of("cl_a"))
    # And staff retry the same request (the same Idempotency-Key)
    del world.vault.charge
    assert charge(world, key="desk-1")["status"] == "succeeded"
    # Then one email and one SMS
    assert [m.channel for m in told(world)] == ["email", "sms"]


def test_a_charge_completed_after_authentication_is_told_when_it_succeeds_only(world: World) -> None:
    world.vault.outcomes.append(ChargeResult(status="requires_action", reference="pi_3ds",
                                             failure_code="authentication_required", action_url="https://3ds"))
    assert charge(world)["status"] == "requires_action"
    assert told(world) == []
    # The patient completes 3-D Secure; Stripe's event says so
    assert apply_card_event(world.deps, "cl_a", succeeded_event("pi_3ds", "evt_3ds", world)) == "applied"
    assert [m.channel for m in told(world)] == ["email", "sms"]


def test_a_declined_or_unsent_charge_tells_nothing(world: World) -> None:
    world.vault.outcomes.append(ChargeResult(status="failed", reference="pi_no", failure_code="card_declined"))
    assert charge(world, ChargeReason.OTHER, appointment_id=None, amount=500)["status"] == "failed"
    world.vault.charge = lambda request: (_ for _ in ()).throw(ProviderUnavailable())  # type: ignore[method-assign]
    with pytest.raises(ProviderUnavailable):
        charge(world, ChargeReason.OTHER, appointment_id=None, amount=600)
    assert told(world) == []


def test_a_notifier_that_fails_never_undoes_the_charge(world: World) -> None:
    from clinicpay.domain.errors import ProviderUnavailable as Down

    def refuse(message: OutgoingMessage) -> str:
        raise Down("SES is down")

    world.notifier.send = refuse  # type: ignore[method-assign]
    assert charge(world)["status"] == "succeeded"
    assert world.appointments.get("cl_a", "ap_1")["payment_status"] == "paid"


# ---------------------------------------------------------------------------- what it says
def test_an_appointment_charge_names_amount_card_service_local_time_clinic_and_reference(world: World) -> None:
    charged = charge(world)
    email, sms = told(world)
    # The patient's language is French (their record): French text, French money
    assert email.subject == "Clinique Laval a débité 80,00 CAD de votre carte"
    assert "Bonjour Ana Tremblay," in email.body
    assert "de votre carte Visa ····4242." in email.body
    # Toronto time, the weekday and the zone named, in French (Babel, CLDR)
    assert "Motif : votre rendez-vous Physiothérapie du jeudi 5 mars 2026, 10:30 (heure de l’Est nord-américain)" \
        in email.body
    assert f"Référence du paiement : {charged['charge_id']}" in email.body
    assert sms.subject is None and sms.body == (
        "Clinique Laval : débit de 80,00 CAD sur votre carte Visa ····4242 (votre rendez-vous Physiothérapie "
        f"du jeu. 5 mars 10:30). Réf. {charged['charge_id']}")  # the SMS's shorter date


def test_a_no_show_fee_says_so_with_its_appointment(world: World) -> None:
    world.patients.items[("cl_a", "p-1")]["locale"] = "en"
    charge(world, ChargeReason.NO_SHOW, amount=None)
    email, sms = told(world)
    assert "Clinique Laval charged 25.00 CAD to your card Visa ····4242." in email.body
    assert ("For: no-show fee, Physiothérapie appointment on Thursday, March 5, 2026, 10:30\u202fAM (Eastern Time)"
            in email.body)
    assert "(no-show fee, Physiothérapie appointment on Thu, Mar 5, 10:30 AM)" in sms.body  # plain spaces in an SMS


def test_a_no_show_fee_whose_appointment_is_gone_still_says_no_show_fee(world: World) -> None:
    world.patients.items[("cl_a", "p-1")]["locale"] = "en"
    world.vault.outcomes.append(ChargeResult(status="processing", reference="pi_ns"))
    charge(world, ChargeReason.NO_SHOW, amount=None)
    del world.appointments.items[("cl_a", "ap_1")]  # removed before Stripe's event came
    apply_card_event(world.deps, "cl_a", CardEvent(
        provider="stripe", event_id="evt_ns", kind="charge_succeeded", occurred_at=world.clock(),
        charge_reference="pi_ns", amount=Money(amount=2500, currency="CAD")))
    email, sms = told(world)
    assert "For: no-show fee\n" in email.body and "(no-show fee)" in sms.body


def test_a_charge_with_no_appointment_gives_a_generic_reason(world: World) -> None:
    world.patients.items[("cl_a", "p-1")]["locale"] = "es"
    charge(world, ChargeReason.OTHER, appointment_id=None, amount=1250)
    email, sms = told(world)
    assert email.subject == "Clinique Laval cobró 12,50 CAD a tu tarjeta"
    assert "Concepto: servicios de la clínica" in email.body
    assert sms.body.startswith("Clinique Laval: cobramos 12,50 CAD a tu tarjeta Visa ····4242 (servicios de la clínica).")


@pytest.mark.parametrize(("record", "booked", "clinic", "expected"), [
    ("uk", None, "en", "uk"),  # the patient's record
    (None, "nb", "en", "nb"),  # else the language they booked in
    (None, None, "es", "es"),  # else the clinic's
    ("xx", None, "fr", "fr"),  # never a language we have no text for
])
def test_the_message_is_in_the_patients_language(world: World, record: str | None, booked: str | None,
                                                  clinic: str, expected: str) -> None:
    world.patients.items[("cl_a", "p-1")]["locale"] = record
    world.appointments.items[("cl_a", "ap_1")]["patient"]["locale"] = booked
    world.clinics.clinics["cl_a"] = world.clinics.clinics["cl_a"].model_copy(update={"locale": Locale(clinic)})
    charge(world)
    email, sms = told(world)
    assert email.subject == Template(builtin("card_charged", "email", expected).subject).substitute(
        clinic_name="Clinique Laval", amount=_money(expected))
    assert "$" not in email.body and "$" not in sms.body


def _money(locale: str) -> str:
    return {"es": "80,00 CAD", "en": "80.00 CAD", "fr": "80,00 CAD", "uk": "80,00 CAD", "nb": "80,00 CAD"}[locale]


def test_ukrainian_and_norwegian_texts_read_naturally() -> None:
    uk = builtin("card_charged", "email", "uk")
    # No verb whose form would assume the clinic's gender; the typographic apostrophe, never ASCII
    assert "звʼяжіться" in uk.body and "'" not in uk.body and "'" not in builtin("card_charged", "sms", "uk").body
    for feminine_or_masculine in ("списала", "списав", "отримала", "повернула"):
        assert feminine_or_masculine not in uk.body + uk.subject
    assert builtin("card_charged", "sms", "uk").body.startswith("Від $clinic_name:")
    assert "har trukket $amount fra kortet ditt" in builtin("card_charged", "email", "nb").body


def test_every_locale_and_channel_has_a_card_charged_text_naming_amount_card_reason_and_reference() -> None:
    for locale in LOCALES:
        for channel in CHANNELS:
            text = builtin("card_charged", channel, locale)
            for name in ("$amount", "$card", "$charge_reason", "$charge_reference", "$clinic_name"):
                assert name in text.body, (locale, channel, name)


def test_a_clinic_template_overrides_the_built_in_text(world: World) -> None:
    world.templates.items[("CLINIC#cl_a", "card_charged", "sms", "fr")] = Text(
        "", "Laval : $amount prélevés ($card), $charge_reason.")
    charge(world)
    [sms] = [m for m in told(world) if m.channel == "sms"]
    assert sms.body == "Laval : 80,00 CAD prélevés (Visa ····4242), votre rendez-vous Physiothérapie du jeu. 5 mars 10:30."


def test_a_patient_without_an_email_gets_the_sms_only_and_one_without_either_nothing(world: World) -> None:
    world.patients.items[("cl_a", "p-1")]["email"] = None
    charge(world, ChargeReason.OTHER, appointment_id=None, amount=700)
    assert [m.channel for m in told(world)] == ["sms"]
    world.patients.items[("cl_a", "p-1")]["phone"] = None
    charge(world, ChargeReason.OTHER, appointment_id=None, amount=800)
    assert [m.channel for m in told(world)] == ["sms"]


def test_a_card_is_named_the_way_its_holder_reads_it() -> None:
    assert card_label("visa", "4242") == "Visa ····4242"
    assert card_label("amex", "0005") == "American Express ····0005"
    assert card_label("cartes_bancaires", "1001") == "Cartes Bancaires ····1001"
    assert card_label("unknown", "1234") == "····1234"
    assert card_label(None, None) == ""


def test_a_removed_card_is_still_named(world: World) -> None:
    world.vault.outcomes.append(ChargeResult(status="processing", reference="pi_rm"))
    charge(world)
    [card] = cards.list_cards(world.deps, "cl_a", "p-1")
    cards.remove_card(world.deps, "cl_a", "p-1", card["card_id"])
    world.clock.advance(seconds=timedelta(minutes=1).total_seconds())
    apply_card_event(world.deps, "cl_a", succeeded_event("pi_rm", "evt_rm", world))
    assert "Visa ····4242" in told(world)[0].body
