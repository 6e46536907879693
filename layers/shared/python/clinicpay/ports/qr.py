"""QR payments and their fiscal receipts (issue 4): the acquirer's QR registers (monobank), the
software cash register that fiscalizes them (Checkbox), and where we keep both."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from clinicpay.domain.model import Model

# Names only for the type checker: `from __future__ import annotations` keeps these lazy at runtime.
if TYPE_CHECKING:
    from clinicpay.domain.fiscal import FiscalStatus, Receipt, ReceiptRequest, ReceiptResult, ShiftState
    from clinicpay.domain.qr import (
        FiscalDoc,
        InvoiceUpdate,
        QrAmountRequest,
        QrInvoice,
        QrPayment,
        QrRefund,
        QrRegister,
        QrRegisterInfo,
        QrReportFilters,
        Undecided,
    )
    from clinicpay.ports.refunds import RefundRequest, RefundResult


class QrAcquirer(Protocol):
    """An acquirer with QR cash registers the patient scans (monobank)."""

    name: str

    def list_registers(self) -> list[QrRegisterInfo]: ...

    def put_amount(self, request: QrAmountRequest) -> str:
        """Create an invoice on the register; returns the acquirer's invoice id."""
        ...

    def reset_amount(self, qr_id: str) -> None: ...

    def invoice_status(self, invoice_id: str) -> InvoiceUpdate: ...

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> InvoiceUpdate:
        """Verify the signature over the raw bytes, then translate. Raises InvalidSignature."""
        ...

    def refund(self, request: RefundRequest) -> RefundResult:
        """Give money back from a paid invoice (invoice/cancel). ProviderOutcomeUnknown: undecided."""
        ...

    def fiscal_checks(self, invoice_id: str) -> list[ProviderFiscalCheck]:
        """The receipts the acquirer itself made for an invoice (its own fiscalization)."""
        ...


class ProviderFiscalCheck(Model):
    """A receipt an acquirer made itself (monobank's fiscal-checks): its Checkbox link or monopay PRRO."""

    id: str
    type: Literal["sale", "return"]
    status: str  # new, process, done, failed
    source: Literal["checkbox", "monopay"]
    tax_url: str | None = None
    status_description: str | None = None

    @property
    def made(self) -> bool:
        """Made or being made: it counts, so ours would be a second one. Only `failed` does not."""
        return self.status != "failed"


class FiscalRegister(Protocol):
    """A software cash register (pRRO) that turns card payments into fiscal receipts (Checkbox)."""

    def current_shift(self) -> ShiftState: ...

    def open_shift(self) -> ShiftState: ...

    def close_shift(self) -> ShiftState: ...

    def sell(self, receipt: ReceiptRequest) -> ReceiptResult:
        """Register the receipt under `receipt.receipt_id` (a repeat returns the first) and wait a
        bounded time for its outcome. Raises ShiftClosed, FiscalRejected, FiscalRegisterBusy or
        ProviderUnavailable; a receipt still in progress comes back with state PROCESSING."""
        ...

    def get_receipt(self, receipt_id: str) -> ReceiptResult | None: ...


class QrStore(Protocol):
    """Persistence of QR registers, QR invoices and QR payments; every change is conditional."""

    def put_registers(self, clinic_id: str, registers: list[QrRegisterInfo], synced_at: str) -> list[QrRegister]: ...

    def list_registers(self, clinic_id: str) -> list[QrRegister]: ...

    def get_register(self, clinic_id: str, qr_id: str) -> QrRegister | None: ...

    def set_register_amount(self, register: QrRegister, invoice: QrInvoice) -> None: ...

    def clear_register_amount(self, clinic_id: str, qr_id: str, invoice_id: str | None) -> bool: ...

    def put_invoice(self, invoice: QrInvoice) -> None: ...

    def get_invoice(self, clinic_id: str, invoice_id: str) -> QrInvoice | None: ...

    def invoice_and_payment(self, clinic_id: str, invoice_id: str) -> tuple[QrInvoice | None, QrPayment | None]: ...

    def event_recorded(self, clinic_id: str, event_id: str) -> bool: ...

    def record_event(self, clinic_id: str, event_id: str, *, kind: str, outcome: str, reason: str | None,
                     at: datetime) -> bool: ...

    def advance_invoice(self, clinic_id: str, update: InvoiceUpdate) -> bool: ...

    def create_payment(self, payment: QrPayment) -> bool: ...

    def get_payment(self, clinic_id: str, payment_id: str) -> QrPayment | None: ...

    def advance_payment_invoice_status(self, clinic_id: str, payment_id: str, update: InvoiceUpdate) -> bool: ...

    # Fiscal documents (a payment's sale receipt, a refund's return receipt), by `doc_key`:
    # `QRPAY#{payment_id}` or `QRREF#{payment_id}#{refund_id}` (clinicpay.domain.qr.doc_key).
    def get_doc(self, clinic_id: str, key: str) -> FiscalDoc | None: ...

    def claim_doc(self, clinic_id: str, key: str, *, token: str, now: str, lease_until: str,
                  allow_failed: bool, respect_backoff: bool) -> FiscalDoc: ...

    def complete_doc(self, clinic_id: str, key: str, receipt: Receipt | None, *, status: FiscalStatus | None = None,
                     token: str | None = None, fiscalized_by: str | None = None) -> bool:
        """-> fiscalized with its receipt (only for the receipt id it holds), out of the waiting
        index; or, with `status` (external, not_required), settled by the claim's holder (`token`)
        without a receipt of ours."""
        ...

    def release_doc(self, clinic_id: str, key: str, *, token: str, status: FiscalStatus,
                    last_error: str | None, next_attempt_at: str | None,
                    new_receipt_id: str | None = None, failed_receipt_id: str | None = None) -> bool: ...

    def awaiting(self, clinic_id: str | None = None, *, shard: int | None = None,
                 limit: int | None = None) -> tuple[list[FiscalDoc], int]:
        """Documents (sale and return) that await their receipt (the sparse index only): a clinic's,
        one shard's (repositories/shards.py), or every one; returns them and items read."""
        ...

    # Refunds of a payment: each recorded once (its key), never above what is left of the payment.
    def refunds(self, clinic_id: str, payment_id: str) -> list[QrRefund]: ...

    def get_refund(self, clinic_id: str, payment_id: str, refund_id: str) -> QrRefund | None: ...

    def record_refund(self, payment: QrPayment, refund: QrRefund, *, now: str) -> bool:
        """Reserve the refund's amount on the payment and store it, in one transaction. False when
        it was recorded before; ConditionFailed when the payment has not that much left."""
        ...

    def settle_refund(self, refund: QrRefund, *, status: str, now: str, failure_code: str | None = None,
                      fiscal_status: FiscalStatus | None = None, card: Any = None) -> bool:
        """pending -> succeeded (the payment's settled amount grows; the return receipt becomes due
        when `fiscal_status` is PENDING) or failed (the reservation is released)."""
        ...

    def retry_refund(self, payment: QrPayment, refund: QrRefund, *, now: str) -> bool:
        """failed -> pending again, reserving its amount again (the same refund id is asked again)."""
        ...

    def undecided(self, clinic_id: str | None = None, *, shard: int | None = None,
                  older_than: str | None = None) -> list[Undecided]:
        """QR invoices and refunds of ours still undecided (a sparse index), oldest first."""
        ...

    def payments(self, clinic_id: str, filters: QrReportFilters) -> list[QrPayment]: ...

    def clinic_refunds(self, clinic_id: str) -> list[QrRefund]: ...


class ShiftStore(Protocol):
    def get_shift(self, clinic_id: str) -> tuple[ShiftState, int] | None: ...

    def save_shift(self, clinic_id: str, state: ShiftState, *, expected_version: int | None, updated_at: str) -> bool: ...
