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


# ------------------------------------------------------------------ failure modes of Stripe's idempotency layer
def fail_next(base: str, status: Any, path: str, **extra: Any) -> None:
    answer = requests.post(f"{base}/_control/fail-next", json={"status": status, "path": path, **extra}, timeout=10)
    assert answer.status_code == 200, answer.text


def test_a_request_in_flight_holds_its_key_a_second_one_gets_409_which_is_not_stored(base: str) -> None:
    import threading

    fail_next(base, "hold", "/v1/customers", seconds=20)
    first: dict[str, requests.Response] = {}
    thread = threading.Thread(target=lambda: first.setdefault("answer", post(base, "/v1/customers", {}, key="k-fly")))
    thread.start()
    wait_for(_in_flight)
    # While the first is in flight, the same key is refused with 409 (and Stripe advises a retry)
    busy = post(base, "/v1/customers", {}, key="k-fly")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "idempotency_key_in_use"
    assert busy.headers["Stripe-Should-Retry"] == "true" and "Idempotent-Replayed" not in busy.headers
    # Once it finishes, the same key replays its answer (the 409 was never stored)
    requests.post(f"{base}/_control/release", timeout=10)
    thread.join(10)
    assert first["answer"].status_code == 200
    again = post(base, "/v1/customers", {}, key="k-fly")
    assert again.json() == first["answer"].json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(requests.get(f"{base}/v1/customers", headers=AUTH, timeout=10).json()["data"]) == 1


def _in_flight() -> bool:
    """The held request has reached the sandbox and holds its key (the sandbox runs in this process)."""
    account = sandbox.STATE.accounts.get(KEY)
    return bool(account and account.in_flight)


def test_a_500_is_stored_under_its_key_and_replayed_after_the_charge_was_made(base: str) -> None:
    customer = post(base, "/v1/customers", {}).json()["id"]
    method = post(base, "/v1/payment_methods/pm_card_visa/attach", {"customer": customer}).json()["id"]
    params = [("amount", "5000"), ("currency", "cad"), ("customer", customer), ("payment_method", method),
              ("off_session", "true"), ("confirm", "true"), ("metadata[clinicpay_charge_id]", "ch_x")]
    fail_next(base, 500, "/v1/payment_intents")
    failed = post(base, "/v1/payment_intents", params, key="k-500")
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "api_error"
    assert failed.headers["Stripe-Should-Retry"] == "false"
    # The endpoint ran: the PaymentIntent exists and succeeded, and lists under the customer
    [intent] = requests.get(f"{base}/v1/payment_intents", params={"customer": customer, "created[gte]": "0"},
                            headers=AUTH, timeout=10).json()["data"]
    assert intent["status"] == "succeeded" and intent["metadata"] == {"clinicpay_charge_id": "ch_x"}
    replayed = post(base, "/v1/payment_intents", params, key="k-500")
    assert replayed.status_code == 500 and replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.headers["Stripe-Should-Retry"] == "false"
    # A 500 before anything ran is stored too: no PaymentIntent, and the same key keeps answering 500
    fail_next(base, "500_unapplied", "/v1/payment_intents")
    assert post(base, "/v1/payment_intents", params, key="k-500-early").status_code == 500
    assert post(base, "/v1/payment_intents", params, key="k-500-early").status_code == 500
    assert len(requests.get(f"{base}/v1/payment_intents", params={"customer": customer}, headers=AUTH,
                            timeout=10).json()["data"]) == 1


# ------------------------------------------------------------------ refunds, cancellations, disputes
def paid_intent(base: str, amount: int = 5000) -> dict[str, Any]:
    customer = post(base, "/v1/customers", {}).json()["id"]
    method = post(base, "/v1/payment_methods/pm_card_visa/attach", {"customer": customer}).json()["id"]
    intent = post(base, "/v1/payment_intents", [
        ("amount", str(amount)), ("currency", "cad"), ("customer", customer), ("payment_method", method),
        ("off_session", "true"), ("confirm", "true"), ("metadata[appointment_id]", "ap_1")]).json()
    assert intent["status"] == "succeeded"
    return dict(intent)


def events_of(base: str, event_type: str) -> list[dict[str, Any]]:
    return list(requests.get(f"{base}/_control/events", params={"type": event_type}, timeout=10).json()["events"])


def only_stripes_fields(obj: dict[str, Any], cls: type) -> bool:
    """Every field the sandbox shows is one stripe-python declares for that object."""
    return set(obj) <= set(cls.__annotations__) | {"object", "id", "livemode", "metadata"}


def test_refunds_partial_full_and_refused_with_stripes_events(base: str) -> None:
    intent = paid_intent(base)
    part = post(base, "/v1/refunds", {"payment_intent": intent["id"], "amount": "2000", "reason": "requested_by_customer",
                                      "metadata[clinicpay_refund_id]": "rf_1"}, key="rf-1")
    assert part.status_code == 200, part.text
    refund = part.json()
    assert (refund["object"], refund["amount"], refund["status"], refund["payment_intent"]) == (
        "refund", 2000, "succeeded", intent["id"])
    assert only_stripes_fields(refund, stripe.Refund)
    too_much = post(base, "/v1/refunds", {"payment_intent": intent["id"], "amount": "3001"}).json()["error"]
    assert (too_much["type"], too_much["code"], too_much["param"]) == ("invalid_request_error", "amount_too_large", "amount")
    rest = post(base, "/v1/refunds", {"payment_intent": intent["id"]}).json()
    assert rest["amount"] == 3000
    done = post(base, "/v1/refunds", {"payment_intent": intent["id"]}).json()["error"]
    assert done["code"] == "charge_already_refunded"
    # charge.refunded carries the Charge with the running total (no refunds list since 2022-11-15)
    totals = [e["data"]["object"]["amount_refunded"] for e in events_of(base, "charge.refunded")]
    assert totals == [2000, 5000]
    last = events_of(base, "charge.refunded")[-1]
    event = stripe.Event.construct_from(last, KEY)
    assert isinstance(event.data.object, stripe.Charge) and event.data.object.refunded is True
    assert "refunds" not in last["data"]["object"] and only_stripes_fields(last["data"]["object"], stripe.Charge)
    # And card refunds at API 2024-06-20 send no refund.* events
    assert events_of(base, "refund.created") == []
    listed = requests.get(f"{base}/v1/refunds", params={"payment_intent": intent["id"]}, headers=AUTH, timeout=10).json()
    assert [r["amount"] for r in listed["data"]] == [3000, 2000]


def test_a_pending_refund_settles_and_a_succeeded_one_can_fail_later(base: str) -> None:
    intent = paid_intent(base)
    requests.post(f"{base}/_control/refunds/next", json={"status": "pending"}, timeout=10)
    refund = post(base, "/v1/refunds", {"payment_intent": intent["id"], "amount": "1000"}).json()
    assert refund["status"] == "pending"
    settled = requests.post(f"{base}/_control/refunds/{refund['id']}/settle", json={"status": "succeeded"}, timeout=10)
    assert settled.json()["status"] == "succeeded"
    failed = requests.post(f"{base}/_control/refunds/{refund['id']}/settle",
                           json={"status": "failed", "failure_reason": "expired_or_canceled_card"}, timeout=10).json()
    assert (failed["status"], failed["failure_reason"]) == ("failed", "expired_or_canceled_card")
    updates = events_of(base, "charge.refund.updated")
    assert [e["data"]["previous_attributes"]["status"] for e in updates] == ["pending", "succeeded"]
    event = stripe.Event.construct_from(updates[-1], KEY)
    assert isinstance(event.data.object, stripe.Refund) and event.data.object.status == "failed"
    # The failed amount is refundable again
    charge = requests.get(f"{base}/v1/charges/{intent['latest_charge']}", headers=AUTH, timeout=10).json()
    assert charge["amount_refunded"] == 0 and charge["refunded"] is False


def test_a_dashboard_refund_has_none_of_our_metadata_and_sends_the_same_events(base: str) -> None:
    intent = paid_intent(base)
    made = requests.post(f"{base}/_control/dashboard/refunds", json={"payment_intent": intent["id"], "amount": 700},
                         timeout=10).json()
    assert made["metadata"] == {} and made["amount"] == 700 and made["status"] == "succeeded"
    [event] = events_of(base, "charge.refunded")
    assert event["data"]["object"]["amount_refunded"] == 700 and event["request"]["idempotency_key"] is None


def test_cancelling_a_payment_intent_races_its_authentication(base: str) -> None:
    customer = post(base, "/v1/customers", {}).json()["id"]
    method = post(base, "/v1/payment_methods/pm_card_authenticationRequired/attach", {"customer": customer}).json()["id"]

    def needs_action() -> dict[str, Any]:
        created = post(base, "/v1/payment_intents", [("amount", "5000"), ("currency", "cad"), ("customer", customer),
                                                     ("payment_method", method), ("confirm", "true"),
                                                     ("return_url", "https://clinic.example/back")]).json()
        assert created["status"] == "requires_action"
        return dict(created)

    first = needs_action()
    canceled = post(base, f"/v1/payment_intents/{first['id']}/cancel", {"cancellation_reason": "abandoned"}, key="c-1")
    assert canceled.json()["status"] == "canceled" and canceled.json()["cancellation_reason"] == "abandoned"
    page = requests.post(first["next_action"]["redirect_to_url"]["url"], data={"result": "complete"}, timeout=10,
                         allow_redirects=False)
    assert page.status_code == 409  # too late to authenticate
    second = needs_action()
    requests.post(second["next_action"]["redirect_to_url"]["url"], data={"result": "complete"}, timeout=10,
                  allow_redirects=False)
    refused = post(base, f"/v1/payment_intents/{second['id']}/cancel", {}).json()["error"]
    assert refused["code"] == "payment_intent_unexpected_state" and refused["payment_intent"]["status"] == "succeeded"
    assert [e["data"]["object"]["id"] for e in events_of(base, "payment_intent.canceled")] == [first["id"]]


def test_disputes_open_update_and_close_with_stripes_events(base: str) -> None:
    intent = paid_intent(base)
    dispute = requests.post(f"{base}/_control/disputes", json={"payment_intent": intent["id"], "reason": "fraudulent"},
                            timeout=10).json()
    assert dispute["status"] == "needs_response" and dispute["charge"] == intent["latest_charge"]
    assert post(base, "/v1/refunds", {"payment_intent": intent["id"]}).json()["error"]["code"] == "charge_disputed"
    requests.post(f"{base}/_control/disputes/{dispute['id']}/update", json={"status": "under_review"}, timeout=10)
    requests.post(f"{base}/_control/disputes/{dispute['id']}/close", json={"status": "won"}, timeout=10)
    kinds = [(e["type"], e["data"]["object"]["status"]) for e in
             events_of(base, "charge.dispute.created") + events_of(base, "charge.dispute.updated")
             + events_of(base, "charge.dispute.closed")]
    assert kinds == [("charge.dispute.created", "needs_response"), ("charge.dispute.updated", "under_review"),
                     ("charge.dispute.closed", "won")]
    event = stripe.Event.construct_from(events_of(base, "charge.dispute.closed")[0], KEY)
    assert isinstance(event.data.object, stripe.Dispute) and event.data.object.payment_intent == intent["id"]
    assert only_stripes_fields(event.data.object.to_dict(), stripe.Dispute)
