"""The Stripe adapters against a stubbed transport: what goes on the wire (form-encoded, bracket
notation, lower-case currency, pinned version, idempotency keys) and how answers and events map."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import pytest

from clinicpay.domain.errors import InvalidSignature, ProviderUnavailable, ValidationFailed
from clinicpay.domain.money import Money
from clinicpay.ports import CardSetupRequest, CheckoutRequest, OffSessionCharge
from clinicpay.providers import http
from clinicpay.providers.stripe.adapter import StripeCardVault, StripeGateway
from clinicpay.providers.stripe.client import STRIPE_VERSION, encode_form
from clinicpay.providers.stripe.signature import signature_header
from clinicpay.settings import Settings

SECRET = "whsec_unit"
CREDENTIALS = {"secret_key": "sk_test_unit_key", "publishable_key": "pk_test_unit", "webhook_secret": SECRET}
SETTINGS = Settings(stripe_api_base="https://stripe.test", provider_timeout_seconds=2)


class Wire:
    """Records requests and answers them from a queue of (status, body)."""

    def __init__(self, answers: list[tuple[int, Any]]):
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def __call__(self, provider: str, method: str, url: str, *, headers: dict[str, str] | None = None,
                 json_body: Any = None, form: Any = None, timeout: float = 8.0, attempts: int = 3,
                 retry_post: bool = False, **transport: Any) -> http.HttpResponse:
        self.calls.append({"method": method, "url": url, "headers": headers or {}, "form": list(form or []),
                           "json": json_body, "retry_post": retry_post})
        status, body = self.answers.pop(0)
        if isinstance(body, Exception):
            raise body
        if status >= 400:
            raise http.ProviderHttpError(provider, status, body)
        return http.HttpResponse(status, json.dumps(body).encode(), {})


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    recorder = Wire([])
    monkeypatch.setattr(http, "request", recorder)
    return recorder


def _intent(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": "pi_1", "object": "payment_intent", "amount": 2500, "currency": "cad", "status": status, **extra}


def _charge_request() -> OffSessionCharge:
    return OffSessionCharge(clinic_id="cl_1", patient_id="p-1", charge_id="ch_1", customer_ref="cus_1",
                            card_token="pm_secret_token", amount=Money(amount=2500, currency="CAD"),
                            description="No-show", idempotency_key="clinicpay-charge-ch_1",
                            return_url="https://pay.example/cards/authentication-complete?lang=en",
                            metadata={"appointment_id": "ap_1"})


def test_form_encoding_uses_stripes_bracket_notation() -> None:
    pairs = encode_form({"metadata": {"appointment_id": "ap_1"}, "payment_method_types": ["card"], "confirm": True,
                         "line_items": [{"quantity": 1, "price_data": {"unit_amount": 500}}], "skip": None})
    assert pairs == [("metadata[appointment_id]", "ap_1"), ("payment_method_types[]", "card"), ("confirm", "true"),
                     ("line_items[0][quantity]", "1"), ("line_items[0][price_data][unit_amount]", "500")]


def test_an_off_session_charge_is_a_form_encoded_confirmed_payment_intent_with_an_idempotency_key(wire: Wire) -> None:
    # Given Stripe accepts the payment
    wire.answers.append((200, _intent("succeeded")))
    # When the vault charges
    result = StripeCardVault(CREDENTIALS, SETTINGS).charge(_charge_request())
    # Then it succeeded, and the request is what Stripe expects
    assert result.status == "succeeded" and result.reference == "pi_1" and result.failure_code is None
    call = wire.calls[0]
    assert (call["method"], call["url"]) == ("POST", "https://stripe.test/v1/payment_intents")
    assert call["headers"]["Authorization"] == "Bearer sk_test_unit_key"
    assert call["headers"]["Stripe-Version"] == STRIPE_VERSION
    assert call["headers"]["Idempotency-Key"] == "clinicpay-charge-ch_1"
    assert call["json"] is None and call["retry_post"] is True
    form = dict(call["form"])
    assert form["amount"] == "2500" and form["currency"] == "cad"
    assert form["off_session"] == "true" and form["confirm"] == "true"
    assert form["customer"] == "cus_1" and form["payment_method"] == "pm_secret_token"
    assert form["metadata[appointment_id]"] == "ap_1" and form["metadata[clinicpay_charge_id]"] == "ch_1"


def test_authentication_required_becomes_requires_action_with_stripes_hosted_authentication_page(wire: Wire) -> None:
    # Given the bank wants the patient present, then the on-session confirm gives a redirect
    declined = {"error": {"type": "card_error", "code": "authentication_required",
                          "decline_code": "authentication_required", "message": "…",
                          "payment_intent": _intent("requires_payment_method")}}
    wire.answers += [(402, declined), (200, _intent("requires_action", next_action={
        "type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.test/3ds/pi_1"}}))]
    # When
    result = StripeCardVault(CREDENTIALS, SETTINGS).charge(_charge_request())
    # Then the charge needs action, with the link the patient can complete
    assert result.status == "requires_action"
    assert result.action_url == "https://hooks.stripe.test/3ds/pi_1"
    assert result.reference == "pi_1" and result.failure_code == "authentication_required"
    confirm = wire.calls[1]
    assert confirm["url"] == "https://stripe.test/v1/payment_intents/pi_1/confirm"
    assert dict(confirm["form"])["return_url"].startswith("https://pay.example/cards/authentication-complete")
    assert confirm["headers"]["Idempotency-Key"] == "clinicpay-charge-ch_1-authenticate"


def test_a_decline_comes_back_with_its_reason(wire: Wire) -> None:
    wire.answers.append((402, {"error": {"type": "card_error", "code": "card_declined",
                                         "decline_code": "insufficient_funds",
                                         "payment_intent": _intent("requires_payment_method")}}))
    result = StripeCardVault(CREDENTIALS, SETTINGS).charge(_charge_request())
    assert (result.status, result.failure_code, result.reference) == ("failed", "insufficient_funds", "pi_1")
    assert len(wire.calls) == 1


def test_stripe_being_down_is_provider_unavailable_not_a_decline(wire: Wire) -> None:
    wire.answers.append((0, ProviderUnavailable()))
    with pytest.raises(ProviderUnavailable):
        StripeCardVault(CREDENTIALS, SETTINGS).charge(_charge_request())


def test_attaching_a_token_describes_the_card(wire: Wire) -> None:
    card = {"brand": "visa", "display_brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034}
    wire.answers += [(200, {"id": "pm_1", "type": "card", "customer": None, "card": card}),
                     (200, {"id": "pm_1", "type": "card", "customer": "cus_1", "card": card})]
    described = StripeCardVault(CREDENTIALS, SETTINGS).attach_card("pm_1", "cus_1")
    assert (described.brand, described.last4, described.exp_month, described.exp_year) == ("visa", "4242", 12, 2034)
    assert "pm_1" not in repr(described)  # the token never shows in a repr (and so in a log)
    assert wire.calls[1]["url"] == "https://stripe.test/v1/payment_methods/pm_1/attach"


def test_another_customers_payment_method_is_refused(wire: Wire) -> None:
    wire.answers.append((200, {"id": "pm_1", "type": "card", "customer": "cus_other",
                               "card": {"brand": "visa", "last4": "4242", "exp_month": 1, "exp_year": 2030}}))
    with pytest.raises(ValidationFailed):
        StripeCardVault(CREDENTIALS, SETTINGS).attach_card("pm_1", "cus_1")


def test_detaching_an_already_detached_card_is_fine(wire: Wire) -> None:
    wire.answers.append((400, {"error": {"type": "invalid_request_error", "message": "not attached"}}))
    StripeCardVault(CREDENTIALS, SETTINGS).detach_card("pm_1")


def test_a_setup_is_checkout_in_setup_mode_carrying_our_reference(wire: Wire) -> None:
    wire.answers.append((200, {"id": "cs_1", "mode": "setup", "url": "https://checkout.test/cs_1",
                               "setup_intent": "seti_1", "expires_at": 1_900_000_000}))
    session = StripeCardVault(CREDENTIALS, SETTINGS).start_setup(CardSetupRequest(
        clinic_id="cl_1", patient_id="p-1", customer_ref="cus_1", setup_ref="setup_1", success_url="https://a/ok",
        cancel_url="https://a/no", locale="uk", idempotency_key="clinicpay-setup-setup_1"))
    assert (session.session_id, session.setup_id, session.url) == ("cs_1", "seti_1", "https://checkout.test/cs_1")
    form = dict(wire.calls[0]["form"])
    assert form["mode"] == "setup" and form["payment_method_types[]"] == "card"
    assert form["setup_intent_data[metadata][clinicpay_setup_ref]"] == "setup_1"
    assert form["locale"] == "auto"  # Checkout has no Ukrainian page


def test_a_link_payment_is_checkout_in_payment_mode_in_stripes_units(wire: Wire) -> None:
    wire.answers.append((200, {"id": "cs_2", "mode": "payment", "url": "https://checkout.test/cs_2",
                               "expires_at": 1_900_000_000}))
    session = StripeGateway(CREDENTIALS, SETTINGS).create_checkout(CheckoutRequest(
        clinic_id="cl_1", appointment_id="ap_1", amount=Money(amount=9950, currency="NOK"), description="Time",
        success_url="https://a/ok", cancel_url="https://a/no", idempotency_key="k", webhook_url="https://a/wh"))
    assert session.provider == "stripe" and session.url == "https://checkout.test/cs_2"
    form = dict(wire.calls[0]["form"])
    assert form["line_items[0][price_data][currency]"] == "nok"
    assert form["line_items[0][price_data][unit_amount]"] == "9950"
    assert form["metadata[appointment_id]"] == "ap_1" and form["payment_intent_data[metadata][appointment_id]"] == "ap_1"


def _signed(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event, indent=2).encode()
    return body, {"stripe-signature": signature_header(SECRET, body)}


def _event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": "evt_1", "object": "event", "type": event_type, "created": 1_800_000_000, "livemode": False,
            "data": {"object": obj}}


def test_a_completed_link_checkout_is_a_succeeded_payment_event() -> None:
    body, headers = _signed(_event("checkout.session.completed", {
        "id": "cs_2", "object": "checkout.session", "mode": "payment", "payment_status": "paid",
        "payment_intent": "pi_9", "amount_total": 9950, "currency": "nok",
        "metadata": {"appointment_id": "ap_1", "clinic_id": "cl_1"}}))
    [event] = StripeGateway(CREDENTIALS, SETTINGS).parse_webhook(body, headers)
    assert (event.kind, event.payment_reference, event.appointment_id, event.session_id) == (
        "succeeded", "pi_9", "ap_1", "cs_2")
    assert event.amount == Money(amount=9950, currency="NOK")


@pytest.mark.parametrize(("event_type", "obj", "kind"), [
    ("checkout.session.expired", {"id": "cs_2", "mode": "payment", "metadata": {"appointment_id": "ap_1"}}, "expired"),
    ("checkout.session.completed", {"id": "cs_3", "mode": "setup", "payment_status": "no_payment_required"},
     "ignored"),
    ("payment_intent.succeeded", {"id": "pi_1", "amount": 1, "currency": "cad"}, "ignored"),
])
def test_other_events_are_not_link_payments(event_type: str, obj: dict[str, Any], kind: str) -> None:
    body, headers = _signed(_event(event_type, obj))
    assert StripeGateway(CREDENTIALS, SETTINGS).parse_webhook(body, headers)[0].kind == kind


def test_card_events_are_translated() -> None:
    vault = StripeCardVault(CREDENTIALS, SETTINGS)
    body, headers = _signed(_event("setup_intent.succeeded", {
        "id": "seti_1", "object": "setup_intent", "status": "succeeded", "customer": "cus_1", "payment_method": "pm_1",
        "metadata": {"clinicpay_setup_ref": "setup_1", "clinic_id": "cl_1", "patient_id": "p-1"}}))
    [saved] = vault.parse_webhook(body, headers)
    assert (saved.kind, saved.setup_id, saved.card_token, saved.metadata["clinicpay_setup_ref"]) == (
        "setup_succeeded", "seti_1", "pm_1", "setup_1")
    body, headers = _signed(_event("payment_intent.payment_failed", {
        "id": "pi_1", "amount": 1, "currency": "cad", "status": "requires_payment_method",
        "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds"}}))
    [failed] = vault.parse_webhook(body, headers)
    assert (failed.kind, failed.charge_reference, failed.failure_code) == ("charge_failed", "pi_1", "insufficient_funds")


def test_an_unsigned_event_is_refused_before_it_is_read() -> None:
    body, _ = _signed(_event("setup_intent.succeeded", {"id": "seti_1"}))
    with pytest.raises(InvalidSignature):
        StripeCardVault(CREDENTIALS, SETTINGS).parse_webhook(body, {"stripe-signature": "t=1,v1=00"})
    with pytest.raises(InvalidSignature):
        StripeGateway({**CREDENTIALS, "webhook_secret": ""}, SETTINGS).parse_webhook(body, {})


def test_the_form_we_send_parses_back_to_the_same_pairs() -> None:
    # Given nested metadata with characters that need escaping
    pairs = encode_form({"metadata": {"note": "a&b=c ü"}})
    # Then urlencode/parse round-trips them (what the sandbox and Stripe decode)
    from urllib.parse import urlencode
    assert parse_qsl(urlencode(pairs)) == [("metadata[note]", "a&b=c ü")]
