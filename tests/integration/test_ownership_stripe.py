"""Stripe: two clinics of one owner on one Stripe account, each with its own webhook endpoint; Stripe
delivers every event of the account to both (issue 8, items 1, 2 and 6). A card is saved for the
clinic that asked for it, and only there; a charge is settled only in the clinic that made it; a
payment-link payment pays only its own clinic's appointment; whichever endpoint hears first. Forged
signatures cost at most one Secrets Manager read a minute.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
import requests

from clinicpay.secrets import secret_name
from local.sandboxes.stripe import sign
from tests.support.api import ApiClient
from tests.support.cards import (
    ALWAYS_AUTHENTICATE,
    STAFF_CONSENT,
    VISA,
    connect_stripe,
    local_path,
    patient_path,
    settle,
    type_card,
    wait_for,
)
from tests.support.clinics import ClinicKeys, add_service, create_clinic
from tests.support.env import TestStack
from tests.support.ownership import age_cached_secret, deliver, event_records, foreign, hold, secrets_manager_reads

OWNER_KEY = "sk_test_owner_two_branches_ca"
T = 10


@dataclass
class Branch:
    keys: ClinicKeys
    endpoint_id: str
    webhook_secret: str

    @property
    def clinic_id(self) -> str:
        return self.keys.clinic_id


def branch(stack: TestStack, name: str) -> Branch:
    keys = create_clinic(country="CA", currency="CAD", timezone="America/Toronto", locale="en", name=name)
    secret = connect_stripe(keys, stack.sandbox_url("stripe"), stack.base_url, secret_key=OWNER_KEY)
    endpoints = requests.get(f"{stack.sandbox_url('stripe')}/v1/webhook_endpoints", timeout=T,
                             headers={"Authorization": f"Bearer {OWNER_KEY}"}).json()["data"]
    endpoint_id = next(e["id"] for e in endpoints if e["url"].endswith(f"/webhooks/stripe/{keys.clinic_id}"))
    add_service(keys, "consulta", 8000, "CAD", online=False, no_show_fee=2500)
    add_service(keys, "online", 12000, "CAD", online=True)
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "stripe"})
    return Branch(keys, endpoint_id, secret)


@pytest.fixture
def branches(stack: TestStack) -> tuple[Branch, Branch]:
    settle(stack.sandbox_url("stripe"))
    return branch(stack, "Clinique Nord"), branch(stack, "Clinique Sud")


def book(b: Branch, appointment_id: str, service: str = "consulta") -> dict[str, Any]:
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0).isoformat()
    created = b.keys.staff().post(b.keys.path("/appointments"), json={
        "appointment_id": appointment_id, "patient": {"id": "p-1", "name": "Ana", "email": f"{b.clinic_id}@example.ca"},
        "service_id": service, "starts_at": starts, "booked_by": "staff"})
    assert created.status == 201, created.body
    return dict(created.json())


def cards_of(b: Branch) -> list[dict[str, Any]]:
    return list(b.keys.staff().get(patient_path(b.keys, "p-1", "/cards")).json()["cards"])


def events(stack: TestStack, event_type: str, **match: str) -> list[dict[str, Any]]:
    rows = requests.get(f"{stack.sandbox_url('stripe')}/_control/events", params={"type": event_type},
                        timeout=T).json()["events"]
    return [r for r in rows if all(r["data"]["object"].get("metadata", {}).get(k) == v for k, v in match.items())]


def start_and_type_card(b: Branch, number: str) -> None:
    """Staff start a card setup; the patient types the card on Stripe's page (webhooks are held)."""
    started = b.keys.staff().post(patient_path(b.keys, "p-1", "/card-setup"), json={"consent": STAFF_CONSENT})
    assert started.status == 201, started.body
    assert type_card(started.json()["url"], number).status_code == 303


def in_order(first_owner: bool, owner: Branch, other: Branch) -> tuple[Branch, Branch]:
    return (owner, other) if first_owner else (other, owner)


ORDERS = pytest.mark.parametrize("owner_first", [True, False], ids=["owner-endpoint-first", "other-endpoint-first"])


@ORDERS
def test_a_card_is_saved_for_the_clinic_that_asked_and_only_there_in_either_order(
        stack: TestStack, branches: tuple[Branch, Branch], owner_first: bool) -> None:
    north, south = branches
    stripe = stack.sandbox_url("stripe")
    hold(stripe)
    for b in branches:
        book(b, "ap-1")
    # When each clinic saves a card for its patient p-1 and both endpoints hear every setup event
    answers = []
    for owner, other in ((north, south), (south, north)):
        start_and_type_card(owner, VISA)
        [event] = events(stack, "setup_intent.succeeded", clinic_id=owner.clinic_id)
        answers += [deliver(stripe, event["id"], endpoint_id=b.endpoint_id) for b in in_order(owner_first, owner, other)]
    # Then every delivery was acknowledged, and each clinic holds exactly its own card
    assert answers == [200] * 4
    for b, other in ((north, south), (south, north)):
        assert len(cards_of(b)) == 1
        [theirs] = events(stack, "setup_intent.succeeded", clinic_id=other.clinic_id)
        assert foreign(b.clinic_id, table="CardsTable") == {theirs["id"]: "other_clinic"}


@ORDERS
def test_a_charge_is_settled_only_in_the_clinic_that_made_it(stack: TestStack, branches: tuple[Branch, Branch],
                                                             owner_first: bool) -> None:
    north, south = branches
    stripe = stack.sandbox_url("stripe")
    hold(stripe)
    # Given both clinics charged patient p-1 for appointment ap-1 with a card that needs authentication
    charges = {}
    for b in branches:
        book(b, "ap-1")
        start_and_type_card(b, ALWAYS_AUTHENTICATE)
        [saved] = events(stack, "setup_intent.succeeded", clinic_id=b.clinic_id)
        assert deliver(stripe, saved["id"], endpoint_id=b.endpoint_id) == 200
        charged = b.keys.staff().post(patient_path(b.keys, "p-1", "/charges"), json={
            "reason": "appointment", "appointment_id": "ap-1", "amount": {"amount": 8000, "currency": "CAD"}})
        assert charged.status == 201 and charged.json()["status"] == "requires_action", charged.body
        charges[b.clinic_id] = charged.json()
    # When only north's patient completes the authentication
    action_url = charges[north.clinic_id]["action_url"]
    done = requests.post(action_url, data={"result": "complete"}, allow_redirects=False, timeout=T)
    path_only, _, query = local_path(done.headers["Location"]).partition("?")
    ApiClient().get(path_only, query=dict(parse_qsl(query)))
    [succeeded] = events(stack, "payment_intent.succeeded", clinic_id=north.clinic_id)
    # and Stripe tells both endpoints
    answers = [deliver(stripe, succeeded["id"], endpoint_id=b.endpoint_id) for b in in_order(owner_first, north, south)]
    # Then north's charge and appointment are settled, south's are untouched
    assert answers == [200, 200]

    def charge_of(b: Branch) -> dict[str, Any]:
        return dict(b.keys.staff().get(patient_path(b.keys, "p-1", f"/charges/{charges[b.clinic_id]['charge_id']}")).json())

    assert charge_of(north)["status"] == "succeeded"
    assert north.keys.staff().get(north.keys.path("/appointments/ap-1")).json()["payment_status"] == "paid"
    assert charge_of(south)["status"] == "requires_action"
    assert south.keys.staff().get(south.keys.path("/appointments/ap-1")).json()["payment_status"] != "paid"
    assert foreign(south.clinic_id, table="CardsTable") == {succeeded["id"]: "other_clinic"}


@ORDERS
def test_a_payment_link_paid_through_the_shared_account_pays_only_its_own_clinic(
        stack: TestStack, branches: tuple[Branch, Branch], owner_first: bool) -> None:
    north, south = branches
    stripe = stack.sandbox_url("stripe")
    hold(stripe)
    booked = {b.clinic_id: book(b, "ap-online", service="online") for b in branches}
    token = booked[north.clinic_id]["payment_link"]["url"].rsplit("/", 1)[1]
    checkout = ApiClient().get(f"/pay/{token}").headers["Location"]
    assert type_card(checkout, VISA).status_code in (302, 303)
    [completed] = events(stack, "checkout.session.completed", clinic_id=north.clinic_id)
    answers = [deliver(stripe, completed["id"], endpoint_id=b.endpoint_id) for b in in_order(owner_first, north, south)]
    assert answers == [200, 200]
    assert north.keys.staff().get(north.keys.path("/appointments/ap-online")).json()["payment_status"] == "paid"
    assert south.keys.staff().get(south.keys.path("/appointments/ap-online")).json()["payment_status"] == "unpaid"
    assert foreign(south.clinic_id) == {completed["id"]: "other_clinic"}  # the link flow's record, per clinic


def test_a_payment_intent_nobody_here_made_is_foreign(stack: TestStack, branches: tuple[Branch, Branch]) -> None:
    # Another integration on the owner's account charges a customer of its own
    north, _ = branches
    stripe = stack.sandbox_url("stripe")
    auth = {"Authorization": f"Bearer {OWNER_KEY}"}
    made = requests.post(f"{stripe}/v1/payment_intents", headers=auth, timeout=T, data={
        "amount": 8000, "currency": "cad", "payment_method": "pm_card_visa", "confirm": "true",
        "payment_method_types[]": "card"})
    assert made.status_code == 200, made.text
    wait_for(lambda: foreign(north.clinic_id, table="CardsTable"))
    assert set(foreign(north.clinic_id, table="CardsTable").values()) == {"unknown_object"}


def test_a_thousand_forged_webhooks_read_secrets_manager_at_most_once(stack: TestStack,
                                                                      branches: tuple[Branch, Branch]) -> None:
    north, _ = branches
    body = json.dumps({"id": "evt_forged", "object": "event", "type": "setup_intent.succeeded", "created": 1,
                       "data": {"object": {"id": "seti_forged", "metadata": {"clinic_id": north.clinic_id}}}}).encode()
    path = f"/webhooks/stripe/{north.clinic_id}"

    def forged() -> int:
        header = sign("whsec_forger", body, int(time.time()))
        return ApiClient().post(path, raw=body, headers={"Stripe-Signature": header}).status

    assert forged() == 401  # this container reads the clinic's credentials once
    age_cached_secret(north.clinic_id, "stripe")
    with secrets_manager_reads() as reads:
        answers = [forged() for _ in range(1000)]
    assert answers == [401] * 1000
    assert reads == [secret_name(north.clinic_id, "stripe")]
    assert event_records(north.clinic_id, table="CardsTable") == []
    # a genuine delivery still verifies with what we hold
    genuine = ApiClient().post(path, raw=body, headers={"Stripe-Signature": sign(north.webhook_secret, body,
                                                                                 int(time.time()))})
    assert genuine.status == 200


def test_event_records_carry_the_clinic_in_their_key(stack: TestStack, branches: tuple[Branch, Branch]) -> None:
    north, south = branches
    hold(stack.sandbox_url("stripe"))
    book(north, "ap-1")
    start_and_type_card(north, VISA)
    [event] = events(stack, "setup_intent.succeeded", clinic_id=north.clinic_id)
    for b in branches:
        deliver(stack.sandbox_url("stripe"), event["id"], endpoint_id=b.endpoint_id)
    keys = sorted(str(i["pk"]) for i in boto3.resource("dynamodb").Table("CardsTable").scan()["Items"]
                  if str(i["pk"]).startswith("EVENT#"))
    assert keys == sorted([f"EVENT#{north.clinic_id}#stripe#{event['id']}", f"EVENT#{south.clinic_id}#stripe#{event['id']}"])
