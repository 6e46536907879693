"""Appointments, the patient on them, and their payment link."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from clinicpay.domain.clinic import Locale
from clinicpay.domain.money import Money


class PaymentStatus(StrEnum):
    NOT_REQUIRED = "not_required"
    UNPAID = "unpaid"
    PENDING = "pending"  # the provider has the payment but cannot yet say it landed (Fintoc `pending`)
    PAID = "paid"
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
    created_at: datetime
