"""Charging cards on file off-session through the handler, moto and the Stripe sandbox (issue 3)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
import requests

from tests.support.api import ApiClient
from tests.support.cards import (
    ALWAYS_AUTHENTICATE,
    INSUFFICIENT_FUNDS,
    VISA,
    book,
    local_path,
    new_clinic,
    patient_path,
    save_card,
    wait_for,
)
from tests.support.clinics import ClinicKeys
from tests.support.env import TestStack


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    return new_clinic(stack)


@pytest.fixture
def appointment(clinic: ClinicKeys) -> dict[str, Any]:
    return book(clinic, "p-1")


def charge(clinic: ClinicKeys, body: dict[str, Any], *, key: str | None = None, patient: str = "p-1") -> Any:
    headers = {"Idempotency-Key": key} if key else None
    return clinic.staff().post(patient_path(clinic, patient, "/charges"), json=body, headers=headers)


def appointment_of(clinic: ClinicKeys, appointment_id: str) -> dict[str, Any]:
    return dict(clinic.staff().get(clinic.path(f"/appointments/{appointment_id}")).json())


def sandbox_events(stack: TestStack, event_type: str) -> list[dict[str, Any]]:
    found = requests.get(f"{stack.sandbox_url('stripe')}/_control/events", params={"type": event_type}, timeout=10)
    return list(found.json()["events"])


def test_charging_the_default_card_for_an_appointment_marks_it_paid(clinic: ClinicKeys,
                                                                    appointment: dict[str, Any]) -> None:
    # Given a card on file
    card = save_card(clinic, "p-1", VISA)
    # When staff charge the appointment's price to the default card
    charged = charge(clinic, {"reason": "appointment", "appointment_id": appointment["appointment_id"],
                              "amount": {"amount": 8000, "currency": "CAD"}})
    # Then it succeeded off-session and the appointment is paid, with the processor's reference
    assert charged.status == 201, charged.body
    body = charged.json()
    assert body["status"] == "succeeded" and body["card_id"] == card["card_id"] and "failure_code" not in body
    paid = appointment_of(clinic, appointment["appointment_id"])
    assert paid["payment_status"] == "paid" and paid["payment"]["provider"] == "stripe"
    assert paid["payment"]["reference"].startswith("pi_")
    assert paid["payment"]["amount"] == {"amount": 8000, "currency": "CAD"}
    # and its ledger says so (issue 9)
    assert paid["amount_paid"] == {"amount": 8000, "currency": "CAD"} and paid["balance_due"]["amount"] == 0
    # And charging it again is a 409
    again = charge(clinic, {"reason": "appointment", "appointment_id": appointment["appointment_id"],
                            "amount": {"amount": 8000, "currency": "CAD"}})
    assert again.status == 409 and again.json()["error"]["code"] == "already_paid"


def test_a_no_show_charge_without_an_amount_takes_the_services_fee(clinic: ClinicKeys, stack: TestStack,
                                                                   appointment: dict[str, Any]) -> None:
    save_card(clinic, "p-1", VISA)
    charged = charge(clinic, {"reason": "no_show", "appointment_id": appointment["appointment_id"]})
    assert charged.status == 201 and charged.json()["amount"] == {"amount": 2500, "currency": "CAD"}
    [intent] = [e["data"]["object"] for e in sandbox_events(stack, "payment_intent.succeeded")]
    assert (intent["amount"], intent["currency"]) == (2500, "cad")  # minor units, lower-case at Stripe
    repeat = charge(clinic, {"reason": "no_show", "appointment_id": appointment["appointment_id"]})
    assert repeat.status == 409 and repeat.json()["error"]["code"] == "already_charged"


@pytest.mark.parametrize("amount", [0, -100, 10.5, "100"])
def test_zero_negative_or_non_integer_amounts_are_422(clinic: ClinicKeys, amount: Any) -> None:
    book(clinic, "p-1")
    save_card(clinic, "p-1", VISA)
    refused = charge(clinic, {"reason": "other", "amount": {"amount": amount, "currency": "CAD"}})
    assert refused.status == 422, refused.body


def test_a_card_without_consent_on_record_is_not_charged(clinic: ClinicKeys, stack: TestStack) -> None:
    # Given a card imported without a consent record
    book(clinic, "p-1")
    boto3.resource("dynamodb").Table("CardsTable").put_item(Item={
        "pk": f"CLINIC#{clinic.clinic_id}#PATIENT#p-1", "sk": "CARD#card_legacy", "card_id": "card_legacy",
        "clinic_id": clinic.clinic_id, "patient_id": "p-1", "provider": "stripe", "token": "pm_card_visa",
        "customer_ref": "cus_legacy", "brand": "visa", "last4": "4242", "exp_month": 1, "exp_year": 2031,
        "created_at": "2025-01-01T00:00:00+00:00", "status": "active"})
    # When staff charge it
    refused = charge(clinic, {"reason": "other", "card_id": "card_legacy", "amount": {"amount": 500, "currency": "CAD"}})
    # Then 409, and Stripe was never asked
    assert refused.status == 409 and refused.json()["error"]["code"] == "consent_required"
    assert sandbox_events(stack, "payment_intent.created") == []


def test_no_card_on_file_is_409(clinic: ClinicKeys) -> None:
    book(clinic, "p-1")
    refused = charge(clinic, {"reason": "other", "amount": {"amount": 500, "currency": "CAD"}})
    assert refused.status == 409 and refused.json()["error"]["code"] == "no_card_on_file"


def test_a_card_that_needs_authentication_gets_a_link_the_patient_completes(clinic: ClinicKeys,
                                                                             appointment: dict[str, Any]) -> None:
    # Given a card that always needs authentication for off-session charges
    save_card(clinic, "p-1", ALWAYS_AUTHENTICATE)
    # When staff charge the appointment
    charged = charge(clinic, {"reason": "appointment", "appointment_id": appointment["appointment_id"],
                              "amount": {"amount": 8000, "currency": "CAD"}})
    # Then it needs action, with a link to the processor's authentication page
    assert charged.status == 201, charged.body
    body = charged.json()
    assert body["status"] == "requires_action" and body["failure_code"] == "authentication_required"
    assert "/_sandbox/stripe/authenticate/pi_" in body["action_url"]
    assert appointment_of(clinic, appointment["appointment_id"])["payment_status"] == "not_required"
    # When the patient completes it
    assert requests.get(body["action_url"], timeout=10).status_code == 200
    done = requests.post(body["action_url"], data={"result": "complete"}, allow_redirects=False, timeout=10)
    assert done.status_code == 303 and "/cards/authentication-complete" in done.headers["Location"]
    path_only, _, query = local_path(done.headers["Location"]).partition("?")
    landing = ApiClient().get(path_only, query=dict(parse_qsl(query)))
    assert landing.status == 200 and 'data-status="authenticated"' in landing.body.decode()
    # Then the webhook settles the charge and the appointment is paid
    path = patient_path(clinic, "p-1", f"/charges/{body['charge_id']}")
    wait_for(lambda: clinic.staff().get(path).json()["status"] == "succeeded")
    assert "action_url" not in clinic.staff().get(path).json()
    assert wait_for(lambda: appointment_of(clinic, appointment["appointment_id"])["payment_status"] == "paid")


def test_a_decline_comes_back_with_its_reason(clinic: ClinicKeys) -> None:
    book(clinic, "p-1")
    save_card(clinic, "p-1", INSUFFICIENT_FUNDS)
    declined = charge(clinic, {"reason": "other", "amount": {"amount": 3000, "currency": "CAD"}})
    assert declined.status == 201
    assert declined.json()["status"] == "failed" and declined.json()["failure_code"] == "insufficient_funds"


def test_a_chosen_card_is_charged_instead_of_the_default(clinic: ClinicKeys, stack: TestStack) -> None:
    book(clinic, "p-1")
    save_card(clinic, "p-1", VISA)
    declining = save_card(clinic, "p-1", INSUFFICIENT_FUNDS)
    chosen = charge(clinic, {"reason": "other", "card_id": declining["card_id"],
                             "amount": {"amount": 3000, "currency": "CAD"}})
    assert chosen.json()["card_id"] == declining["card_id"] and chosen.json()["status"] == "failed"


def test_a_retried_request_with_the_same_idempotency_key_charges_once(clinic: ClinicKeys, stack: TestStack) -> None:
    book(clinic, "p-1")
    save_card(clinic, "p-1", VISA)
    body = {"reason": "other", "amount": {"amount": 1200, "currency": "CAD"}}
    first = charge(clinic, body, key="desk-42")
    second = charge(clinic, body, key="desk-42")
    assert first.status == second.status == 201 and first.json() == second.json()
    assert len(sandbox_events(stack, "payment_intent.succeeded")) == 1


def test_stripe_5xx_after_our_retries_leaves_the_charge_processing_and_the_retry_charges_once(
        clinic: ClinicKeys, stack: TestStack, appointment: dict[str, Any]) -> None:
    # Given Stripe answers 503 to every attempt of our next call (it may or may not have run it)
    save_card(clinic, "p-1", VISA)
    requests.post(f"{stack.sandbox_url('stripe')}/_control/fail-next", json={"status": 503, "count": 3}, timeout=10)
    body = {"reason": "no_show", "appointment_id": appointment["appointment_id"]}
    # When staff charge the no-show fee
    first = charge(clinic, body, key="noshow-1")
    # Then the charge is processing, not failed: 202, with where to ask and when
    assert first.status == 202 and first.json()["status"] == "processing" and first.json()["undecided"] is True
    assert first.headers.get("Retry-After") and first.headers["Location"].endswith(first.json()["charge_id"])
    assert sandbox_events(stack, "payment_intent.succeeded") == []
    # When they retry the same request
    retried = charge(clinic, body, key="noshow-1")
    # Then it is charged, once, as the same charge
    assert retried.status == 201 and retried.json()["status"] == "succeeded"
    assert retried.json()["charge_id"] == first.json()["charge_id"]
    assert len(sandbox_events(stack, "payment_intent.succeeded")) == 1


def test_an_answer_lost_to_a_timeout_is_replayed_not_charged_twice(clinic: ClinicKeys, stack: TestStack) -> None:
    # Given Stripe processes the next request but answers after our timeout
    book(clinic, "p-1")
    save_card(clinic, "p-1", VISA)
    requests.post(f"{stack.sandbox_url('stripe')}/_control/fail-next",
                  json={"status": "timeout", "count": 1, "seconds": 4}, timeout=10)
    # When staff charge
    charged = charge(clinic, {"reason": "other", "amount": {"amount": 900, "currency": "CAD"}})
    # Then our client's retry (same Idempotency-Key) got Stripe's stored answer: one payment
    assert charged.status == 201 and charged.json()["status"] == "succeeded"
    assert len(sandbox_events(stack, "payment_intent.created")) == 1


def test_another_patients_card_or_another_clinics_patient_is_404(clinic: ClinicKeys, stack: TestStack) -> None:
    book(clinic, "p-1")
    book(clinic, "p-2")
    card = save_card(clinic, "p-1", VISA)
    other = new_clinic(stack)
    amount = {"amount": 500, "currency": "CAD"}
    assert charge(clinic, {"reason": "other", "card_id": card["card_id"], "amount": amount}, patient="p-2").status == 404
    assert other.staff().post(patient_path(other, "p-1", "/charges"),
                              json={"reason": "other", "amount": amount}).status == 404


# ------------------------------------------------------------------ the patient is told (issue 11 item 1)
def told(address: str) -> list[dict[str, Any]]:
    """The `card_charged` messages the stack sent to one address (SES or SNS through moto)."""
    from local import outbox

    markers = ("····", "Ref. ch_", "Réf. ch_", "Номер платежу ch_")
    return [m for m in outbox.messages(to=address) if any(marker in m["body"] for marker in markers)]


def redeliver(stack: TestStack, event_type: str) -> None:
    for event in sandbox_events(stack, event_type):
        requests.post(f"{stack.sandbox_url('stripe')}/_control/redeliver/{event['id']}", timeout=10)


def test_the_patient_is_told_of_a_charge_once_in_their_language(clinic: ClinicKeys, stack: TestStack) -> None:
    from tests.support.cards import settle

    # Given a patient who reads Ukrainian, with an email and a phone, and a card on file
    appointment = book(clinic, "p-uk", email="olena@example.ua", phone="+380501234567", locale="uk")
    save_card(clinic, "p-uk", VISA)
    # When staff charge the appointment and Stripe answers at once
    charged = charge(clinic, {"reason": "appointment", "appointment_id": appointment["appointment_id"],
                              "amount": {"amount": 8000, "currency": "CAD"}}, patient="p-uk")
    assert charged.status == 201 and charged.json()["status"] == "succeeded"
    # And Stripe's payment_intent.succeeded comes, then comes again twice
    settle()
    redeliver(stack, "payment_intent.succeeded")
    redeliver(stack, "payment_intent.succeeded")
    settle()
    # Then the patient got one email and one SMS, in Ukrainian, naming amount, card, appointment, reference
    [mail], [sms] = told("olena@example.ua"), told("+380501234567")
    charge_id = charged.json()["charge_id"]
    assert mail["subject"] == "Clinique Laval: з вашої картки списано 80,00 CAD"
    assert "З вашої картки Visa ····4242 списано 80,00 CAD." in mail["body"]
    # the service name stands alone (no "запис на $service_name", which would need its accusative)
    assert "Призначення: запис: Consulta, " in mail["body"] and f"Номер платежу: {charge_id}" in mail["body"]
    assert sms["body"].startswith("Від Clinique Laval: з вашої картки Visa ····4242 списано 80,00 CAD (запис: Consulta, ")
    # And no payment receipt besides it: one message for the event
    assert not [m for m in told("olena@example.ua") + told("+380501234567") if "Дякуємо" in m["body"]]


def test_a_charge_that_was_processing_is_told_once_when_stripe_settles_it(clinic: ClinicKeys,
                                                                          stack: TestStack) -> None:
    from tests.support.cards import settle

    # Given a Norwegian patient's no-show fee, whose request Stripe holds longer than our timeout
    appointment = book(clinic, "p-nb", email="kari@example.no", phone="+4791234567", locale="nb")
    save_card(clinic, "p-nb", VISA)
    requests.post(f"{stack.sandbox_url('stripe')}/_control/fail-next", json={"status": "hold", "seconds": 20},
                  timeout=10)
    body = {"reason": "no_show", "appointment_id": appointment["appointment_id"]}
    first = charge(clinic, body, key="noshow-nb", patient="p-nb")
    assert first.status == 202 and first.json()["status"] == "processing"
    # Then nothing is said while it is processing
    assert told("kari@example.no") == [] and told("+4791234567") == []
    # When Stripe finishes it: its webhook settles the charge
    requests.post(f"{stack.sandbox_url('stripe')}/_control/release", timeout=10)
    path = patient_path(clinic, "p-nb", f"/charges/{first.json()['charge_id']}")
    wait_for(lambda: clinic.staff().get(path).json()["status"] == "succeeded")
    settle()
    # And staff retry the same request, and the event comes again
    assert charge(clinic, body, key="noshow-nb", patient="p-nb").json()["status"] == "succeeded"
    redeliver(stack, "payment_intent.succeeded")
    settle()
    # Then one email and one SMS, in Norwegian, saying it is the no-show fee
    [mail], [sms] = told("kari@example.no"), told("+4791234567")
    assert mail["subject"] == "Clinique Laval har trukket 25,00 CAD fra kortet ditt"
    assert "Gjelder: gebyr for uteblitt time, " in mail["body"]
    assert sms["body"].startswith("Clinique Laval: Vi har trukket 25,00 CAD fra kortet ditt Visa ····4242 (gebyr")


def test_a_charge_the_patient_authenticated_is_told_once_after_3ds(clinic: ClinicKeys, stack: TestStack) -> None:
    from tests.support.cards import settle

    appointment = book(clinic, "p-fr", email="luc@example.fr", locale="fr")
    save_card(clinic, "p-fr", ALWAYS_AUTHENTICATE)
    charged = charge(clinic, {"reason": "appointment", "appointment_id": appointment["appointment_id"],
                              "amount": {"amount": 8000, "currency": "CAD"}}, patient="p-fr").json()
    assert charged["status"] == "requires_action"
    settle()
    assert told("luc@example.fr") == []  # nothing was charged yet
    requests.post(charged["action_url"], data={"result": "complete"}, allow_redirects=False, timeout=10)
    path = patient_path(clinic, "p-fr", f"/charges/{charged['charge_id']}")
    wait_for(lambda: clinic.staff().get(path).json()["status"] == "succeeded")
    settle()
    [mail] = told("luc@example.fr")
    assert mail["subject"] == "Clinique Laval a débité 80,00 CAD de votre carte"
    assert "Motif : votre rendez-vous " in mail["body"]


def test_twenty_concurrent_deliveries_of_a_success_tell_the_patient_once(clinic: ClinicKeys, stack: TestStack) -> None:
    import json
    import threading
    import time

    from clinicpay import secrets
    from local.sandboxes.stripe import sign
    from tests.support.cards import settle
    from tests.support.ownership import hold

    book(clinic, "p-1", email="ana@example.ca", phone="+15145550100")
    save_card(clinic, "p-1", VISA)
    sandbox = stack.sandbox_url("stripe")
    # Given a charge left processing (Stripe held our request), whose events Stripe holds back too
    hold(sandbox)
    try:
        requests.post(f"{sandbox}/_control/fail-next", json={"status": "hold", "seconds": 20}, timeout=10)
        first = charge(clinic, {"reason": "other", "amount": {"amount": 4200, "currency": "CAD"}}, key="race-1")
        assert first.status == 202 and first.json()["status"] == "processing"
        requests.post(f"{sandbox}/_control/release", timeout=10)
        [event] = wait_for(lambda: sandbox_events(stack, "payment_intent.succeeded") or None)
        # When twenty deliveries of its success (each a separate event) reach our endpoint at once
        secret = str(secrets.read_credentials(clinic.clinic_id, "stripe", fresh=True)["webhook_secret"])
        start, answers = threading.Barrier(20), []

        def deliver(n: int) -> None:
            raw = json.dumps({**event, "id": f"{event['id']}_{n}"}).encode()
            start.wait()
            answers.append(ApiClient().request("POST", f"/webhooks/stripe/{clinic.clinic_id}", raw=raw, headers={
                "Content-Type": "application/json", "Stripe-Signature": sign(secret, raw, int(time.time()))}).status)

        threads = [threading.Thread(target=deliver, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [200] * 20
    finally:
        hold(sandbox, False)
    settle()
    # Then the charge succeeded, and the patient got one email and one SMS
    path = patient_path(clinic, "p-1", f"/charges/{first.json()['charge_id']}")
    assert clinic.staff().get(path).json()["status"] == "succeeded"
    assert len(told("ana@example.ca")) == 1 and len(told("+15145550100")) == 1
    assert "(clinic services)" in told("+15145550100")[0]["body"]


def test_a_charge_message_sns_throttles_waits_in_the_outbox_and_is_sent_once(clinic: ClinicKeys) -> None:
    from clinicpay.deadline import AWS_TOTAL_ATTEMPTS
    from local import apigw, aws_faults
    from tests.integration.test_message_outbox import kept, make_due

    book(clinic, "p-1", email="ana@example.ca", phone="+15145550101")
    save_card(clinic, "p-1", VISA)
    # Given SNS throttles the next SMS, each of botocore's own attempts
    aws_faults.refuse_next("sns", AWS_TOTAL_ATTEMPTS, "Throttled")
    # When staff charge the card
    assert charge(clinic, {"reason": "other", "amount": {"amount": 1500, "currency": "CAD"}}).status == 201
    # Then the email went, and the SMS waits in the message outbox
    assert len(told("ana@example.ca")) == 1 and told("+15145550101") == []
    [item] = [i for i in kept() if i.get("kind") == "card_charged"]
    assert (item["channel"], item["last_error"]) == ("sms", "Throttled")
    # When the message-retry job runs once it is due, twice
    make_due(item)
    apigw.invoke_job("message-retry")
    apigw.invoke_job("message-retry")
    # Then the patient got the SMS once
    assert len(told("+15145550101")) == 1


def test_a_charge_settled_by_card_reconcile_is_told_once_then_its_late_webhook_says_nothing(
        clinic: ClinicKeys, stack: TestStack) -> None:
    from tests.integration.test_tokenize_undecided import run_reconcile
    from tests.support.cards import settle
    from tests.support.ownership import hold

    book(clinic, "p-es", email="diego@example.cl", phone="+56961234568", locale="es")
    save_card(clinic, "p-es", VISA)
    sandbox = stack.sandbox_url("stripe")
    # Given a charge left undecided, and Stripe's events held back (as if our endpoint were down)
    hold(sandbox)
    try:
        requests.post(f"{sandbox}/_control/fail-next", json={"status": "hold", "seconds": 20}, timeout=10)
        first = charge(clinic, {"reason": "other", "amount": {"amount": 3300, "currency": "CAD"}}, key="rec-1",
                       patient="p-es")
        assert first.status == 202 and first.json()["status"] == "processing"
        requests.post(f"{sandbox}/_control/release", timeout=10)
        wait_for(lambda: sandbox_events(stack, "payment_intent.succeeded") or None)
        # When the card-reconcile job asks Stripe about it
        assert run_reconcile(clinic, minutes=10)["outcomes"] == {"applied": 1}
        assert len(told("diego@example.cl")) == 1 and len(told("+56961234568")) == 1
    finally:
        # And then the held events reach our endpoint after all
        hold(sandbox, False)
    redeliver(stack, "payment_intent.succeeded")
    settle()
    # Then the patient was told once, in Spanish
    [mail], [sms] = told("diego@example.cl"), told("+56961234568")
    assert mail["subject"] == "Clinique Laval cobró 33,00 CAD a tu tarjeta"
    assert "Concepto: servicios de la clínica" in mail["body"]
    assert sms["body"].startswith("Clinique Laval: cobramos 33,00 CAD a tu tarjeta Visa ····4242")


# ------------------------------------------------------------------ listing a patient's charges (issue 11)
def test_the_list_shows_only_this_patients_charges_at_this_clinic_newest_first(clinic: ClinicKeys,
                                                                                stack: TestStack) -> None:
    # Given a patient charged twice (the first partly refunded), another patient charged once, and the
    # same patient id at another clinic, charged too
    book(clinic, "p-1")
    card = save_card(clinic, "p-1", VISA)
    first = charge(clinic, {"reason": "other", "amount": {"amount": 3000, "currency": "CAD"}})
    second = charge(clinic, {"reason": "other", "amount": {"amount": 4500, "currency": "CAD"}})
    assert first.status == second.status == 201, (first.body, second.body)
    refunded = clinic.staff().post(patient_path(clinic, "p-1", f"/charges/{first.json()['charge_id']}/refunds"),
                                   json={"amount": {"amount": 1000, "currency": "CAD"}})
    assert refunded.status == 201 and refunded.json()["status"] == "succeeded", refunded.body
    book(clinic, "p-2")
    save_card(clinic, "p-2", VISA)
    assert charge(clinic, {"reason": "other", "amount": {"amount": 999, "currency": "CAD"}}, patient="p-2").status == 201
    other = new_clinic(stack)
    book(other, "p-1")
    save_card(other, "p-1", VISA)
    assert charge(other, {"reason": "other", "amount": {"amount": 777, "currency": "CAD"}}).status == 201

    # When staff list p-1's charges
    listed = clinic.staff().get(patient_path(clinic, "p-1", "/charges"))

    # Then only p-1's two charges at this clinic, newest first, with what was given back and the card
    assert listed.status == 200, listed.body
    charges = listed.json()["charges"]
    assert [c["charge_id"] for c in charges] == [second.json()["charge_id"], first.json()["charge_id"]]
    assert [c["amount"]["amount"] for c in charges] == [4500, 3000]
    assert [c["status"] for c in charges] == ["succeeded", "partially_refunded"]
    assert [c["amount_refunded"]["amount"] for c in charges] == [0, 1000]
    assert all(c["reason"] == "other" and c["appointment_id"] is None and c["created_at"] for c in charges)
    assert charges[0]["card"] == {"brand": card["brand"], "last4": card["last4"]}
    # The admin may read it too
    assert clinic.admin().get(patient_path(clinic, "p-1", "/charges")).json()["charges"] == charges
    # The other clinic sees its own p-1 only, and p-2 is no patient of it
    assert [c["amount"]["amount"] for c in other.staff().get(patient_path(other, "p-1", "/charges")).json()[
        "charges"]] == [777]
    missing = other.staff().get(patient_path(other, "p-2", "/charges"))
    assert missing.status == 404 and missing.json()["error"]["code"] == "not_found", missing.body
    # A publishable key is not a staff key; another clinic's staff key does not open this clinic's list
    assert clinic.widget().get(patient_path(clinic, "p-1", "/charges")).status == 401
    assert other.staff().get(patient_path(clinic, "p-1", "/charges")).status == 404
