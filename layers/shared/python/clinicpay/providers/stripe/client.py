"""The only module that calls Stripe over HTTP (through clinicpay.providers.http.request).

Stripe takes form-encoded bodies with bracket notation (`metadata[appointment_id]=...`,
`payment_method_types[]=card`) and answers JSON. Every POST carries an Idempotency-Key, so a POST
is retried only because Stripe will replay it rather than run it twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel, ValidationError

from clinicpay.domain.errors import ProviderError
from clinicpay.providers import http
from clinicpay.providers.stripe import schemas

PROVIDER = "stripe"

# Pinned so a change of the account's default version in the Dashboard cannot reshape what we send
# and read. Webhook events are rendered with the endpoint's version, which we set when creating it.
STRIPE_VERSION = "2024-06-20"

MAX_IDEMPOTENCY_KEY_LENGTH = 255  # Stripe refuses longer keys (reference/providers.md 4.6)

# 409: another request with the same Idempotency-Key is still being processed (stripe-python retries
# it); its outcome is not known yet. Stripe-Should-Retry: `true`/`false`, Stripe's own advice on
# whether a retry can help (stripe-python's HTTPClient._should_retry defers to it before anything else).
UNDECIDED_STATUSES = (409,)
RETRY_ADVICE_HEADER = "Stripe-Should-Retry"

Model = TypeVar("Model", bound=BaseModel)


class StripeApiError(ProviderError):
    """Stripe answered with a 4xx. Keeps Stripe's error type and codes; never its message (it can
    quote what we sent) nor our request."""

    def __init__(self, http_status: int, detail: schemas.ErrorDetail):
        self.http_status = http_status
        self.detail = detail
        code = "provider_credentials_rejected" if http_status in (401, 403) else "provider_error"
        suffix = f", {detail.code}" if detail.code else ""
        super().__init__(f"Stripe refused the request (HTTP {http_status}{suffix}).", code=code,
                         details=[{"provider": PROVIDER, "http_status": http_status, "provider_code": detail.code,
                                   "provider_error_type": detail.type, "param": detail.param}])

    @property
    def is_card_error(self) -> bool:
        return self.detail.type == "card_error"

    @property
    def is_missing(self) -> bool:
        return self.detail.code == "resource_missing"


def encode_form(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Flatten nested params into Stripe's bracket notation. None is left out; booleans are
    `true`/`false`; lists of scalars are `name[]`, lists of objects `name[0][field]`."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        pairs.extend(_encode_value(name, value))
    return pairs


def _encode_value(name: str, value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, bool):
        return [(name, "true" if value else "false")]
    if isinstance(value, Mapping):
        return encode_form(value, name)
    if isinstance(value, list | tuple):
        if all(not isinstance(item, Mapping) for item in value):
            return [pair for item in value for pair in _encode_value(f"{name}[]", item)]
        return [pair for index, item in enumerate(value) for pair in _encode_value(f"{name}[{index}]", item)]
    return [(name, str(value))]


class StripeClient:
    def __init__(self, secret_key: str, *, base_url: str, timeout: float = 8.0):
        self._secret_key = secret_key
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"StripeClient(base_url={self._base_url!r})"

    # ------------------------------------------------------------------ customers
    def create_customer(self, params: dict[str, Any], *, idempotency_key: str) -> schemas.Customer:
        return _parse(schemas.Customer, self._post("/v1/customers", params, idempotency_key))

    # ------------------------------------------------------------------ checkout sessions
    def create_checkout_session(self, params: dict[str, Any], *, idempotency_key: str) -> schemas.CheckoutSession:
        return _parse(schemas.CheckoutSession, self._post("/v1/checkout/sessions", params, idempotency_key))

    def retrieve_checkout_session(self, session_id: str) -> schemas.CheckoutSession:
        return _parse(schemas.CheckoutSession, self._get(f"/v1/checkout/sessions/{http.path_segment(session_id)}"))

    def expire_checkout_session(self, session_id: str) -> schemas.CheckoutSession:
        payload = self._post(f"/v1/checkout/sessions/{http.path_segment(session_id)}/expire", {}, f"expire-{session_id}")
        return _parse(schemas.CheckoutSession, payload)

    # ------------------------------------------------------------------ setup intents
    def retrieve_setup_intent(self, setup_intent_id: str) -> schemas.SetupIntent:
        return _parse(schemas.SetupIntent, self._get(f"/v1/setup_intents/{http.path_segment(setup_intent_id)}"))

    # ------------------------------------------------------------------ payment methods
    def retrieve_payment_method(self, payment_method_id: str) -> schemas.PaymentMethod:
        return _parse(schemas.PaymentMethod, self._get(f"/v1/payment_methods/{http.path_segment(payment_method_id)}"))

    def attach_payment_method(self, payment_method_id: str, customer: str) -> schemas.PaymentMethod:
        payload = self._post(f"/v1/payment_methods/{http.path_segment(payment_method_id)}/attach", {"customer": customer},
                             f"attach-{payment_method_id}-{customer}")
        return _parse(schemas.PaymentMethod, payload)

    def detach_payment_method(self, payment_method_id: str) -> schemas.PaymentMethod:
        payload = self._post(f"/v1/payment_methods/{http.path_segment(payment_method_id)}/detach", {},
                             f"detach-{payment_method_id}")
        return _parse(schemas.PaymentMethod, payload)

    def list_payment_methods(self, customer: str) -> list[schemas.PaymentMethod]:
        payload = self._get(f"/v1/customers/{http.path_segment(customer)}/payment_methods", {"type": "card", "limit": 100})
        return _parse(schemas.PaymentMethodList, payload).data

    # ------------------------------------------------------------------ payment intents
    def create_payment_intent(self, params: dict[str, Any], *, idempotency_key: str) -> schemas.PaymentIntent:
        return _parse(schemas.PaymentIntent, self._post("/v1/payment_intents", params, idempotency_key))

    def confirm_payment_intent(self, payment_intent_id: str, params: dict[str, Any], *,
                               idempotency_key: str) -> schemas.PaymentIntent:
        payload = self._post(f"/v1/payment_intents/{http.path_segment(payment_intent_id)}/confirm", params, idempotency_key)
        return _parse(schemas.PaymentIntent, payload)

    def retrieve_payment_intent(self, payment_intent_id: str) -> schemas.PaymentIntent:
        return _parse(schemas.PaymentIntent, self._get(f"/v1/payment_intents/{http.path_segment(payment_intent_id)}"))

    def cancel_payment_intent(self, payment_intent_id: str, params: dict[str, Any], *,
                              idempotency_key: str) -> schemas.PaymentIntent:
        """Only a PaymentIntent that has not finished can be cancelled (requires_payment_method,
        requires_confirmation, requires_action, requires_capture, some processing); Stripe refuses
        any other with 400 `payment_intent_unexpected_state`."""
        payload = self._post(f"/v1/payment_intents/{http.path_segment(payment_intent_id)}/cancel", params,
                             idempotency_key)
        return _parse(schemas.PaymentIntent, payload)

    def list_payment_intents(self, customer: str, *, created_gte: int, max_pages: int = 5) -> list[schemas.PaymentIntent]:
        """A customer's PaymentIntents created since `created_gte` (epoch seconds), newest first."""
        found: list[schemas.PaymentIntent] = []
        query: dict[str, Any] = {"customer": customer, "created": {"gte": created_gte}, "limit": 100}
        for _ in range(max_pages):
            page = _parse(schemas.PaymentIntentList, self._get("/v1/payment_intents", query))
            found += page.data
            if not page.has_more or not page.data:
                break
            query["starting_after"] = page.data[-1].id
        return found

    # ------------------------------------------------------------------ refunds
    def create_refund(self, params: dict[str, Any], *, idempotency_key: str) -> schemas.Refund:
        return _parse(schemas.Refund, self._post("/v1/refunds", params, idempotency_key))

    def get_refund(self, refund_id: str) -> schemas.Refund:
        return _parse(schemas.Refund, self._get(f"/v1/refunds/{http.path_segment(refund_id)}"))

    def list_refunds(self, payment_intent: str, *, max_pages: int = 5) -> list[schemas.Refund]:
        found: list[schemas.Refund] = []
        query: dict[str, Any] = {"payment_intent": payment_intent, "limit": 100}
        for _ in range(max_pages):
            page = _parse(schemas.RefundList, self._get("/v1/refunds", query))
            found += page.data
            if not page.has_more or not page.data:
                break
            query["starting_after"] = page.data[-1].id
        return found

    # ------------------------------------------------------------------ webhook endpoints
    def create_webhook_endpoint(self, url: str, enabled_events: list[str], *, description: str) -> \
            schemas.WebhookEndpoint:
        params = {"url": url, "enabled_events": enabled_events, "description": description,
                  "api_version": STRIPE_VERSION}
        return _parse(schemas.WebhookEndpoint, self._post("/v1/webhook_endpoints", params, str(uuid.uuid4())))

    # ------------------------------------------------------------------ transport
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._secret_key}", "Stripe-Version": STRIPE_VERSION,
                "User-Agent": "clinicpay"}

    def _post(self, path: str, params: Mapping[str, Any], idempotency_key: str) -> Any:
        if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise ValueError("idempotency_key must be 1..255 characters")
        headers = {**self._headers(), "Idempotency-Key": idempotency_key}
        return self._send("POST", path, headers=headers, form=encode_form(params))

    def _get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        suffix = ""
        if query:
            suffix = "?" + urlencode(encode_form(query))
        return self._send("GET", path + suffix, headers=self._headers(), form=None)

    def _send(self, method: str, path: str, *, headers: dict[str, str], form: list[tuple[str, str]] | None) -> Any:
        try:
            # POSTs always carry an Idempotency-Key (above), so Stripe replays a retried one. A 409
            # is a request with the same key still in flight: undecided, never a refusal.
            # Stripe-Should-Retry overrides our own retry choice either way, as in stripe-python.
            response = http.request(PROVIDER, method, self._base_url + path, headers=headers, form=form,
                                    timeout=self._timeout, retry_post=True, undecided_statuses=UNDECIDED_STATUSES,
                                    retry_advice_header=RETRY_ADVICE_HEADER)
        except http.ProviderHttpError as error:
            raise _translate(error) from None
        try:
            return response.json()
        except ValueError:
            raise ProviderError("Stripe answered with something that is not JSON.") from None


def _parse(model: type[Model], payload: Any) -> Model:
    return http.parse_as("Stripe", model, payload)


def _translate(error: http.ProviderHttpError) -> StripeApiError:
    detail = schemas.ErrorDetail()
    if isinstance(error.payload, dict):
        try:
            detail = schemas.ErrorBody.model_validate(error.payload).error
        except ValidationError:
            pass
    return StripeApiError(error.http_status, detail)
