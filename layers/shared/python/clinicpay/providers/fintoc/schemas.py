"""Fintoc wire models: only the fields we read. Unknown fields are ignored, because Fintoc adds
fields without a new API version (its "backwards compatible changes" policy)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PaymentIntent(_Wire):
    id: str
    object: str = "payment_intent"
    amount: StrictInt
    currency: str
    status: str
    error_reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    payment_type: str | None = None
    mode: str | None = None
    created_at: datetime | None = None
    transaction_date: datetime | None = None


class PaymentResource(_Wire):
    payment_intent: PaymentIntent | None = None


class CheckoutSession(_Wire):
    id: str
    object: str = "checkout_session"
    amount: StrictInt
    currency: str
    status: str
    redirect_url: str | None = None
    success_url: str | None = None
    cancel_url: str | None = None
    customer_email: str | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    mode: str | None = None
    payment_resource: PaymentResource | None = None


class Refund(_Wire):
    """A refund of a payment intent (docs: "The Refund object"; fintoc-python `refunds`)."""

    id: str
    object: str = "refund"
    amount: StrictInt
    currency: str
    status: str  # pending (docs' create page; `created` on the object page), in_progress, succeeded, failed, canceled
    resource_id: str | None = None
    resource_type: str | None = None
    failure_code: str | None = None  # fraud_risk, insufficient_funds
    metadata: dict[str, Any] = Field(default_factory=dict)
    mode: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class WebhookEndpoint(_Wire):
    id: str
    url: str
    enabled_events: list[str] = Field(default_factory=list)
    description: str | None = None
    status: str | None = None
    # Returned only by the create call; list and get leave it out.
    secret: str | None = None


class Event(_Wire):
    """The webhook envelope. `data` stays a dict: its shape depends on `type`."""

    id: str
    type: str
    mode: str | None = None
    created_at: datetime
    data: dict[str, Any]
    object: str = "event"


class ErrorDetail(_Wire):
    type: str | None = None
    code: str | None = None
    message: str | None = None
    param: str | None = None


class ErrorBody(_Wire):
    error: ErrorDetail
