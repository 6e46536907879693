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


# ------------------------------------------------------------------ refunds, cancellations, disputes (issue 9)
def _refund(status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {"id": "re_1", "object": "refund", "amount": 1500, "currency": "cad", "payment_intent": "pi_1",
            "charge": "ch_1", "status": status, "metadata": {"clinic_id": "cl_1", "clinicpay_refund_id": "rf_1"}, **extra}


def _refund_request(reason: str | None = None) -> Any:
    from clinicpay.ports import RefundRequest

    return RefundRequest(clinic_id="cl_1", refund_id="rf_1", payment_reference="pi_1",
                         amount=Money(amount=1500, currency="CAD"), idempotency_key="clinicpay-cl_1-refund-rf_1",
                         reason=reason)


@pytest.mark.parametrize("adapter", [StripeCardVault, StripeGateway])
def test_a_refund_is_a_form_encoded_post_under_the_refunds_own_key_naming_our_ids(wire: Wire, adapter: type) -> None:
    wire.answers.append((200, _refund("pending")))
    result = adapter(CREDENTIALS, SETTINGS).refund(_refund_request("requested_by_customer"))
    assert (result.status, result.provider_refund_id, result.failure_code) == ("pending", "re_1", None)
    [call] = wire.calls
    assert call["url"] == "https://stripe.test/v1/refunds" and call["retry_post"] is True
    assert call["headers"]["Idempotency-Key"] == "clinicpay-cl_1-refund-rf_1"
    assert dict(call["form"]) == {"payment_intent": "pi_1", "amount": "1500", "reason": "requested_by_customer",
                                  "metadata[clinic_id]": "cl_1", "metadata[clinicpay_refund_id]": "rf_1",
                                  "metadata[clinicpay_source]": adapter.refund_source}


def test_a_refund_reason_stripe_does_not_know_stays_with_us(wire: Wire) -> None:
    wire.answers.append((200, _refund()))
    StripeGateway(CREDENTIALS, SETTINGS).refund(_refund_request("appointment cancelled by the clinic"))
    assert "reason" not in dict(wire.calls[0]["form"])


def test_a_refused_refund_is_a_failed_result_and_a_lost_answer_is_raised(wire: Wire) -> None:
    from clinicpay.domain.errors import ProviderOutcomeUnknown

    wire.answers.append((400, {"error": {"type": "invalid_request_error", "code": "charge_already_refunded"}}))
    refused = StripeGateway(CREDENTIALS, SETTINGS).refund(_refund_request())
    assert (refused.status, refused.failure_code, refused.provider_refund_id) == ("failed", "charge_already_refunded", None)
    wire.answers.append((0, ProviderOutcomeUnknown()))
    with pytest.raises(ProviderOutcomeUnknown):
        StripeGateway(CREDENTIALS, SETTINGS).refund(_refund_request())


def test_cancelling_a_payment_intent_that_already_succeeded_reports_it_succeeded(wire: Wire) -> None:
    vault = StripeCardVault(CREDENTIALS, SETTINGS)
    wire.answers.append((200, _intent("canceled", cancellation_reason="abandoned")))
    canceled = vault.cancel_charge("pi_1", idempotency_key="clinicpay-cl_1-cancel-ch_1")
    assert (canceled.status, canceled.failure_code) == ("failed", "canceled")
    assert dict(wire.calls[0]["form"]) == {"cancellation_reason": "abandoned"}
    assert wire.calls[0]["url"].endswith("/v1/payment_intents/pi_1/cancel")
    wire.answers += [(400, {"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state"}}),
                     (200, _intent("succeeded"))]
    won = vault.cancel_charge("pi_1", idempotency_key="k")
    assert (won.status, won.reference) == ("succeeded", "pi_1")
    assert wire.calls[-1]["method"] == "GET"
    wire.answers.append((404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}))
    assert vault.cancel_charge("pi_gone", idempotency_key="k2").failure_code == "not_created"


def test_a_charge_we_never_learnt_is_found_by_our_id_among_the_customers_payment_intents(wire: Wire) -> None:
    from datetime import UTC, datetime

    wire.answers.append((200, {"object": "list", "has_more": False, "data": [
        _intent("succeeded", id="pi_other", metadata={"clinicpay_charge_id": "ch_2"}),
        _intent("processing", id="pi_mine", customer="cus_1", metadata={"clinicpay_charge_id": "ch_1",
                                                                        "clinic_id": "cl_1"})]}))
    found = StripeCardVault(CREDENTIALS, SETTINGS).find_charge("cus_1", "ch_1", datetime(2026, 1, 1, tzinfo=UTC))
    assert found is not None and (found.kind, found.charge_reference, found.event_id) == (
        "charge_processing", "pi_mine", "observed_pi_mine_processing")
    query = dict(parse_qsl(wire.calls[0]["url"].split("?", 1)[1]))
    assert query == {"customer": "cus_1", "created[gte]": str(1767225600 - 60), "limit": "100"}


@pytest.mark.parametrize(("event_type", "obj", "kind", "check"), [
    ("payment_intent.canceled", _intent("canceled"), "charge_failed", lambda e: e.failure_code == "canceled"),
    ("charge.refunded", {"id": "ch_1", "object": "charge", "amount": 2500, "amount_refunded": 1500, "currency": "cad",
                         "payment_intent": "pi_1", "refunded": False, "metadata": {"clinic_id": "cl_1"}},
     "charge_refunded", lambda e: e.refunded_total == Money(amount=1500, currency="CAD") and e.charge_reference == "pi_1"),
    ("charge.refund.updated", _refund("failed", failure_reason="expired_or_canceled_card"), "refund_updated",
     lambda e: (e.refund.status, e.refund.failure_code) == ("failed", "expired_or_canceled_card")),
    # At 2024-10-28.acacia and later Stripe also sends these for card refunds; they read the same way.
    ("refund.created", _refund("pending"), "refund_updated",
     lambda e: e.refund.status == "pending" and e.refund.metadata["clinicpay_refund_id"] == "rf_1"),
    ("refund.failed", _refund("failed"), "refund_updated", lambda e: e.refund.status == "failed"),
    ("charge.dispute.created", {"id": "dp_1", "object": "dispute", "amount": 2500, "currency": "cad",
                                "charge": "ch_1", "payment_intent": "pi_1", "reason": "fraudulent",
                                "status": "needs_response"},
     "dispute_updated", lambda e: (e.dispute.dispute_id, e.dispute.status, e.charge_reference) == (
         "dp_1", "needs_response", "pi_1")),
])
def test_refund_cancel_and_dispute_events_are_translated(event_type: str, obj: dict[str, Any], kind: str,
                                                         check: Any) -> None:
    body, headers = _signed(_event(event_type, obj))
    [event] = StripeCardVault(CREDENTIALS, SETTINGS).parse_webhook(body, headers)
    assert event.kind == kind and check(event)


def test_the_endpoint_subscribes_to_refund_cancel_and_dispute_events() -> None:
    from clinicpay.providers.stripe.adapter import SUBSCRIBED_EVENTS

    assert {"payment_intent.canceled", "charge.refunded", "charge.refund.updated", "charge.dispute.created",
            "charge.dispute.closed"} <= set(SUBSCRIBED_EVENTS)


def test_the_link_ledger_leaves_a_card_charges_refund_events_alone() -> None:
    charge = {"id": "ch_1", "object": "charge", "amount": 2500, "amount_refunded": 2500, "currency": "cad",
              "payment_intent": "pi_1", "metadata": {"clinic_id": "cl_1", "clinicpay_charge_id": "ch_ours"}}
    refund = _refund(metadata={"clinic_id": "cl_1", "clinicpay_refund_id": "rf_1", "clinicpay_source": "card_charge"})
    link_refund = _refund(metadata={"clinic_id": "cl_1", "clinicpay_refund_id": "rf_2", "clinicpay_source": "payment_link"})
    kinds = []
    for event_type, obj in (("charge.refunded", charge), ("charge.refund.updated", refund),
                            ("charge.refund.updated", link_refund)):
        body, headers = _signed(_event(event_type, obj))
        kinds.append(StripeGateway(CREDENTIALS, SETTINGS).parse_webhook(body, headers)[0].kind)
    assert kinds == ["ignored", "ignored", "refunded"]
