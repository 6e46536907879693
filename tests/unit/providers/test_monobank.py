"""monobank: X-Sign verification pinned by monobank's published vector (providers.md 6.2), the key
cache, and the adapters' translation (status table, units, refusals). No network."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clinicpay.domain.errors import BadRequest, InvalidSignature, ValidationFailed
from clinicpay.domain.money import Money
from clinicpay.domain.qr import BasketLine, InvoiceStatus, QrAmountRequest
from clinicpay.ports import CheckoutRequest
from clinicpay.providers.monobank import LINK_EVENT_KINDS, MonobankGateway, MonobankQrAcquirer
from clinicpay.providers.monobank.adapter import UnsupportedInvoiceStatus
from clinicpay.providers.monobank.signature import PublicKeyCache, load_public_key, verify_signature
from clinicpay.refresh_gate import RefreshGate
from clinicpay.settings import Settings

# --- monobank's published example (reference/providers.md 6.2), byte for byte ------------------------
PUB_KEY_BASE64 = (
    "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KTUZrd0V3WUhLb1pJemowQ0FRWUlLb1pJemowREFRY0RRZ0FFQUc1LzZ3NnZubGJZb0ZmRHlYWE4vS29C"
    "bVVjTgo3NWJSUWg4MFBhaEdldnJoanFCQnI3OXNSS0JSbnpHODFUZVQ5OEFOakU1c0R3RmZ5Znhub0ZJcmZBPT0KLS0tLS1FTkQgUFVCTElDIEtFWS0t"
    "LS0tCg==")
X_SIGN = "MEUCIQC/mVKhi8FKoayul2Mim3E2oaIOCNJk5dEXxTqbkeJSOQIgOM0hsW0qcP2H8iXy1aQYpmY0SJWEaWur7nQXlKDCFxA="
BODY = b"""{
  "invoiceId": "p2_9ZgpZVsl3",
  "status": "created",
  "failureReason": "string",
  "amount": 4200,
  "ccy": 980,
  "finalAmount": 4200,
  "createdDate": "2019-08-24T14:15:22Z",
  "modifiedDate": "2019-08-24T14:15:22Z",
  "reference": "84d0070ee4e44667b31371d8f8813947",
  "cancelList": [
    {
      "status": "processing",
      "amount": 4200,
      "ccy": 980,
      "createdDate": "2019-08-24T14:15:22Z",
      "modifiedDate": "2019-08-24T14:15:22Z",
      "approvalCode": "662476",
      "rrn": "060189181768",
      "extRef": "635ace02599849e981b2cd7a65f417fe"
    }
  ]
}"""


def test_the_published_body_is_the_one_the_reference_describes() -> None:
    assert len(BODY) == 582
    assert hashlib.sha256(BODY).hexdigest() == "b68de0ef3e300b8813f0c39f87feea8519bd2b0628b5c2400b7bd1256f3bf58f"


def test_monobanks_published_example_verifies() -> None:
    verify_signature(BODY, X_SIGN, load_public_key(PUB_KEY_BASE64))


@pytest.mark.parametrize("body", [
    BODY + b"\n",  # a trailing newline
    json.dumps(json.loads(BODY), separators=(",", ":")).encode(),  # the same JSON, compact
    BODY.replace(b'"amount": 4200', b'"amount": 4201', 1),  # one digit changed
])
def test_any_other_bytes_do_not_verify(body: bytes) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(body, X_SIGN, load_public_key(PUB_KEY_BASE64))


@pytest.mark.parametrize("header", [None, "", "not base64!", base64.b64encode(b"short").decode()])
def test_a_missing_or_malformed_x_sign_is_refused(header: str | None) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, header, load_public_key(PUB_KEY_BASE64))


def test_the_key_from_the_pubkey_page_example_is_not_the_signing_key() -> None:
    # Another P-256 key: the signature must not verify with it.
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, X_SIGN, other)


# --- key cache: cached per merchant, fetched again when a signature fails, once a minute at most -------

def _key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(pem).decode()


def _sign(private: ec.EllipticCurvePrivateKey, body: bytes) -> str:
    return base64.b64encode(private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


class KeyServer:
    def __init__(self, key: str):
        self.key = key
        self.fetches = 0

    def __call__(self) -> str:
        self.fetches += 1
        return self.key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache() -> tuple[PublicKeyCache, Clock]:
    clock = Clock()
    return PublicKeyCache(RefreshGate(60, clock=clock)), clock


def test_the_key_is_fetched_once_then_reused() -> None:
    private, public = _key_pair()
    server, (cache, _) = KeyServer(public), _cache()
    for n in range(3):
        body = f'{{"n": {n}}}'.encode()
        cache.verify("merchant", body, _sign(private, body), server)
    assert server.fetches == 1


def test_a_rotated_key_is_fetched_again_once_and_then_verifies() -> None:
    # Given a key cached over a minute ago, and monobank rotating it
    old, old_public = _key_pair()
    new, new_public = _key_pair()
    server, (cache, clock) = KeyServer(old_public), _cache()
    cache.verify("merchant", b"{}", _sign(old, b"{}"), server)
    clock.now += 61
    server.key = new_public
    # When webhooks signed with the new key arrive
    cache.verify("merchant", b'{"a":1}', _sign(new, b'{"a":1}'), server)
    cache.verify("merchant", b'{"a":2}', _sign(new, b'{"a":2}'), server)
    # Then the first one fetched the new key, and the next ones use it
    assert server.fetches == 2


def test_a_rotation_within_a_minute_of_a_forged_refetch_verifies_once_the_minute_is_over() -> None:
    # The trade-off of the once-a-minute limit: monobank retries what we refuse meanwhile.
    old, old_public = _key_pair()
    new, new_public = _key_pair()
    forger, _ = _key_pair()
    server, (cache, clock) = KeyServer(old_public), _cache()
    cache.verify("merchant", b"{}", _sign(old, b"{}"), server)
    with pytest.raises(InvalidSignature):
        cache.verify("merchant", b"{}", _sign(forger, b"{}"), server)  # a forgery spends this minute's re-fetch
    server.key = new_public
    clock.now += 30
    with pytest.raises(InvalidSignature):
        cache.verify("merchant", b"{}", _sign(new, b"{}"), server)
    assert server.fetches == 2
    clock.now += 31
    cache.verify("merchant", b"{}", _sign(new, b"{}"), server)
    assert server.fetches == 3


def test_a_thousand_forged_signatures_cost_one_refetch_a_minute() -> None:
    # Given a key cached over a minute ago
    private, public = _key_pair()
    forger, _ = _key_pair()
    server, (cache, clock) = KeyServer(public), _cache()
    cache.verify("merchant", b"{}", _sign(private, b"{}"), server)
    clock.now += 61
    # When a thousand forgeries arrive within the next minute
    forged = _sign(forger, b"{}")
    for _ in range(1000):
        with pytest.raises(InvalidSignature):
            cache.verify("merchant", b"{}", forged, server)
        clock.now += 0.05
    # Then one re-fetch was made, and genuine webhooks still verify
    assert server.fetches == 2
    cache.verify("merchant", b"{}", _sign(private, b"{}"), server)
    # and the next minute allows one more
    clock.now += 61
    with pytest.raises(InvalidSignature):
        cache.verify("merchant", b"{}", forged, server)
    assert server.fetches == 3


def test_forgeries_reaching_a_cold_container_cost_only_the_fetch_it_needs() -> None:
    _, public = _key_pair()
    forger, _ = _key_pair()
    server, (cache, clock) = KeyServer(public), _cache()
    forged = _sign(forger, b"{}")
    for _ in range(1000):
        with pytest.raises(InvalidSignature):
            cache.verify("merchant", b"{}", forged, server)
        clock.now += 0.05
    assert server.fetches == 1


def test_a_rotation_right_after_a_genuine_webhook_is_fetched_at_once() -> None:
    old, old_public = _key_pair()
    new, new_public = _key_pair()
    server, (cache, _) = KeyServer(old_public), _cache()
    cache.verify("merchant", b"{}", _sign(old, b"{}"), server)
    server.key = new_public
    cache.verify("merchant", b"{}", _sign(new, b"{}"), server)
    assert server.fetches == 2


def test_concurrent_forgeries_share_one_refetch() -> None:
    from concurrent.futures import ThreadPoolExecutor

    private, public = _key_pair()
    forger, _ = _key_pair()
    server, (cache, clock) = KeyServer(public), _cache()
    cache.verify("merchant", b"{}", _sign(private, b"{}"), server)
    clock.now += 61
    forged = _sign(forger, b"{}")

    def attempt(_: int) -> bool:
        try:
            cache.verify("merchant", b"{}", forged, server)
            return True
        except InvalidSignature:
            return False

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert not any(pool.map(attempt, range(200)))
    assert server.fetches == 2


def test_concurrent_first_webhooks_share_one_fetch() -> None:
    from concurrent.futures import ThreadPoolExecutor

    private, public = _key_pair()
    server, (cache, _) = KeyServer(public), _cache()
    signed = _sign(private, b"{}")
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: cache.verify("merchant", b"{}", signed, server), range(64)))
    assert server.fetches == 1


def test_the_gate_asks_the_shared_claim_only_when_this_container_may_refetch() -> None:
    asked: list[str] = []

    def shared(key: str, window: float) -> bool:
        asked.append(key)
        return len(asked) == 1  # another container takes the next window

    clock = Clock()
    gate = RefreshGate(60, shared=shared, clock=clock)
    assert gate.allow("k") and not gate.allow("k")
    assert asked == ["k"]
    clock.now += 61
    assert not gate.allow("k")  # this container may, but another one re-read within the minute
    assert asked == ["k", "k"]


def test_a_garbage_header_never_costs_a_key_fetch() -> None:
    server, cache = KeyServer(_key_pair()[1]), PublicKeyCache()
    with pytest.raises(InvalidSignature):
        cache.verify("merchant", b"{}", "%%%", server)
    assert server.fetches == 0


# --- adapters ---------------------------------------------------------------------------------------------

SETTINGS = Settings(monobank_api_base="https://mono.test", public_base_url="https://api.test")


class StubClient:
    def __init__(self, key: str):
        self.key = key
        self.bodies: list[dict[str, Any]] = []

    def pubkey(self) -> str:
        return self.key

    def create_invoice(self, body: dict[str, Any]) -> Any:
        self.bodies.append(body)
        from clinicpay.providers.monobank.schemas import InvoiceCreated

        return InvoiceCreated.model_validate({"invoiceId": "p2_new", "pageUrl": "https://pay.mbnk.biz/p2_new"})


def _adapters(monkeypatch: pytest.MonkeyPatch, cls: type) -> tuple[Any, ec.EllipticCurvePrivateKey, StubClient]:
    private, public = _key_pair()
    adapter = cls({"token": "tok_" + public[-12:]}, SETTINGS, keys=PublicKeyCache(RefreshGate(60)))
    stub = StubClient(public)
    monkeypatch.setattr(adapter, "client", stub)
    return adapter, private, stub


def _webhook(status: str, **extra: Any) -> bytes:
    body = {"invoiceId": "p2_abc", "status": status, "amount": 85000, "ccy": 980, "finalAmount": 85000,
            "createdDate": "2026-11-23T10:00:00Z", "modifiedDate": "2026-11-23T10:00:07Z", "reference": "ap_1", **extra}
    return json.dumps(body, indent=2).encode()


@pytest.mark.parametrize(("status", "kind"), [
    ("success", "succeeded"), ("failure", "failed"), ("reversed", "refunded"), ("expired", "expired"),
    ("processing", "pending"), ("hold", "pending"), ("created", "ignored"), ("something_new", "ignored")])
def test_link_webhooks_map_every_status_through_the_table(monkeypatch: pytest.MonkeyPatch, status: str,
                                                          kind: str) -> None:
    gateway, private, _ = _adapters(monkeypatch, MonobankGateway)
    body = _webhook(status)
    [event] = gateway.parse_webhook(body, {"x-sign": _sign(private, body)})
    assert event.kind == kind
    assert event.event_id == f"p2_abc:{status}:2026-11-23T10:00:07Z"
    assert event.occurred_at.isoformat() == "2026-11-23T10:00:07+00:00"
    assert (event.appointment_id, event.session_id) == ("ap_1", "p2_abc")
    assert event.amount == Money(amount=85000, currency="UAH")
    assert set(LINK_EVENT_KINDS) >= {"success", "failure", "reversed", "expired", "processing", "hold", "created"}


def test_a_link_webhook_signed_by_someone_else_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway, _, _ = _adapters(monkeypatch, MonobankGateway)
    forger, _ = _key_pair()
    body = _webhook("success")
    with pytest.raises(InvalidSignature):
        gateway.parse_webhook(body, {"X-Sign": _sign(forger, body)})


def test_a_verified_body_that_is_not_an_invoice_is_a_400(monkeypatch: pytest.MonkeyPatch) -> None:
    acquirer, private, _ = _adapters(monkeypatch, MonobankQrAcquirer)
    with pytest.raises(BadRequest):
        acquirer.parse_webhook(b"[]", {"X-Sign": _sign(private, b"[]")})


def test_a_qr_webhook_keeps_the_card_details_and_the_unknown_status_is_its_own_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    acquirer, private, _ = _adapters(monkeypatch, MonobankQrAcquirer)
    body = _webhook("success", paymentInfo={"maskedPan": "444403******1902", "approvalCode": "662476",
                                            "rrn": "060189181768", "tranId": "1", "fee": 1105, "country": "804"})
    update = acquirer.parse_webhook(body, {"X-Sign": _sign(private, body)})
    assert update.status is InvoiceStatus.SUCCESS and update.card is not None
    assert (update.card.masked_pan, update.card.approval_code, update.card.rrn, update.card.fee) == (
        "444403******1902", "662476", "060189181768", 1105)
    strange = _webhook("teleported")
    with pytest.raises(UnsupportedInvoiceStatus):
        acquirer.parse_webhook(strange, {"X-Sign": _sign(private, strange)})


def test_a_link_checkout_is_an_invoice_in_kopecks_with_ccy_980_and_our_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway, _, stub = _adapters(monkeypatch, MonobankGateway)
    session = gateway.create_checkout(CheckoutRequest(
        clinic_id="cl_1", appointment_id="ap_1", amount=Money(amount=85000, currency="UAH"), description="Консультація",
        success_url="https://api.test/pay/t/result", cancel_url="https://api.test/pay/t",
        idempotency_key="ap_1-1", webhook_url="https://api.test/webhooks/monobank/cl_1"))
    [body] = stub.bodies
    assert body["amount"] == 85000 and body["ccy"] == 980 and "qrId" not in body
    assert body["merchantPaymInfo"]["reference"] == "ap_1"
    assert body["merchantPaymInfo"]["basketOrder"] == [{"name": "Консультація", "qty": 1, "sum": 85000, "code": "ap_1"}]
    assert body["redirectUrl"] == "https://api.test/pay/t/result"
    assert body["webHookUrl"] == "https://api.test/webhooks/monobank/cl_1"
    assert (session.session_id, session.url) == ("p2_new", "https://pay.mbnk.biz/p2_new")


def test_a_link_checkout_in_another_currency_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway, _, stub = _adapters(monkeypatch, MonobankGateway)
    with pytest.raises(ValidationFailed) as refused:
        gateway.create_checkout(CheckoutRequest(
            clinic_id="cl_1", appointment_id="ap_1", amount=Money(amount=25000, currency="CLP"), description="x",
            success_url="https://a", cancel_url="https://a", idempotency_key="k", webhook_url="https://a"))
    assert refused.value.code == "currency_not_supported" and refused.value.status == 422
    assert stub.bodies == []


def test_an_amount_on_a_register_is_an_invoice_with_its_qr_id(monkeypatch: pytest.MonkeyPatch) -> None:
    acquirer, _, stub = _adapters(monkeypatch, MonobankQrAcquirer)
    invoice_id = acquirer.put_amount(QrAmountRequest(
        qr_id="XJ_DiM4rTd5V", amount=Money(amount=85000, currency="UAH"), reference="qr:XJ_DiM4rTd5V:ap_1",
        destination="Консультація", webhook_url="https://api.test/webhooks/monobank/cl_1",
        basket=[BasketLine(name="Консультація", code="ap_1", qty=1, unit_price=85000)]))
    [body] = stub.bodies
    assert invoice_id == "p2_new"
    assert body["qrId"] == "XJ_DiM4rTd5V" and body["ccy"] == 980 and body["amount"] == 85000
    assert body["merchantPaymInfo"]["basketOrder"] == [{"name": "Консультація", "qty": 1, "sum": 85000, "code": "ap_1"}]


# --- status bodies without modifiedDate, refunds, monobank's own receipts (issue 9) ------------------

def test_a_body_without_modified_date_is_accepted_and_ordered_by_what_it_carries(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given monobank's minimum: invoiceId, status, amount, ccy (plus what it may add)
    acquirer, private, _ = _adapters(monkeypatch, MonobankQrAcquirer)
    bare = json.dumps({"invoiceId": "p2_abc", "status": "success", "amount": 85000, "ccy": 980}).encode()
    dated = json.dumps({"invoiceId": "p2_abc", "status": "success", "amount": 85000, "ccy": 980,
                        "createdDate": "2026-11-23T10:00:00Z", "cancelList": [
                            {"status": "success", "amount": 20000, "ccy": 980, "createdDate": "2026-11-23T11:00:00Z",
                             "modifiedDate": "2026-11-23T11:00:02Z", "extRef": "qrr_x"}]}).encode()
    # When
    first = acquirer.parse_webhook(bare, {"X-Sign": _sign(private, bare)})
    second = acquirer.parse_webhook(dated, {"X-Sign": _sign(private, dated)})
    # Then both are read; the one that names later dates orders after, and each names its own change
    assert first.modified_raw is None and second.modified_raw is None
    assert (first.rank, first.order_ms) < (second.rank, second.order_ms)
    assert second.modified_at.isoformat() == "2026-11-23T11:00:02+00:00"
    assert first.event_id != second.event_id and first.event_id.startswith("p2_abc:success:~")
    again = acquirer.parse_webhook(dated, {"X-Sign": _sign(private, dated)})
    assert again.event_id == second.event_id  # a repeat of the same body is the same change


def test_a_link_webhook_without_modified_date_is_an_event_too(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway, private, _ = _adapters(monkeypatch, MonobankGateway)
    body = json.dumps({"invoiceId": "p2_abc", "status": "success", "amount": 85000, "ccy": 980,
                       "createdDate": "2026-11-23T10:00:00Z"}).encode()
    [event] = gateway.parse_webhook(body, {"X-Sign": _sign(private, body)})
    assert event.kind == "succeeded" and event.occurred_at.isoformat() == "2026-11-23T10:00:00+00:00"


def test_the_paid_amount_is_amount_never_the_final_amount_left_after_refunds(monkeypatch: pytest.MonkeyPatch) -> None:
    acquirer, private, _ = _adapters(monkeypatch, MonobankQrAcquirer)
    body = _webhook("success", finalAmount=65000, cancelList=[
        {"status": "success", "amount": 20000, "ccy": 980, "createdDate": "2026-11-23T10:05:00Z",
         "modifiedDate": "2026-11-23T10:05:01Z", "approvalCode": "123456", "rrn": "999", "extRef": "qrr_ours"},
        {"status": "processing", "amount": 100, "createdDate": "2026-11-23T10:06:00Z",
         "modifiedDate": "2026-11-23T10:06:00Z"}])
    update = acquirer.parse_webhook(body, {"X-Sign": _sign(private, body)})
    assert update.amount == Money(amount=85000, currency="UAH") and update.final_amount == Money(amount=65000, currency="UAH")
    assert [(c.key, c.status, c.amount.amount if c.amount else None) for c in update.cancels] == [
        ("ext:qrr_ours", "success", 20000), ("at:2026-11-23T10:06:00Z:100", "processing", 100)]


class RefundStub(StubClient):
    def __init__(self, key: str, answer: Any):
        super().__init__(key)
        self.answer = answer
        self.cancels: list[dict[str, Any]] = []

    def cancel_invoice(self, body: dict[str, Any]) -> Any:
        from clinicpay.providers.monobank.schemas import InvoiceCancelled

        self.cancels.append(body)
        if isinstance(self.answer, Exception):
            raise self.answer
        return InvoiceCancelled.model_validate({"status": self.answer, "createdDate": "2026-11-23T10:00:00Z",
                                                "modifiedDate": "2026-11-23T10:00:00Z"})


def _refund_request(**extra: Any) -> Any:
    from clinicpay.ports import RefundRequest

    return RefundRequest(clinic_id="cl_1", refund_id="qrr_kdm", payment_reference="p2_abc",
                         amount=Money(amount=30000, currency="UAH"), idempotency_key="clinicpay-cl_1-refund-qrr_kdm",
                         **extra)


@pytest.mark.parametrize(("answer", "status"), [("processing", "pending"), ("success", "succeeded"),
                                                ("failure", "failed")])
def test_a_refund_is_invoice_cancel_with_our_id_as_ext_ref(monkeypatch: pytest.MonkeyPatch, answer: str,
                                                           status: str) -> None:
    for cls in (MonobankGateway, MonobankQrAcquirer):  # links and QR payments alike
        adapter, _, _ = _adapters(monkeypatch, cls)
        stub = RefundStub(adapter.client.key, answer)
        monkeypatch.setattr(adapter, "client", stub)
        result = adapter.refund(_refund_request())
        assert stub.cancels == [{"invoiceId": "p2_abc", "extRef": "qrr_kdm", "amount": 30000}]
        assert result.status == status


def test_a_refund_carries_items_when_monobank_fiscalizes(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter, _, _ = _adapters(monkeypatch, MonobankQrAcquirer)
    stub = RefundStub(adapter.client.key, "processing")
    monkeypatch.setattr(adapter, "client", stub)
    items = [{"name": "Консультація", "qty": 1, "sum": 30000, "code": "ap_1"}]
    adapter.refund(_refund_request(fiscal_items=items))
    assert stub.cancels[0]["items"] == items


def test_a_refused_refund_is_failed_with_monobanks_code_and_a_lost_answer_is_undecided(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from clinicpay.domain.errors import ProviderOutcomeUnknown
    from clinicpay.providers.monobank.client import MonobankApiError

    adapter, _, _ = _adapters(monkeypatch, MonobankQrAcquirer)
    monkeypatch.setattr(adapter, "client", RefundStub(adapter.client.key, MonobankApiError(400, "BAD_REQUEST")))
    refused = adapter.refund(_refund_request())
    assert (refused.status, refused.failure_code) == ("failed", "BAD_REQUEST")
    monkeypatch.setattr(adapter, "client", RefundStub(adapter.client.key, ProviderOutcomeUnknown()))
    with pytest.raises(ProviderOutcomeUnknown):
        adapter.refund(_refund_request())
