"""Starting a card save (staff, our consent page, card-request messages) and applying the
processor's events exactly once, in any order (issue 3), with fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clinicpay.domain.card import ChargeReason, ConsentChannel, ConsentGrant
from clinicpay.domain.card_consent import CONSENT_TEXT_VERSION, consent_text
from clinicpay.domain.clinic import ClinicSettings
from clinicpay.domain.errors import NotFound
from clinicpay.domain.money import Money
from clinicpay.notify.builtin import Text
from clinicpay.ports import CardEvent, ChargeResult
from clinicpay.usecases import card_setup, cards
from clinicpay.usecases.card_events import apply_card_event, apply_card_events
from tests.unit.usecases.cards_fakes import World

GRANT = ConsentGrant(granted=True, text_version="cards-2026-02", channel=ConsentChannel.STAFF, granted_by="reception")


@pytest.fixture
def world() -> World:
    return World()


def setup_succeeded(world: World, setup_ref: str, token: str, *, event_id: str = "evt_1",
                    clinic_id: str = "cl_a", setup_id: str | None = None) -> CardEvent:
    world.vault.add_card(token)
    stored = next((s for s in world.cards.setups.values() if s.setup_ref == setup_ref), None)
    return CardEvent(provider="stripe", event_id=event_id, kind="setup_succeeded", occurred_at=world.clock(),
                     setup_id=setup_id or (stored.setup_id if stored else None), card_token=token,
                     customer_ref="cus_1",
                     metadata={"clinic_id": clinic_id, "patient_id": "p-1", "clinicpay_setup_ref": setup_ref})


# ------------------------------------------------------------------ consent page
def test_our_consent_page_speaks_the_patients_language_and_names_the_text_version(world: World) -> None:
    started = card_setup.start_public_setup(world.deps, "cl_a", "p-1", appointment_id=None)
    token = started["url"].rsplit("/", 1)[1]
    page = card_setup.consent_page(world.deps, token)
    assert page.state == "open" and page.locale == "fr" and page.text_version == CONSENT_TEXT_VERSION
    assert "Clinique Laval" in page.text and "absence" in page.text  # the no-show policy is in the text
    assert card_setup.consent_page(world.deps, token, lang="nb").locale == "nb"


def test_the_patient_must_tick_the_box_before_the_processors_page(world: World) -> None:
    token = card_setup.start_public_setup(world.deps, "cl_a", "p-1", appointment_id=None)["url"].rsplit("/", 1)[1]
    with pytest.raises(card_setup.ConsentRequired):
        card_setup.submit_consent(world.deps, token, consented=False, text_version=CONSENT_TEXT_VERSION,
                                  ip="198.51.100.7", user_agent="Phone")
    with pytest.raises(card_setup.ConsentTextChanged):
        card_setup.submit_consent(world.deps, token, consented=True, text_version="cards-1999-01", ip=None,
                                  user_agent=None)
    assert world.vault.setups == [] and world.cards.setups == {}


def test_a_ticked_box_records_the_patients_consent_then_opens_the_processors_page(world: World) -> None:
    token = card_setup.start_public_setup(world.deps, "cl_a", "p-1", appointment_id=None)["url"].rsplit("/", 1)[1]
    url = card_setup.submit_consent(world.deps, token, consented=True, text_version=CONSENT_TEXT_VERSION,
                                    ip="198.51.100.7", user_agent="Mozilla/5.0 (iPhone)")
    assert url == "https://processor.test/checkout/cs_1"
    [setup] = world.cards.setups.values()
    assert setup.consent.channel is ConsentChannel.ONLINE_BOOKING and setup.consent.granted_by == "patient"
    assert (setup.consent.ip, setup.consent.user_agent) == ("198.51.100.7", "Mozilla/5.0 (iPhone)")
    request = world.vault.setups[0]
    assert request.success_url == f"https://pay.example/cards/setup/{token}/done"
    assert request.locale == "fr"


def test_an_expired_or_unknown_card_link_is_not_open(world: World) -> None:
    token = card_setup.start_public_setup(world.deps, "cl_a", "p-1", appointment_id=None)["url"].rsplit("/", 1)[1]
    world.clock.advance(days=8)
    assert card_setup.consent_page(world.deps, token).state == "expired"
    with pytest.raises(NotFound):
        card_setup.consent_page(world.deps, "tok_unknown")


def test_staff_with_consent_go_straight_to_the_processor_and_without_it_to_our_page(world: World) -> None:
    direct = card_setup.start_staff_setup(world.deps, "cl_a", "p-1", GRANT, ip="10.0.0.1", user_agent="Desk")
    via_page = card_setup.start_staff_setup(world.deps, "cl_a", "p-1", None, ip="10.0.0.1", user_agent="Desk")
    assert direct["page"] == "processor" and direct["url"].startswith("https://processor.test/")
    assert via_page["page"] == "consent" and via_page["url"].startswith("https://pay.example/cards/setup/")
    with pytest.raises(NotFound):
        card_setup.start_staff_setup(world.deps, "cl_b", "p-1", GRANT, ip=None, user_agent=None)


# ------------------------------------------------------------------ card requests
def test_a_card_request_goes_by_email_and_sms_with_the_link_in_the_patients_language(world: World) -> None:
    sent = card_setup.send_card_request(world.deps, "cl_a", "p-1", ["email", "sms"])
    email, sms = world.notifier.sent
    assert (email.channel, email.to, sms.channel, sms.to) == ("email", "ana@example.ca", "sms", "+15145550100")
    assert sent["url"] in email.body and sent["url"] in sms.body
    assert "Clinique Laval" in (email.subject or "") and "Ana Tremblay" in email.body
    assert "enregistrer une carte" in (email.subject or "")  # French, the patient's locale


def test_a_clinic_template_overrides_the_organizations_and_the_built_in_one(world: World) -> None:
    world.templates.items[("CLINIC#cl_a", "card_request", "sms", "fr")] = Text("", "$clinic_name: carte ici $card_link")
    card_setup.send_card_request(world.deps, "cl_a", "p-1", ["sms"])
    assert world.notifier.sent[0].body.startswith("Clinique Laval: carte ici https://pay.example/cards/setup/")


def test_no_address_for_any_channel_is_a_422(world: World) -> None:
    world.patients.add("cl_a", "p-2")
    with pytest.raises(card_setup.NoContact):
        card_setup.send_card_request(world.deps, "cl_a", "p-2", ["email", "sms"])
    assert world.notifier.sent == []


# ------------------------------------------------------------------ events
def _started_setup(world: World) -> str:
    card_setup.start_staff_setup(world.deps, "cl_a", "p-1", GRANT, ip="10.0.0.1", user_agent="Desk")
    return next(iter(world.cards.setups.values())).setup_ref


def test_a_saved_card_event_saves_it_once_with_the_consent_given_before(world: World) -> None:
    setup_ref = _started_setup(world)
    event = setup_succeeded(world, setup_ref, "pm_9")
    assert apply_card_event(world.deps, "cl_a", event) == "applied"
    assert apply_card_event(world.deps, "cl_a", event) == "duplicate"
    [card] = cards.list_cards(world.deps, "cl_a", "p-1")
    assert card["consent"]["granted_by"] == "reception" and card["is_default"]
    assert world.patients.get("cl_a", "p-1")["cards_on_file"] == 1


def test_a_repeat_with_another_event_id_still_saves_one_card(world: World) -> None:
    setup_ref = _started_setup(world)
    apply_card_events(world.deps, "cl_a", [setup_succeeded(world, setup_ref, "pm_9", event_id="evt_1"),
                                           setup_succeeded(world, setup_ref, "pm_9", event_id="evt_2")])
    assert len(cards.list_cards(world.deps, "cl_a", "p-1")) == 1


def test_a_saved_card_confirms_bookings_waiting_for_it_and_closes_the_link(world: World) -> None:
    world.appointments.add("cl_a", "ap_wait", "p-1", status="awaiting_card")
    world.appointments.add("cl_a", "ap_other", "p-2", status="awaiting_card")
    token = card_setup.start_public_setup(world.deps, "cl_a", "p-1", appointment_id="ap_wait")["url"].rsplit("/", 1)[1]
    card_setup.submit_consent(world.deps, token, consented=True, text_version=CONSENT_TEXT_VERSION, ip="1.2.3.4",
                              user_agent="UA")
    setup_ref = next(iter(world.cards.setups.values())).setup_ref
    apply_card_event(world.deps, "cl_a", setup_succeeded(world, setup_ref, "pm_9"))
    assert world.appointments.get("cl_a", "ap_wait")["status"] == "confirmed"
    assert world.appointments.get("cl_a", "ap_other")["status"] == "awaiting_card"
    assert card_setup.consent_page(world.deps, token).state == "completed"
    assert cards.list_cards(world.deps, "cl_a", "p-1")[0]["consent"]["channel"] == "online_booking"


def test_a_booking_confirmed_by_its_card_is_confirmed_to_the_patient_once(world: World) -> None:
    # Given an online booking held for a card (the item as the booking stored it)
    world.appointments.items[("cl_a", "ap_wait")] = {
        "appointment_id": "ap_wait", "clinic_id": "cl_a", "service_id": "consulta", "service_name": "Physiothérapie",
        "patient": {"id": "p-1", "name": "Ana Tremblay", "email": "ana@example.ca", "locale": "fr"},
        "starts_at": "2026-03-05T15:30:00+00:00", "booked_by": "online", "status": "awaiting_card",
        "price": {"amount": 8000, "currency": "CAD"}, "payment_status": "not_required",
        "created_at": "2026-03-01T12:00:00+00:00"}
    world.clinics.settings["cl_a"] = ClinicSettings(address="1 rue Laval, Laval")
    setup_ref = _started_setup(world)
    before = len(world.notifier.sent)
    # When the card lands, and Stripe delivers the event again
    event = setup_succeeded(world, setup_ref, "pm_9")
    apply_card_event(world.deps, "cl_a", event)
    apply_card_event(world.deps, "cl_a", setup_succeeded(world, setup_ref, "pm_9", event_id="evt_again"))
    # Then the patient got one booking confirmation, in French, with the date and the clinic's address
    [told] = world.notifier.sent[before:]
    assert told.kind == "appointment_created" and told.channel == "email" and told.locale == "fr"
    assert "jeudi 5 mars 2026, 10:30" in told.body and told.body.endswith("Clinique Laval\n1 rue Laval, Laval")
    assert "payer" not in told.body  # nothing to pay online: no payment line


def test_an_event_sent_to_another_clinics_endpoint_changes_nothing_there_and_still_applies_at_its_own(
        world: World) -> None:
    # Given clinic A's setup, and a Stripe account shared with clinic B (both endpoints get the event)
    setup_ref = _started_setup(world)
    event = setup_succeeded(world, setup_ref, "pm_9")
    # When B's endpoint receives it first
    assert apply_card_event(world.deps, "cl_b", event) == "foreign"
    assert world.cards.reasons[("cl_b", "stripe", "evt_1")] == "other_clinic"
    assert cards.list_cards(world.deps, "cl_a", "p-1") == []
    # Then A's endpoint still saves the card: B's record is B's own
    assert apply_card_event(world.deps, "cl_a", event) == "applied"
    assert len(cards.list_cards(world.deps, "cl_a", "p-1")) == 1


def test_a_setup_event_for_another_setup_intent_is_foreign_even_with_our_metadata(world: World) -> None:
    # Someone with the account's key wrote our clinic and setup ref on their own SetupIntent
    setup_ref = _started_setup(world)
    event = setup_succeeded(world, setup_ref, "pm_9", setup_id="seti_someone_elses")
    assert apply_card_event(world.deps, "cl_a", event) == "foreign"
    assert world.cards.reasons[("cl_a", "stripe", "evt_1")] == "unknown_object"
    assert cards.list_cards(world.deps, "cl_a", "p-1") == []


def _charge_needing_action(world: World) -> dict:
    world.vault.add_card("pm_1")
    cards.save_card(world.deps, "cl_a", "p-1", "pm_1", GRANT)
    world.appointments.add("cl_a", "ap_1", "p-1")
    world.vault.outcomes.append(ChargeResult(status="requires_action", reference="pi_a",
                                             failure_code="authentication_required", action_url="https://x/pi_a"))
    return cards.charge_card(world.deps, "cl_a", "p-1", reason=ChargeReason.APPOINTMENT, amount=None, card_id=None,
                             appointment_id="ap_1", idempotency_key=None)


def _charge_event(world: World, kind: str, at: datetime, event_id: str, failure: str | None = None,
                  amount: Money | None = None, metadata: dict[str, str] | None = None) -> CardEvent:
    return CardEvent(provider="stripe", event_id=event_id, kind=kind, occurred_at=at,  # type: ignore[arg-type]
                     charge_reference="pi_a", failure_code=failure, amount=amount, metadata=metadata or {})


def test_a_charge_event_for_another_amount_or_clinic_changes_nothing(world: World) -> None:
    charged = _charge_needing_action(world)
    later = world.clock.now + timedelta(minutes=5)
    wrong = Money(amount=charged["amount"]["amount"] + 1, currency=charged["amount"]["currency"])
    assert apply_card_event(world.deps, "cl_a", _charge_event(world, "charge_succeeded", later, "evt_1",
                                                              amount=wrong)) == "foreign"
    assert apply_card_event(world.deps, "cl_a", _charge_event(world, "charge_succeeded", later, "evt_2",
                                                              metadata={"clinic_id": "cl_b"})) == "foreign"
    assert [world.cards.reasons[("cl_a", "stripe", e)] for e in ("evt_1", "evt_2")] == ["amount_mismatch",
                                                                                        "other_clinic"]
    assert cards.get_charge(world.deps, "cl_a", "p-1", charged["charge_id"])["status"] == "requires_action"
    assert world.appointments.get("cl_a", "ap_1")["payment_status"] != "paid"
    # while the right amount settles it
    right = Money.model_validate(charged["amount"])
    assert apply_card_event(world.deps, "cl_a", _charge_event(world, "charge_succeeded", later, "evt_3",
                                                              amount=right)) == "applied"


def test_authentication_completed_later_settles_the_charge_and_pays_the_appointment(world: World) -> None:
    charged = _charge_needing_action(world)
    later = world.clock.now + timedelta(minutes=5)
    assert apply_card_event(world.deps, "cl_a", _charge_event(world, "charge_succeeded", later, "evt_ok")) == "applied"
    assert cards.get_charge(world.deps, "cl_a", "p-1", charged["charge_id"])["status"] == "succeeded"
    assert world.appointments.get("cl_a", "ap_1")["payment_status"] == "paid"


def test_an_older_failure_arriving_late_never_undoes_a_newer_state(world: World) -> None:
    # Given the off-session attempt failed (event made before our answer was recorded) ...
    charged = _charge_needing_action(world)
    before = world.clock.now - timedelta(seconds=1)
    # When that older failure arrives after we recorded requires_action
    outcome = apply_card_event(world.deps, "cl_a", _charge_event(world, "charge_failed", before, "evt_old",
                                                                 "authentication_required"))
    # Then it is stale, and the link stays usable
    stored = cards.get_charge(world.deps, "cl_a", "p-1", charged["charge_id"])
    assert outcome == "stale" and stored["status"] == "requires_action" and stored["action_url"] == "https://x/pi_a"
    # And once succeeded, even a newer failure changes nothing
    later = world.clock.now + timedelta(minutes=1)
    apply_card_event(world.deps, "cl_a", _charge_event(world, "charge_succeeded", later, "evt_ok"))
    assert apply_card_event(world.deps, "cl_a", _charge_event(world, "charge_failed", later + timedelta(minutes=1),
                                                              "evt_late")) == "stale"
    assert cards.get_charge(world.deps, "cl_a", "p-1", charged["charge_id"])["status"] == "succeeded"


def test_a_payment_that_is_not_a_card_charge_is_left_to_the_payment_link_flow(world: World) -> None:
    event = CardEvent(provider="stripe", event_id="evt_link", kind="charge_succeeded",
                      occurred_at=datetime.now(UTC), charge_reference="pi_from_checkout",
                      metadata={"clinic_id": "cl_a", "appointment_id": "ap_1"})
    assert apply_card_event(world.deps, "cl_a", event) == "not_a_card_charge"
    # and a payment that is neither ours nor our link's is foreign
    stranger = event.model_copy(update={"event_id": "evt_stranger", "metadata": {}})
    assert apply_card_event(world.deps, "cl_a", stranger) == "foreign"


def test_a_card_detached_at_the_processor_leaves_our_list(world: World) -> None:
    world.vault.add_card("pm_1")
    world.vault.add_card("pm_2")
    first = cards.save_card(world.deps, "cl_a", "p-1", "pm_1", GRANT)
    cards.save_card(world.deps, "cl_a", "p-1", "pm_2", GRANT)
    event = CardEvent(provider="stripe", event_id="evt_d", kind="card_detached", occurred_at=world.clock(),
                      card_token="pm_1")
    assert apply_card_event(world.deps, "cl_a", event) == "applied"
    listed = cards.list_cards(world.deps, "cl_a", "p-1")
    assert [c["card_id"] for c in listed] != [first["card_id"]] and len(listed) == 1 and listed[0]["is_default"]
    assert world.vault.detached == []  # it was already detached there


def test_an_amount_is_money_in_minor_units() -> None:
    with pytest.raises(ValueError):
        Money(amount=12.5, currency="CAD")  # type: ignore[arg-type]


def test_the_consent_wording_says_what_is_charged_and_names_the_clinic_in_the_nominative() -> None:
    # Issue 11 item 6: "a cobrarle" had no referent; the Ukrainian text put the clinic's name where the
    # dative is needed. New words, new version: consents stored under cards-2026-01 keep their text.
    assert CONSENT_TEXT_VERSION == "cards-2026-02"
    spanish = consent_text("es", "Clínica Demo")
    assert spanish.startswith("Autorizo a Clínica Demo a guardar mi tarjeta con su procesador de pagos y a cobrar en "
                              "ella, sin que yo esté presente,") and "cobrarle" not in spanish
    ukrainian = consent_text("uk", "Клініка Демо")
    assert ukrainian.startswith("Я дозволяю клініці (Клініка Демо) зберігати мою картку")
    assert "зазначену в прайс-листі клініки." in ukrainian and "'" not in ukrainian
