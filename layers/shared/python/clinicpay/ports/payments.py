"""Payment links: a checkout session at the provider behind `/pay/{token}`, and what its events say."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import Field

from clinicpay.domain.model import Model
from clinicpay.domain.money import Money


class CheckoutRequest(Model):
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


class CheckoutSession(Model):
    provider: str
    session_id: str
    url: str
    expires_at: datetime | None = None


PaymentEventKind = Literal["succeeded", "failed", "pending", "expired", "refunded", "ignored"]


class RefundNotice(Model):
    """What a provider event says about one refund: one we asked for (the provider echoes our
    `refund_id`), or one started at the provider's dashboard (no refund id of ours)."""

    payment_reference: str  # the provider's payment id the refund gives money back from
    amount: Money
    status: Literal["pending", "succeeded", "failed"]
    provider_refund_id: str | None = None
    refund_id: str | None = None  # ours, from the metadata we sent when we created it
    failure_code: str | None = None


class PaymentEvent(Model):
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
    refund: RefundNotice | None = None  # kind "refunded": the refund, for the ledger (usecases/refunds.py)


class SessionAnswer(Model):
    """What a provider says when asked about one of our checkout sessions (link reconciliation):
    the answer as the event its webhook would have carried, and whether the session is settled
    (paid, expired, failed for good: nothing more will happen to it, so we stop asking)."""

    event: PaymentEvent
    settled: bool


def asked_event_id(session_id: str, kind: str, payment_reference: str | None) -> str:
    """The event id of an answer we asked for, where the provider's answer carries no event id:
    the same answer asked twice is one event (recorded once per clinic, like a repeated webhook)."""
    return f"asked:{session_id}:{kind}:{payment_reference or '-'}"


class PaymentGateway(Protocol):
    """A provider that can sit behind `/pay/{token}` and tells us by webhook how it went."""

    name: str

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession: ...

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> list[PaymentEvent]:
        """Verify the signature over the raw bytes, then translate. Raises InvalidSignature."""
        ...

    def session_status(self, session_id: str) -> SessionAnswer:
        """Ask the provider how the session stands (a GET: nothing changes). The event's kind is
        `ignored` while nothing has happened yet. Raises a ClinicpayError when there is no answer."""
        ...
