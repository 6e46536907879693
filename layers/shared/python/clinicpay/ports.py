"""Ports: what the use cases need from the outside world, one per capability (not per provider).

Adapters live in `clinicpay.providers.<name>`; tests use fakes that implement the same Protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from clinicpay.domain.money import Money


class CheckoutRequest(BaseModel):
    clinic_id: str
    appointment_id: str
    amount: Money
    description: str
    customer_email: str | None = None
    success_url: str
    cancel_url: str
    # Stable per (appointment, attempt) so a retried create never makes a second provider session.
    idempotency_key: str
    webhook_url: str
    metadata: dict[str, str] = Field(default_factory=dict)


class CheckoutSession(BaseModel):
    provider: str
    session_id: str
    url: str
    expires_at: datetime | None = None


PaymentEventKind = Literal["succeeded", "failed", "pending", "expired", "refunded", "ignored"]


class PaymentEvent(BaseModel):
    """A verified provider event, in provider-neutral terms."""

    provider: str
    event_id: str  # what repeats of the same delivery share: the dedupe key
    kind: PaymentEventKind
    occurred_at: datetime  # orders events: an older one never undoes a newer one
    session_id: str | None = None  # checkout session / invoice the event is about
    payment_reference: str | None = None  # the provider's payment id, kept on the appointment
    appointment_id: str | None = None
    amount: Money | None = None
    fee: Money | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class PaymentGateway(Protocol):
    """A provider that can sit behind `/pay/{token}` and tells us by webhook how it went."""

    name: str

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession: ...

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> list[PaymentEvent]:
        """Verify the signature over the raw bytes, then translate. Raises InvalidSignature."""
        ...


class OutgoingMessage(BaseModel):
    channel: Literal["email", "sms"]
    to: str
    subject: str | None = None
    body: str
    kind: str
    clinic_id: str


class Notifier(Protocol):
    def send(self, message: OutgoingMessage) -> str:
        """Send one message; returns the transport's message id."""
        ...
