"""Stripe wire models: only the fields we read. Unknown fields are ignored (Stripe adds fields
within a pinned version). Amounts are integers in Stripe's smallest unit; currencies lower case."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, StrictInt

from clinicpay.domain.model import Model


class _Wire(Model):
    model_config = ConfigDict(extra="ignore")


class Customer(_Wire):
    id: str
    object: str = "customer"


class Card(_Wire):
    brand: str = "unknown"
    display_brand: str | None = None
    last4: str
    exp_month: StrictInt
    exp_year: StrictInt
    fingerprint: str | None = None
    funding: str | None = None
    country: str | None = None


class PaymentMethod(_Wire):
    id: str
    object: str = "payment_method"
    type: str
    customer: str | None = None
    card: Card | None = None


class PaymentMethodList(_Wire):
    data: list[PaymentMethod] = Field(default_factory=list)
    has_more: bool = False


class RedirectToUrl(_Wire):
    url: str | None = None
    return_url: str | None = None


class NextAction(_Wire):
    type: str
    redirect_to_url: RedirectToUrl | None = None


class LastError(_Wire):
    type: str | None = None
    code: str | None = None
    decline_code: str | None = None


class SetupIntent(_Wire):
    id: str
    object: str = "setup_intent"
    status: str
    customer: str | None = None
    payment_method: str | None = None
    usage: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    last_setup_error: LastError | None = None


class PaymentIntent(_Wire):
    id: str
    object: str = "payment_intent"
    amount: StrictInt
    currency: str
    status: str
    created: StrictInt | None = None
    customer: str | None = None
    payment_method: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    last_payment_error: LastError | None = None
    next_action: NextAction | None = None
    cancellation_reason: str | None = None


class PaymentIntentList(_Wire):
    data: list[PaymentIntent] = Field(default_factory=list)
    has_more: bool = False


class Refund(_Wire):
    """A refund: `pending`, `requires_action`, `succeeded`, `failed` or `canceled`. A card refund
    may go from `succeeded` to `failed` later (the card was closed): `failure_reason` says why."""

    id: str
    object: str = "refund"
    amount: StrictInt
    currency: str
    status: str | None = None
    payment_intent: str | None = None
    charge: str | None = None
    reason: str | None = None
    failure_reason: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    created: StrictInt | None = None


class RefundList(_Wire):
    data: list[Refund] = Field(default_factory=list)
    has_more: bool = False


class CheckoutSession(_Wire):
    id: str
    object: str = "checkout.session"
    mode: str
    status: str | None = None
    payment_status: str | None = None
    url: str | None = None
    customer: str | None = None
    setup_intent: str | None = None
    payment_intent: str | None = None
    amount_total: StrictInt | None = None
    currency: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    expires_at: StrictInt | None = None
    created: StrictInt | None = None


class WebhookEndpoint(_Wire):
    id: str
    url: str
    enabled_events: list[str] = Field(default_factory=list)
    status: str | None = None
    # Returned only by the create call.
    secret: str | None = None


class EventData(_Wire):
    object: dict[str, Any]


class Event(_Wire):
    """The webhook envelope. `data.object` stays a dict: its shape depends on `type`."""

    id: str
    object: str = "event"
    type: str
    created: StrictInt
    livemode: bool = False
    api_version: str | None = None
    data: EventData


class ErrorDetail(_Wire):
    type: str | None = None
    code: str | None = None
    decline_code: str | None = None
    param: str | None = None
    payment_intent: PaymentIntent | None = None
    setup_intent: SetupIntent | None = None


class ErrorBody(_Wire):
    error: ErrorDetail
