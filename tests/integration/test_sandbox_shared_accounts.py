"""What the sandboxes must be able to reproduce for the ownership tests (issue 8), checked against the
sandboxes alone, without our client code: one provider account serving two endpoints, deliveries held
and sent one receiver at a time in a chosen order, another merchant's monobank invoice (signed with
the same key, unknown to our token), payments on registers whose amount is set in monobank's app,
and monobank's rate-limited /pubkey."""

from __future__ import annotations

import base64
import json

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.env import TestStack
from tests.support.qr import wait_for

T = 15


@pytest.fixture
def mono(stack: TestStack) -> str:
    return stack.sandbox_url("monobank")


def m(method: str, url: str, token: str, **kwargs: object) -> requests.Response:
    return requests.request(method, url, headers={"X-Token": token}, timeout=T, **kwargs)  # type: ignore[arg-type]


def rows_when(url: str, params: dict[str, str], count: int) -> list[dict]:
    """The delivery log once it has `count` rows."""
    def ready() -> list[dict] | None:
        rows = requests.get(url, params=params, timeout=T).json()["deliveries"]
        return rows if len(rows) == count else None

    return list(wait_for(ready))


def receivers(stack: TestStack) -> tuple[str, str]:
    """Two URLs that answer any POST with 200 and change nothing (a Checkbox sandbox control)."""
    base = f"{stack.sandbox_url('checkbox')}/_control/clear-faults"
    return f"{base}?receiver=a", f"{base}?receiver=b"


# --- monobank ----------------------------------------------------------------------------------------

def test_an_invoice_belongs_to_the_token_that_created_it(mono: str) -> None:
    created = m("POST", f"{mono}/api/merchant/invoice/create", "tok_owner", json={"amount": 4200}).json()
    mine = m("GET", f"{mono}/api/merchant/invoice/status", "tok_owner", params={"invoiceId": created["invoiceId"]})
    theirs = m("GET", f"{mono}/api/merchant/invoice/status", "tok_other", params={"invoiceId": created["invoiceId"]})
    assert mine.status_code == 200 and mine.json()["invoiceId"] == created["invoiceId"]
    assert theirs.status_code == 404 and theirs.json()["errCode"] == "NOT_FOUND"


def test_one_key_signs_every_merchants_webhooks(mono: str) -> None:
    key = serialization.load_pem_public_key(base64.b64decode(m("GET", f"{mono}/api/merchant/pubkey", "tok_a").json()["key"]))
    assert m("GET", f"{mono}/api/merchant/pubkey", "tok_b").json()["key"] == m(
        "GET", f"{mono}/api/merchant/pubkey", "tok_a").json()["key"]
    created = m("POST", f"{mono}/api/merchant/invoice/create", "tok_b", json={"amount": 4200}).json()
    requests.post(f"{mono}/_control/invoices/{created['invoiceId']}/pay", json={"deliver": False}, timeout=T)
    event = next(e for e in requests.get(f"{mono}/_control/events", params={"invoice_id": created["invoiceId"]},
                                         timeout=T).json()["events"] if e["status"] == "success")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(base64.b64decode(event["x_sign"]), event["body"].encode(), ec.ECDSA(hashes.SHA256()))


def test_pubkey_is_rate_limited_per_token_with_tmr(mono: str) -> None:
    assert requests.post(f"{mono}/_control/pubkey-limit", json={"calls": 2, "per_seconds": 60}, timeout=T).ok
    answers = [m("GET", f"{mono}/api/merchant/pubkey", "tok_limited").status_code for _ in range(3)]
    assert answers == [200, 200, 429]
    refused = m("GET", f"{mono}/api/merchant/pubkey", "tok_limited")
    assert refused.json() == {"errCode": "TMR", "errText": "Too many requests"}
    assert m("GET", f"{mono}/api/merchant/pubkey", "tok_someone_else").status_code == 200
    calls = requests.get(f"{mono}/_control/calls", params={"path": "/api/merchant/pubkey"}, timeout=T).json()
    assert calls["count"] == 5


def test_a_merchants_webhooks_can_reach_a_second_receiver_in_order(stack: TestStack, mono: str) -> None:
    first, second = receivers(stack)
    created = m("POST", f"{mono}/api/merchant/invoice/create", "tok_shared",
                json={"amount": 4200, "webHookUrl": first}).json()
    assert requests.post(f"{mono}/_control/also-notify", json={"token": "tok_shared", "urls": [second]}, timeout=T).ok
    requests.post(f"{mono}/_control/invoices/{created['invoiceId']}/pay", json={}, timeout=T)
    rows = rows_when(f"{mono}/_control/deliveries", {"invoice_id": created["invoiceId"]}, 4)
    assert [(r["status"], r["url"]) for r in rows] == [("processing", first), ("processing", second),
                                                     ("success", first), ("success", second)]


def test_held_webhooks_go_out_one_receiver_at_a_time_in_the_order_asked(stack: TestStack, mono: str) -> None:
    first, second = receivers(stack)
    assert requests.post(f"{mono}/_control/hold", json={"hold": True}, timeout=T).json() == {"held": True}
    created = m("POST", f"{mono}/api/merchant/invoice/create", "tok_held", json={"amount": 4200, "webHookUrl": first}).json()
    events = requests.post(f"{mono}/_control/invoices/{created['invoiceId']}/pay", json={}, timeout=T).json()["events"]
    assert requests.get(f"{mono}/_control/deliveries", params={"invoice_id": created["invoiceId"]},
                        timeout=T).json()["deliveries"] == []
    for url in (second, first):
        sent = requests.post(f"{mono}/_control/deliver/{events[1]}", json={"url": url}, timeout=T).json()
        assert sent["delivered"] is True and sent["status_code"] == 200
    rows = requests.get(f"{mono}/_control/deliveries", params={"invoice_id": created["invoiceId"]}, timeout=T).json()
    assert [r["url"] for r in rows["deliveries"]] == [second, first]


def test_a_payment_on_a_register_with_its_own_amount_is_an_invoice_monobank_made(stack: TestStack, mono: str) -> None:
    first, _ = receivers(stack)
    m("GET", f"{mono}/api/merchant/qr/list", "tok_app")  # the merchant exists
    fixed = requests.post(f"{mono}/_control/registers", json={"token": "tok_app", "amountType": "fix", "amount": 30000,
                                                              "webHookUrl": first}, timeout=T).json()
    listed = m("GET", f"{mono}/api/merchant/qr/list", "tok_app").json()["list"]
    assert {"qrId": fixed["qrId"], "amountType": "fix"}.items() <= next(
        r for r in listed if r["qrId"] == fixed["qrId"]).items()
    paid = requests.post(f"{mono}/_control/qr/{fixed['qrId']}/pay", json={}, timeout=T).json()["invoice"]
    assert paid["status"] == "success" and paid["amount"] == 30000 and "reference" not in paid
    status = m("GET", f"{mono}/api/merchant/invoice/status", "tok_app", params={"invoiceId": paid["invoiceId"]}).json()
    assert status["status"] == "success"
    rows = wait_for(lambda: [d for d in requests.get(f"{mono}/_control/deliveries",
                                                     params={"invoice_id": paid["invoiceId"]}, timeout=T).json()[
        "deliveries"] if d["status"] == "success"])
    assert rows[0]["url"] == first
    client = requests.post(f"{mono}/_control/registers", json={"token": "tok_app", "amountType": "client"},
                           timeout=T).json()
    assert requests.post(f"{mono}/_control/qr/{client['qrId']}/pay", json={}, timeout=T).status_code == 400
    typed = requests.post(f"{mono}/_control/qr/{client['qrId']}/pay", json={"amount": 777, "deliver": False},
                          timeout=T).json()["invoice"]
    assert typed["amount"] == 777


# --- Fintoc and Stripe: one account, two endpoints ---------------------------------------------------

def test_fintoc_sends_every_event_of_an_account_to_each_endpoint_and_holds_them_on_request(stack: TestStack) -> None:
    fintoc = stack.sandbox_url("fintoc")
    first, second = receivers(stack)
    auth = {"Authorization": "sk_test_shared_owner"}
    endpoints = [requests.post(f"{fintoc}/v1/webhook_endpoints", headers=auth, timeout=T, json={
        "url": url, "enabled_events": ["checkout_session.expired"]}).json()["id"] for url in (first, second)]
    assert requests.post(f"{fintoc}/_control/hold", json={"hold": True}, timeout=T).ok
    session = requests.post(f"{fintoc}/v1/checkout_sessions", headers=auth, timeout=T, json={
        "amount": 1000, "currency": "CLP", "success_url": "https://a.example", "cancel_url": "https://a.example"}).json()
    requests.post(f"{fintoc}/_control/sessions/{session['id']}/expire-now", timeout=T)
    [event] = [e for e in requests.get(f"{fintoc}/_control/events", timeout=T).json()["events"]
               if json.loads(e["body"])["data"]["id"] == session["id"]]
    assert requests.get(f"{fintoc}/_control/deliveries", timeout=T).json()["deliveries"] == []
    for endpoint in reversed(endpoints):
        sent = requests.post(f"{fintoc}/_control/deliver/{event['id']}", json={"endpoint_id": endpoint}, timeout=T)
        assert sent.json()["delivered"] is True
    rows = requests.get(f"{fintoc}/_control/deliveries", timeout=T).json()["deliveries"]
    assert [r["endpoint_id"] for r in rows] == list(reversed(endpoints))
    assert rows[0]["fintoc_signature"] != rows[1]["fintoc_signature"]  # each endpoint has its own secret
    unknown = requests.post(f"{fintoc}/_control/deliver/{event['id']}", json={"endpoint_id": "we_nope"}, timeout=T)
    assert unknown.status_code == 404


def test_stripe_sends_every_event_of_an_account_to_each_endpoint(stack: TestStack) -> None:
    stripe = stack.sandbox_url("stripe")
    first, second = receivers(stack)
    auth = {"Authorization": "Bearer sk_test_shared_owner"}
    for url in (first, second):
        assert requests.post(f"{stripe}/v1/webhook_endpoints", headers=auth, timeout=T,
                             data={"url": url, "enabled_events[]": "customer.created"}).ok
    requests.post(f"{stripe}/v1/customers", headers=auth, timeout=T, data={"metadata[clinic_id]": "cl_a"})
    rows = rows_when(f"{stripe}/_control/deliveries", {"type": "customer.created"}, 2)
    assert {r["url"] for r in rows} == {first, second} and len({r["event_id"] for r in rows}) == 1
