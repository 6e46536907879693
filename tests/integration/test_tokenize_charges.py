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
