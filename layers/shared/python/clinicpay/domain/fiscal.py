"""Fiscal receipts (Ukrainian pRRO) in provider-neutral terms: receipts, shifts, states, errors.

A QR payment's receipt moves pending -> fiscalizing -> fiscalized | failed | pending, always by a
conditional write. `fiscalizing` is a lease: whoever holds it is the only one talking to the fiscal
register about that payment until it reports back or the lease runs out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictInt, model_validator

from clinicpay.domain.errors import Conflict, ProviderError
from clinicpay.domain.model import Model


class FiscalStatus(StrEnum):
    PENDING = "pending"  # waits for its receipt (shift closed, register down, not tried yet)
    FISCALIZING = "fiscalizing"  # claimed: one actor is getting the receipt right now
    FISCALIZED = "fiscalized"  # the receipt is DONE: fiscal code and tax URL kept
    FAILED = "failed"  # the register refused the receipt (ERROR): needs a person, then `.../fiscalize`
    # No receipt of ours, ever: monobank fiscalized the payment itself (its own Checkbox link or
    # monopay PRRO; the clinic's setting `fiscalization: "monobank"`, or found in its fiscal-checks)...
    EXTERNAL = "external"
    # ... or the clinic's setting `fiscalization: "none"` (it fiscalizes elsewhere, or need not).
    NOT_REQUIRED = "not_required"


# The states in which a document still waits for a receipt of ours (the AwaitingFiscalization index).
AWAITING_STATES = frozenset({FiscalStatus.PENDING, FiscalStatus.FISCALIZING, FiscalStatus.FAILED})

PublicFiscalStatus = Literal["pending", "fiscalized", "failed", "external", "not_required"]


def public_fiscal_status(state: FiscalStatus) -> PublicFiscalStatus:
    """What API.md shows: a receipt being fetched right now is still `pending` to the reader."""
    if state is FiscalStatus.FISCALIZED:
        return "fiscalized"
    if state is FiscalStatus.FAILED:
        return "failed"
    if state is FiscalStatus.EXTERNAL:
        return "external"
    if state is FiscalStatus.NOT_REQUIRED:
        return "not_required"
    return "pending"


# Who makes a clinic's QR receipts (clinic setting `fiscalization`).
FiscalizedBy = Literal["clinicpay", "monobank", "none"]


class Receipt(Model):
    id: str
    fiscal_code: str | None = None
    url: str | None = None  # the tax service's public check page (Checkbox `tax_url`)
    serial: int | None = None
    fiscalized_at: str | None = None
    source: Literal["checkbox", "monopay"] | None = None  # set when monobank made it (fiscal-checks)


class FiscalTrack(Model):
    """Where one fiscal document (a sale receipt, or a return receipt) stands, and its claim.

    `receipt_id` is minted before the first attempt and sent on every retry, so the register can
    never make two receipts for one document; it is replaced only after the register reported the
    old one as ERROR (no fiscal document exists for it). `fiscalizing` is a lease (`claim_*`)."""

    model_config = ConfigDict(extra="ignore")

    fiscal_status: FiscalStatus = FiscalStatus.PENDING
    receipt_id: str
    receipt: Receipt | None = None
    failed_receipt_ids: list[str] = Field(default_factory=list)
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: str | None = None
    claim_token: str | None = None
    claim_expires_at: str | None = None

    def fiscal_view(self) -> dict[str, Any]:
        return {"state": self.fiscal_status.value, "attempts": self.attempts, "last_error": self.last_error,
                "next_attempt_at": self.next_attempt_at}


Kopecks = Annotated[StrictInt, Field(ge=0, le=10**12)]


class ReceiptGood(Model):
    """One receipt line. `price` per unit in minor units; `quantity` in thousandths (1000 = 1 unit)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=256)
    price: Kopecks
    quantity: Annotated[StrictInt, Field(gt=0)]

    @property
    def total(self) -> int:
        # Whole units only (our baskets are), so the product is an exact number of kopecks.
        return self.price * self.quantity // 1000


class CardPaymentLine(Model):
    """The cashless payment on the receipt: what the acquirer reported about the card payment."""

    value: Kopecks
    card_mask: str | None = None
    auth_code: str | None = None
    rrn: str | None = None
    payment_system: str | None = None
    bank_name: str | None = None
    terminal: str | None = None


class ReceiptRequest(Model):
    """A sell receipt for one card payment, or (`is_return`) the return of money for one: then every
    line is returned and `related_receipt_id` names the sale receipt it returns. `receipt_id` is ours
    and is reused on every retry."""

    receipt_id: str
    goods: list[ReceiptGood] = Field(min_length=1)
    payment: CardPaymentLine
    is_return: bool = False
    related_receipt_id: str | None = None

    @model_validator(mode="after")
    def _balanced(self) -> ReceiptRequest:
        for good in self.goods:
            if good.price * good.quantity % 1000:
                raise ValueError("quantity must be whole units")
        if sum(g.total for g in self.goods) != self.payment.value:
            raise ValueError("goods do not add up to the payment")
        if self.is_return and not self.related_receipt_id:
            raise ValueError("a return receipt names the sale receipt it returns")
        return self


ReceiptState = Literal["DONE", "ERROR", "PROCESSING"]


class ReceiptResult(Model):
    receipt_id: str
    state: ReceiptState
    fiscal_code: str | None = None
    tax_url: str | None = None
    serial: int | None = None
    error: str | None = None  # the register's own words on ERROR (no card data in there)


ShiftStatus = Literal["NONE", "CREATED", "OPENING", "OPENED", "CLOSING", "CLOSED"]


class ShiftState(Model):
    status: ShiftStatus
    shift_id: str | None = None
    serial: int | None = None
    opened_at: str | None = None
    closed_at: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "OPENED"


# --- errors ----------------------------------------------------------------------------------

class ShiftClosed(Conflict):
    """No open shift at the fiscal register: receipts wait (pending) until staff open one."""

    code, default_message = "fiscal_shift_closed", "The fiscal shift is not open; the payment waits as pending."


class ShiftNotOpen(Conflict):
    code, default_message = "shift_not_open", "There is no open fiscal shift to close."


class AlreadyFiscalized(Conflict):
    code, default_message = "already_fiscalized", "This payment already has its fiscal receipt."


class FiscalizationInProgress(Conflict):
    code, default_message = "fiscalization_in_progress", "This payment's receipt is being made right now."


class FiscalRejected(ProviderError):
    """The register refused the receipt for good (validation, or a receipt that ended in ERROR)."""

    code, default_message = "fiscal_receipt_rejected", "The fiscal register refused the receipt."


class WaitingForSale(Conflict):
    """A return receipt refers to its sale receipt, so it waits until the sale is fiscalized."""

    code, default_message = "waiting_for_sale_receipt", "The return receipt waits for the sale receipt."


class FiscalRegisterBusy(ProviderError):
    """A refusal that passes by itself (another cashier holds the register): retry later."""

    status, code, default_message = 503, "fiscal_register_busy", "The fiscal register is busy; try again shortly."


# --- retry policy ----------------------------------------------------------------------------

BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
PROCESSING_RETRY = timedelta(seconds=30)
# Longer than any function's timeout (fiscalize: 60 s), so a live holder never loses its lease.
CLAIM_LEASE = timedelta(seconds=90)


def next_attempt(now: datetime, attempts: int) -> datetime:
    """Bounded exponential backoff: 1, 2, 4 ... minutes, never more than an hour."""
    exponent = max(0, min(attempts - 1, 10))
    return now + min(BACKOFF_BASE * (2**exponent), BACKOFF_CAP)
