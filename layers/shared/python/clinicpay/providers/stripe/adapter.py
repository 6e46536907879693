"""Stripe adapters: `StripeCardVault` (the CardVault port: customers, Checkout in setup mode,
PaymentMethods, off-session PaymentIntents, their cancellation, refunds and disputes) and
`StripeGateway` (the PaymentGateway port: Checkout in payment mode behind `/pay/{token}`; and the
RefundingGateway port for those payments). One Stripe account per clinic; both read the same
credentials `{secret_key, publishable_key, webhook_secret}` and verify the same Stripe-Signature header.

Refund and dispute events, as Stripe sends them to an endpoint pinned at 2024-06-20:
- `charge.refunded` (data.object: the Charge; `amount_refunded` is everything refunded so far, pending
  refunds included; since 2022-11-15 the Charge no longer lists its refunds), sent for every refund,
  full or partial, ours or started in the Dashboard;
- `charge.refund.updated` (data.object: the Refund) when a refund changes, e.g. pending -> succeeded,
  or succeeded -> failed when the card was closed (`failure_reason`);
- `refund.created` / `refund.updated` / `refund.failed` (the Refund): sent for card refunds only to
  endpoints at 2024-10-28.acacia or later; read the same way should the endpoint be upgraded;
- `charge.dispute.created` / `.updated` / `.closed` (data.object: the Dispute, naming its
  `payment_intent`, `amount`, `reason`, `status`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from clinicpay.domain.errors import BadRequest, GatewayNotConfigured, ProviderError, ValidationFailed
from clinicpay.domain.money import Money
from clinicpay.observability import logger
from clinicpay.ports.cards import (
    CardEvent,
    CardEventKind,
    CardSetupRequest,
    CardSetupSession,
    ChargeResult,
    ChargeStatus,
    DisputeObservation,
    OffSessionCharge,
    RefundObservation,
    VaultCard,
)
from clinicpay.ports.payments import (
    CheckoutRequest,
    CheckoutSession,
    PaymentEvent,
    PaymentEventKind,
    RefundNotice,
    SessionAnswer,
    asked_event_id,
)
from clinicpay.ports.refunds import RefundRequest, RefundResult
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

# PaymentIntent status -> the event kind that reports it (our asking is read as the event would be).
INTENT_EVENT_KINDS: dict[ChargeStatus, CardEventKind] = {
    "succeeded": "charge_succeeded", "failed": "charge_failed", "requires_action": "charge_requires_action",
    "processing": "charge_processing"}

REFUND_EVENTS = ("charge.refund.updated", "refund.created", "refund.updated", "refund.failed")
DISPUTE_EVENTS = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")

CARD_EVENT_KINDS: dict[str, CardEventKind] = {
    "setup_intent.succeeded": "setup_succeeded",
    "setup_intent.setup_failed": "setup_failed",
    "payment_intent.succeeded": "charge_succeeded",
    "payment_intent.payment_failed": "charge_failed",
    "payment_intent.canceled": "charge_failed",
    "payment_intent.requires_action": "charge_requires_action",
    "payment_method.detached": "card_detached",
    "charge.refunded": "charge_refunded",
    **dict.fromkeys(REFUND_EVENTS, "refund_updated"),
    **dict.fromkeys(DISPUTE_EVENTS, "dispute_updated"),
}

# Stripe's own refund reasons; any other reason staff give stays with us.
STRIPE_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
REFUND_STATUSES: dict[str, Literal["pending", "succeeded", "failed"]] = {
    "pending": "pending", "requires_action": "pending", "succeeded": "succeeded", "failed": "failed",
    "canceled": "failed"}

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

    # Whose refunds this adapter makes, in their metadata: both ledgers read every refund event of
    # the account, and each leaves the other's alone.
    refund_source = "card_charge"

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

    def refund(self, request: RefundRequest) -> RefundResult:
        """`POST /v1/refunds` for (part of) a PaymentIntent, under the request's Idempotency-Key, so a
        retry reaches the same refund. Our ids travel in the refund's metadata: the refund's events
        name our refund, and a refund without them was started elsewhere (the Dashboard). Stripe's
        refusal (already refunded, more than is left, disputed ...) is a `failed` result; an answer
        we did not get raises ProviderOutcomeUnknown."""
        params: dict[str, Any] = {
            "payment_intent": request.payment_reference, "amount": _stripe_amount(request.amount),
            "metadata": {"clinic_id": request.clinic_id, "clinicpay_refund_id": request.refund_id,
                         "clinicpay_source": self.refund_source},
        }
        if request.reason in STRIPE_REFUND_REASONS:
            params["reason"] = request.reason
        try:
            refund = self.client.create_refund(params, idempotency_key=request.idempotency_key)
        except StripeApiError as error:
            code = error.detail.code or error.code
            logger.info("stripe refund refused", extra={"provider": PROVIDER, "clinic_id": request.clinic_id,
                                                        "refund_id": request.refund_id, "http_status": error.http_status,
                                                        "provider_code": error.detail.code})
            return RefundResult(status="failed", failure_code=code)
        observed = _refund_observation(refund)
        logger.info("stripe refund created", extra={"provider": PROVIDER, "clinic_id": request.clinic_id,
                                                    "refund_id": request.refund_id, "provider_refund_id": refund.id,
                                                    "status": refund.status})
        return RefundResult(provider_refund_id=refund.id, status=observed.status, failure_code=observed.failure_code)

    refund_resend_safe = True  # Stripe deduplicates POST /v1/refunds by its Idempotency-Key (24 h)

    def find_refund(self, request: RefundRequest, provider_refund_id: str | None) -> RefundResult | None:
        """What became of a refund whose answer or event never came: Stripe's refund by its id when we
        have it (None if Stripe has none), else the PaymentIntent's refund whose metadata names ours
        and this clinic. A timeout or a 5xx raises ProviderOutcomeUnknown."""
        if provider_refund_id:
            try:
                refund = self.client.get_refund(provider_refund_id)
            except StripeApiError as error:
                if error.http_status == 404:
                    return None
                raise
        else:
            found = next((r for r in self.client.list_refunds(request.payment_reference)
                          if r.metadata.get("clinicpay_refund_id") == request.refund_id
                          and r.metadata.get("clinic_id") == request.clinic_id), None)
            if found is None:
                return None
            refund = found
        observed = _refund_observation(refund)
        return RefundResult(provider_refund_id=refund.id, status=observed.status, failure_code=observed.failure_code)


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

    def cancel_charge(self, reference: str, *, idempotency_key: str) -> ChargeResult:
        """Cancel a PaymentIntent that has not finished. Stripe serialises this with the patient's
        3-D Secure step: whichever comes first wins, and a PaymentIntent that succeeded first is
        reported as succeeded (Stripe refuses to cancel it: `payment_intent_unexpected_state`)."""
        try:
            intent = self.client.cancel_payment_intent(reference, {"cancellation_reason": "abandoned"},
                                                       idempotency_key=idempotency_key)
        except StripeApiError as error:
            if error.detail.code == "payment_intent_unexpected_state":
                intent = self.client.retrieve_payment_intent(reference)
            elif error.is_missing:
                return ChargeResult(status="failed", reference=reference, failure_code="not_created")
            else:
                raise
        logger.info("stripe payment intent cancel", extra={"provider": PROVIDER, "payment_reference": reference,
                                                           "status": intent.status})
        return _charge_result(intent)

    def observe_charge(self, reference: str) -> CardEvent:
        return _observed_intent(self.client.retrieve_payment_intent(reference))

    def find_charge(self, customer_ref: str, charge_id: str, created_after: datetime) -> CardEvent | None:
        # A minute of slack for clocks: Stripe's `created` is its own.
        since = int(created_after.timestamp()) - 60
        for intent in self.client.list_payment_intents(customer_ref, created_gte=since):
            if intent.metadata.get("clinicpay_charge_id") == charge_id:
                return _observed_intent(intent)
        return None

    def observe_refunds(self, reference: str) -> list[CardEvent]:
        now = datetime.now(UTC)
        return [CardEvent(provider=PROVIDER, event_id=f"observed_{refund.id}_{refund.status}", kind="refund_updated",
                          occurred_at=now, charge_reference=refund.payment_intent or reference,
                          refund=_refund_observation(refund), metadata=dict(refund.metadata))
                for refund in self.client.list_refunds(reference)]

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> list[CardEvent]:
        event = self._verified_event(raw_body, headers)
        translated = _card_event(event)
        logger.info("stripe event verified", extra={"provider": PROVIDER, "event_id": event.id,
                                                    "event_type": event.type, "kind": translated.kind})
        return [translated]


class StripeGateway(_StripeAccount):
    """Stripe Checkout in payment mode behind our `/pay/{token}` links (Canada, Norway)."""

    name = PROVIDER
    refund_source = "payment_link"

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


def _observed_intent(intent: schemas.PaymentIntent) -> CardEvent:
    """How a PaymentIntent stands now, as the event its state would have sent. The id names the
    PaymentIntent and its state, so observing the same state twice changes nothing twice."""
    result = _charge_result(intent)
    return CardEvent(provider=PROVIDER, event_id=f"observed_{intent.id}_{intent.status}",
                     kind=INTENT_EVENT_KINDS[result.status], occurred_at=datetime.now(UTC),
                     charge_reference=intent.id, customer_ref=intent.customer,
                     amount=_money(intent.amount, intent.currency), failure_code=result.failure_code,
                     metadata=dict(intent.metadata))


def _refund_observation(refund: schemas.Refund) -> RefundObservation:
    status = REFUND_STATUSES.get(refund.status or "pending", "pending")
    failure = (refund.failure_reason or refund.status) if status == "failed" else None
    return RefundObservation(provider_refund_id=refund.id, payment_reference=refund.payment_intent,
                             amount=_money(refund.amount, refund.currency), status=status, failure_code=failure,
                             metadata=dict(refund.metadata))


def _refund_from(data: dict[str, Any]) -> RefundObservation | None:
    try:
        return _refund_observation(schemas.Refund.model_validate(data))
    except ValidationError:
        return None


def _dispute_from(data: dict[str, Any]) -> DisputeObservation | None:
    dispute_id, status = _text(data.get("id")), _text(data.get("status"))
    if not dispute_id or not status:
        return None
    return DisputeObservation(dispute_id=dispute_id, payment_reference=_object_id(data.get("payment_intent")),
                              amount=_money(data.get("amount"), data.get("currency")), reason=_text(data.get("reason")),
                              status=status)


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
        if event.type == "payment_intent.canceled" and not common["failure_code"]:
            common["failure_code"] = "canceled"
        return CardEvent(**common, charge_reference=_text(data.get("id")), customer_ref=_text(data.get("customer")),
                         amount=_money(data.get("amount"), data.get("currency")))
    if event.type.startswith("payment_method."):
        return CardEvent(**common, card_token=_text(data.get("id")))
    if event.type == "charge.refunded":
        return CardEvent(**common, charge_reference=_object_id(data.get("payment_intent")),
                         amount=_money(data.get("amount"), data.get("currency")),
                         refunded_total=_money(data.get("amount_refunded"), data.get("currency")))
    if kind == "refund_updated":
        refund = _refund_from(data)
        if refund is not None:
            return CardEvent(**common, charge_reference=refund.payment_reference, refund=refund)
    if kind == "dispute_updated":
        dispute = _dispute_from(data)
        if dispute is not None:
            return CardEvent(**{**common, "metadata": {}}, charge_reference=dispute.payment_reference, dispute=dispute)
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
    elif event.type in REFUND_EVENTS or event.type == "charge.refunded":
        return _link_refund_event(event, metadata)
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


def _link_refund_event(event: schemas.Event, metadata: dict[str, str]) -> PaymentEvent:
    """A refund of a payment made through our link (ours, from the ledger, or started in the
    Dashboard), for the provider-neutral ledger: `refunded`, naming the PaymentIntent, the refund
    and its status. `charge.refunded` carries only the running total (`amount_refunded`)."""
    data = event.data.object
    if metadata.get("clinicpay_charge_id") or metadata.get("clinicpay_source") == "card_charge":
        # A card charge's (its Charge carries our charge id; our refunds of it say so): tokenize's cards
        # ledger applies it. A Dashboard refund of one names neither: the ledger finds no payment row.
        return PaymentEvent(provider=PROVIDER, event_id=event.id, kind="ignored",
                            occurred_at=datetime.fromtimestamp(event.created, UTC),
                            payment_reference=_object_id(data.get("payment_intent")),
                            details={"stripe_event_type": event.type, "reason": "card_charge"})
    details: dict[str, Any] = {"stripe_event_type": event.type, "clinic_id": metadata.get("clinic_id")}
    refund: RefundObservation | None = None
    if event.type == "charge.refunded":
        amount = _money(data.get("amount_refunded"), data.get("currency"))
        details["refunded_total"] = amount.model_dump() if amount else None
    else:
        refund = _refund_from(data)
        amount = refund.amount if refund else None
        if refund:
            details.update(refund_id=refund.provider_refund_id, refund_status=refund.status,
                           failure_code=refund.failure_code, clinicpay_refund_id=refund.metadata.get("clinicpay_refund_id"))
    reference = _object_id(data.get("payment_intent"))
    # One refund named (its own object): for the appointment ledger (usecases/refunds.py). A
    # `charge.refunded` names only the running total: the webhook asks Stripe for the refunds
    # (`link_refund_events`).
    notice = _refund_notice(refund, reference) if event.type != "charge.refunded" and refund else None
    return PaymentEvent(provider=PROVIDER, event_id=event.id, kind="refunded",
                        occurred_at=datetime.fromtimestamp(event.created, UTC),
                        payment_reference=reference, refund=notice,
                        appointment_id=metadata.get("appointment_id"), amount=amount,
                        details={k: v for k, v in details.items() if v is not None})


def _refund_notice(refund: RefundObservation, reference: str | None) -> RefundNotice | None:
    payment = refund.payment_reference or reference
    if not payment or refund.amount is None:
        return None
    return RefundNotice(payment_reference=payment, amount=refund.amount, status=refund.status,
                        provider_refund_id=refund.provider_refund_id,
                        refund_id=refund.metadata.get("clinicpay_refund_id"), failure_code=refund.failure_code)


def link_refund_events(event: PaymentEvent, observed: list[CardEvent]) -> list[PaymentEvent]:
    """A `charge.refunded` of a link payment (no refund named) turned into one ledger event per refund
    Stripe lists for the PaymentIntent: each under its own event id (`{event}:{refund}:{status}`), so
    it is applied once per clinic and a later word on the same refund still counts. Our card
    charges' refunds (`clinicpay_source: card_charge`) are left to the cards ledger."""
    found = []
    for card_event in observed:
        refund = card_event.refund
        if refund is None or refund.metadata.get("clinicpay_source") == "card_charge":
            continue
        notice = _refund_notice(refund, event.payment_reference)
        if notice is None:
            continue
        found.append(event.model_copy(update={
            "event_id": f"{event.event_id}:{refund.provider_refund_id}:{refund.status}", "refund": notice,
            "amount": refund.amount}))
    return found
