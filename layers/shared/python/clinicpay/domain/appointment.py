"""Appointments, the patient on them, and their payment link."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from clinicpay.domain.clinic import Locale
from clinicpay.domain.money import Money
from clinicpay.domain.text import OneLine


class PaymentStatus(StrEnum):
    NOT_REQUIRED = "not_required"
    UNPAID = "unpaid"
    PENDING = "pending"  # the provider has the payment but cannot yet say it landed (Fintoc `pending`)
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class BookingStatus(StrEnum):
    CONFIRMED = "confirmed"
    AWAITING_CARD = "awaiting_card"  # online booking of a card-required service, until the card is saved


class BookedBy(StrEnum):
    STAFF = "staff"
    ONLINE = "online"


class Patient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.@]+$")
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, pattern=r"^\+[1-9]\d{6,14}$")
    locale: Locale | None = None


# What a caller may send for a patient: the stored model above, with names and addresses free of
# control characters (checked where they come in, so older stored records still read).
_EMAIL = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+\.[^@\s\x00-\x1f\x7f-\x9f]+$"


class PatientDetails(Patient):
    name: OneLine = Field(min_length=1, max_length=200)
    email: OneLine | None = Field(default=None, max_length=254, pattern=_EMAIL)


class PublicPatientDetails(BaseModel):
    """A patient as the booking widget sends them: what was typed. Never an existing patient's id:
    a returning patient is proved by a patient token (docs/API.md, Returning patients)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_\-.@]+$", deprecated=True, description=(
        "Ignored: widgets before patient tokens sent one derived from the email. A booking "
        "without a patient token gets a new patient id (`pt_…`)."))
    name: OneLine | None = Field(default=None, min_length=1, max_length=200,
                                 description="Required unless a patient token names a patient the clinic has.")
    email: OneLine | None = Field(default=None, max_length=254, pattern=_EMAIL)
    phone: str | None = Field(default=None, pattern=r"^\+[1-9]\d{6,14}$",
                              description="E.164; a mobile number of the clinic's country (texts go only there).")
    locale: Locale | None = None


class PaymentLink(BaseModel):
    url: str
    expires_at: datetime | None = None


class ProviderSession(BaseModel):
    """The provider checkout behind our link; made lazily and replaced once it expires."""

    provider: str
    session_id: str
    url: str
    expires_at: datetime | None = None


class PaymentRecord(BaseModel):
    provider: str
    reference: str
    amount: Money
    fee: Money | None = None
    paid_at: datetime


class Appointment(BaseModel):
    model_config = ConfigDict(extra="ignore")

    appointment_id: str
    clinic_id: str
    patient: Patient
    service_id: str
    service_name: str | None = None  # as it was called when booked, for messages
    starts_at: datetime
    booked_by: BookedBy
    price: Money
    payment_status: PaymentStatus
    status: BookingStatus = BookingStatus.CONFIRMED
    payment_link: PaymentLink | None = None
    payment: PaymentRecord | None = None
    amount_refunded: Money | None = None  # given back from `payment` (partially_refunded / refunded)
    dispute: dict[str, Any] | None = None  # the cardholder's dispute of `payment`: {status, amount, reason, ...}
    created_at: datetime
