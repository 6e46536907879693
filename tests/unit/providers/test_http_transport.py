"""The provider transport (clinicpay.providers.http) against a local server that answers, hangs,
resets, cuts answers off, 409s and 500s on cue: what is retried, what is "refused", "unavailable"
(nothing applied) or "undecided" (may have been applied), and that connections are pooled."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinicpay.domain.errors import ProviderError, ProviderOutcomeUnknown, ProviderUnavailable
from clinicpay.providers import http
from clinicpay.providers.stripe.client import StripeClient
from tests.support.provider_server import ProviderServer
from tests.support.tls import self_signed

KEYED = {"Idempotency-Key": "appt-ap_1-0"}
QUICK = 0.3  # per-attempt timeout for the hanging cases: the tests stay fast


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    pauses: list[float] = []
    monkeypatch.setattr(http, "_sleep", pauses.append)
    return pauses


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    http.close_pools()
    started = ProviderServer().start()
    yield started
    started.stop()
    http.close_pools()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- answers and refusals ---------------------------------------------------------------------------

def test_an_answer_comes_back_with_status_body_and_headers(server: ProviderServer) -> None:
    server.then("answer", 201, {"id": "cs_1"}, {"Request-Id": "req_1"})
    response = http.request("fintoc", "POST", server.url(), json_body={"amount": 100}, headers=KEYED, retry_post=True)
    assert (response.status, response.json(), response.headers["Request-Id"]) == (201, {"id": "cs_1"}, "req_1")
    assert server.seen[0].headers["Idempotency-Key"] == "appt-ap_1-0" and server.seen[0].body == b'{"amount": 100}'


def test_a_4xx_is_a_refusal_kept_with_its_payload_and_never_retried(server: ProviderServer) -> None:
    server.then("answer", 400, {"error": {"code": "invalid_amount"}}, times=3)
    with pytest.raises(http.ProviderHttpError) as refused:
        http.request("fintoc", "POST", server.url(), headers=KEYED, retry_post=True)
    assert refused.value.http_status == 400 and refused.value.payload == {"error": {"code": "invalid_amount"}}
    assert not isinstance(refused.value, ProviderUnavailable) and len(server.seen) == 1


def test_a_redirect_is_not_followed(server: ProviderServer) -> None:
    # Following it would carry our credentials wherever it points.
    server.then("answer", 302, {}, {"Location": "http://127.0.0.1:1/elsewhere"})
    with pytest.raises(http.ProviderHttpError) as refused:
        http.request("fintoc", "GET", server.url(), headers={"Authorization": "sk_test"})
    assert refused.value.http_status == 302 and len(server.seen) == 1


# --- nothing applied: ProviderUnavailable ----------------------------------------------------------

def test_connection_refused_is_unavailable_even_for_a_post(no_backoff: list[float]) -> None:
    with pytest.raises(ProviderUnavailable) as down:
        http.request("fintoc", "POST", f"http://127.0.0.1:{free_port()}/v1/x", headers=KEYED, retry_post=True)
    assert not isinstance(down.value, ProviderOutcomeUnknown)
    assert no_backoff == [0.4, 0.8]  # three attempts, backoff as before


def test_a_read_that_times_out_or_meets_5xx_is_unavailable_after_three_attempts(server: ProviderServer) -> None:
    server.then("hang").then("answer", 503).then("reset")
    with pytest.raises(ProviderUnavailable) as down:
        http.request("fintoc", "GET", server.url(), timeout=QUICK)
    assert not isinstance(down.value, ProviderOutcomeUnknown) and len(server.seen) == 3


def test_a_429_to_a_post_is_unavailable_not_undecided(server: ProviderServer) -> None:
    server.then("answer", 429, times=3)
    with pytest.raises(ProviderUnavailable) as busy:
        http.request("stripe", "POST", server.url(), headers=KEYED, retry_post=True)
    assert not isinstance(busy.value, ProviderOutcomeUnknown) and len(server.seen) == 3


def test_a_5xx_then_an_answer_is_the_answer(server: ProviderServer) -> None:
    server.then("answer", 500).then("answer", 200, {"id": "cs_1"})
    response = http.request("fintoc", "POST", server.url(), headers=KEYED, retry_post=True)
    assert response.json() == {"id": "cs_1"}
    assert [s.headers["Idempotency-Key"] for s in server.seen] == ["appt-ap_1-0"] * 2


# --- may have been applied: ProviderOutcomeUnknown -------------------------------------------------

def test_a_post_without_a_key_that_times_out_is_undecided_and_not_retried(server: ProviderServer) -> None:
    server.then("hang", times=3)
    with pytest.raises(ProviderOutcomeUnknown):
        http.request("monobank", "POST", server.url(), json_body={"amount": 4200}, timeout=QUICK)
    assert len(server.seen) == 1


def test_a_keyed_post_that_keeps_timing_out_is_undecided_after_three_attempts_with_one_key(server: ProviderServer) -> None:
    server.then("hang", times=3)
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        http.request("fintoc", "POST", server.url(), headers=KEYED, retry_post=True, timeout=QUICK)
    assert isinstance(unknown.value, ProviderUnavailable) and unknown.value.status == 503  # old callers still work
    assert {s.headers["Idempotency-Key"] for s in server.seen} == {"appt-ap_1-0"} and len(server.seen) == 3


def test_a_connection_reset_after_sending_is_undecided(server: ProviderServer) -> None:
    server.then("reset")
    with pytest.raises(ProviderOutcomeUnknown):
        http.request("checkbox", "POST", server.url(), json_body={"id": "r-1"})


def test_an_answer_cut_off_mid_body_is_undecided(server: ProviderServer) -> None:
    server.then("cut", times=3)
    with pytest.raises(ProviderOutcomeUnknown):
        http.request("stripe", "POST", server.url(), headers=KEYED, retry_post=True)
    assert len(server.seen) == 3


def test_a_5xx_to_a_post_after_our_retries_is_undecided(server: ProviderServer) -> None:
    server.then("answer", 500, times=3)
    with pytest.raises(ProviderOutcomeUnknown):
        http.request("stripe", "POST", server.url(), headers=KEYED, retry_post=True)
    assert len(server.seen) == 3


def test_once_an_attempt_is_undecided_the_call_stays_undecided(server: ProviderServer) -> None:
    # The first try may have landed; later ones only say the provider is busy now.
    server.then("hang").then("answer", 429).then("answer", 429)
    with pytest.raises(ProviderOutcomeUnknown):
        http.request("fintoc", "POST", server.url(), headers=KEYED, retry_post=True, timeout=QUICK)


def test_a_refusal_after_an_undecided_attempt_is_the_providers_decision(server: ProviderServer) -> None:
    server.then("hang").then("answer", 400, {"error": {"code": "amount_too_small"}})
    with pytest.raises(http.ProviderHttpError):
        http.request("fintoc", "POST", server.url(), headers=KEYED, retry_post=True, timeout=QUICK)


def test_a_status_the_caller_names_undecided_is_undecided_and_not_a_refusal(server: ProviderServer) -> None:
    server.then("answer", 409, {"error": {"code": "idempotency_key_in_use"}}, times=3)
    with pytest.raises(ProviderOutcomeUnknown):
        http.request("stripe", "POST", server.url(), headers=KEYED, retry_post=True, undecided_statuses=(409,))
    server.then("answer", 409, {"error": {"code": "conflict"}})
    with pytest.raises(http.ProviderHttpError):
        http.request("fintoc", "POST", server.url(), headers=KEYED, retry_post=True)


# --- Stripe-Should-Retry ---------------------------------------------------------------------------

ADVICE = {"retry_advice_header": "Stripe-Should-Retry", "undecided_statuses": (409,)}


def test_should_retry_false_stops_retries_of_a_5xx(server: ProviderServer) -> None:
    server.then("answer", 500, headers={"Stripe-Should-Retry": "false"}, times=3)
    with pytest.raises(ProviderOutcomeUnknown):
        http.request("stripe", "POST", server.url(), headers=KEYED, retry_post=True, **ADVICE)  # type: ignore[arg-type]
    assert len(server.seen) == 1


def test_should_retry_true_retries_a_409_with_the_same_key_until_it_is_decided(server: ProviderServer) -> None:
    server.then("answer", 409, {"error": {"code": "idempotency_key_in_use"}}, {"Stripe-Should-Retry": "true"})
    server.then("answer", 200, {"id": "pi_1", "status": "succeeded"})
    response = http.request("stripe", "POST", server.url(), headers=KEYED, retry_post=True, **ADVICE)  # type: ignore[arg-type]
    assert response.json()["status"] == "succeeded"
    assert [s.headers["Idempotency-Key"] for s in server.seen] == ["appt-ap_1-0"] * 2


def test_should_retry_true_on_a_4xx_retries_it_and_the_last_refusal_stands(server: ProviderServer) -> None:
    server.then("answer", 400, {"error": {"code": "lock_timeout"}}, {"Stripe-Should-Retry": "true"}, times=3)
    with pytest.raises(http.ProviderHttpError):
        http.request("stripe", "POST", server.url(), headers=KEYED, retry_post=True, **ADVICE)  # type: ignore[arg-type]
    assert len(server.seen) == 3


def test_should_retry_true_never_retries_a_post_without_a_key(server: ProviderServer) -> None:
    server.then("answer", 500, headers={"Stripe-Should-Retry": "true"}, times=3)
    with pytest.raises(ProviderOutcomeUnknown):
        http.request("stripe", "POST", server.url(), **ADVICE)  # type: ignore[arg-type]
    assert len(server.seen) == 1


def test_the_stripe_client_reads_a_409_in_flight_as_undecided_not_as_a_refusal(server: ProviderServer) -> None:
    # Given Stripe still working on our first request under this key
    server.then("answer", 409, {"error": {"type": "invalid_request_error", "code": "idempotency_key_in_use"}}, times=3)
    client = StripeClient("sk_test_unit", base_url=server.url(""), timeout=QUICK)
    # When we charge, Then the charge is undecided (so it stays processing), never failed
    with pytest.raises(ProviderOutcomeUnknown):
        client.create_payment_intent({"amount": 2500, "currency": "cad"}, idempotency_key="clinicpay-charge-ch_1")
    # (retried with the same key, as stripe-python does: a later try may get the first one's answer)
    assert [s.headers["Idempotency-Key"] for s in server.seen] == ["clinicpay-charge-ch_1"] * 3
    # And Stripe's own advice is followed
    server.then("answer", 409, {}, {"Stripe-Should-Retry": "true"}).then("answer", 200, {
        "id": "pi_1", "object": "payment_intent", "amount": 2500, "currency": "cad", "status": "succeeded"})
    assert client.create_payment_intent({"amount": 2500}, idempotency_key="k2").status == "succeeded"
    server.then("answer", 402, {"error": {"type": "card_error", "code": "card_declined"}})
    with pytest.raises(ProviderError) as declined:
        client.create_payment_intent({"amount": 2500}, idempotency_key="k3")
    assert not isinstance(declined.value, ProviderUnavailable)


# --- pooling ---------------------------------------------------------------------------------------

def test_calls_to_one_host_reuse_one_connection(server: ProviderServer) -> None:
    for _ in range(5):
        http.request("fintoc", "GET", server.url())
    http.request("fintoc", "POST", server.url(), headers=KEYED, retry_post=True)
    assert server.connections == 1 and {s.connection for s in server.seen} == {1}


def test_pools_are_per_host(server: ProviderServer) -> None:
    for host in ("127.0.0.1", "localhost", "127.0.0.1", "localhost"):
        http.request("fintoc", "GET", server.url(host=host))
    assert server.connections == 2


def test_a_connection_the_server_dropped_is_replaced_not_reused(server: ProviderServer) -> None:
    server.then("reset")
    with pytest.raises(ProviderUnavailable):
        http.request("fintoc", "GET", server.url(), attempts=1)
    assert http.request("fintoc", "GET", server.url()).status == 200
    assert server.connections == 2


def test_proxies_come_from_the_environment_as_with_urllib(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a proxy in the environment (our server plays it: a proxy gets the absolute URL)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    http.request("fintoc", "GET", "http://api.fintoc.invalid/v1/webhook_endpoints")
    assert server.seen[-1].path == "http://api.fintoc.invalid/v1/webhook_endpoints"
    # And no_proxy sends a host straight
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    http.request("fintoc", "GET", server.url("/direct"))
    assert server.seen[-1].path == "/direct"


# --- TLS -------------------------------------------------------------------------------------------

@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[ProviderServer, Path]]:
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    http.close_pools()
    started = ProviderServer(tls=context).start()
    yield started, cert
    started.stop()
    http.close_pools()


def test_tls_is_verified_against_the_systems_trust_store(tls_server: tuple[ProviderServer, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    server, cert = tls_server
    # A certificate nobody trusts: refused at the handshake, so even a POST is "nothing applied"
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_missing := cert.parent / "none.pem"))
    assert not tmp_missing.exists()
    with pytest.raises(ProviderUnavailable) as untrusted:
        http.request("stripe", "POST", server.url(host="localhost"), headers=KEYED, retry_post=True)
    assert not isinstance(untrusted.value, ProviderOutcomeUnknown) and server.seen == []
    # Trusted (as the system store would trust a real CA): answered, over one pooled connection
    http.close_pools()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    for _ in range(3):
        assert http.request("stripe", "GET", server.url(host="localhost")).status == 200
    assert len(server.seen) == 3 and {s.connection for s in server.seen} == {server.connections}
