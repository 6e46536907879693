"""monobank QR cash registers, the amounts put on them, and the payments made by scanning them.

Provider-neutral where it can be: the adapter turns monobank's wire format into these models, and
the use cases never see kopecks-as-JSON or `ccy: 980`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import ConfigDict, Field, StrictInt

from clinicpay.domain.fiscal import FiscalStatus, Receipt, public_fiscal_status
from clinicpay.domain.model import Model
from clinicpay.domain.money import Money
from clinicpay.domain.text import OneLine

UAH = "UAH"


class QrAmountType(StrEnum):
    MERCHANT = "merchant"  # the merchant sets the sum (what put-amount needs)
    CLIENT = "client"  # the payer types the sum in
    FIX = "fix"  # a fixed sum set in monobank's cabinet


# Registers whose amount is set outside our API (in monobank's app or by the payer): their invoices
# are made by monobank, not by us, so only monobank itself can confirm one is this clinic's.
AMOUNT_SET_ELSEWHERE = frozenset({QrAmountType.CLIENT.value, QrAmountType.FIX.value})


class QrRegisterInfo(Model):
    """One register as the acquirer lists it."""

    qr_id: str
    short_qr_id: str | None = None
    amount_type: str
    page_url: str


class QrRegister(QrRegisterInfo):
    """One register as we keep it: the acquirer's view plus the amount we last put on it."""

    model_config = ConfigDict(extra="ignore")

    clinic_id: str
    active: bool = True
    synced_at: str
    current_invoice_id: str | None = None
    current_amount: Money | None = None
    current_appointment_id: str | None = None
    amount_set_at: str | None = None
    version: int = 0

    def view(self) -> dict[str, Any]:
        return {
            "qr_id": self.qr_id,
            "short_qr_id": self.short_qr_id,
            "amount_type": self.amount_type,
            "page_url": self.page_url,
            "active": self.active,
            "synced_at": self.synced_at,
            "current_amount": self.current_amount.model_dump() if self.current_amount else None,
            "current_invoice_id": self.current_invoice_id,
            "current_appointment_id": self.current_appointment_id,
            "amount_set_at": self.amount_set_at,
        }


class InvoiceStatus(StrEnum):
    """monobank's invoice statuses (reference/providers.md 2.4)."""

    CREATED = "created"
    PROCESSING = "processing"
    HOLD = "hold"
    SUCCESS = "success"
    FAILURE = "failure"
    REVERSED = "reversed"
    EXPIRED = "expired"


# Breaks ties between two updates that carry the same modifiedDate (monobank's dates have whole
# seconds): the one further along the invoice's life wins, so `success` never loses to `processing`.
STATUS_RANK: dict[InvoiceStatus, int] = {
    InvoiceStatus.CREATED: 0,
    InvoiceStatus.PROCESSING: 1,
    InvoiceStatus.HOLD: 2,
    InvoiceStatus.FAILURE: 3,
    InvoiceStatus.EXPIRED: 3,
    InvoiceStatus.SUCCESS: 4,
    InvoiceStatus.REVERSED: 5,
}


class CardPayment(Model):
    """What the acquirer tells about the card payment; the masked PAN only, never a card number."""

    masked_pan: str | None = None
    approval_code: str | None = None
    rrn: str | None = None
    tran_id: str | None = None
    payment_system: str | None = None
    payment_method: str | None = None
    bank: str | None = None
    terminal: str | None = None
    fee: int | None = None  # acquirer's fee in minor units, when it says


class InvoiceUpdate(Model):
    """A verified status report about one invoice (webhook or invoice/status)."""

    invoice_id: str
    status: InvoiceStatus
    modified_at: datetime
    modified_raw: str  # as monobank wrote it: part of the dedupe key
    amount: Money | None = None  # what was paid: `finalAmount` once paid (it shrinks after refunds)
    invoice_amount: Money | None = None  # what the invoice asked for (`amount`): compared with ours
    reference: str | None = None
    destination: str | None = None
    failure_reason: str | None = None
    card: CardPayment | None = None

    @property
    def order_ms(self) -> int:
        return int(self.modified_at.timestamp() * 1000)

    @property
    def rank(self) -> int:
        return STATUS_RANK[self.status]

    @property
    def event_id(self) -> str:
        return f"{self.invoice_id}:{self.status.value}:{self.modified_raw}"


Quantity = Annotated[StrictInt, Field(gt=0, le=10_000)]


class BasketLine(Model):
    """One line of what was sold: `unit_price` in minor units, `qty` in whole units."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    code: str = Field(min_length=1, max_length=64)
    qty: Quantity = 1
    unit_price: Annotated[StrictInt, Field(gt=0, le=10**12)]

    @property
    def total(self) -> int:
        return self.qty * self.unit_price


class QrAmountRequest(Model):
    """Put `amount` on register `qr_id`: what the acquirer needs for one QR invoice."""

    qr_id: str
    amount: Money
    reference: str
    destination: str
    basket: list[BasketLine]
    webhook_url: str


class QrInvoice(Model):
    """An invoice we created on a register (one per put-amount). Lets a webhook find its register."""

    model_config = ConfigDict(extra="ignore")

    clinic_id: str
    invoice_id: str
    qr_id: str
    amount: Money
    appointment_id: str | None = None
    basket: list[BasketLine]
    created_at: str
    status: InvoiceStatus = InvoiceStatus.CREATED
    order_ms: int = 0
    status_rank: int = 0


# The reference we give monobank for QR invoices: `qr:<qr_id>:<appointment_id?>:<clinic_id>`. It lets a
# webhook be recognised as a QR payment even if the invoice record was never written (the create
# answered, then our write failed), and names the clinic, so a clinic sharing the merchant never
# takes it for its own. It is a hint, never proof: anyone can put this text on an invoice, so an
# invoice we hold no record of is confirmed with monobank (invoice/status, this clinic's token).
QR_REFERENCE_PREFIX = "qr:"
ID_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
_ID = re.compile(ID_PATTERN)


class QrReference(NamedTuple):
    qr_id: str
    appointment_id: str | None
    clinic_id: str | None  # None in references made before the clinic was part of them


def qr_reference(qr_id: str, appointment_id: str | None, clinic_id: str) -> str:
    return f"{QR_REFERENCE_PREFIX}{qr_id}:{appointment_id or ''}:{clinic_id}"


def parse_qr_reference(reference: str | None) -> QrReference | None:
    """`qr:<qr_id>:<appointment_id?>[:<clinic_id>]` -> QrReference; anything else -> None."""
    if not reference or not reference.startswith(QR_REFERENCE_PREFIX):
        return None
    parts = reference[len(QR_REFERENCE_PREFIX):].split(":")
    if len(parts) not in (2, 3) or not all(_ID.match(part) for part in parts if part) or not parts[0]:
        return None
    if len(parts) == 3 and not parts[2]:
        return None
    return QrReference(parts[0], parts[1] or None, parts[2] if len(parts) == 3 else None)


def payment_id_for(invoice_id: str) -> str:
    """One QR payment per paid invoice: the id is derived, so creating it twice is impossible."""
    return f"qrp_{invoice_id}"


def iso(moment: datetime) -> str:
    """Fixed-width UTC RFC 3339, so stored timestamps compare correctly as strings."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class QrPayment(Model):
    """A paid QR invoice and where its fiscal receipt stands."""

    model_config = ConfigDict(extra="ignore")

    payment_id: str
    clinic_id: str
    invoice_id: str
    qr_id: str | None = None
    appointment_id: str | None = None
    amount: Money
    paid_at: str
    card: CardPayment = Field(default_factory=CardPayment)
    basket: list[BasketLine] = Field(default_factory=list)
    invoice_status: InvoiceStatus = InvoiceStatus.SUCCESS
    invoice_order_ms: int = 0
    invoice_rank: int = 0
    created_at: str

    fiscal_status: FiscalStatus = FiscalStatus.PENDING
    # Minted when the payment is created, before any attempt, and sent on every retry, so Checkbox
    # can never make two receipts for one payment. Replaced only after Checkbox reported ERROR.
    receipt_id: str
    receipt: Receipt | None = None
    failed_receipt_ids: list[str] = Field(default_factory=list)
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: str | None = None
    claim_token: str | None = None
    claim_expires_at: str | None = None

    def row(self) -> dict[str, Any]:
        """The report row (API.md): fiscal_status is pending, fiscalized or failed."""
        row: dict[str, Any] = {
            "payment_id": self.payment_id,
            "paid_at": self.paid_at,
            "amount": self.amount.model_dump(),
            "qr_id": self.qr_id,
            "invoice_id": self.invoice_id,
            "fiscal_status": public_fiscal_status(self.fiscal_status),
            "fiscal": {
                "state": self.fiscal_status.value,
                "attempts": self.attempts,
                "last_error": self.last_error,
                "next_attempt_at": self.next_attempt_at,
            },
        }
        if self.appointment_id:
            row["appointment_id"] = self.appointment_id
        if self.card.masked_pan:
            row["masked_pan"] = self.card.masked_pan
        if self.receipt is not None:
            row["receipt"] = {"id": self.receipt.id, "fiscal_code": self.receipt.fiscal_code, "url": self.receipt.url}
        if self.invoice_status is InvoiceStatus.REVERSED:
            row["refunded"] = True
        return row


class QrReportFilters(Model):
    """Report filters (API.md): period on `paid_at`, register, public fiscal status, amount range."""

    paid_from: str | None = None  # fixed-width UTC, see `iso`
    paid_to: str | None = None
    qr_id: str | None = None
    fiscal_status: Literal["pending", "fiscalized", "failed"] | None = None
    min_amount: int | None = None
    max_amount: int | None = None


class PutAmountRequest(Model):
    """`POST .../qr-registers/{qr_id}/amount` body."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": {"amount": 45000, "currency": "UAH"}, "description": "Консультація"}]})

    amount: Money
    appointment_id: str | None = Field(default=None, pattern=ID_PATTERN)
    description: OneLine | None = Field(default=None, min_length=1, max_length=128,
                                        description="What the patient pays for; shown by monobank and on the receipt.")
