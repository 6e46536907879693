"""Appointments, the patient on them, and their payment link."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field, computed_field, model_validator

from clinicpay.domain.clinic import Locale
from clinicpay.domain.model import Model
from clinicpay.domain.money import Money
from clinicpay.domain.text import OneLine


class PaymentStatus(StrEnum):
    """Where an appointment's money stands (domain/ledger.py derives it from the amounts)."""

    NOT_REQUIRED = "not_required"
    UNPAID = "unpaid"
    PENDING = "pending"  # the provider has the payment but cannot yet say it landed (Fintoc `pending`)
    DEPOSIT_PAID = "deposit_paid"  # something was paid (a deposit, part at the desk), a balance is due
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"  # some of what was paid went back
    REFUNDED = "refunded"  # everything paid went back


def settled_status(price: Money, paid: Money, refunded: Money, current: PaymentStatus) -> PaymentStatus:
    """The status the amounts of an appointment's ledger (domain/ledger.py) say. Before any money came
    in the status is the link's own (`unpaid`, `pending`, `not_required`) and stays as it is.

    - something paid, nothing refunded: `paid` when it covers the price, else `deposit_paid`;
    - something refunded: `refunded` when everything paid went back, else `partially_refunded`
      (the balance, if any, is still shown as `balance_due`)."""
    if paid.amount <= 0:
        return current if current in (PaymentStatus.UNPAID, PaymentStatus.PENDING,
                                      PaymentStatus.NOT_REQUIRED) else PaymentStatus.UNPAID
    if refunded.amount >= paid.amount:
        return PaymentStatus.REFUNDED
    if refunded.amount > 0:
        return PaymentStatus.PARTIALLY_REFUNDED
    return PaymentStatus.PAID if paid.amount >= price.amount else PaymentStatus.DEPOSIT_PAID


class BookingStatus(StrEnum):
    CONFIRMED = "confirmed"
    AWAITING_CARD = "awaiting_card"  # online booking of a card-required service, until the card is saved
    CANCELLED = "cancelled"  # by staff: its link takes no more money, no reminder goes; money paid stays until refunded


class BookedBy(StrEnum):
    STAFF = "staff"
    ONLINE = "online"


class Patient(Model):
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


class PublicPatientDetails(Model):
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


class PaymentLink(Model):
    url: str
    expires_at: datetime | None = None


def pay_url(base: str, token: str) -> str:
    """The payment link's page, `/pay/{token}` on the public base URL."""
    return f"{base.rstrip('/')}/pay/{token}"


SessionPurpose = Literal["full", "deposit", "balance"]


class ProviderSession(Model):
    """The provider checkout behind our link; made lazily and replaced once it expires.

    It also carries the ledger as it will be once this session is paid, worked out when it was
    made (`amount`, `ledger_version` it was made at, `paid_after`, `status_after`): the paying
    webhook copies them onto the appointment in its one transaction, on condition that the ledger
    has not moved since (repositories/appointments.apply_paid). Sessions stored before the ledger
    have none of these and are applied by the slower path that reads the appointment first."""

    provider: str
    session_id: str
    url: str
    expires_at: datetime | None = None
    purpose: SessionPurpose | None = None
    amount: Money | None = None
    ledger_version: int | None = None
    paid_after: Money | None = None
    status_after: PaymentStatus | None = None


class PaymentRecord(Model):
    provider: str
    reference: str
    amount: Money
    fee: Money | None = None
    paid_at: datetime


class Appointment(Model):
    model_config = ConfigDict(extra="ignore")

    appointment_id: str
    clinic_id: str
    patient: Patient
    service_id: str
    service_name: str | None = None  # as it was called when booked, for messages
    service_names: dict[str, str] | None = None  # and in other languages (Service.names), for messages
    starts_at: datetime
    booked_by: BookedBy
    price: Money
    payment_status: PaymentStatus
    status: BookingStatus = BookingStatus.CONFIRMED
    payment_link: PaymentLink | None = None
    payment: PaymentRecord | None = None  # the latest online payment (desk payments are rows only)
    dispute: dict[str, Any] | None = None  # the cardholder's dispute of `payment`: {status, amount, reason, ...}
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    created_at: datetime
    # The ledger (domain/ledger.py): what came in and what went back, in the price's currency,
    # written only in the same transaction as the payment or refund row that changes them.
    deposit: Money | None = None  # what the link asks first, when the service takes a deposit
    amount_paid: Money
    amount_refunded: Money

    @model_validator(mode="before")
    @classmethod
    def _ledger_of_older_records(cls, data: Any) -> Any:
        # Appointments stored before the ledger hold a status only: paid was one payment of the price.
        if not isinstance(data, dict) or "price" not in data or (
                data.get("amount_paid") is not None and data.get("amount_refunded") is not None):
            return data
        price = data["price"]
        amount, currency = (price.amount, price.currency) if isinstance(price, Money) else (
            price.get("amount"), price.get("currency"))
        status = str(data.get("payment_status") or "")
        data = dict(data)
        if data.get("amount_paid") is None:
            data["amount_paid"] = {"amount": amount if status in ("paid", "refunded") else 0, "currency": currency}
        if data.get("amount_refunded") is None:
            data["amount_refunded"] = {"amount": amount if status == "refunded" else 0, "currency": currency}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def balance_due(self) -> Money:
        """What is still to be paid: the price less everything paid. A refund does not add to it
        (money the clinic chose to give back is not owed again)."""
        return Money(amount=max(0, self.price.amount - self.amount_paid.amount), currency=self.price.currency)
