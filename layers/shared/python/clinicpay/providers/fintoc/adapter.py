"""FintocGateway: the PaymentGateway port over Fintoc's hosted checkout sessions and webhooks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from clinicpay.domain.errors import BadRequest, GatewayNotConfigured, ProviderError, ValidationFailed
from clinicpay.domain.money import Money
from clinicpay.observability import logger
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
from clinicpay.providers.fintoc import schemas
from clinicpay.providers.fintoc.client import FintocApiError, FintocClient
from clinicpay.providers.fintoc.signature import SIGNATURE_HEADER, verify_signature

PROVIDER = "fintoc"

# Fintoc's smallest unit per currency (providers.md 1.2). Our Money is in minor units too, so the
# amount passes through unchanged; the exponent check below catches a table drifting apart.
FINTOC_EXPONENTS: dict[str, int] = {"CLP": 0, "MXN": 2}

# What a payment intent's status means for the appointment.
PAYMENT_STATUS_KINDS: dict[str, PaymentEventKind] = {
    "succeeded": "succeeded",
    "failed": "failed",
    "rejected": "failed",
    "pending": "pending",
}

# Fintoc event type -> kind. Anything absent is "ignored": Fintoc adds event types freely.
EVENT_KINDS: dict[str, PaymentEventKind] = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.failed": "failed",
    "payment_intent.rejected": "failed",
    "payment_intent.pending": "pending",
    "checkout_session.expired": "expired",
}

# A finished session embeds its payment at payment_resource.payment_intent; its kind comes from that
# payment's status, so a finished session without a succeeded payment never marks anything paid.
# It is not simply "ignored" because an endpoint subscribed only to session events (what Fintoc's
# redirect guide suggests) would then never learn of a payment. Both events name the same
# payment_reference, so the use case sees one payment reported twice, not two payments.
# Fintoc's docs name this event `finished` in one version and `completed` in another: accept both.
SESSION_FINISHED_TYPES = frozenset({"checkout_session.finished", "checkout_session.completed"})

# A refund's status (docs, "The Refund object": created or pending, in_progress, then succeeded,
# failed or canceled) in the ledger's three. Anything else is still undecided.
REFUND_STATUSES: dict[str, str] = {"created": "pending", "pending": "pending", "in_progress": "pending",
                                   "succeeded": "succeeded", "failed": "failed", "canceled": "failed"}
# Refund events (Fintoc's types-of-events page lists refund.in_progress; fintoc-python's tests
# subscribe to refund.succeeded; refund.failed is used by Fintoc's own e-commerce plugins but not
# found on a Fintoc page). Every `refund.*` event is read by its object's status, so a type we do
# not list (refund.canceled?) still counts.
REFUND_EVENTS = ("refund.in_progress", "refund.succeeded", "refund.failed")

# Events our own webhook endpoint subscribes to.
SUBSCRIBED_EVENTS = sorted({*EVENT_KINDS, *SESSION_FINISHED_TYPES, *REFUND_EVENTS})

# Fintoc's Chilean price: 1.1 % of the amount, plus 19 % IVA (Chilean VAT) on that fee.
FEE_RATE = (11, 1000)
VAT_RATE = (19, 100)


def _round_half_up(numerator: int, denominator: int) -> int:
    # Integers only: floats would misround amounts such as 0.5 * 11 / 1000 at the half.
    return (2 * numerator + denominator) // (2 * denominator)


def chile_fee(amount: int) -> int:
    """Fintoc's fee on a CLP payment of `amount` pesos, VAT included, in whole pesos.

    net = round_half_up(amount * 11 / 1000)
    vat = round_half_up(net * 19 / 100)
    fee = net + vat

    VAT is taken on the rounded net fee, as an invoice itemises it (neto, then IVA), so the fee we
    book matches the line Fintoc bills rather than a once-rounded 1.309 %.
    """
    if amount < 0:
        raise ValueError("amount must not be negative")
    net = _round_half_up(amount * FEE_RATE[0], FEE_RATE[1])
    vat = _round_half_up(net * VAT_RATE[0], VAT_RATE[1])
    return net + vat


def fintoc_fee(amount: Money) -> Money | None:
    """The fee for `amount`, or None where we do not know Fintoc's price (anything but CLP):
    an unknown fee is better left empty than booked wrong."""
    if amount.currency != "CLP":
        return None
    return Money(amount=chile_fee(amount.amount), currency="CLP")


class FintocGateway:
    """One clinic's Fintoc account. Credentials: {secret_key, public_key, webhook_secret}."""

    name = PROVIDER

    def __init__(self, credentials: Mapping[str, Any], *, base_url: str, timeout: float = 8.0):
        secret_key = credentials.get("secret_key")
        if not secret_key:
            raise GatewayNotConfigured("The clinic's Fintoc credentials have no secret_key.")
        self._webhook_secret = str(credentials.get("webhook_secret") or "")
        self.public_key = str(credentials.get("public_key") or "")
        self.client = FintocClient(str(secret_key), base_url=base_url, timeout=timeout)

    def __repr__(self) -> str:
        return "FintocGateway()"

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        amount = request.amount
        expected_exponent = FINTOC_EXPONENTS.get(amount.currency)
        if expected_exponent is None:
            raise ValidationFailed(f"Fintoc takes {' or '.join(FINTOC_EXPONENTS)}, not {amount.currency}.",
                                   code="currency_not_supported")
        if amount.exponent != expected_exponent:
            raise ValidationFailed(f"{amount.currency} minor units do not match Fintoc's.",
                                   code="currency_not_supported")
        if amount.amount <= 0:
            raise ValidationFailed("Fintoc needs an amount above zero.", code="invalid_amount")
        # request.webhook_url is not sent: Fintoc has no per-session webhook, only account-level
        # endpoints (register_webhook_endpoint). Nor has a session a description field.
        # Our keys last, so caller metadata cannot redirect a payment to another appointment.
        metadata = {**request.metadata, "clinic_id": request.clinic_id, "appointment_id": request.appointment_id}
        body: dict[str, Any] = {
            "amount": amount.amount,
            "currency": amount.currency,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "metadata": metadata,
        }
        if request.customer_email:
            body["customer_email"] = request.customer_email
        session = self.client.create_checkout_session(body, idempotency_key=request.idempotency_key)
        if not session.redirect_url:
            raise ProviderError("Fintoc returned a checkout session without a redirect_url.")
        logger.info("fintoc checkout session created", extra={
            "provider": PROVIDER, "session_id": session.id, "clinic_id": request.clinic_id,
            "appointment_id": request.appointment_id, "status": session.status})
        return CheckoutSession(provider=PROVIDER, session_id=session.id, url=session.redirect_url,
                               expires_at=session.expires_at)

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> list[PaymentEvent]:
        if not self._webhook_secret:
            logger.warning("fintoc webhook refused: no webhook secret configured", extra={"provider": PROVIDER})
        verify_signature(raw_body, _header(headers, SIGNATURE_HEADER), self._webhook_secret)
        try:
            event = schemas.Event.model_validate(json.loads(raw_body))
        except (ValueError, ValidationError):
            raise BadRequest("The Fintoc event is not a valid event envelope.") from None
        translated = _translate(event)
        logger.info("fintoc event verified", extra={
            "provider": PROVIDER, "event_id": event.id, "event_type": event.type, "kind": translated.kind,
            "session_id": translated.session_id, "payment_reference": translated.payment_reference})
        return [translated]

    def session_status(self, session_id: str) -> SessionAnswer:
        """GET /v1/checkout_sessions/{id}: `created`/`in_progress` wait for the patient (a failed
        attempt leaves it `in_progress`: the patient may try again), `expired` is over, `finished`
        carries its payment at payment_resource.payment_intent, whose status decides (a `pending`
        bank transfer is watched until Fintoc decides it)."""
        session = self.client.get_checkout_session(session_id)
        payment = session.payment_resource.payment_intent if session.payment_resource else None
        kind: PaymentEventKind = "ignored"
        settled = False
        if session.status == "expired":
            kind, settled = "expired", True
        elif payment is not None:
            kind = PAYMENT_STATUS_KINDS.get(payment.status, "ignored")
            settled = session.status == "finished" and kind in ("succeeded", "failed")
        source_amount = (payment.amount, payment.currency) if payment else (session.amount, session.currency)
        amount = _money(*source_amount)
        reference = payment.id if payment else None
        when = (payment.transaction_date or payment.created_at) if payment else None
        if kind == "expired":
            when = session.expires_at
        metadata = session.metadata
        event = PaymentEvent(
            provider=PROVIDER, event_id=asked_event_id(session.id, kind, reference), kind=kind,
            occurred_at=when or datetime.now(UTC), session_id=session.id, payment_reference=reference,
            appointment_id=_text(metadata.get("appointment_id")), amount=amount,
            fee=fintoc_fee(amount) if kind == "succeeded" and amount is not None else None,
            details={k: v for k, v in {"fintoc_session_status": session.status, "clinic_id": _text(metadata.get("clinic_id")),
                                       "status": payment.status if payment else None, "asked": True}.items()
                     if v is not None})
        logger.info("fintoc checkout session asked", extra={"provider": PROVIDER, "session_id": session.id,
                                                           "status": session.status, "kind": kind})
        return SessionAnswer(event=event, settled=settled)

    def refund(self, request: RefundRequest) -> RefundResult:
        """POST /v1/refunds for a payment intent, under our key. Fintoc answers at once with the
        refund `pending` (it pays refunds out in batches, e.g. Chile 15:00 on business days) and
        tells the outcome by event; a 4xx is a refusal, the refund failed and nothing was reserved
        at Fintoc. A timeout or a 5xx raises ProviderOutcomeUnknown (providers/http.py)."""
        body: dict[str, Any] = {
            "resource_type": "payment_intent",
            "resource_id": request.payment_reference,
            "amount": request.amount.amount,
            # Echoed in the refund's events: they name our refund and clinic, never the reason
            # staff typed (free text stays with us).
            "metadata": {"clinic_id": request.clinic_id, "refund_id": request.refund_id},
        }
        try:
            refund = self.client.create_refund(body, idempotency_key=request.idempotency_key)
        except FintocApiError as error:
            logger.info("fintoc refund refused", extra={"provider": PROVIDER, "refund_id": request.refund_id,
                                                         "http_status": error.http_status,
                                                         "provider_code": error.provider_code})
            return RefundResult(status="failed", failure_code=error.provider_code or f"http_{error.http_status}")
        status = REFUND_STATUSES.get(refund.status, "pending")
        logger.info("fintoc refund created", extra={"provider": PROVIDER, "refund_id": request.refund_id,
                                                     "provider_refund_id": refund.id, "status": refund.status})
        return RefundResult(provider_refund_id=refund.id, status=status,  # type: ignore[arg-type]
                            failure_code=refund.failure_code)

    refund_resend_safe = True  # Fintoc deduplicates POST /v1/refunds by its Idempotency-Key

    def find_refund(self, request: RefundRequest, provider_refund_id: str | None) -> RefundResult | None:
        """What became of a refund whose answer or event never came: Fintoc's refund by its id when
        we have it (None if Fintoc has no such refund), else the account's refund whose metadata
        names our refund and clinic. A timeout or a 5xx raises ProviderOutcomeUnknown."""
        if provider_refund_id:
            try:
                refund = self.client.get_refund(provider_refund_id)
            except FintocApiError as error:
                if error.http_status == 404:
                    return None
                raise
        else:
            found = next((r for r in self.client.list_refunds()
                          if r.metadata.get("refund_id") == request.refund_id
                          and r.metadata.get("clinic_id") == request.clinic_id
                          and r.resource_id == request.payment_reference), None)
            if found is None:
                return None
            refund = found
        status = REFUND_STATUSES.get(refund.status, "pending")
        return RefundResult(provider_refund_id=refund.id, status=status,  # type: ignore[arg-type]
                            failure_code=refund.failure_code or (refund.status if status == "failed" else None))

    def register_webhook_endpoint(self, url: str, *, description: str = "clinicpay") -> str:
        """Subscribe `url` to the events we read; returns the endpoint secret, which Fintoc shows only now."""
        endpoint = self.client.create_webhook_endpoint(url, SUBSCRIBED_EVENTS, description=description)
        if not endpoint.secret:
            raise ProviderError("Fintoc did not return a secret for the new webhook endpoint.")
        return endpoint.secret


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # API Gateway v2 lower-cases header names; other callers may not.
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _money(amount: Any, currency: Any) -> Money | None:
    if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(currency, str):
        return None
    try:
        return Money(amount=amount, currency=currency.upper())
    except ValidationError:
        # A currency our domain does not model yet: no amount rather than a wrong one.
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _refund_event(event: schemas.Event) -> PaymentEvent:
    data = event.data
    metadata = _dict(data.get("metadata"))
    amount = _money(data.get("amount"), data.get("currency"))
    reference = _text(data.get("resource_id"))
    status = REFUND_STATUSES.get(str(data.get("status") or event.type.removeprefix("refund.")), "pending")
    notice = None
    if amount is not None and reference and data.get("resource_type") in (None, "payment_intent"):
        notice = RefundNotice(payment_reference=reference, amount=amount, status=status,  # type: ignore[arg-type]
                              provider_refund_id=_text(data.get("id")), refund_id=_text(metadata.get("refund_id")),
                              failure_code=_text(data.get("failure_code")))
    details = {"fintoc_event_type": event.type, "mode": event.mode, "clinic_id": _text(metadata.get("clinic_id")),
               "status": _text(data.get("status"))}
    return PaymentEvent(provider=PROVIDER, event_id=event.id, kind="refunded" if notice else "ignored",
                        occurred_at=event.created_at, payment_reference=reference, amount=amount, refund=notice,
                        details={key: value for key, value in details.items() if value is not None})


def _translate(event: schemas.Event) -> PaymentEvent:
    if event.type.startswith("refund."):
        return _refund_event(event)
    data = event.data
    metadata = _dict(data.get("metadata"))
    kind: PaymentEventKind = EVENT_KINDS.get(event.type, "ignored")
    if event.type.startswith("checkout_session."):
        session_id = _text(data.get("id"))
        payment = _dict(_dict(data.get("payment_resource")).get("payment_intent"))
        if event.type in SESSION_FINISHED_TYPES:
            kind = PAYMENT_STATUS_KINDS.get(str(payment.get("status")), "ignored")
    else:
        payment = data if event.type.startswith("payment_intent.") else {}
        # Not a documented Fintoc field: the sandbox adds it, and it is used when present. Real
        # events are matched through appointment_id, which our session metadata carries.
        session_id = _text(metadata.get("checkout_session_id"))
    source = payment or data
    amount = _money(source.get("amount"), source.get("currency"))
    fee = fintoc_fee(amount) if kind == "succeeded" and amount is not None else None
    details = {
        "fintoc_event_type": event.type,
        "mode": event.mode,
        "clinic_id": _text(metadata.get("clinic_id")),
        "status": _text(source.get("status")),
        "error_reason": _text(source.get("error_reason")),
    }
    return PaymentEvent(
        provider=PROVIDER,
        event_id=event.id,
        kind=kind,
        occurred_at=event.created_at,
        session_id=session_id,
        payment_reference=_text(payment.get("id")),
        appointment_id=_text(metadata.get("appointment_id")),
        amount=amount,
        fee=fee,
        details={key: value for key, value in details.items() if value is not None},
    )
