"""Cards on file: the card processor behind `tokenize` (Stripe today; Adyen would be one more
adapter) saves a card with the patient's consent and charges it later, off-session. Card numbers never
cross this port: a card is entered on the processor's own page and comes back as a token."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import Field

from clinicpay.domain.model import Model
from clinicpay.domain.money import Money

if TYPE_CHECKING:
    from clinicpay.ports.refunds import RefundRequest, RefundResult


class VaultCard(Model):
    """A saved card as the processor describes it. `token` is the processor's reusable reference
    (a Stripe PaymentMethod id): stored to charge later, never returned by our API nor logged."""

    token: str = Field(repr=False)
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class CardSetupRequest(Model):
    clinic_id: str
    patient_id: str
    customer_ref: str
    setup_ref: str  # our id for this attempt; the processor hands it back in its events
    success_url: str
    cancel_url: str
    locale: str | None = None
    idempotency_key: str


class CardSetupSession(Model):
    session_id: str  # the hosted page (Stripe Checkout Session)
    setup_id: str | None = None  # the processor's setup object (Stripe SetupIntent), when known now
    url: str
    expires_at: datetime | None = None


class OffSessionCharge(Model):
    clinic_id: str
    patient_id: str
    charge_id: str
    customer_ref: str
    card_token: str = Field(repr=False)
    amount: Money
    description: str
    # Stable per charge, so a retry (ours or the caller's) never charges twice.
    idempotency_key: str
    # Where a patient who completes an authentication the bank asked for lands afterwards.
    return_url: str
    metadata: dict[str, str] = Field(default_factory=dict)


ChargeStatus = Literal["succeeded", "requires_action", "failed", "processing"]


class ChargeResult(Model):
    status: ChargeStatus
    reference: str | None = None  # the processor's payment id (Stripe PaymentIntent)
    failure_code: str | None = None  # e.g. insufficient_funds, authentication_required
    action_url: str | None = None  # a page where the patient completes authentication


CardEventKind = Literal["setup_succeeded", "setup_failed", "charge_succeeded", "charge_failed",
                        "charge_requires_action", "charge_processing", "charge_refunded", "refund_updated",
                        "dispute_updated", "card_detached", "ignored"]


class RefundObservation(Model):
    """One refund as the processor reports it (its event, or our asking): ours, or one started in
    the processor's dashboard."""

    provider_refund_id: str
    payment_reference: str | None = None  # the payment it gives money back from (Stripe PaymentIntent)
    amount: Money | None = None
    status: Literal["pending", "succeeded", "failed"]
    failure_code: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)  # the refund's own (ours carry our refund id)


class DisputeObservation(Model):
    """A cardholder's dispute (chargeback) of a payment, as the processor reports it."""

    dispute_id: str
    payment_reference: str | None = None
    amount: Money | None = None
    reason: str | None = None
    status: str  # the processor's own: needs_response, under_review, won, lost, warning_* ...


class CardEvent(Model):
    """A verified processor event about cards or off-session charges, in neutral terms. Also what
    our own asking (reconciliation) observed, so both take one code path."""

    provider: str
    event_id: str
    kind: CardEventKind
    occurred_at: datetime
    setup_id: str | None = None
    card_token: str | None = Field(default=None, repr=False)
    customer_ref: str | None = None
    charge_reference: str | None = None
    amount: Money | None = None  # what a charge event says was charged
    failure_code: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    refunded_total: Money | None = None  # charge_refunded: all the processor has given back on the payment
    refund: RefundObservation | None = None  # refund_updated
    dispute: DisputeObservation | None = None  # dispute_updated


class CardVault(Protocol):
    """Saves cards at a processor and charges them later, off-session."""

    name: str

    def ensure_customer(self, clinic_id: str, patient_id: str, *, existing: str | None = None) -> str:
        """The processor's customer for this patient: `existing` when given, else a new one."""
        ...

    def start_setup(self, request: CardSetupRequest) -> CardSetupSession:
        """A hosted page where the patient enters a card to be saved for later charges."""
        ...

    def attach_card(self, token: str, customer_ref: str) -> VaultCard:
        """Attach a token made on the processor's own page/field to the customer; describe the card."""
        ...

    def detach_card(self, token: str) -> None:
        """Make the token unusable at the processor. Detaching twice is not an error."""
        ...

    def charge(self, request: OffSessionCharge) -> ChargeResult:
        """Charge a saved card with the patient absent. A decline is a result, not an exception.
        Raises ProviderOutcomeUnknown when the processor may have charged and did not say."""
        ...

    def cancel_charge(self, reference: str, *, idempotency_key: str) -> ChargeResult:
        """Cancel a charge that has not completed. Returns the charge as it stands after: `failed`
        when cancelled (or already failed), `succeeded` when it completed first, anything else
        when it can no longer be cancelled but has not finished."""
        ...

    def observe_charge(self, reference: str) -> CardEvent:
        """Ask the processor how a charge stands, as the event that state would have sent."""
        ...

    def find_charge(self, customer_ref: str, charge_id: str, created_after: datetime) -> CardEvent | None:
        """A charge we may have created (our id in its metadata) without learning its reference,
        as `observe_charge` would report it; None when the processor has no such charge."""
        ...

    def observe_refunds(self, reference: str) -> list[CardEvent]:
        """Every refund of a charge, as the events that report them."""
        ...

    def refund(self, request: RefundRequest) -> RefundResult:
        """Give money back from a charge. A refusal is a `failed` result; ProviderOutcomeUnknown
        when the processor may have refunded and did not say."""
        ...

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> list[CardEvent]:
        """Verify the signature over the raw bytes, then translate. Raises InvalidSignature."""
        ...
