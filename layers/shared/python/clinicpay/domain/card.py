"""Cards on file, the consent that lets us keep and charge them, and the charges made with them.

A card here is display data plus the processor's token. The token is stored (CardsTable, which only
`tokenize` may read) and used to charge; it is excluded from every view a caller or a log sees.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictBool

from clinicpay.domain.model import Model
from clinicpay.domain.money import Money
from clinicpay.domain.text import OneLine
from clinicpay.ports.cards import ChargeStatus


class ConsentChannel(StrEnum):
    STAFF = "staff"  # staff at the desk, with the patient's say-so
    ONLINE_BOOKING = "online_booking"  # the patient, while booking through the widget
    CARD_REQUEST = "card_request"  # the patient, from a card-request email or SMS


class Consent(Model):
    """Who agreed to what, when and where. Patients' consents carry their IP and user agent."""

    model_config = ConfigDict(extra="ignore")

    granted_at: datetime
    granted_by: str
    channel: ConsentChannel
    text_version: str
    ip: str | None = None
    user_agent: str | None = None


class ConsentGrant(Model):
    """Consent as a caller reports it (staff, or our own consent page): `granted` must be true."""

    model_config = ConfigDict(extra="forbid")

    granted: StrictBool
    text_version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    channel: ConsentChannel
    granted_by: OneLine = Field(min_length=1, max_length=200)


class Card(Model):
    model_config = ConfigDict(extra="ignore")

    card_id: str
    clinic_id: str
    patient_id: str
    provider: str
    token: str = Field(repr=False)
    customer_ref: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    consent: Consent | None = None
    created_at: datetime

    def view(self, *, is_default: bool) -> dict[str, Any]:
        """What callers see: never the token nor the processor's customer."""
        return {"card_id": self.card_id, "brand": self.brand, "last4": self.last4, "exp_month": self.exp_month,
                "exp_year": self.exp_year, "is_default": is_default, "provider": self.provider,
                "created_at": self.created_at.isoformat(),
                "consent": self.consent.model_dump(mode="json") if self.consent else None}


class ChargeReason(StrEnum):
    APPOINTMENT = "appointment"
    NO_SHOW = "no_show"
    OTHER = "other"


class Dispute(Model):
    """A cardholder's dispute of a payment, as the processor last reported it."""

    model_config = ConfigDict(extra="ignore")

    dispute_id: str
    status: str  # the processor's: needs_response, under_review, won, lost, warning_* ...
    amount: Money | None = None
    reason: str | None = None
    updated_at: datetime

    def view(self) -> dict[str, Any]:
        return {"dispute_id": self.dispute_id, "status": self.status,
                "amount": self.amount.model_dump() if self.amount else None, "reason": self.reason}


class Charge(Model):
    model_config = ConfigDict(extra="ignore")

    charge_id: str
    clinic_id: str
    patient_id: str
    card_id: str
    amount: Money
    reason: ChargeReason
    appointment_id: str | None = None
    status: ChargeStatus | None = None  # None while the processor call is under way
    provider: str
    reference: str | None = None  # the processor's payment id
    customer_ref: str | None = None  # the processor's customer: finds a charge whose reference we never learnt
    # We sent the charge and got no answer that says whether it was made (a timeout, a 409, a 5xx):
    # `processing` until the processor's event or our asking (reconciliation) says.
    undecided: bool = False
    failure_code: str | None = None
    action_url: str | None = None
    amount_refunded: int = 0  # minor units given back or being given back (refunds pending or succeeded)
    dispute: Dispute | None = None
    # The card as the patient knows it, kept with the charge so the message that tells them about
    # it names the card even once it is removed.
    card_brand: str | None = None
    card_last4: str | None = None
    # When the patient's `card_charged` message was claimed: set by the one write that moved the
    # charge to succeeded (repositories/cards.py settle_charge), so it is sent once, whoever won.
    told_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def refundable(self) -> int:
        return self.amount.amount - self.amount_refunded if self.status == "succeeded" else 0

    def view(self) -> dict[str, Any]:
        status: str = self.status or "processing"
        if status == "succeeded" and self.amount_refunded > 0:
            status = "refunded" if self.amount_refunded >= self.amount.amount else "partially_refunded"
        body: dict[str, Any] = {"charge_id": self.charge_id, "status": status,
                                "amount": self.amount.model_dump(), "card_id": self.card_id,
                                "reason": self.reason.value, "appointment_id": self.appointment_id,
                                "created_at": self.created_at.isoformat(),
                                "amount_refunded": {"amount": self.amount_refunded, "currency": self.amount.currency}}
        if self.card_brand or self.card_last4:
            body["card"] = {"brand": self.card_brand, "last4": self.card_last4}
        if self.undecided and status == "processing":
            body["undecided"] = True
        if self.failure_code:
            body["failure_code"] = self.failure_code
        if self.action_url:
            body["action_url"] = self.action_url
        if self.dispute:
            body["dispute"] = self.dispute.view()
        return body


RefundStatus = Literal["pending", "succeeded", "failed"]


class CardRefund(Model):
    """Money given back from a card charge: asked for by staff, or started in the processor's
    dashboard and learnt from its event. Its amount is reserved on the charge from the moment it is
    recorded (`Charge.amount_refunded`), and released only if it fails."""

    model_config = ConfigDict(extra="ignore")

    refund_id: str
    clinic_id: str
    patient_id: str
    charge_id: str
    provider: str
    amount: Money
    status: RefundStatus = "pending"
    reason: str | None = None
    source: Literal["staff", "processor"] = "staff"  # processor: started in the processor's dashboard
    provider_refund_id: str | None = None
    undecided: bool = False  # sent, no answer yet (see Charge.undecided)
    failure_code: str | None = None
    created_at: datetime
    updated_at: datetime

    def view(self) -> dict[str, Any]:
        body: dict[str, Any] = {"refund_id": self.refund_id, "charge_id": self.charge_id, "status": self.status,
                                "amount": self.amount.model_dump(), "reason": self.reason, "source": self.source,
                                "created_at": self.created_at.isoformat()}
        if self.undecided and self.status == "pending":
            body["undecided"] = True
        if self.failure_code:
            body["failure_code"] = self.failure_code
        return body


class SetupStatus(StrEnum):
    OPEN = "open"  # consent recorded, the patient is (or may be) on the processor's page
    COMPLETED = "completed"  # the card is saved
    FAILED = "failed"


class CardSetup(Model):
    """One attempt to save a card: the consent given before the processor's page, kept until the
    processor says the card was saved, when it becomes that card's consent."""

    model_config = ConfigDict(extra="ignore")

    setup_ref: str
    clinic_id: str
    patient_id: str
    provider: str
    card_id: str  # chosen now, so a repeated "card saved" event saves the same card once
    consent: Consent
    status: SetupStatus = SetupStatus.OPEN
    customer_ref: str
    session_id: str | None = None
    setup_id: str | None = None
    request_token: str | None = Field(default=None, repr=False)  # the card-request link it came from
    created_at: datetime
