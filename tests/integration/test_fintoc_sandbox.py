"""FintocGateway against the Fintoc sandbox over real HTTP: sessions, idempotency, the hosted page,
signed webhook deliveries with retries and redelivery, faults and authentication."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from clinicpay.domain.errors import BadRequest, InvalidSignature, ProviderUnavailable, ValidationFailed
from clinicpay.domain.money import Money
from clinicpay.ports import CheckoutRequest, PaymentEvent
from clinicpay.providers.fintoc import FintocGateway, verify_signature
from clinicpay.providers.fintoc.client import FintocApiError
from local.sandboxes import fintoc as sandbox
from tests.support import env

SUCCESS_URL = "https://clinic.example/paid"
CANCEL_URL = "https://clinic.example/cancelled"


# --- helpers ----------------------------------------------------------------------------------

@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Capture:
    """A tiny webhook receiver: records the raw bytes and headers, answers with scripted statuses."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    # Scripted answers per event type; anything unscripted gets 200.
    statuses: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        with self.lock:
            received = Received(request.get_data(), dict(request.headers.items()))
            self.received.append(received)
            script = self.statuses.get(received.event["type"])
            status = script.pop(0) if script else 200
        return Response("", status=status)(environ, start_response)

    def of_type(self, event_type: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.event["type"] == event_type]


def wait_for(condition: Callable[[], Any], timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def capture() -> Iterator[Capture]:
    receiver = Capture()
    server = make_server("127.0.0.1", 0, receiver, threaded=True)
    receiver.url = f"http://127.0.0.1:{server.server_port}/webhooks/fintoc/clinic-1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()


@pytest.fixture
def base_url(stack: env.TestStack) -> str:
    return stack.sandbox_url("fintoc")


def new_key() -> str:
    return f"sk_test_{uuid.uuid4().hex}"


def make_gateway(base_url: str, *, secret_key: str | None = None, webhook_secret: str = "",
                 timeout: float = 3.0) -> FintocGateway:
    credentials = {"secret_key": secret_key or new_key(), "public_key": "pk_test_x", "webhook_secret": webhook_secret}
    return FintocGateway(credentials, base_url=base_url, timeout=timeout)


def connected_gateway(base_url: str, capture: Capture) -> FintocGateway:
    """A gateway whose account has our endpoint registered, with the secret Fintoc showed once."""
    return make_gateway(base_url, secret_key=(key := new_key()), webhook_secret=register(base_url, key, capture))


def register(base_url: str, key: str, capture: Capture) -> str:
    return make_gateway(base_url, secret_key=key).register_webhook_endpoint(capture.url)


def checkout(appointment_id: str = "appt-1", *, amount: int = 25_000, currency: str = "CLP",
             key: str | None = None, **extra: Any) -> CheckoutRequest:
    return CheckoutRequest(
        clinic_id="clinic-1", appointment_id=appointment_id, amount=Money(amount=amount, currency=currency),
        description="Consulta", customer_email="paciente@example.cl", success_url=SUCCESS_URL,
        cancel_url=CANCEL_URL, idempotency_key=key or f"appt-{appointment_id}-{uuid.uuid4().hex}",
        webhook_url="https://api.example/webhooks/fintoc/clinic-1", **extra)


def press(page_url: str, button: str) -> requests.Response:
    """Submit the hosted page's form for `button` exactly as a browser would."""
    page = requests.get(page_url, timeout=5)
    assert page.status_code == 200
    match = re.search(rf'<form method="post" action="([^"]+)"><button id="{button}"', page.text)
    assert match, f"no {button} form on the hosted page"
    return requests.post(urljoin(page_url, match.group(1)), allow_redirects=False, timeout=5)


def parse(gateway: FintocGateway, received: Received) -> PaymentEvent:
    [event] = gateway.parse_webhook(received.body, received.headers)
    return event


def deliveries(base_url: str, **query: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{base_url}/_control/deliveries", params=query, timeout=5)
    rows: list[dict[str, Any]] = answer.json()["deliveries"]
    return rows


# --- checkout sessions ------------------------------------------------------------------------

def test_create_checkout_returns_the_hosted_page(base_url: str) -> None:
    # Given a clinic's Fintoc account
    gateway = make_gateway(base_url)
    # When a checkout is created for a 25 000 CLP appointment
    before = datetime.now(UTC)
    session = gateway.create_checkout(checkout("appt-1", metadata={"patient_ref": "p-9"}))
    # Then we get Fintoc's session id and the hosted page on this very server, valid for a day
    assert session.provider == "fintoc"
    assert session.session_id.startswith("cs_")
    assert session.url == f"{base_url}/sandbox/{session.session_id}"
    assert session.expires_at is not None
    assert before + timedelta(hours=23) < session.expires_at < before + timedelta(hours=25)
    # And Fintoc holds whole pesos, our metadata and the patient's email
    stored = gateway.client.get_checkout_session(session.session_id)
    assert (stored.amount, stored.currency, stored.status, stored.mode) == (25_000, "CLP", "created", "test")
    assert stored.metadata == {"patient_ref": "p-9", "clinic_id": "clinic-1", "appointment_id": "appt-1"}
    assert stored.customer_email == "paciente@example.cl"


def test_caller_metadata_cannot_override_the_appointment(base_url: str) -> None:
    # Given metadata that tries to name another appointment
    gateway = make_gateway(base_url)
    session = gateway.create_checkout(checkout("appt-1", metadata={"appointment_id": "appt-evil"}))
    # Then the session carries the real one
    assert gateway.client.get_checkout_session(session.session_id).metadata["appointment_id"] == "appt-1"


def test_the_same_idempotency_key_replays_the_first_session(base_url: str) -> None:
    # Given a checkout created once
    gateway = make_gateway(base_url)
    request = checkout("appt-2", key="appt-appt-2-attempt-1")
    first = gateway.create_checkout(request)
    # When the same request is sent again with the same key
    second = gateway.create_checkout(request)
    # Then Fintoc replays the first session instead of making another
    assert second.session_id == first.session_id
    assert second.url == first.url


def test_an_overlong_key_is_hashed_and_still_replays(base_url: str) -> None:
    # Given a key longer than the 255 characters Fintoc accepts
    gateway = make_gateway(base_url)
    request = checkout("appt-2b", key="appt-" + "x" * 300)
    # When it is used twice
    first = gateway.create_checkout(request)
    # Then Fintoc accepted it both times and replayed the first session
    assert gateway.create_checkout(request).session_id == first.session_id


def test_the_same_key_with_another_body_is_an_error(base_url: str) -> None:
    # Given a key already used for 25 000 CLP
    gateway = make_gateway(base_url)
    gateway.create_checkout(checkout("appt-3", key="appt-appt-3-attempt-1"))
    # When the key is reused for another amount
    with pytest.raises(FintocApiError) as refused:
        gateway.create_checkout(checkout("appt-3", amount=30_000, key="appt-appt-3-attempt-1"))
    # Then Fintoc refuses instead of silently replaying
    assert refused.value.http_status == 400
    assert refused.value.provider_code == "idempotency_key_reused"


@pytest.mark.parametrize("currency", ["EUR", "UAH", "USD"])
def test_currencies_fintoc_does_not_take_are_refused_before_calling(base_url: str, currency: str) -> None:
    # Given an appointment priced in a currency Fintoc does not collect
    gateway = make_gateway(base_url, secret_key="sk_test_never_called")
    # When / Then
    with pytest.raises(ValidationFailed) as refused:
        gateway.create_checkout(checkout(amount=5_000, currency=currency))
    assert refused.value.code == "currency_not_supported"


def test_a_zero_amount_is_refused(base_url: str) -> None:
    with pytest.raises(ValidationFailed):
        make_gateway(base_url).create_checkout(checkout(amount=0))


def test_sessions_are_scoped_to_their_account(base_url: str) -> None:
    # Given a session made with one clinic's key
    session = make_gateway(base_url).create_checkout(checkout())
    # When another key asks for it
    with pytest.raises(FintocApiError) as refused:
        make_gateway(base_url).client.get_checkout_session(session.session_id)
    # Then it does not exist for that account
    assert refused.value.http_status == 404
    assert refused.value.provider_code == "missing_resource"


def test_the_sandbox_validates_like_fintoc(base_url: str) -> None:
    # Given raw requests our client would never send
    headers = {"Authorization": new_key()}
    url = f"{base_url}/v1/checkout_sessions"
    # When / Then: Fintoc's error shape with its codes
    missing = requests.post(url, json={"currency": "CLP"}, headers=headers, timeout=5)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "missing_parameter"
    assert missing.json()["error"]["param"] == "amount"
    decimal = requests.post(url, json={"amount": 10.5, "currency": "CLP", "success_url": SUCCESS_URL,
                                       "cancel_url": CANCEL_URL}, headers=headers, timeout=5)
    assert decimal.json()["error"]["code"] == "invalid_amount"
    euros = requests.post(url, json={"amount": 100, "currency": "EUR", "success_url": SUCCESS_URL,
                                     "cancel_url": CANCEL_URL}, headers=headers, timeout=5)
    assert euros.json()["error"]["code"] == "invalid_currency"


# --- auth and faults --------------------------------------------------------------------------

@pytest.mark.parametrize("bad_key", ["sk_live_123", "Bearer sk_test_123", "pk_test_123", "nonsense"])
def test_a_bad_key_is_401(base_url: str, bad_key: str) -> None:
    # Given credentials that are not a test secret key sent as-is
    gateway = make_gateway(base_url, secret_key=bad_key)
    # When a checkout is attempted
    with pytest.raises(FintocApiError) as refused:
        gateway.create_checkout(checkout())
    # Then Fintoc's 401 surfaces as rejected credentials (a 502 to our caller), not a retry
    assert refused.value.http_status == 401
    assert refused.value.code == "provider_credentials_rejected"
    assert refused.value.provider_code == "invalid_api_key"
    assert bad_key not in refused.value.message


def test_fintoc_down_is_provider_unavailable_and_nothing_is_stored(base_url: str) -> None:
    # Given Fintoc answering 503 to more calls than our client retries
    gateway = make_gateway(base_url)
    requests.post(f"{base_url}/_control/fail-next", json={"status": 503, "count": 3}, timeout=5)
    request = checkout("appt-4")
    # When a checkout is attempted
    with pytest.raises(ProviderUnavailable):
        gateway.create_checkout(request)
    # Then a later retry with the same key makes the session: the 503s stored nothing under the key
    assert gateway.create_checkout(request).session_id.startswith("cs_")


def test_a_brief_outage_is_absorbed_by_retries(base_url: str) -> None:
    # Given one 503, fewer than our client's attempts
    requests.post(f"{base_url}/_control/fail-next", json={"status": 503, "count": 1}, timeout=5)
    # When / Then: the POST is retried safely because it carries an Idempotency-Key
    assert make_gateway(base_url).create_checkout(checkout()).session_id.startswith("cs_")


def test_a_timed_out_create_is_recovered_by_its_idempotency_key(base_url: str) -> None:
    # Given Fintoc processing requests but answering after our timeout, three times running
    gateway = make_gateway(base_url, timeout=0.5)
    requests.post(f"{base_url}/_control/fail-next", json={"status": "timeout", "count": 3, "seconds": 1.5},
                  timeout=5)
    request = checkout("appt-5")
    # When the checkout is attempted, it fails for us although Fintoc made the session
    with pytest.raises(ProviderUnavailable):
        gateway.create_checkout(request)
    # Then retrying with the same key returns that one session rather than a second one
    recovered = gateway.create_checkout(request)
    assert gateway.create_checkout(request).session_id == recovered.session_id


def test_one_timeout_is_retried_into_the_same_session(base_url: str) -> None:
    # Given one slow answer
    gateway = make_gateway(base_url, timeout=0.5)
    requests.post(f"{base_url}/_control/fail-next", json={"status": "timeout", "count": 1, "seconds": 1.0},
                  timeout=5)
    request = checkout("appt-6")
    # When the checkout is created (our client retries after the timeout)
    session = gateway.create_checkout(request)
    # Then the retry got the replay of the session the slow attempt made
    assert gateway.create_checkout(request).session_id == session.session_id


# --- webhook endpoints ------------------------------------------------------------------------

def test_webhook_endpoint_secret_is_shown_only_at_creation(base_url: str, capture: Capture) -> None:
    # Given an account
    gateway = make_gateway(base_url)
    # When our endpoint is registered
    secret = gateway.register_webhook_endpoint(capture.url)
    # Then the secret came back once, and listing never shows it again
    assert secret.startswith("whsec_")
    [listed] = gateway.client.list_webhook_endpoints()
    assert listed.url == capture.url
    assert listed.secret is None
    assert {"payment_intent.succeeded", "payment_intent.failed", "checkout_session.expired"} <= set(
        listed.enabled_events)
    # And it can be removed
    gateway.client.delete_webhook_endpoint(listed.id)
    assert gateway.client.list_webhook_endpoints() == []


# --- paying on the hosted page ----------------------------------------------------------------

def test_paying_on_the_hosted_page_delivers_verifiable_events(base_url: str, capture: Capture) -> None:
    # Given a checkout for an account with our endpoint registered
    key = new_key()
    secret = register(base_url, key, capture)
    gateway = make_gateway(base_url, secret_key=key, webhook_secret=secret)
    session = gateway.create_checkout(checkout("appt-7"))
    page = requests.get(session.url, timeout=5)
    assert "$25.000 CLP" in page.text
    # When the patient presses "Pagar"
    answer = press(session.url, "pay")
    # Then the browser goes back to the clinic
    assert answer.status_code == 303
    assert answer.headers["Location"] == SUCCESS_URL
    # And the payment and then the session's end reach our endpoint, in that order
    wait_for(lambda: len(capture.received) >= 2)
    types = [r.event["type"] for r in capture.received]
    assert types == ["payment_intent.succeeded", "checkout_session.finished"]
    # And each verifies with our verifier against the exact bytes received
    for received in capture.received:
        assert verify_signature(received.body, received.headers["Fintoc-Signature"], secret)
    # And translates into a payment for this appointment, with Fintoc's fee
    paid = parse(gateway, capture.received[0])
    assert paid.kind == "succeeded"
    assert paid.event_id == capture.received[0].event["id"]
    assert paid.appointment_id == "appt-7"
    assert paid.session_id == session.session_id
    assert paid.payment_reference is not None and paid.payment_reference.startswith("pi_")
    assert paid.amount == Money(amount=25_000, currency="CLP")
    assert paid.fee == Money(amount=327, currency="CLP")
    assert paid.details["clinic_id"] == "clinic-1"
    # And the session's end names the same payment, so it cannot count as a second one
    finished = parse(gateway, capture.received[1])
    assert (finished.kind, finished.session_id, finished.payment_reference) == (
        "succeeded", session.session_id, paid.payment_reference)
    # And Fintoc shows the session finished with that payment
    stored = gateway.client.get_checkout_session(session.session_id)
    assert stored.status == "finished"
    assert stored.payment_resource is not None and stored.payment_resource.payment_intent is not None
    assert stored.payment_resource.payment_intent.id == paid.payment_reference


def test_a_paid_session_cannot_be_paid_twice(base_url: str, capture: Capture) -> None:
    # Given a paid session
    gateway = connected_gateway(base_url, capture)
    session = gateway.create_checkout(checkout("appt-8"))
    press(session.url, "pay")
    # When the page is opened again
    again = requests.get(session.url, timeout=5)
    # Then there is nothing left to press
    assert again.status_code == 409
    assert 'id="pay"' not in again.text


def test_a_failed_payment_returns_to_the_clinic_and_can_be_retried(base_url: str, capture: Capture) -> None:
    # Given a checkout
    gateway = connected_gateway(base_url, capture)
    session = gateway.create_checkout(checkout("appt-9"))
    # When the patient's bank refuses
    answer = press(session.url, "fail")
    # Then the browser goes to the cancel URL and we hear of a failed payment
    assert (answer.status_code, answer.headers["Location"]) == (303, CANCEL_URL)
    [failed] = wait_for(lambda: capture.of_type("payment_intent.failed"))
    event = parse(gateway, failed)
    assert (event.kind, event.appointment_id, event.fee) == ("failed", "appt-9", None)
    assert event.details["error_reason"] == "insufficient_funds"
    # And the same page still lets the patient pay
    assert press(session.url, "pay").status_code == 303


def test_an_expired_session_takes_no_payment(base_url: str, capture: Capture) -> None:
    # Given a checkout whose time runs out
    gateway = connected_gateway(base_url, capture)
    session = gateway.create_checkout(checkout("appt-10"))
    requests.post(f"{base_url}/_control/sessions/{session.session_id}/expire-now", timeout=5)
    # When the patient opens the page or submits a payment anyway
    page = requests.get(session.url, timeout=5)
    late = requests.post(f"{session.url}/pay", allow_redirects=False, timeout=5)
    # Then they see a clear "expired" page and no payment is made
    assert page.status_code == 410 and "expirada" in page.text
    assert late.status_code == 410
    [expired] = wait_for(lambda: capture.of_type("checkout_session.expired"))
    event = parse(gateway, expired)
    assert (event.kind, event.session_id, event.appointment_id) == ("expired", session.session_id, "appt-10")
    time.sleep(0.3)
    assert not capture.of_type("payment_intent.succeeded")


def test_expiring_through_the_api(base_url: str, capture: Capture) -> None:
    # Given an open checkout
    gateway = connected_gateway(base_url, capture)
    session = gateway.create_checkout(checkout("appt-11"))
    # When we expire it
    expired = gateway.client.expire_checkout_session(session.session_id)
    # Then it is expired and the event says so
    assert expired.status == "expired"
    wait_for(lambda: capture.of_type("checkout_session.expired"))


# --- delivery semantics -----------------------------------------------------------------------

def test_failed_deliveries_are_retried_with_the_same_event(base_url: str, capture: Capture) -> None:
    # Given an endpoint that answers 500 twice before accepting
    gateway = connected_gateway(base_url, capture)
    capture.statuses["payment_intent.succeeded"] = [500, 503]
    session = gateway.create_checkout(checkout("appt-12"))
    # When the patient pays
    press(session.url, "pay")
    # Then the payment event arrives three times, the same id and bytes each time
    attempts = wait_for(lambda: (rows := capture.of_type("payment_intent.succeeded")) and len(rows) >= 3 and rows)
    assert len({a.body for a in attempts}) == 1
    assert all(parse(gateway, a).event_id == attempts[0].event["id"] for a in attempts)
    # And the sandbox recorded every attempt with its answer
    log = wait_for(lambda: (rows := deliveries(base_url, event_id=attempts[0].event["id"]))
                   and len(rows) >= 3 and rows)
    assert [(d["attempt"], d["status_code"], d["delivered"]) for d in log] == [
        (1, 500, False), (2, 503, False), (3, 200, True)]


def test_an_unreachable_endpoint_is_given_up_after_five_attempts(base_url: str) -> None:
    # Given an endpoint nobody listens on
    key = new_key()
    gateway = make_gateway(base_url, secret_key=key)
    gateway.register_webhook_endpoint("http://127.0.0.1:9/nowhere")
    session = gateway.create_checkout(checkout("appt-13"))
    # When the patient pays
    press(session.url, "pay")
    # Then each event is tried a bounded number of times, all recorded as failed
    log = wait_for(lambda: (rows := deliveries(base_url, type="payment_intent.succeeded"))
                   and len(rows) >= 5 and rows, timeout=10)
    assert [d["attempt"] for d in log] == [1, 2, 3, 4, 5]
    assert all(d["error"] == "connection_error" and not d["delivered"] for d in log)
    time.sleep(0.5)
    assert len(deliveries(base_url, type="payment_intent.succeeded")) == 5


def test_redelivery_repeats_the_event_id_so_it_can_be_deduplicated(base_url: str, capture: Capture) -> None:
    # Given a delivered payment event
    gateway = connected_gateway(base_url, capture)
    press(gateway.create_checkout(checkout("appt-14")).url, "pay")
    [first] = wait_for(lambda: capture.of_type("payment_intent.succeeded"))
    # When the sandbox sends it again
    event_id = first.event["id"]
    answer = requests.post(f"{base_url}/_control/redeliver/{event_id}", timeout=5)
    assert answer.status_code == 202
    # Then the repeat has the same id and body, freshly signed, and parses to the same dedupe key
    _, repeat = wait_for(lambda: (rows := capture.of_type("payment_intent.succeeded")) and len(rows) >= 2 and rows)
    assert repeat.body == first.body
    assert parse(gateway, repeat).event_id == parse(gateway, first).event_id == event_id


def test_the_delivery_log_carries_what_was_signed(base_url: str, capture: Capture) -> None:
    # Given a payment delivered to our endpoint
    gateway = connected_gateway(base_url, capture)
    press(gateway.create_checkout(checkout("appt-15")).url, "pay")
    [row] = wait_for(lambda: deliveries(base_url, type="payment_intent.succeeded"))
    # When the logged body and header are checked with our gateway
    event = parse(gateway, Received(row["body"].encode("utf-8"), {"fintoc-signature": row["fintoc_signature"]}))
    # Then they verify (header names are matched case-insensitively) and name the appointment
    assert event.appointment_id == "appt-15"


def test_a_tampered_or_unsigned_delivery_is_refused(base_url: str, capture: Capture) -> None:
    # Given a genuine delivery
    gateway = connected_gateway(base_url, capture)
    press(gateway.create_checkout(checkout("appt-16")).url, "pay")
    [genuine] = wait_for(lambda: capture.of_type("payment_intent.succeeded"))
    # When its amount is altered, or its signature left out
    tampered = genuine.body.replace(b'"amount":25000', b'"amount":1')
    # Then neither is accepted
    with pytest.raises(InvalidSignature):
        gateway.parse_webhook(tampered, genuine.headers)
    with pytest.raises(InvalidSignature):
        gateway.parse_webhook(genuine.body, {"Content-Type": "application/json"})
    # And a gateway without a webhook secret refuses everything
    with pytest.raises(InvalidSignature):
        make_gateway(base_url).parse_webhook(genuine.body, genuine.headers)


# --- the event table --------------------------------------------------------------------------

SECRET = "whsec_table_test"


def signed(event_type: str, data: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": f"evt_{uuid.uuid4().hex[:16]}", "type": event_type, "mode": "test",
                       "created_at": "2026-03-01T12:00:00.000Z", "data": data, "object": "event"}).encode()
    return body, {"Fintoc-Signature": sandbox.sign(SECRET, body, int(time.time()))}


def payment(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": "pi_x", "object": "payment_intent", "amount": 10_000, "currency": "CLP", "status": status,
            "metadata": {"clinic_id": "clinic-1", "appointment_id": "appt-t"}, **extra}


@pytest.mark.parametrize(("event_type", "data", "kind"), [
    ("payment_intent.succeeded", payment("succeeded"), "succeeded"),
    ("payment_intent.failed", payment("failed"), "failed"),
    ("payment_intent.rejected", payment("rejected"), "failed"),
    ("payment_intent.pending", payment("pending"), "pending"),
    ("payment_intent.created", payment("created"), "ignored"),
    ("checkout_session.expired", {"id": "cs_x", "amount": 10_000, "currency": "CLP", "status": "expired",
                                  "metadata": {"appointment_id": "appt-t"}}, "expired"),
    ("checkout_session.finished", {"id": "cs_x", "amount": 10_000, "currency": "CLP", "status": "finished",
                                   "metadata": {}, "payment_resource": {"payment_intent": payment("succeeded")}},
     "succeeded"),
    ("checkout_session.completed", {"id": "cs_x", "amount": 10_000, "currency": "CLP", "status": "finished",
                                    "metadata": {}, "payment_resource": {"payment_intent": payment("succeeded")}},
     "succeeded"),
    ("checkout_session.finished", {"id": "cs_x", "amount": 10_000, "currency": "CLP", "status": "finished",
                                   "metadata": {}, "payment_resource": None}, "ignored"),
    ("refund.succeeded", {"id": "re_x", "amount": 10_000, "currency": "CLP"}, "ignored"),
])
def test_event_types_map_through_an_explicit_table(event_type: str, data: dict[str, Any], kind: str) -> None:
    # Given a correctly signed event of this type
    gateway = FintocGateway({"secret_key": "sk_test_t", "webhook_secret": SECRET}, base_url="http://unused")
    body, headers = signed(event_type, data)
    # When it is parsed
    [event] = gateway.parse_webhook(body, headers)
    # Then its kind comes from the table, and only a success carries a fee
    assert event.kind == kind
    assert event.occurred_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert (event.fee is not None) == (kind == "succeeded")


def test_a_verified_but_malformed_envelope_is_a_bad_request() -> None:
    # Given a signed body that is not an event
    gateway = FintocGateway({"secret_key": "sk_test_t", "webhook_secret": SECRET}, base_url="http://unused")
    body = b'{"hello": "world"}'
    headers = {"Fintoc-Signature": sandbox.sign(SECRET, body, int(time.time()))}
    # When / Then
    with pytest.raises(BadRequest):
        gateway.parse_webhook(body, headers)
