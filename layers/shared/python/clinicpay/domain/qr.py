"""monobank QR cash registers, the amounts put on them, and the payments made by scanning them.

Provider-neutral where it can be: the adapter turns monobank's wire format into these models, and
the use cases never see kopecks-as-JSON or `ccy: 980`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import ConfigDict, Field, StrictInt

from clinicpay.domain.fiscal import FiscalizedBy, FiscalStatus, FiscalTrack, Receipt, public_fiscal_status
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


# How far along its life an invoice is. Updates are ordered by rank first, then by date (monobank's
# dates have whole seconds, and may be absent): `success` never loses to a late `processing`.
STATUS_RANK: dict[InvoiceStatus, int] = {
    InvoiceStatus.CREATED: 0,
    InvoiceStatus.PROCESSING: 1,
    InvoiceStatus.HOLD: 2,
    InvoiceStatus.FAILURE: 3,
    InvoiceStatus.EXPIRED: 3,
    InvoiceStatus.SUCCESS: 4,
    InvoiceStatus.REVERSED: 5,
}


# Statuses after which nothing more happens to an invoice's payment (refunds aside): no need to ask.
FINAL_STATUSES = frozenset({InvoiceStatus.SUCCESS, InvoiceStatus.FAILURE, InvoiceStatus.EXPIRED,
                            InvoiceStatus.REVERSED})


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


CancelStatus = Literal["processing", "success", "failure"]


class CancelEntry(Model):
    """One entry of monobank's `cancelList`: a refund (full or partial) asked of a paid invoice."""

    status: CancelStatus
    amount: Money | None = None
    created_raw: str | None = None
    modified_raw: str | None = None
    ext_ref: str | None = None  # the merchant's reference for it; ours is our refund id
    approval_code: str | None = None
    rrn: str | None = None

    @property
    def key(self) -> str:
        """What names this refund in every later body: its extRef, else its creation time and amount."""
        if self.ext_ref:
            return f"ext:{self.ext_ref}"
        return f"at:{self.created_raw or '-'}:{self.amount.amount if self.amount else '-'}"


class InvoiceUpdate(Model):
    """A verified status report about one invoice (webhook or invoice/status).

    monobank's spec requires only invoiceId, status, amount and ccy. A body without `modifiedDate`
    is ordered by what it does carry: status first (an invoice only moves forward: created,
    processing, hold, failure/expired, success, reversed), then the latest date it names
    (`modifiedDate`, else the newest cancelList date or `createdDate`)."""

    invoice_id: str
    status: InvoiceStatus
    modified_at: datetime  # modifiedDate, or the latest date the body carries (see above)
    modified_raw: str | None = None  # as monobank wrote it (None: not sent): part of the dedupe key
    created_raw: str | None = None
    amount: Money | None = None  # what the patient paid (`amount`); never `finalAmount`, which shrinks after refunds
    invoice_amount: Money | None = None  # what the invoice asked for (`amount`): compared with ours
    final_amount: Money | None = None  # what is left after refunds (`finalAmount`), for the record only
    reference: str | None = None
    destination: str | None = None
    failure_reason: str | None = None
    card: CardPayment | None = None
    cancels: list[CancelEntry] = Field(default_factory=list)

    @property
    def order_ms(self) -> int:
        return int(self.modified_at.timestamp() * 1000)

    @property
    def rank(self) -> int:
        return STATUS_RANK[self.status]

    @property
    def event_id(self) -> str:
        if self.modified_raw:
            return f"{self.invoice_id}:{self.status.value}:{self.modified_raw}"
        # Without modifiedDate, what the body says names the change: its creation time and refunds.
        said = "|".join([self.created_raw or "", *sorted(f"{c.key}={c.status}" for c in self.cancels)])
        return f"{self.invoice_id}:{self.status.value}:~{hashlib.sha256(said.encode()).hexdigest()[:16]}"


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


class QrPayment(FiscalTrack):
    """A paid QR invoice, the money given back from it, and where its sale receipt stands."""

    payment_id: str
    clinic_id: str
    invoice_id: str
    qr_id: str | None = None
    appointment_id: str | None = None
    amount: Money  # what the patient paid: the sale receipt's amount, whatever is refunded later
    paid_at: str
    card: CardPayment = Field(default_factory=CardPayment)
    basket: list[BasketLine] = Field(default_factory=list)
    invoice_status: InvoiceStatus = InvoiceStatus.SUCCESS
    invoice_order_ms: int = 0
    invoice_rank: int = 0
    created_at: str
    # Who makes its receipts (the clinic's setting when it was paid, or monobank found doing it).
    fiscalized_by: FiscalizedBy = "clinicpay"
    # Money given back, minor units: `refunded` counts what is reserved for refunds not yet
    # settled too (so concurrent refunds never exceed `amount`); `refunded_settled` what came back.
    refunded: int = 0
    refunded_settled: int = 0
    # The sale receipt: FiscalTrack's fields (minted when the payment is made, before any attempt).

    @property
    def refundable(self) -> int:
        return max(self.amount.amount - self.refunded, 0)

    @property
    def refund_status(self) -> Literal["none", "partially_refunded", "refunded"]:
        if self.refunded_settled >= self.amount.amount or self.invoice_status is InvoiceStatus.REVERSED:
            return "refunded"
        return "partially_refunded" if self.refunded_settled > 0 else "none"

    def row(self) -> dict[str, Any]:
        """The report row (API.md): fiscal_status is pending, fiscalized, failed, external or not_required."""
        row: dict[str, Any] = {
            "payment_id": self.payment_id,
            "paid_at": self.paid_at,
            "amount": self.amount.model_dump(),
            "qr_id": self.qr_id,
            "invoice_id": self.invoice_id,
            "fiscal_status": public_fiscal_status(self.fiscal_status),
            "fiscal": self.fiscal_view(),
            "fiscalized_by": self.fiscalized_by,
            "refund_status": self.refund_status,
            "amount_refunded": {"amount": self.refunded_settled, "currency": self.amount.currency},
            "refund_pending": {"amount": max(self.refunded - self.refunded_settled, 0),
                               "currency": self.amount.currency},
            "refundable": {"amount": self.refundable, "currency": self.amount.currency},
        }
        if self.appointment_id:
            row["appointment_id"] = self.appointment_id
        if self.card.masked_pan:
            row["masked_pan"] = self.card.masked_pan
        if self.receipt is not None:
            row["receipt"] = _receipt_view(self.receipt)
        if self.refund_status == "refunded":
            row["refunded"] = True
        return row


def _receipt_view(receipt: Receipt) -> dict[str, Any]:
    view: dict[str, Any] = {"id": receipt.id, "fiscal_code": receipt.fiscal_code, "url": receipt.url}
    if receipt.source:
        view["source"] = receipt.source
    return view


RefundStatus = Literal["pending", "succeeded", "failed"]
# The cancelList key of a reversal monobank reported without naming the refund (status `reversed`
# with nothing, or not everything, in its cancelList): the rest of the payment came back.
REVERSAL_KEY = "reversal"


class QrRefund(FiscalTrack):
    """Money given back from a QR payment (full or partial), and its return receipt.

    Ours (`source: clinicpay`, started through our API) or monobank's (`source: monobank`: a refund
    started in monobank's cabinet, or a reversal), each recorded once per clinic and payment under
    its id. Ours are `pending` until monobank says; monobank's arrive decided. A succeeded refund
    of a payment we fiscalize gets exactly one return receipt (FiscalTrack: its id is minted with
    the refund, before any attempt); until it succeeds there is nothing to return."""

    refund_id: str
    clinic_id: str
    payment_id: str
    invoice_id: str
    amount: Money
    status: RefundStatus
    source: Literal["clinicpay", "monobank"]
    cancel_key: str  # the cancelList entry that is this refund (`ext:<extRef>`, `at:...`, or REVERSAL_KEY)
    lines: list[BasketLine] = Field(default_factory=list)  # what is returned: the receipt's lines
    reason: str | None = None
    failure_code: str | None = None
    provider_created_at: str | None = None
    card: CardPayment = Field(default_factory=CardPayment)  # monobank's approval code / RRN for the refund
    created_at: str
    settled_at: str | None = None
    fiscal_status: FiscalStatus = FiscalStatus.NOT_REQUIRED  # no return receipt until it succeeded

    def view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "refund_id": self.refund_id,
            "payment_id": self.payment_id,
            "amount": self.amount.model_dump(),
            "status": self.status,
            "source": self.source,
            "created_at": self.created_at,
            "settled_at": self.settled_at,
            "failure_code": self.failure_code,
            "reason": self.reason,
            "return_receipt": {"fiscal_status": public_fiscal_status(self.fiscal_status), "fiscal": self.fiscal_view(),
                               "receipt": _receipt_view(self.receipt) if self.receipt else None},
        }
        return view


def refund_lines(basket: list[BasketLine], amount: int, returned: list[BasketLine]) -> list[BasketLine]:
    """The lines a refund of `amount` returns: what is left of each sold line (after `returned`,
    earlier refunds' lines, matched by code), in the basket's order, one unit per line. A full
    refund of an untouched basket is the basket itself."""
    if not returned and sum(line.total for line in basket) == amount:
        return list(basket)
    left_by_code: dict[str, int] = {}
    for line in basket:
        left_by_code[line.code] = left_by_code.get(line.code, 0) + line.total
    for line in returned:
        left_by_code[line.code] = left_by_code.get(line.code, 0) - line.total
    lines: list[BasketLine] = []
    due = amount
    for line in basket:
        take = min(due, max(left_by_code.get(line.code, 0), 0))
        if take > 0:
            lines.append(BasketLine(name=line.name, code=line.code, qty=1, unit_price=take))
            left_by_code[line.code] -= take
            due -= take
    if due > 0:
        # Nothing of the basket is left to name (or it had none): the first line's name carries it.
        first = basket[0] if basket else None
        lines.append(BasketLine(name=first.name if first else "Медичні послуги", code=first.code if first else "refund",
                                qty=1, unit_price=due))
    return lines


FiscalDoc = QrPayment | QrRefund


def doc_key(doc: FiscalDoc) -> str:
    """The sort key of a fiscal document's item: a payment's sale receipt or a refund's return."""
    if isinstance(doc, QrRefund):
        return refund_key(doc.payment_id, doc.refund_id)
    return payment_key(doc.payment_id)


def payment_key(payment_id: str) -> str:
    return f"QRPAY#{payment_id}"


def refund_key(payment_id: str, refund_id: str) -> str:
    return f"QRREF#{payment_id}#{refund_id}"


class Undecided(NamedTuple):
    """A QR invoice, or a refund of ours, whose outcome monobank has not told us yet."""

    clinic_id: str
    invoice_id: str
    kind: Literal["invoice", "refund"]
    since: str  # when it became undecided (iso)
    refund_key: str | None = None


class QrReportFilters(Model):
    """Report filters (API.md): period on `paid_at`, register, public fiscal status, amount range."""

    paid_from: str | None = None  # fixed-width UTC, see `iso`
    paid_to: str | None = None
    qr_id: str | None = None
    fiscal_status: Literal["pending", "fiscalized", "failed", "external", "not_required"] | None = None
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


class QrRefundRequest(Model):
    """`POST .../qr-payments/{payment_id}/refunds` body: no amount gives back everything still left."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": {"amount": 30000, "currency": "UAH"}, "reason": "Процедуру скасовано"}]})

    amount: Money | None = Field(default=None, description="What to give back now, in minor units; "
                                 "without it, everything not yet refunded.")
    reason: OneLine | None = Field(default=None, min_length=1, max_length=200)
