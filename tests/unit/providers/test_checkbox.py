"""Checkbox: webhook signature (self-made fixture), tokens, the sell payload, and the register's
exactly-once behaviour when retries meet an existing receipt. The HTTP client is stubbed."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from clinicpay import deadline
from clinicpay.domain.errors import InvalidSignature, ProviderUnavailable
from clinicpay.domain.fiscal import (
    CardPaymentLine,
    FiscalRegisterBusy,
    FiscalRejected,
    ReceiptGood,
    ReceiptRequest,
    ShiftClosed,
)
from clinicpay.providers import http
from clinicpay.providers.checkbox import CheckboxFiscalRegister, compute_signature, parse_receipt_event, sell_body
from clinicpay.providers.checkbox import client as checkbox_client
from clinicpay.providers.checkbox.client import CheckboxApiError, jwt_expiry
from clinicpay.providers.checkbox.schemas import Receipt
from clinicpay.settings import Settings

# SELF-MADE FIXTURE (Checkbox publishes no vector, providers.md 6.5): secret and body invented here;
# the signature was computed with Python's hmac AND cross-checked with
#   printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
SECRET = "cbx_whsec_self_made_fixture_01"
BODY = (b'{"request_id":"5f0c1a4e-0f39-4b61-9f3e-2a7d1c9b8e10","action":"RECEIPT_STATUS","payload":{"id":'
        b'"8d3f5a2c-6b1e-4c7d-9a0f-1e2d3c4b5a69","type":"SELL","status":"DONE","fiscal_code":"TEST0000000042",'
        b'"tax_url":"https://check.example/TEST0000000042"}}')
SIGNATURE = "uNofVEO+7nNSr7lPAQJ5+vkfLGa6T5EY/G2N15xxrHM="


def test_the_self_made_fixture_signs_as_computed_independently() -> None:
    assert len(BODY) == 245
    assert compute_signature(SECRET, BODY) == SIGNATURE


def test_a_verified_receipt_event_is_read_and_a_tampered_one_refused() -> None:
    register = CheckboxFiscalRegister({"license_key": "l", "pin_code": "1", "webhook_secret": SECRET}, Settings())
    result = register.parse_webhook(BODY, {"X-Request-Signature": SIGNATURE})
    assert result is not None and (result.receipt_id, result.state, result.fiscal_code) == (
        "8d3f5a2c-6b1e-4c7d-9a0f-1e2d3c4b5a69", "DONE", "TEST0000000042")
    with pytest.raises(InvalidSignature):
        register.parse_webhook(BODY.replace(b"0042", b"0043"), {"x-request-signature": SIGNATURE})


def test_without_a_webhook_secret_nothing_verifies() -> None:
    register = CheckboxFiscalRegister({"license_key": "l", "pin_code": "1"}, Settings())
    with pytest.raises(InvalidSignature):
        register.parse_webhook(BODY, {"x-request-signature": compute_signature("", BODY)})


def test_a_shift_event_is_not_a_receipt() -> None:
    assert parse_receipt_event(b'{"action":"SHIFT_STATUS","payload":{"id":"s","status":"OPENED","serial":1}}') is None


def test_the_token_lives_until_its_jwt_exp() -> None:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    assert jwt_expiry(f"{part({'alg': 'HS256'})}.{part({'exp': 1795430000})}.sig") == 1795430000
    assert jwt_expiry("not-a-jwt") > time.time() + 60  # unreadable: a short default, never "forever"


RECEIPT = ReceiptRequest(
    receipt_id="8d3f5a2c-6b1e-4c7d-9a0f-1e2d3c4b5a69",
    goods=[ReceiptGood(code="ap_1", name="Консультація", price=42500, quantity=2000)],
    payment=CardPaymentLine(value=85000, card_mask="444403******1902", auth_code="662476", rrn="060189181768"),
)


def test_the_sell_payload_is_in_kopecks_and_thousandths_with_one_cashless_payment() -> None:
    assert sell_body(RECEIPT) == {
        "id": "8d3f5a2c-6b1e-4c7d-9a0f-1e2d3c4b5a69",
        "goods": [{"good": {"code": "ap_1", "name": "Консультація", "price": 42500}, "quantity": 2000,
                   "is_return": False}],
        "payments": [{"type": "CASHLESS", "value": 85000, "label": "Картка", "card_mask": "444403******1902",
                      "auth_code": "662476", "rrn": "060189181768"}],
    }


def test_a_receipt_that_does_not_add_up_is_refused_before_any_call() -> None:
    with pytest.raises(ValueError):
        ReceiptRequest(receipt_id="x", goods=[ReceiptGood(code="a", name="a", price=100, quantity=1000)],
                       payment=CardPaymentLine(value=99))


class StubClient:
    """Stands in for CheckboxClient: scripted answers to sell, a receipt store for get_receipt."""

    def __init__(self, sell_error: Exception | None = None, existing: dict[str, Any] | None = None,
                 statuses: list[str] | None = None):
        self.sell_error = sell_error
        self.existing = existing
        self.statuses = statuses or ["DONE"]
        self.sells = 0
        self.reads = 0

    def sell(self, body: dict[str, Any]) -> Receipt:
        self.sells += 1
        if self.sell_error:
            raise self.sell_error
        return Receipt(id=body["id"], status="CREATED")

    def get_receipt(self, receipt_id: str) -> Receipt | None:
        self.reads += 1
        if self.existing is None and self.sell_error is not None:
            return None
        status = self.statuses[min(self.reads - 1, len(self.statuses) - 1)]
        return Receipt(id=receipt_id, status=status, fiscal_code="FC1" if status == "DONE" else None,
                       tax_url="https://check/FC1" if status == "DONE" else None)


def _register(stub: StubClient, poll_seconds: float = 1.0) -> CheckboxFiscalRegister:
    register = CheckboxFiscalRegister({"license_key": "lic", "pin_code": "1111"}, Settings(), poll_seconds=poll_seconds,
                                      poll_interval=0.01, sleep=lambda _: None)
    register.client = stub  # type: ignore[assignment]
    return register


def test_a_new_receipt_is_polled_until_done() -> None:
    stub = StubClient(statuses=["CREATED", "DONE"])
    result = _register(stub).sell(RECEIPT)
    assert (result.state, result.fiscal_code, stub.sells) == ("DONE", "FC1", 1)


def test_a_repeat_of_our_id_reads_the_first_receipt_back_instead_of_making_another() -> None:
    stub = StubClient(sell_error=CheckboxApiError(400, "Чек з таким ідентифікатором вже існує"), existing={})
    result = _register(stub).sell(RECEIPT)
    assert result.state == "DONE" and result.receipt_id == RECEIPT.receipt_id


def test_a_timeout_that_hid_a_created_receipt_still_ends_with_that_receipt() -> None:
    stub = StubClient(sell_error=ProviderUnavailable(), existing={})
    assert _register(stub).sell(RECEIPT).state == "DONE"


def test_a_timeout_with_nothing_created_stays_unavailable() -> None:
    stub = StubClient(sell_error=ProviderUnavailable())
    with pytest.raises(ProviderUnavailable):
        _register(stub).sell(RECEIPT)


def test_a_refusal_with_nothing_created_is_a_rejection() -> None:
    stub = StubClient(sell_error=CheckboxApiError(422, "body.goods.0.good.price: must be >= 0"))
    with pytest.raises(FiscalRejected):
        _register(stub).sell(RECEIPT)


def test_a_receipt_still_processing_after_the_wait_comes_back_as_processing() -> None:
    stub = StubClient(statuses=["CREATED"])
    assert _register(stub, poll_seconds=0.05).sell(RECEIPT).state == "PROCESSING"


def test_an_error_receipt_carries_the_registers_words() -> None:
    stub = StubClient(statuses=["ERROR"])
    result = _register(stub).sell(RECEIPT)
    assert result.state == "ERROR" and result.error


@pytest.mark.parametrize(("message", "error"), [
    ("Зміну не відкрито", ShiftClosed),
    ("Каса зайнята іншим касиром", FiscalRegisterBusy),
])
def test_checkboxs_own_400_messages_become_domain_errors(monkeypatch: pytest.MonkeyPatch, message: str,
                                                         error: type[Exception]) -> None:
    def refuse(*_: Any, **__: Any) -> http.HttpResponse:
        raise http.ProviderHttpError("checkbox", 400, {"message": message})

    monkeypatch.setattr(checkbox_client.http, "request", refuse)
    checkbox_client.TOKENS.put(checkbox_client.CheckboxClient("lic", "1", base_url="https://cb.test")._cache_key,
                               "a.eyJleHAiOiA0MTAyNDQ0ODAwfQ.s")
    with pytest.raises(error):
        checkbox_client.CheckboxClient("lic", "1", base_url="https://cb.test").sell({"id": "x"})


def test_an_expired_token_is_dropped_and_the_cashier_signs_in_again_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def fake(provider: str, method: str, url: str, **kwargs: Any) -> http.HttpResponse:
        calls.append((method, url.rsplit("/api/v1", 1)[1]))
        if url.endswith("signinPinCode"):
            return http.HttpResponse(200, b'{"access_token": "new.eyJleHAiOiA0MTAyNDQ0ODAwfQ.s"}', {})
        if kwargs["headers"]["Authorization"].startswith("Bearer old"):
            raise http.ProviderHttpError("checkbox", 401, {"message": "expired"})
        return http.HttpResponse(200, b"null", {})

    monkeypatch.setattr(checkbox_client.http, "request", fake)
    client = checkbox_client.CheckboxClient("lic-2", "1", base_url="https://cb.test")
    checkbox_client.TOKENS.put(client._cache_key, "old.eyJleHAiOiA0MTAyNDQ0ODAwfQ.s")
    assert client.current_shift() is None
    assert calls == [("GET", "/cashier/shift"), ("POST", "/cashier/signinPinCode"), ("GET", "/cashier/shift")]


def test_polling_a_receipt_stops_with_the_invocations_provider_budget() -> None:
    # Given a receipt that stays PROCESSING and a register that would poll for 8 s
    stub = StubClient(statuses=["PROCESSING"])
    register = CheckboxFiscalRegister({"license_key": "lic", "pin_code": "1111"}, Settings(), poll_seconds=8.0,
                                      poll_interval=0.01, sleep=time.sleep)
    register.client = stub  # type: ignore[assignment]
    # When it runs with 0.3 s left for provider calls
    started = time.monotonic()
    with deadline.bounded(deadline.RESERVE_SECONDS + 0.3):
        result = register.sell(RECEIPT)
    # Then it hands back "still processing" in time, for the webhook or the sweep to settle
    assert result.state == "PROCESSING" and 0.25 < time.monotonic() - started < 1.0


def test_a_return_receipt_is_a_sell_with_every_line_returned_and_the_sale_it_returns() -> None:
    returned = ReceiptRequest(receipt_id="6b0e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4", is_return=True,
                              related_receipt_id="8d3f5a2c-6b1e-4c7d-9a0f-1e2d3c4b5a69",
                              goods=[ReceiptGood(code="ap_1", name="Консультація", price=30000, quantity=1000)],
                              payment=CardPaymentLine(value=30000, card_mask="444403******1902", rrn="222"))
    body = sell_body(returned)
    assert body["related_receipt_id"] == "8d3f5a2c-6b1e-4c7d-9a0f-1e2d3c4b5a69"
    assert [g["is_return"] for g in body["goods"]] == [True]
    assert body["payments"][0]["value"] == 30000
    assert "related_receipt_id" not in sell_body(RECEIPT)


def test_a_return_receipt_must_name_its_sale() -> None:
    with pytest.raises(ValueError):
        ReceiptRequest(receipt_id="x", is_return=True, goods=[ReceiptGood(code="a", name="a", price=100, quantity=1000)],
                       payment=CardPaymentLine(value=100))
