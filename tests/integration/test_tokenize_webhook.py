"""Stripe's webhook, routed to tokenize: verified on the raw body, applied exactly once, in any order
(issue 3), and payment-link payments through Stripe Checkout handed to the payment-events use case."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from local.sandboxes.stripe import sign
from tests.support.api import ApiClient
from tests.support.cards import (
    ALWAYS_AUTHENTICATE,
    VISA,
    book,
    new_clinic,
    patient_path,
    save_card,
    type_card,
    wait_for,
)
from tests.support.clinics import ClinicKeys, add_service
from tests.support.env import TestStack


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = new_clinic(stack)
    book(keys, "p-1")
    return keys


def control(stack: TestStack, path: str, **params: str) -> Any:
    return requests.get(f"{stack.sandbox_url('stripe')}/_control/{path}", params=params, timeout=10).json()


def events_of(stack: TestStack, event_type: str) -> list[dict[str, Any]]:
    return list(control(stack, "events", type=event_type)["events"])


def deliveries_of(stack: TestStack, event_id: str) -> list[dict[str, Any]]:
    return list(control(stack, "deliveries", event_id=event_id)["deliveries"])


def cards_of(clinic: ClinicKeys) -> list[dict[str, Any]]:
    return list(clinic.staff().get(patient_path(clinic, "p-1", "/cards")).json()["cards"])


def post_event(clinic: ClinicKeys, body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return ApiClient().request("POST", f"/webhooks/stripe/{clinic.clinic_id}", raw=body, headers=headers)


def secret_of(clinic: ClinicKeys) -> str:
    from clinicpay import secrets

    return str(secrets.read_credentials(clinic.clinic_id, "stripe", fresh=True)["webhook_secret"])


def test_a_missing_bad_or_stale_signature_is_401_and_changes_nothing(clinic: ClinicKeys, stack: TestStack) -> None:
    # Given a genuine "card saved" event, held back from our endpoint
    save_card(clinic, "p-1", VISA)
    [event] = events_of(stack, "setup_intent.succeeded")
    body = json.dumps({**event, "id": "evt_forged"}, indent=2).encode()
    secret = secret_of(clinic)
    for signature in (None, "t=1,v1=" + "0" * 64, sign("whsec_wrong", body, int(time.time())),
                      sign(secret, body, int(time.time()) - 301), sign(secret, body + b" ", int(time.time()))):
        # When it arrives unsigned, badly signed, signed with another secret, too old, or altered
        answer = post_event(clinic, body, signature)
        # Then 401
        assert answer.status == 401, signature
        assert answer.json()["error"]["code"] == "invalid_signature"
    # And the same bytes properly signed are accepted (and, being a repeat of a saved card, harmless)
    assert post_event(clinic, body, sign(secret, body, int(time.time()))).status == 200
    assert len(cards_of(clinic)) == 1


def test_an_unknown_clinic_is_404(clinic: ClinicKeys) -> None:
    body = b'{"id": "evt_1", "object": "event", "type": "setup_intent.succeeded", "created": 1, "data": {"object": {}}}'
    answer = ApiClient().request("POST", "/webhooks/stripe/cl_nobody", raw=body,
                                 headers={"Stripe-Signature": sign("whsec_x", body, 1)})
    assert answer.status == 404


def test_a_redelivered_event_is_applied_once(clinic: ClinicKeys, stack: TestStack) -> None:
    # Given a card saved by a setup_intent.succeeded event
    save_card(clinic, "p-1", VISA)
    [event] = events_of(stack, "setup_intent.succeeded")
    # When Stripe delivers it again, twice
    for _ in range(2):
        requests.post(f"{stack.sandbox_url('stripe')}/_control/redeliver/{event['id']}", timeout=10)
    # Then every delivery is acknowledged, and there is still one card
    wait_for(lambda: len([d for d in deliveries_of(stack, event["id"]) if d["status_code"] == 200]) == 3)
    assert len(cards_of(clinic)) == 1


def test_an_older_failure_delivered_after_the_success_never_undoes_it(clinic: ClinicKeys, stack: TestStack) -> None:
    # Given a charge that needed authentication, which the patient then completed
    appointment_id = book(clinic, "p-1")["appointment_id"]
    save_card(clinic, "p-1", ALWAYS_AUTHENTICATE)
    charged = clinic.staff().post(patient_path(clinic, "p-1", "/charges"), json={
        "reason": "appointment", "appointment_id": appointment_id, "amount": {"amount": 8000, "currency": "CAD"}}).json()
    requests.post(charged["action_url"], data={"result": "complete"}, allow_redirects=False, timeout=10)
    path = patient_path(clinic, "p-1", f"/charges/{charged['charge_id']}")
    wait_for(lambda: clinic.staff().get(path).json()["status"] == "succeeded")
    # When the older payment_failed (from the off-session attempt) is delivered again, late
    [failed] = events_of(stack, "payment_intent.payment_failed")
    requests.post(f"{stack.sandbox_url('stripe')}/_control/redeliver/{failed['id']}", timeout=10)
    wait_for(lambda: len(deliveries_of(stack, failed["id"])) >= 2)
    # Then the charge is still succeeded and the appointment still paid
    assert clinic.staff().get(path).json()["status"] == "succeeded"
    assert clinic.staff().get(clinic.path(f"/appointments/{appointment_id}")).json()["payment_status"] == "paid"


def test_a_card_detached_in_stripes_dashboard_leaves_our_list(clinic: ClinicKeys, stack: TestStack) -> None:
    # Given two cards, the first the default
    first = save_card(clinic, "p-1", VISA)
    second = save_card(clinic, "p-1", "5555555555554444")
    # When the clinic detaches the first in Stripe's dashboard
    key = f"sk_test_{clinic.clinic_id.replace('-', '_')}"
    [attached] = [e["data"]["object"] for e in events_of(stack, "setup_intent.succeeded")][:1]
    detached = requests.post(f"{stack.sandbox_url('stripe')}/v1/payment_methods/{attached['payment_method']}/detach",
                             headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert detached.status_code == 200
    # Then our list follows, and the remaining card is the default
    wait_for(lambda: [c["card_id"] for c in cards_of(clinic)] == [second["card_id"]])
    assert cards_of(clinic)[0]["is_default"] and first["card_id"] not in {c["card_id"] for c in cards_of(clinic)}


def test_a_payment_link_paid_through_stripe_checkout_marks_the_appointment_paid(clinic: ClinicKeys,
                                                                               stack: TestStack) -> None:
    # Given a clinic whose link payments go through Stripe, and an appointment that needs paying
    add_service(clinic, "online-visit", 6500, "CAD", online=True)
    assert clinic.admin().patch(clinic.path("/settings"), json={"default_gateway": "stripe"}).status == 200
    appointment = book(clinic, "p-2", service="online-visit")
    token = appointment["payment_link"]["url"].rsplit("/", 1)[1]
    # When the patient opens the link and pays on Stripe's page
    opened = ApiClient().get(f"/pay/{token}")
    assert opened.status == 303 and "/_sandbox/stripe/checkout/cs_test_" in opened.headers["Location"]
    paid = type_card(opened.headers["Location"], VISA)
    assert paid.status_code == 303 and f"/pay/{token}/result" in paid.headers["Location"]
    # Then checkout.session.completed reaches tokenize, which hands it to the payment-events use case
    def is_paid() -> bool:
        got = clinic.staff().get(clinic.path(f"/appointments/{appointment['appointment_id']}")).json()
        return bool(got["payment_status"] == "paid")
    wait_for(is_paid)
    got = clinic.staff().get(clinic.path(f"/appointments/{appointment['appointment_id']}")).json()
    assert got["payment"]["provider"] == "stripe" and got["payment"]["reference"].startswith("pi_")
    assert got["payment"]["amount"] == {"amount": 6500, "currency": "CAD"}
    # And the checkout amount at Stripe was in cents, lower-case currency
    [completed] = [e["data"]["object"] for e in events_of(stack, "checkout.session.completed")
                   if e["data"]["object"]["mode"] == "payment"]
    assert (completed["amount_total"], completed["currency"]) == (6500, "cad")
