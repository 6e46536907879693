"""Cards on file, the consent that lets us keep and charge them, and the charges made with them.

A card here is display data plus the processor's token. The token is stored (CardsTable, which only
`tokenize` may read) and used to charge; it is excluded from every view a caller or a log sees.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, StrictBool

from clinicpay.domain.model import Model
from clinicpay.domain.money import Money
from clinicpay.domain.text import OneLine
from clinicpay.ports import ChargeStatus


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
    failure_code: str | None = None
    action_url: str | None = None
    created_at: datetime
    updated_at: datetime

    def view(self) -> dict[str, Any]:
        body: dict[str, Any] = {"charge_id": self.charge_id, "status": self.status or "processing",
                                "amount": self.amount.model_dump(), "card_id": self.card_id,
                                "reason": self.reason.value, "appointment_id": self.appointment_id,
                                "created_at": self.created_at.isoformat()}
        if self.failure_code:
            body["failure_code"] = self.failure_code
        if self.action_url:
            body["action_url"] = self.action_url
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
