"""Stripe adapters: `StripeCardVault` (the CardVault port: customers, Checkout in setup mode,
PaymentMethods, off-session PaymentIntents) and `StripeGateway` (the PaymentGateway port: Checkout in
payment mode behind `/pay/{token}`). One Stripe account per clinic; both read the same credentials
`{secret_key, publishable_key, webhook_secret}` and verify the same Stripe-Signature header."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from clinicpay.domain.errors import BadRequest, GatewayNotConfigured, ProviderError, ValidationFailed
from clinicpay.domain.money import Money
from clinicpay.observability import logger
from clinicpay.ports import (
    CardEvent,
    CardEventKind,
    CardSetupRequest,
    CardSetupSession,
    ChargeResult,
    ChargeStatus,
    CheckoutRequest,
    CheckoutSession,
    OffSessionCharge,
    PaymentEvent,
    PaymentEventKind,
    SessionAnswer,
    VaultCard,
    asked_event_id,
)
from clinicpay.providers.stripe import schemas
from clinicpay.providers.stripe.client import PROVIDER, StripeApiError, StripeClient
from clinicpay.providers.stripe.signature import SIGNATURE_HEADER, verify_signature
from clinicpay.settings import Settings

# Stripe's zero-decimal currencies take whole units; every other one we support takes hundredths,
# exactly as our Money does. The check below refuses a currency whose units would disagree.
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                          "vuv", "xaf", "xof", "xpf"})

# Checkout's own page speaks these of our locales; the others get Stripe's browser-based choice.
CHECKOUT_LOCALES = frozenset({"es", "en", "fr", "nb"})

# PaymentIntent status -> what a charge is. `requires_payment_method` after a confirm means the
# attempt failed (the PI can be retried with another card, which would be a new charge for us).
PAYMENT_INTENT_STATUSES: dict[str, ChargeStatus] = {
    "succeeded": "succeeded",
    "processing": "processing",
    "requires_action": "requires_action",
    "requires_payment_method": "failed",
    "requires_confirmation": "failed",
    "canceled": "failed",
}

CARD_EVENT_KINDS: dict[str, CardEventKind] = {
    "setup_intent.succeeded": "setup_succeeded",
    "setup_intent.setup_failed": "setup_failed",
    "payment_intent.succeeded": "charge_succeeded",
    "payment_intent.payment_failed": "charge_failed",
    "payment_intent.requires_action": "charge_requires_action",
    "payment_method.detached": "card_detached",
}

# checkout.session.completed in payment mode: `unpaid` means a delayed method is still settling.
COMPLETED_PAYMENT_STATUSES: dict[str, PaymentEventKind] = {"paid": "succeeded", "unpaid": "pending"}

LINK_SESSION_EVENTS: dict[str, PaymentEventKind] = {
    "checkout.session.async_payment_succeeded": "succeeded",
    "checkout.session.async_payment_failed": "failed",
    "checkout.session.expired": "expired",
}

# A completed Checkout Session left `unpaid` (a delayed payment method) is decided by its
# PaymentIntent: still settling, failed for good, or paid (its webhook lost).
LINK_INTENT_KINDS: dict[str, PaymentEventKind] = {
    "succeeded": "succeeded", "processing": "pending", "requires_payment_method": "failed", "canceled": "failed"}

# What our webhook endpoint subscribes to: both adapters read the same endpoint.
SUBSCRIBED_EVENTS = sorted({*CARD_EVENT_KINDS, *LINK_SESSION_EVENTS, "checkout.session.completed"})


class _StripeAccount:
    """One clinic's Stripe account: the HTTP client and the webhook secret."""

    def __init__(self, credentials: Mapping[str, Any], settings: Settings):
        secret_key = str(credentials.get("secret_key") or "")
        if not secret_key:
            raise GatewayNotConfigured("The clinic's Stripe credentials have no secret_key.")
        self._webhook_secret = str(credentials.get("webhook_secret") or "")
        self.publishable_key = str(credentials.get("publishable_key") or "")
        self.client = StripeClient(secret_key, base_url=settings.stripe_api_base,
                                   timeout=settings.provider_timeout_seconds)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _verified_event(self, raw_body: bytes, headers: Mapping[str, str]) -> schemas.Event:
        verify_signature(raw_body, _header(headers, SIGNATURE_HEADER), self._webhook_secret)
        try:
            return schemas.Event.model_validate(json.loads(raw_body))
        except (ValueError, ValidationError):
            raise BadRequest("The Stripe event is not a valid event envelope.") from None

    def register_webhook_endpoint(self, url: str, *, description: str = "clinicpay") -> str:
        """Subscribe `url` to the events we read; returns the endpoint secret, which Stripe shows only now."""
        endpoint = self.client.create_webhook_endpoint(url, SUBSCRIBED_EVENTS, description=description)
        if not endpoint.secret:
            raise ProviderError("Stripe did not return a secret for the new webhook endpoint.")
        return endpoint.secret


class StripeCardVault(_StripeAccount):
    """Cards on file at Stripe: a Customer per patient, cards saved through Checkout in setup mode
    (the card is typed only on Stripe's page), charged later with off-session PaymentIntents."""

    name = PROVIDER

    def ensure_customer(self, clinic_id: str, patient_id: str, *, existing: str | None = None) -> str:
        if existing:
            return existing
        # Only our ids go to Stripe: the patient's name and contact details are not needed to charge.
        customer = self.client.create_customer(
            {"metadata": {"clinic_id": clinic_id, "patient_id": patient_id}},
            idempotency_key=f"customer-{clinic_id}-{patient_id}")
        logger.info("stripe customer created", extra={"provider": PROVIDER, "clinic_id": clinic_id,
                                                      "customer_ref": customer.id})
        return customer.id

    def start_setup(self, request: CardSetupRequest) -> CardSetupSession:
        metadata = {"clinic_id": request.clinic_id, "patient_id": request.patient_id,
                    "clinicpay_setup_ref": request.setup_ref}
        params: dict[str, Any] = {
            "mode": "setup",
            "customer": request.customer_ref,
            "payment_method_types": ["card"],
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "metadata": metadata,
            # The SetupIntent carries the same metadata, so setup_intent.succeeded names our attempt.
            "setup_intent_data": {"metadata": metadata},
            "locale": request.locale if request.locale in CHECKOUT_LOCALES else "auto",
        }
        session = self.client.create_checkout_session(params, idempotency_key=request.idempotency_key)
        if not session.url:
            raise ProviderError("Stripe returned a setup session without a url.")
        logger.info("stripe setup session created", extra={"provider": PROVIDER, "clinic_id": request.clinic_id,
                                                           "session_id": session.id, "setup_id": session.setup_intent})
        return CardSetupSession(session_id=session.id, setup_id=session.setup_intent, url=session.url,
                                expires_at=_when(session.expires_at))

    def attach_card(self, token: str, customer_ref: str) -> VaultCard:
        method = self.client.retrieve_payment_method(token)
        if method.customer is None:
            method = self.client.attach_payment_method(method.id, customer_ref)
        elif method.customer != customer_ref:
            raise ValidationFailed("That payment method belongs to another customer.",
                                   code="payment_method_not_usable")
        if method.type != "card" or method.card is None:
            raise ValidationFailed("That payment method is not a card.", code="payment_method_not_usable")
        return _vault_card(method)

    def detach_card(self, token: str) -> None:
        try:
            self.client.detach_payment_method(token)
        except StripeApiError as error:
            # Already detached (or deleted at Stripe): the state we want is already there.
            if error.http_status in (400, 404) and error.detail.type == "invalid_request_error":
                logger.info("stripe payment method already detached", extra={"provider": PROVIDER,
                                                                            "provider_code": error.detail.code})
                return
            raise

    def charge(self, request: OffSessionCharge) -> ChargeResult:
        params = {
            "amount": _stripe_amount(request.amount),
            "currency": request.amount.currency.lower(),
            "customer": request.customer_ref,
            "payment_method": request.card_token,
            "payment_method_types": ["card"],
            "off_session": True,
            "confirm": True,
            "description": request.description,
            "metadata": {**request.metadata, "clinic_id": request.clinic_id, "patient_id": request.patient_id,
                         "clinicpay_charge_id": request.charge_id},
        }
        try:
            intent = self.client.create_payment_intent(params, idempotency_key=request.idempotency_key)
        except StripeApiError as error:
            if not error.is_card_error:
                raise
            return self._declined(error, request)
        return _charge_result(intent)

    def _declined(self, error: StripeApiError, request: OffSessionCharge) -> ChargeResult:
        detail = error.detail
        intent = detail.payment_intent
        code = detail.decline_code or detail.code or "card_declined"
        logger.info("stripe off-session charge declined", extra={
            "provider": PROVIDER, "clinic_id": request.clinic_id, "charge_id": request.charge_id,
            "payment_reference": intent.id if intent else None, "provider_code": detail.code, "decline_code": code})
        if intent is None:
            return ChargeResult(status="failed", failure_code=code)
        if "authentication_required" not in (detail.code, detail.decline_code):
            return ChargeResult(status="failed", reference=intent.id, failure_code=code)
        # The bank wants the patient present. Confirming the same PaymentIntent on-session with a
        # return_url gives a Stripe-hosted authentication page (next_action.redirect_to_url) to send
        # the patient to; when they complete it, payment_intent.succeeded arrives by webhook.
        try:
            confirmed = self.client.confirm_payment_intent(
                intent.id, {"payment_method": request.card_token, "return_url": request.return_url},
                idempotency_key=f"{request.idempotency_key}-authenticate"[:255])
        except StripeApiError as again:
            if not again.is_card_error:
                raise
            return ChargeResult(status="failed", reference=intent.id,
                                failure_code=again.detail.decline_code or again.detail.code or code)
        result = _charge_result(confirmed)
        if result.status == "requires_action":
            return ChargeResult(status="requires_action", reference=intent.id, failure_code="authentication_required",
                                action_url=result.action_url)
        return result

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> list[CardEvent]:
        event = self._verified_event(raw_body, headers)
        translated = _card_event(event)
        logger.info("stripe event verified", extra={"provider": PROVIDER, "event_id": event.id,
                                                    "event_type": event.type, "kind": translated.kind})
        return [translated]


class StripeGateway(_StripeAccount):
    """Stripe Checkout in payment mode behind our `/pay/{token}` links (Canada, Norway)."""

    name = PROVIDER

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        amount = request.amount
        if amount.amount <= 0:
            raise ValidationFailed("Stripe needs an amount above zero.", code="invalid_amount")
        # Our keys last, so caller metadata cannot redirect a payment to another appointment.
        metadata = {**request.metadata, "clinic_id": request.clinic_id, "appointment_id": request.appointment_id}
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [{"quantity": 1, "price_data": {
                "currency": amount.currency.lower(), "unit_amount": _stripe_amount(amount),
                "product_data": {"name": request.description}}}],
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "customer_email": request.customer_email,
            "client_reference_id": request.appointment_id,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
        }
        session = self.client.create_checkout_session(params, idempotency_key=request.idempotency_key)
        if not session.url:
            raise ProviderError("Stripe returned a checkout session without a url.")
        logger.info("stripe checkout session created", extra={
            "provider": PROVIDER, "session_id": session.id, "clinic_id": request.clinic_id,
            "appointment_id": request.appointment_id, "status": session.status})
        return CheckoutSession(provider=PROVIDER, session_id=session.id, url=session.url,
                               expires_at=_when(session.expires_at))

    def session_status(self, session_id: str) -> SessionAnswer:
        """GET /v1/checkout/sessions/{id}: `open` waits for the patient, `expired` is over, `complete`
        with payment_status `paid` is paid; `complete` but `unpaid` (a delayed method) is settled by
        its PaymentIntent (one more GET)."""
        session = self.client.retrieve_checkout_session(session_id)
        kind: PaymentEventKind = "ignored"
        settled = False
        if session.status == "expired":
            kind, settled = "expired", True
        elif session.status == "complete" and session.payment_status == "paid":
            kind, settled = "succeeded", True
        elif session.status == "complete" and session.payment_intent:
            intent = self.client.retrieve_payment_intent(session.payment_intent)
            kind = LINK_INTENT_KINDS.get(intent.status, "pending")
            settled = kind in ("succeeded", "failed")
        # What the answer reports happened by now: an expiry at its moment, anything else as of asking.
        when = session.expires_at if kind == "expired" else None
        metadata = session.metadata
        event = PaymentEvent(
            provider=PROVIDER, event_id=asked_event_id(session.id, kind, session.payment_intent), kind=kind,
            occurred_at=_when(when) or datetime.now(UTC), session_id=session.id,
            payment_reference=session.payment_intent, appointment_id=metadata.get("appointment_id"),
            amount=_money(session.amount_total, session.currency),
            details={k: v for k, v in {"stripe_session_status": session.status, "clinic_id": metadata.get("clinic_id"),
                                       "payment_status": session.payment_status, "asked": True}.items()
                     if v is not None})
        logger.info("stripe checkout session asked", extra={"provider": PROVIDER, "session_id": session.id,
                                                            "status": session.status, "kind": kind})
        return SessionAnswer(event=event, settled=settled)

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> list[PaymentEvent]:
        event = self._verified_event(raw_body, headers)
        translated = _payment_event(event)
        logger.info("stripe event verified", extra={
            "provider": PROVIDER, "event_id": event.id, "event_type": event.type, "kind": translated.kind,
            "session_id": translated.session_id, "payment_reference": translated.payment_reference})
        return [translated]


# ---------------------------------------------------------------------------------- translation
def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _when(epoch: int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and value != "" else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(value).items() if isinstance(v, str)}


def _stripe_amount(amount: Money) -> int:
    zero_decimal = amount.currency.lower() in ZERO_DECIMAL
    if zero_decimal != (amount.exponent == 0):
        raise ValidationFailed(f"{amount.currency} units do not match Stripe's.", code="currency_not_supported")
    return amount.amount


def _money(amount: Any, currency: Any) -> Money | None:
    if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(currency, str):
        return None
    try:
        return Money(amount=amount, currency=currency.upper())
    except ValidationError:
        return None  # a currency our domain does not model: no amount rather than a wrong one


def _vault_card(method: schemas.PaymentMethod) -> VaultCard:
    assert method.card is not None
    return VaultCard(token=method.id, brand=method.card.display_brand or method.card.brand,
                     last4=method.card.last4, exp_month=method.card.exp_month, exp_year=method.card.exp_year)


def _charge_result(intent: schemas.PaymentIntent) -> ChargeResult:
    status = PAYMENT_INTENT_STATUSES.get(intent.status, "failed")
    error = intent.last_payment_error
    failure = (error.decline_code or error.code) if error else None
    action_url = None
    if intent.next_action and intent.next_action.redirect_to_url:
        action_url = intent.next_action.redirect_to_url.url
    if status == "failed" and not failure:
        failure = intent.status
    return ChargeResult(status=status, reference=intent.id, failure_code=failure if status != "succeeded" else None,
                        action_url=action_url if status == "requires_action" else None)


def _card_event(event: schemas.Event) -> CardEvent:
    data = event.data.object
    kind: CardEventKind = CARD_EVENT_KINDS.get(event.type, "ignored")
    error = _dict(data.get("last_setup_error") or data.get("last_payment_error"))
    common: dict[str, Any] = {"provider": PROVIDER, "event_id": event.id, "kind": kind,
                              "occurred_at": datetime.fromtimestamp(event.created, UTC),
                              "metadata": _strings(data.get("metadata")),
                              "failure_code": _text(error.get("decline_code")) or _text(error.get("code"))}
    if event.type.startswith("setup_intent."):
        return CardEvent(**common, setup_id=_text(data.get("id")), customer_ref=_text(data.get("customer")),
                         card_token=_object_id(data.get("payment_method")))
    if event.type.startswith("payment_intent."):
        return CardEvent(**common, charge_reference=_text(data.get("id")), customer_ref=_text(data.get("customer")),
                         amount=_money(data.get("amount"), data.get("currency")))
    if event.type.startswith("payment_method."):
        return CardEvent(**common, card_token=_text(data.get("id")))
    return CardEvent(**{**common, "kind": "ignored"})


def _object_id(value: Any) -> str | None:
    # Stripe sends an id, or the object itself when expanded.
    return _text(_dict(value).get("id")) if isinstance(value, dict) else _text(value)


def _payment_event(event: schemas.Event) -> PaymentEvent:
    data = event.data.object
    metadata = _strings(data.get("metadata"))
    kind: PaymentEventKind = "ignored"
    if event.type.startswith("checkout.session.") and data.get("mode") == "payment":
        if event.type == "checkout.session.completed":
            kind = COMPLETED_PAYMENT_STATUSES.get(str(data.get("payment_status")), "ignored")
        else:
            kind = LINK_SESSION_EVENTS.get(event.type, "ignored")
    return PaymentEvent(
        provider=PROVIDER,
        event_id=event.id,
        kind=kind,
        occurred_at=datetime.fromtimestamp(event.created, UTC),
        session_id=_text(data.get("id")) if event.type.startswith("checkout.session.") else None,
        payment_reference=_object_id(data.get("payment_intent")),
        appointment_id=metadata.get("appointment_id"),
        amount=_money(data.get("amount_total"), data.get("currency")),
        details={key: value for key, value in {"stripe_event_type": event.type, "clinic_id": metadata.get("clinic_id"),
                                               "payment_status": _text(data.get("payment_status"))}.items()
                 if value is not None},
    )
