"""The Stripe sandbox behaves like Stripe where we depend on it (reference/providers.md section 4),
and its webhook signatures verify with the official `stripe` package's own verification."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import stripe

from clinicpay.providers.stripe.signature import verify_signature
from local import aws
from local.sandboxes import stripe as sandbox
from tests.support.cards import type_card, wait_for
from tests.support.env import TestStack

KEY = "sk_test_sandbox_contract"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def base(stack: TestStack) -> str:
    return stack.sandbox_url("stripe")


def post(base: str, path: str, data: Any = None, *, key: str | None = None, headers: dict[str, str] | None = None,
         **kwargs: Any) -> requests.Response:
    all_headers = {**AUTH, **({"Idempotency-Key": key} if key else {}), **(headers or {})}
    return requests.post(f"{base}{path}", data=data, headers=all_headers, timeout=10, **kwargs)


def dead_endpoint(base: str, events: list[str]) -> dict[str, Any]:
    """A webhook endpoint nobody listens on: every delivery fails, and is logged with what was sent."""
    url = f"http://127.0.0.1:{aws.free_port()}/nobody-home"
    created = post(base, "/v1/webhook_endpoints", [("url", url), *[("enabled_events[]", e) for e in events]])
    assert created.status_code == 200, created.text
    return dict(created.json())


def deliveries(base: str, **params: str) -> list[dict[str, Any]]:
    return list(requests.get(f"{base}/_control/deliveries", params=params, timeout=10).json()["deliveries"])


def test_its_webhook_signatures_verify_with_the_official_stripe_library(base: str) -> None:
    # Given an endpoint subscribed to customer events
    endpoint = dead_endpoint(base, ["customer.created"])
    assert endpoint["secret"].startswith("whsec_")
    # When an event happens
    customer = post(base, "/v1/customers", {"metadata[patient_id]": "p-1"}).json()
    [sent] = wait_for(lambda: deliveries(base, type="customer.created"))
    body, header = sent["body"].encode(), sent["stripe_signature"]
    # Then stripe-python's own verification accepts exactly what was sent
    assert stripe.WebhookSignature.verify_header(body, header, endpoint["secret"], tolerance=300)
    event = stripe.Webhook.construct_event(body, header, endpoint["secret"])
    assert event.id == sent["event_id"] and event.type == "customer.created"
    assert event.data.object.id == customer["id"]
    # And so does ours
    assert verify_signature(body, header, endpoint["secret"])
    # And a changed byte or another secret fails for both
    for payload, secret in ((body.replace(b"p-1", b"p-2"), endpoint["secret"]), (body, "whsec_other")):
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(payload, header, secret)


def test_deliveries_to_a_failing_endpoint_are_retried_a_bounded_number_of_times(base: str) -> None:
    dead_endpoint(base, ["customer.created"])
    post(base, "/v1/customers", {})
    attempts = 1 + len(sandbox.RETRY_DELAYS)
    wait_for(lambda: len(deliveries(base)) == attempts, timeout=sum(sandbox.RETRY_DELAYS) + 8)
    time.sleep(sandbox.RETRY_DELAYS[-1] + 0.5)
    rows = deliveries(base)
    assert [r["attempt"] for r in rows] == list(range(1, attempts + 1))
    assert all(not r["delivered"] and r["error"] == "connection_error" for r in rows)
    # Each attempt is signed afresh (so a late retry is not refused as stale)
    assert all(r["stripe_signature"].startswith("t=") and ",v1=" in r["stripe_signature"] for r in rows)


def test_an_idempotency_key_replays_the_first_answer_and_refuses_other_parameters(base: str) -> None:
    first = post(base, "/v1/customers", {"metadata[patient_id]": "p-1"}, key="k-1")
    again = post(base, "/v1/customers", {"metadata[patient_id]": "p-1"}, key="k-1")
    other = post(base, "/v1/customers", {"metadata[patient_id]": "p-2"}, key="k-1")
    assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    # One customer exists
    listed = requests.get(f"{base}/v1/customers", headers=AUTH, timeout=10).json()
    assert len(listed["data"]) == 1


def test_off_session_card_errors_are_402_with_the_payment_intent(base: str) -> None:
    customer = post(base, "/v1/customers", {}).json()["id"]

    def attach(test_method: str) -> str:
        attached = post(base, f"/v1/payment_methods/{test_method}/attach", {"customer": customer})
        assert attached.status_code == 200 and attached.json()["customer"] == customer
        return str(attached.json()["id"])

    def charge(method: str) -> requests.Response:
        return post(base, "/v1/payment_intents", [("amount", "5000"), ("currency", "cad"), ("customer", customer),
                                                  ("payment_method", method), ("off_session", "true"),
                                                  ("confirm", "true"), ("payment_method_types[]", "card")])

    ok = charge(attach("pm_card_visa"))
    assert ok.status_code == 200 and ok.json()["status"] == "succeeded" and ok.json()["amount_received"] == 5000
    needs = charge(attach("pm_card_authenticationRequired"))
    error = needs.json()["error"]
    assert needs.status_code == 402 and error["type"] == "card_error" and error["code"] == "authentication_required"
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert error["payment_intent"]["id"].startswith("pi_")
    declined = charge(attach("pm_card_visa_chargeDeclinedInsufficientFunds")).json()["error"]
    assert (declined["code"], declined["decline_code"]) == ("card_declined", "insufficient_funds")


def test_parameters_are_form_encoded_validated_and_errors_have_stripes_shape(base: str) -> None:
    created = post(base, "/v1/customers", {"metadata[appointment_id]": "ap_1", "email": "a@example.ca"}).json()
    assert created["id"].startswith("cus_") and created["metadata"] == {"appointment_id": "ap_1"}
    unknown = post(base, "/v1/customers", {"colour": "red"}).json()["error"]
    assert (unknown["type"], unknown["code"], unknown["param"]) == ("invalid_request_error", "parameter_unknown", "colour")
    upper = post(base, "/v1/payment_intents", {"amount": "100", "currency": "CAD"})
    assert upper.status_code == 400 and upper.json()["error"]["param"] == "currency"
    as_json = requests.post(f"{base}/v1/customers", json={"email": "a@example.ca"}, headers=AUTH, timeout=10)
    assert as_json.status_code == 400
    assert requests.post(f"{base}/v1/customers", timeout=10).status_code == 401
    missing = requests.get(f"{base}/v1/payment_intents/pi_nope", headers=AUTH, timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"
    too_small = post(base, "/v1/payment_intents", {"amount": "10", "currency": "cad"}).json()["error"]
    assert too_small["code"] == "amount_too_small"


def test_a_webhook_endpoints_secret_is_shown_once(base: str) -> None:
    endpoint = dead_endpoint(base, ["setup_intent.succeeded"])
    listed = requests.get(f"{base}/v1/webhook_endpoints", headers=AUTH, timeout=10).json()["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]
    deleted = requests.delete(f"{base}/v1/webhook_endpoints/{endpoint['id']}", headers=AUTH, timeout=10).json()
    assert deleted == {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}


def test_the_hosted_checkout_page_takes_only_test_cards_and_shows_declines(base: str) -> None:
    session = post(base, "/v1/checkout/sessions", [
        ("mode", "payment"), ("success_url", "https://clinic.example/ok"), ("cancel_url", "https://clinic.example/no"),
        ("line_items[0][quantity]", "1"), ("line_items[0][price_data][currency]", "nok"),
        ("line_items[0][price_data][unit_amount]", "45000"), ("line_items[0][price_data][product_data][name]", "Time"),
        ("metadata[appointment_id]", "ap_1")]).json()
    page = requests.get(session["url"], timeout=10)
    assert page.status_code == 200 and "450.00 NOK" in page.text and 'autocomplete="cc-number"' in page.text
    for number, message in (("4242424242424241", "invalid"), ("4111111111111111", "non test card"),
                            ("4000000000009995", "insufficient funds")):
        refused = type_card(session["url"], number)
        assert refused.status_code == 402 and message in refused.text and number not in refused.text
    paid = type_card(session["url"], "4242 4242 4242 4242")
    assert paid.status_code == 303 and paid.headers["Location"] == "https://clinic.example/ok"
    done = requests.get(f"{base}/v1/checkout/sessions/{session['id']}", headers=AUTH, timeout=10).json()
    assert (done["status"], done["payment_status"], done["amount_total"]) == ("complete", "paid", 45000)
    assert done["payment_intent"].startswith("pi_")


def test_a_setup_session_saves_the_card_to_the_customer(base: str) -> None:
    customer = post(base, "/v1/customers", {}).json()["id"]
    session = post(base, "/v1/checkout/sessions", [
        ("mode", "setup"), ("customer", customer), ("payment_method_types[]", "card"),
        ("success_url", "https://clinic.example/ok?s={CHECKOUT_SESSION_ID}"),
        ("setup_intent_data[metadata][clinicpay_setup_ref]", "setup_1")]).json()
    assert session["setup_intent"].startswith("seti_") and session["payment_status"] == "no_payment_required"
    saved = type_card(session["url"], "4000003800000446", exp="03/2031")
    assert saved.headers["Location"] == f"https://clinic.example/ok?s={session['id']}"
    intent = requests.get(f"{base}/v1/setup_intents/{session['setup_intent']}", headers=AUTH, timeout=10).json()
    assert intent["status"] == "succeeded" and intent["metadata"] == {"clinicpay_setup_ref": "setup_1"}
    [method] = requests.get(f"{base}/v1/customers/{customer}/payment_methods", headers=AUTH, timeout=10).json()["data"]
    assert method["id"] == intent["payment_method"]
    assert (method["card"]["last4"], method["card"]["exp_month"], method["card"]["exp_year"]) == ("0446", 3, 2031)


def test_a_503_fault_is_refused_before_anything_runs(base: str) -> None:
    requests.post(f"{base}/_control/fail-next", json={"status": 503, "count": 1}, timeout=10)
    failed = post(base, "/v1/customers", {}, key="k-503")
    assert failed.status_code == 503 and failed.json()["error"]["type"] == "api_error"
    retried = post(base, "/v1/customers", {}, key="k-503")
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
