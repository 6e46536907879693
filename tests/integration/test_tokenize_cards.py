"""Cards on file through the tokenize handler, moto and the Stripe sandbox (issue 3): saving with
consent on the processor's hosted page, our consent page, card requests, default and removal."""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest
import requests

from local import outbox
from tests.support.api import ApiClient
from tests.support.cards import (
    STAFF_CONSENT,
    VISA,
    book,
    form_post,
    local_path,
    new_clinic,
    patient_path,
    save_card,
    type_card,
    wait_for,
)
from tests.support.clinics import ClinicKeys, patient_token, patient_token_secret
from tests.support.env import TestStack


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    return new_clinic(stack)


def cards_of(clinic: ClinicKeys, patient_id: str = "p-1") -> list[dict[str, Any]]:
    listed = clinic.staff().get(patient_path(clinic, patient_id, "/cards"))
    assert listed.status == 200, listed.body
    return list(listed.json()["cards"])


def sandbox_methods(stack: TestStack, clinic: ClinicKeys) -> list[dict[str, Any]]:
    key = f"sk_test_{clinic.clinic_id.replace('-', '_')}"
    customers = requests.get(f"{stack.sandbox_url('stripe')}/v1/customers", headers={"Authorization": f"Bearer {key}"},
                             timeout=10).json()["data"]
    return [m for c in customers for m in requests.get(
        f"{stack.sandbox_url('stripe')}/v1/customers/{c['id']}/payment_methods",
        headers={"Authorization": f"Bearer {key}"}, timeout=10).json()["data"]]


def patient_item(clinic: ClinicKeys, patient_id: str = "p-1") -> dict[str, Any]:
    return dict(boto3.resource("dynamodb").Table("AppointmentsTable").get_item(
        Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"PATIENT#{patient_id}"})["Item"])


def test_staff_save_a_card_typed_on_the_processors_page_with_the_consent_recorded(clinic: ClinicKeys) -> None:
    # Given a patient the clinic knows
    book(clinic, "p-1")
    # When staff start a setup with the patient's consent and the patient types a card on Stripe's page
    started = clinic.staff().post(patient_path(clinic, "p-1", "/card-setup"), json={"consent": STAFF_CONSENT})
    assert started.status == 201 and started.json()["page"] == "processor"
    assert "/_sandbox/stripe/checkout/cs_test_" in started.json()["url"]
    typed = type_card(started.json()["url"], VISA)
    # Then the patient is sent back to our page, and the card appears once Stripe's webhook lands
    assert typed.status_code == 303 and "/cards/setup/" in typed.headers["Location"]
    [card] = wait_for(lambda: cards_of(clinic))
    assert (card["brand"], card["last4"], card["exp_month"], card["exp_year"]) == ("visa", "4242", 12, 2034)
    assert card["is_default"] is True
    assert card["consent"]["granted_by"] == "reception" and card["consent"]["channel"] == "staff"
    assert card["consent"]["text_version"] == "cards-2026-02" and card["consent"]["granted_at"]
    # And the booking flow's flag says a card is on file
    assert patient_item(clinic)["cards_on_file"] == 1
    # And the done page (which refreshes itself) says so
    wait_for(lambda: 'data-status="completed"' in ApiClient().get(local_path(typed.headers["Location"])).body.decode())


def test_staff_save_a_token_made_on_the_processors_own_field(clinic: ClinicKeys) -> None:
    book(clinic, "p-1")
    saved = clinic.staff().post(patient_path(clinic, "p-1", "/cards"),
                                json={"payment_method": "pm_card_mastercard", "consent": STAFF_CONSENT})
    assert saved.status == 201, saved.body
    assert saved.json()["brand"] == "mastercard" and saved.json()["last4"] == "4444" and saved.json()["is_default"]
    assert "pm_" not in saved.body.decode()


def test_no_consent_no_card(clinic: ClinicKeys) -> None:
    book(clinic, "p-1")
    for consent in ({**STAFF_CONSENT, "granted": False}, None):
        body: dict[str, Any] = {"payment_method": "pm_card_visa"}
        if consent is not None:
            body["consent"] = consent
        refused = clinic.staff().post(patient_path(clinic, "p-1", "/cards"), json=body)
        assert refused.status == 422, refused.body
    refused = clinic.staff().post(patient_path(clinic, "p-1", "/card-setup"),
                                  json={"consent": {**STAFF_CONSENT, "granted": False}})
    assert refused.status == 422 and refused.json()["error"]["code"] == "consent_required"
    assert cards_of(clinic) == []


def test_default_and_removal(clinic: ClinicKeys, stack: TestStack) -> None:
    # Given three saved cards
    book(clinic, "p-1")
    first = save_card(clinic, "p-1", VISA)
    second = save_card(clinic, "p-1", "5555555555554444")
    third = save_card(clinic, "p-1", "4000003800000446")
    assert [c["is_default"] for c in cards_of(clinic)] == [True, False, False]
    # When staff make the second the default
    chosen = clinic.staff().put(patient_path(clinic, "p-1", f"/cards/{second['card_id']}/default"))
    assert chosen.status == 200 and chosen.json()["is_default"]
    assert {c["card_id"]: c["is_default"] for c in cards_of(clinic)}[second["card_id"]]
    # And then remove it
    removed = clinic.staff().delete(patient_path(clinic, "p-1", f"/cards/{second['card_id']}"))
    assert removed.status == 204
    # Then it is detached at Stripe and the newest remaining card is the default
    listed = {c["card_id"]: c["is_default"] for c in cards_of(clinic)}
    assert listed == {first["card_id"]: False, third["card_id"]: True}
    assert {m["card"]["last4"] for m in sandbox_methods(stack, clinic)} == {"4242", "0446"}
    assert patient_item(clinic)["cards_on_file"] == 2
    # And removing it again is a 404
    assert clinic.staff().delete(patient_path(clinic, "p-1", f"/cards/{second['card_id']}")).status == 404


def test_a_patient_saves_a_card_through_our_consent_page(clinic: ClinicKeys) -> None:
    # Given staff start a setup without the consent (the patient is at the desk, on a tablet)
    book(clinic, "p-1", locale="fr")
    started = clinic.staff().post(patient_path(clinic, "p-1", "/card-setup"))
    assert started.status == 201 and started.json()["page"] == "consent"
    path = local_path(started.json()["url"])
    # When the patient opens it: our page, in French, with the consent text, its version and a checkbox
    page = ApiClient().get(path)
    html = page.body.decode()
    assert page.status == 200 and '<html lang="fr">' in html and "cards-2026-02" in html
    assert re.search(r'<input type="checkbox" id="consent" name="consent"[^>]*required', html)
    assert '<label for="consent">' in html and "Clinique Laval" in html
    assert page.headers.get("Referrer-Policy") == "no-referrer"
    # And continues without ticking the box: the page again, with an error, nothing started
    unticked = form_post(ApiClient(), path, {"text_version": "cards-2026-02", "lang": "fr"})
    assert unticked.status == 422 and 'role="alert"' in unticked.body.decode()
    # And ticks it
    ticked = form_post(ApiClient(), path, {"consent": "yes", "text_version": "cards-2026-02", "lang": "fr"},
                       user_agent="Mozilla/5.0 (iPad)")
    assert ticked.status == 303 and "/_sandbox/stripe/checkout/" in ticked.headers["Location"]
    assert type_card(ticked.headers["Location"], VISA).status_code == 303
    # Then the card is saved with the patient's consent: channel, IP and user agent
    [card] = wait_for(lambda: cards_of(clinic))
    consent = card["consent"]
    assert consent["granted_by"] == "patient" and consent["channel"] == "staff"
    assert consent["ip"] == "127.0.0.1" and consent["user_agent"] == "Mozilla/5.0 (iPad)"
    # And the link is spent
    assert 'data-status="completed"' in ApiClient().get(path).body.decode()


def test_a_card_request_goes_out_by_email_and_sms_and_leads_to_the_consent_page(clinic: ClinicKeys) -> None:
    # Given a patient with an email and a phone, who reads Norwegian
    book(clinic, "p-1", email="kari@example.no", phone="+4791234567", locale="nb")
    # When staff send a card request by both channels
    sent = clinic.staff().post(patient_path(clinic, "p-1", "/card-requests"), json={"channels": ["email", "sms"]})
    # Then both go out with the link to our hosted page
    assert sent.status == 202, sent.body
    link = sent.json()["card_request"]["url"]
    assert link.startswith(f"{clinic_base()}/cards/setup/")
    [mail] = [m for m in outbox.messages(to="kari@example.no") if link in m["body"]]
    [sms] = [m for m in outbox.messages(to="+4791234567") if link in m["body"]]
    assert link in mail["body"] and link in sms["body"] and "lagre et kort" in mail["subject"]
    # And the page there is in the patient's language, with the card-request channel recorded on consent
    path = local_path(link)
    assert '<html lang="nb">' in ApiClient().get(path).body.decode()
    location = form_post(ApiClient(), path, {"consent": "yes", "text_version": "cards-2026-02"}).headers["Location"]
    type_card(location, VISA)
    assert wait_for(lambda: cards_of(clinic))[0]["consent"]["channel"] == "card_request"


def test_a_clinic_template_overrides_the_built_in_card_request(clinic: ClinicKeys) -> None:
    book(clinic, "p-1", phone="+15145550100", email=None)
    put = clinic.admin().put(clinic.path("/message-templates/card_request/sms/en"),
                             json={"body": "$clinic_name needs your card: $card_link"})
    assert put.status == 200, put.body
    clinic.staff().post(patient_path(clinic, "p-1", "/card-requests"), json={"channels": ["sms"]})
    assert any(m["body"].startswith("Clinique Laval needs your card: http") for m in outbox.messages(to="+15145550100"))
    # And a channel with no address is a 422, nothing sent
    refused = clinic.staff().post(patient_path(clinic, "p-1", "/card-requests"), json={"channels": ["email"]})
    assert refused.status == 422 and refused.json()["error"]["code"] == "no_contact"


def test_a_card_required_online_booking_is_confirmed_once_the_card_is_saved(clinic: ClinicKeys) -> None:
    # Given the clinic requires a card to book "implant" online
    clinic.admin().patch(clinic.path("/settings"), json={"card_required_for_online_booking": True})
    # When a patient books it through the widget
    booked = clinic.widget().post(f"/v1/public/clinics/{clinic.clinic_id}/appointments", json={
        "patient": {"id": "p-web", "name": "Jean Roy", "email": "jean@example.ca", "locale": "fr"},
        "service_id": "implant", "starts_at": "2030-01-10T15:00:00-05:00"})
    assert booked.status == 201, booked.body
    appointment, action = booked.json()["appointment"], booked.json()["next_action"]
    assert appointment["status"] == "awaiting_card" and action["type"] == "save_card"
    # And saves a card through our consent page and Stripe's page
    path = local_path(action["url"])
    location = form_post(ApiClient(), path, {"consent": "yes", "text_version": "cards-2026-02"}).headers["Location"]
    type_card(location, VISA)
    # Then the booking is confirmed, and the consent says it came from the online booking
    def confirmed() -> bool:
        got = clinic.staff().get(clinic.path(f"/appointments/{appointment['appointment_id']}")).json()
        return bool(got["status"] == "confirmed")
    wait_for(confirmed)
    # on the booking's own patient record (the widget's id is not trusted: a new patient, `pt_…`)
    assert appointment["patient"]["id"].startswith("pt_")
    assert cards_of(clinic, appointment["patient"]["id"])[0]["consent"]["channel"] == "online_booking"
    # And the patient is told, once, in French, with the appointment's local date and time
    [told] = wait_for(lambda: outbox.messages(to="jean@example.ca"))
    assert told["kind"] == "appointment_created" and "Votre rendez-vous Implant chez Clinique Laval" in told["body"]
    assert "jeudi 10 janvier 2030, 15:00 (heure de l’Est nord-américain)" in told["body"]
    # And the card reminder that was pending is dropped by the job, not sent
    _make_card_reminder_due(clinic, appointment["appointment_id"])
    from local.apigw import invoke_job
    invoke_job("reminders")
    assert len(outbox.messages(to="jean@example.ca")) == 1


def _make_card_reminder_due(clinic: ClinicKeys, appointment_id: str) -> None:
    from datetime import UTC, datetime, timedelta

    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    key = {"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{appointment_id}"}
    item = table.get_item(Key=key, ConsistentRead=True)["Item"]
    assert item["reminders_pending"][0] == item["card_reminder_due_at"]
    due = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    table.update_item(Key=key, UpdateExpression="SET reminder_due_at = :d, card_reminder_due_at = :d, "
                                                "reminder_pk = :pk, reminders_pending = :p",
                      ExpressionAttributeValues={":d": due, ":p": [due, *item["reminders_pending"][1:]],
                                                 ":pk": item.get("reminder_pk") or f"DUE#{0:02d}"})


def test_a_patient_who_left_the_card_step_is_reminded_once_with_the_card_link(clinic: ClinicKeys) -> None:
    from local.apigw import invoke_job

    clinic.admin().patch(clinic.path("/settings"), json={"card_required_for_online_booking": True})
    booked = clinic.widget().post(f"/v1/public/clinics/{clinic.clinic_id}/appointments", json={
        "patient": {"name": "Léa Roy", "email": "lea@example.ca", "locale": "fr"},
        "service_id": "implant", "starts_at": "2030-01-10T15:00:00-05:00"}).json()
    card_url = booked["next_action"]["url"]
    assert outbox.messages(to="lea@example.ca") == []  # the widget shows the card step: nothing sent
    _make_card_reminder_due(clinic, booked["appointment"]["appointment_id"])
    first, second = invoke_job("reminders"), invoke_job("reminders")
    assert first["sent"] == 1 and second["sent"] == 0
    [reminder] = outbox.messages(to="lea@example.ca")
    assert reminder["kind"] == "card_booking_reminder"
    assert reminder["subject"] == "Votre rendez-vous chez Clinique Laval attend votre carte"
    assert card_url in reminder["body"] and "jeudi 10 janvier 2030, 15:00" in reminder["body"]
    # The link still opens the consent page, which names the booking and the no-show fee before consent
    page = ApiClient().get(local_path(card_url))
    assert page.status == 200
    html = page.body.decode()
    assert 'id="booking"' in html and "La carte confirme votre rendez-vous :" in html and "<strong>Implant</strong>" in html
    assert "<strong>jeudi 10 janvier 2030, 15:00 (heure de l’Est nord-américain)</strong>" in html  # the clinic's wall clock
    assert ('id="no-show-fee">Si vous ne vous présentez pas sans prévenir, Clinique Laval peut débiter de cette carte '
            "des frais de rendez-vous non honoré de 100,00 CAD.") in html


def test_the_clinics_site_starts_a_card_save_for_the_patient_its_token_names(clinic: ClinicKeys) -> None:
    book(clinic, "p-1")
    token = patient_token(clinic, patient_token_secret(clinic), "p-1")
    url = f"/v1/public/clinics/{clinic.clinic_id}/card-setup"
    started = clinic.widget().post(url, json={"patient_token": token})
    assert started.status == 201 and "/cards/setup/" in started.json()["url"]
    # the link is for p-1, whatever patient id the body names
    other = clinic.widget().post(url, json={"patient_token": token, "patient_id": "p-2"})
    request_token = local_path(other.json()["url"]).rsplit("/", 1)[1]
    stored = boto3.resource("dynamodb").Table("AppointmentsTable").get_item(
        Key={"pk": f"CARDREQ#{request_token}", "sk": "CARDREQ"})["Item"]
    assert stored["patient_id"] == "p-1"
    # A patient id alone proves nothing: the same 422 for a known and an unknown one
    known = clinic.widget().post(url, json={"patient_id": "p-1"})
    unknown = clinic.widget().post(url, json={"patient_id": "nobody"})
    assert known.status == unknown.status == 422 and known.json() == unknown.json()
    assert ApiClient().post(url, json={"patient_token": token}).status == 401


def test_unknown_and_expired_card_links_show_a_clear_page(clinic: ClinicKeys) -> None:
    missing = ApiClient().get("/cards/setup/" + "x" * 32)
    assert missing.status == 404 and 'data-status="not_found"' in missing.body.decode()


def clinic_base() -> str:
    import os

    return os.environ["PUBLIC_BASE_URL"]


def test_the_page_after_saving_the_card_names_the_booking_it_confirmed(clinic: ClinicKeys) -> None:
    # Given a card-required online booking (issue 11: the card-saved page was a dead end)
    clinic.admin().patch(clinic.path("/settings"), json={"card_required_for_online_booking": True})
    booked = clinic.widget().post(f"/v1/public/clinics/{clinic.clinic_id}/appointments", json={
        "patient": {"name": "Jean Roy", "email": "jean@example.ca", "locale": "fr"},
        "service_id": "implant", "starts_at": "2030-01-10T15:00:00-05:00"}).json()
    path = local_path(booked["next_action"]["url"])
    location = form_post(ApiClient(), path, {"consent": "yes", "text_version": "cards-2026-02"}).headers["Location"]
    # When the patient saves the card and comes back
    assert type_card(location, VISA).headers["Location"].endswith(f"{path}/done")
    # Then the page names the booking, confirmed, at the clinic's time with its zone
    done = wait_for(lambda: (p := ApiClient().get(f"{path}/done")) and 'data-confirmed="true"' in p.body.decode() and p)
    html = done.body.decode()
    assert 'data-status="completed"' in html and "Votre rendez-vous est confirmé :" in html
    assert "<strong>Implant</strong>, <strong>jeudi 10 janvier 2030, 15:00 (heure de l’Est nord-américain)</strong>" in html


def test_leaving_the_card_page_unsaved_returns_to_the_consent_page_saying_so(clinic: ClinicKeys) -> None:
    # Given a patient on the processor's card page, from our consent page
    book(clinic, "p-1", locale="fr")
    path = local_path(clinic.staff().post(patient_path(clinic, "p-1", "/card-setup")).json()["url"])
    location = form_post(ApiClient(), path, {"consent": "yes", "text_version": "cards-2026-02"}).headers["Location"]
    # When they leave it without saving a card
    back = requests.post(f"{location}/cancel", allow_redirects=False, timeout=10)
    assert back.status_code == 303 and back.headers["Location"].endswith(f"{path}?cancelled=1")
    # Then our consent page says nothing was saved, and still offers the form to try again
    page = ApiClient().get(path, query={"cancelled": "1"})
    html = page.body.decode()
    assert page.status == 200 and 'id="notice"' in html
    assert "Vous avez quitté la page de la carte sans l’enregistrer : rien n’a été enregistré." in html
    assert 'id="consent"' in html and not cards_of(clinic)
    # and without the cancel mark there is no notice
    assert 'id="notice"' not in ApiClient().get(path).body.decode()
