"""Fintoc: no webhook moves money that is not its own (issue 8, items 1, 2 and 6).

Two clinics of one owner share a Fintoc account: each registers its own webhook endpoint, and Fintoc
(the sandbox, like Fintoc) delivers every event of the account to both. Each clinic must get its own
payments applied exactly once, in either order of delivery, even with the same appointment ids; an
event of the other clinic is acknowledged and changes nothing; forged signatures cost at most one
Secrets Manager read a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests

from clinicpay.providers.fintoc.adapter import SUBSCRIBED_EVENTS
from clinicpay.secrets import secret_name
from local import outbox
from local.apigw import HttpResult
from tests.support.api import ApiClient
from tests.support.clinics import ClinicKeys, add_service, create_clinic
from tests.support.env import TestStack
from tests.support.ownership import (
    age_cached_secret,
    deliver,
    event_records,
    foreign,
    hold,
    let_a_minute_pass,
    secrets_manager_reads,
)
from tests.support.qr import wait_for

OWNER_KEY = "sk_test_owner_two_branches"
PRICE = 25000


@dataclass
class Branch:
    keys: ClinicKeys
    endpoint_id: str
    webhook_secret: str

    @property
    def clinic_id(self) -> str:
        return self.keys.clinic_id


def connect(stack: TestStack, keys: ClinicKeys, secret_key: str = OWNER_KEY) -> Branch:
    """What a clinic admin does: register this clinic's endpoint on the (shared) account, for the
    events we read, then store the credentials."""
    fintoc = stack.sandbox_url("fintoc")
    endpoint = requests.post(f"{fintoc}/v1/webhook_endpoints", headers={"Authorization": secret_key}, timeout=10,
                             json={"url": f"{stack.base_url}/webhooks/fintoc/{keys.clinic_id}",
                                   "enabled_events": SUBSCRIBED_EVENTS}).json()
    stored = keys.admin().put(keys.path("/gateways/fintoc"), json={
        "secret_key": secret_key, "public_key": "pk_test_owner", "webhook_secret": endpoint["secret"]})
    assert stored.status == 200, stored.body
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "fintoc"})
    add_service(keys, "consulta", PRICE)
    return Branch(keys, endpoint["id"], endpoint["secret"])


@pytest.fixture
def branches(stack: TestStack) -> tuple[Branch, Branch]:
    return (connect(stack, create_clinic(name="Sucursal Norte")), connect(stack, create_clinic(name="Sucursal Sur")))


def book(branch: Branch, appointment_id: str, email: str) -> dict[str, Any]:
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0).isoformat()
    created = branch.keys.staff().post(branch.keys.path("/appointments"), json={
        "appointment_id": appointment_id, "patient": {"id": "p-1", "name": "Ana", "email": email},
        "service_id": "consulta", "starts_at": starts, "booked_by": "staff"})
    assert created.status == 201, created.body
    return dict(created.json())


def checkout_of(appointment: dict[str, Any]) -> str:
    """The patient opens the link: the checkout session we create and store."""
    token = appointment["payment_link"]["url"].rsplit("/", 1)[1]
    opened = ApiClient().get(f"/pay/{token}")
    assert opened.status == 303, opened.body
    return str(opened.headers["Location"])


def pay(checkout: str) -> None:
    assert requests.post(f"{checkout}/pay", allow_redirects=False, timeout=10).status_code == 303


def appointment(branch: Branch, appointment_id: str) -> dict[str, Any]:
    return dict(branch.keys.staff().get(branch.keys.path(f"/appointments/{appointment_id}")).json())


def events_for(stack: TestStack, session_id: str) -> list[dict[str, Any]]:
    """The account's events about one checkout session (its payment intent names it), oldest first."""
    rows = requests.get(f"{stack.sandbox_url('fintoc')}/_control/events", timeout=10).json()["events"]
    found = []
    for row in rows:
        data = json.loads(row["body"])["data"]
        if session_id in (data.get("id"), (data.get("metadata") or {}).get("checkout_session_id")):
            found.append(row)
    return found


def payment_rows(clinic_id: str) -> list[dict[str, Any]]:
    items = boto3.resource("dynamodb").Table("AppointmentsTable").scan()["Items"]
    return [i for i in items if i["pk"] == f"CLINIC#{clinic_id}" and str(i["sk"]).startswith("PAYMENT#")]


def signed_post(branch: Branch, body: bytes, secret: str | None = None) -> HttpResult:
    """A delivery to this clinic's endpoint signed as Fintoc signs (by default with its endpoint secret)."""
    t = int(time.time())
    digest = hmac.new((secret or branch.webhook_secret).encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return ApiClient().post(f"/webhooks/fintoc/{branch.clinic_id}", raw=body,
                            headers={"Fintoc-Signature": f"t={t},v1={digest}", "Content-Type": "application/json"})


# --- two branches on one account ----------------------------------------------------------------------

@pytest.mark.parametrize("owner_first", [True, False], ids=["owner-endpoint-first", "other-endpoint-first"])
def test_two_clinics_on_one_account_each_get_their_own_payment_once_in_either_order(
        stack: TestStack, branches: tuple[Branch, Branch], owner_first: bool) -> None:
    north, south = branches
    fintoc = stack.sandbox_url("fintoc")
    hold(fintoc)
    # Given the same appointment id in both clinics, each patient on their own checkout
    booked = {b.clinic_id: book(b, "ap-shared-1", f"{b.clinic_id}@example.cl") for b in branches}
    checkouts = {b.clinic_id: checkout_of(booked[b.clinic_id]) for b in branches}
    assert checkouts[north.clinic_id] != checkouts[south.clinic_id]  # per-clinic idempotency keys
    for checkout in checkouts.values():
        pay(checkout)
    # When every event of the account reaches both endpoints, in the order under test
    answers = []
    for owner, other in ((north, south), (south, north)):
        session_id = checkouts[owner.clinic_id].rsplit("/", 1)[1]
        events = events_for(stack, session_id)
        assert {json.loads(e["body"])["type"] for e in events} == {"payment_intent.succeeded",
                                                                   "checkout_session.finished"}
        for event in events:
            for receiver in ((owner, other) if owner_first else (other, owner)):
                answers.append(deliver(fintoc, event["id"], endpoint_id=receiver.endpoint_id))
    # Then every delivery was acknowledged
    assert answers == [200] * 8
    # and each appointment is paid once, by its own payment, with its own receipt
    for branch in branches:
        paid = appointment(branch, "ap-shared-1")
        assert paid["payment_status"] == "paid"
        own_events = events_for(stack, checkouts[branch.clinic_id].rsplit("/", 1)[1])
        own_payment = next(json.loads(e["body"])["data"]["id"] for e in own_events
                           if json.loads(e["body"])["type"] == "payment_intent.succeeded")
        assert paid["payment"]["reference"] == own_payment
        assert [r["reference"] for r in payment_rows(branch.clinic_id)] == [own_payment]
        receipts = [m for m in outbox.messages(to=f"{branch.clinic_id}@example.cl") if "Recibimos" in (m["subject"] or "")]
        assert len(receipts) == 1
    # and each clinic recorded the other's two events as foreign, under its own key
    for branch, other in ((north, south), (south, north)):
        other_events = {e["id"] for e in events_for(stack, checkouts[other.clinic_id].rsplit("/", 1)[1])}
        assert foreign(branch.clinic_id) == dict.fromkeys(other_events, "other_clinic")


def test_eight_payments_on_a_shared_account_all_land_in_their_own_clinic(stack: TestStack,
                                                                           branches: tuple[Branch, Branch]) -> None:
    # The measurement, automatic delivery this time: 4 payments per clinic, ids colliding.
    ids = [f"ap-{n}" for n in range(4)]
    for branch in branches:
        for appointment_id in ids:
            pay(checkout_of(book(branch, appointment_id, f"p-{appointment_id}@example.cl")))

    def all_paid() -> bool:
        return all(appointment(b, a)["payment_status"] == "paid" for b in branches for a in ids)

    wait_for(all_paid, timeout=30)
    references = [appointment(b, a)["payment"]["reference"] for b in branches for a in ids]
    assert len(set(references)) == 8  # no appointment paid by another clinic's payment
    for branch in branches:
        assert len(payment_rows(branch.clinic_id)) == 4
        # every event of the other clinic (4 payment intents, 4 finished sessions) is foreign here
        wait_for(lambda b=branch: len(foreign(b.clinic_id)) == 8, timeout=30)  # type: ignore[misc]
        assert set(foreign(branch.clinic_id).values()) == {"other_clinic"}


# --- one clinic: what is not ours changes nothing ---------------------------------------------------

def _paid_event(stack: TestStack, branch: Branch, appointment_id: str) -> tuple[dict[str, Any], str]:
    """A genuine payment_intent.succeeded for this clinic's checkout, held back; and the session id."""
    hold(stack.sandbox_url("fintoc"))
    checkout = checkout_of(book(branch, appointment_id, "ana@example.cl"))
    pay(checkout)
    session_id = checkout.rsplit("/", 1)[1]
    [event] = [json.loads(e["body"]) for e in events_for(stack, session_id)
               if json.loads(e["body"])["type"] == "payment_intent.succeeded"]
    return event, session_id


@pytest.mark.parametrize(("change", "reason"), [
    ({"amount": PRICE - 1}, "amount_mismatch"),
    ({"amount": PRICE * 100, "currency": "MXN"}, "amount_mismatch"),
    ({"metadata_session": "cs_never_stored"}, "unknown_session"),
    ({"metadata_appointment": "ap-not-here"}, "unknown_object"),
    ({"metadata_clinic": "cl_someone_else"}, "other_clinic"),
])
def test_a_signed_event_for_another_amount_currency_session_appointment_or_clinic_is_foreign(
        stack: TestStack, branches: tuple[Branch, Branch], change: dict[str, Any], reason: str) -> None:
    north, _ = branches
    event, _ = _paid_event(stack, north, "ap-1")
    data = event["data"]
    data["amount"] = change.get("amount", data["amount"])
    data["currency"] = change.get("currency", data["currency"])
    data["metadata"]["checkout_session_id"] = change.get("metadata_session", data["metadata"]["checkout_session_id"])
    data["metadata"]["appointment_id"] = change.get("metadata_appointment", data["metadata"]["appointment_id"])
    data["metadata"]["clinic_id"] = change.get("metadata_clinic", data["metadata"]["clinic_id"])
    # When Fintoc (signed with this clinic's endpoint secret) reports it
    answer = signed_post(north, json.dumps(event).encode())
    # Then it is acknowledged, recorded as foreign, and nothing else happened
    assert answer.status == 200 and answer.json()["outcomes"] == ["foreign"]
    assert foreign(north.clinic_id) == {event["id"]: reason}
    assert appointment(north, "ap-1")["payment_status"] == "unpaid"
    assert payment_rows(north.clinic_id) == []
    # and a repeat is a harmless duplicate
    assert signed_post(north, json.dumps(event).encode()).json()["outcomes"] == ["duplicate"]


def test_a_session_made_on_the_shared_account_outside_our_api_pays_nothing(stack: TestStack,
                                                                             branches: tuple[Branch, Branch]) -> None:
    # Given another integration on the owner's account makes a session that names our appointment
    north, _ = branches
    book(north, "ap-1", "ana@example.cl")
    fintoc = stack.sandbox_url("fintoc")
    session = requests.post(f"{fintoc}/v1/checkout_sessions", headers={"Authorization": OWNER_KEY}, timeout=10, json={
        "amount": PRICE, "currency": "CLP", "success_url": "https://shop.example", "cancel_url": "https://shop.example",
        "metadata": {"clinic_id": north.clinic_id, "appointment_id": "ap-1"}}).json()
    # When it is paid and Fintoc tells our endpoint
    pay(session["redirect_url"])
    wait_for(lambda: len(foreign(north.clinic_id)) == 2)
    # Then our appointment is not paid by it: we never stored that session
    assert set(foreign(north.clinic_id).values()) == {"unknown_session"}
    assert appointment(north, "ap-1")["payment_status"] == "unpaid"


def test_a_payment_intent_that_does_not_name_its_session_proves_nothing_and_the_session_event_pays(
        stack: TestStack, branches: tuple[Branch, Branch]) -> None:
    # Real Fintoc may not copy the session into the payment intent's metadata (the sandbox does).
    north, _ = branches
    event, session_id = _paid_event(stack, north, "ap-1")
    del event["data"]["metadata"]["checkout_session_id"]
    assert signed_post(north, json.dumps(event).encode()).json()["outcomes"] == ["ignored"]
    assert appointment(north, "ap-1")["payment_status"] == "unpaid"
    [finished] = [e for e in events_for(stack, session_id) if json.loads(e["body"])["type"] == "checkout_session.finished"]
    assert deliver(stack.sandbox_url("fintoc"), finished["id"], endpoint_id=north.endpoint_id) == 200
    assert appointment(north, "ap-1")["payment_status"] == "paid"


def test_a_link_made_before_for_the_other_clinic_with_the_same_ids_is_not_reused(stack: TestStack,
                                                                                  branches: tuple[Branch, Branch]) -> None:
    # The old idempotency key appt-{id}-{n} made Fintoc hand clinic B clinic A's checkout back.
    north, south = branches
    first = checkout_of(book(north, "ap-7", "a@example.cl"))
    second = checkout_of(book(south, "ap-7", "b@example.cl"))
    assert first != second
    session = requests.get(f"{stack.sandbox_url('fintoc')}/v1/checkout_sessions/{second.rsplit('/', 1)[1]}",
                           headers={"Authorization": OWNER_KEY}, timeout=10).json()
    assert session["metadata"] == {"clinic_id": south.clinic_id, "appointment_id": "ap-7"}


# --- forged signatures ------------------------------------------------------------------------------

def test_a_thousand_forged_webhooks_read_secrets_manager_at_most_once(stack: TestStack,
                                                                      branches: tuple[Branch, Branch]) -> None:
    north, _ = branches
    book(north, "ap-1", "ana@example.cl")
    body = json.dumps({"id": "evt_forged", "type": "payment_intent.succeeded", "mode": "test",
                       "created_at": datetime.now(UTC).isoformat(), "object": "event",
                       "data": {"id": "pi_forged", "amount": PRICE, "currency": "CLP", "status": "succeeded",
                                "metadata": {"appointment_id": "ap-1"}}}).encode()
    # Given this container's copy of the clinic's credentials is over a minute old
    assert signed_post(north, b"{}", secret="whsec_warm_up").status == 401  # reads them once
    age_cached_secret(north.clinic_id, "fintoc")
    # When a thousand deliveries signed with a wrong secret arrive
    with secrets_manager_reads() as reads:
        answers = [signed_post(north, body, secret="whsec_forger").status for _ in range(1000)]
    # Then each is refused, and Secrets Manager was read once (a rotation would have been seen)
    assert answers == [401] * 1000
    assert reads == [secret_name(north.clinic_id, "fintoc")]
    assert event_records(north.clinic_id) == [] and appointment(north, "ap-1")["payment_status"] == "unpaid"


def test_a_rotated_webhook_secret_is_read_on_the_first_bad_signature_and_within_a_forged_minute_after_it(
        stack: TestStack, branches: tuple[Branch, Branch]) -> None:
    north, _ = branches
    event, _ = _paid_event(stack, north, "ap-1")
    body = json.dumps(event).encode()
    assert signed_post(north, b"{}", secret="whsec_warm_up").status == 401
    age_cached_secret(north.clinic_id, "fintoc")
    # Given a forgery spent this minute's re-read, then the clinic rotated its endpoint secret (in
    # Secrets Manager, as another container would)
    with secrets_manager_reads() as reads:
        assert signed_post(north, body, secret="whsec_forger").status == 401
    assert len(reads) == 1
    rotated = "whsec_rotated_secret"
    boto3.client("secretsmanager").put_secret_value(
        SecretId=secret_name(north.clinic_id, "fintoc"),
        SecretString=json.dumps({"secret_key": OWNER_KEY, "public_key": "pk_test_owner", "webhook_secret": rotated}))
    age_cached_secret(north.clinic_id, "fintoc")
    # When Fintoc signs with the new secret within that minute, it is refused (and retried by Fintoc)
    assert signed_post(north, body, secret=rotated).status == 401
    # Then once the minute is over, the first delivery re-reads the secret and is applied
    let_a_minute_pass()
    with secrets_manager_reads() as reads:
        answer = signed_post(north, body, secret=rotated)
    assert answer.status == 200 and answer.json()["outcomes"] == ["applied"]
    assert len(reads) == 1
    assert appointment(north, "ap-1")["payment_status"] == "paid"
