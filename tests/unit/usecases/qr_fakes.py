"""In-memory fakes for the QR and fiscal ports: same conditions as the DynamoDB repositories, under a
lock, so use-case tests can race threads against them without AWS."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from clinicpay.domain.errors import ConditionFailed, ProviderUnavailable
from clinicpay.domain.fiscal import (
    FiscalRejected,
    FiscalStatus,
    Receipt,
    ReceiptRequest,
    ReceiptResult,
    ShiftClosed,
    ShiftNotOpen,
    ShiftState,
)
from clinicpay.domain.qr import (
    InvoiceUpdate,
    QrAmountRequest,
    QrInvoice,
    QrPayment,
    QrRegister,
    QrRegisterInfo,
    QrReportFilters,
    payment_id_for,
)
from clinicpay.repositories.shards import shard_of

PUBLIC = {"pending": {"pending", "fiscalizing"}, "fiscalized": {"fiscalized"}, "failed": {"failed"}}


class FakeQrStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.registers: dict[tuple[str, str], QrRegister] = {}
        self.invoices: dict[tuple[str, str], QrInvoice] = {}
        self.by_id: dict[tuple[str, str], QrPayment] = {}
        self.events: dict[tuple[str, str], tuple[str, str | None]] = {}
        self.awaiting_reads = 0

    # registers
    def put_registers(self, clinic_id: str, registers: list[QrRegisterInfo], synced_at: str) -> list[QrRegister]:
        with self.lock:
            listed = {r.qr_id for r in registers}
            for info in registers:
                old = self.registers.get((clinic_id, info.qr_id))
                kept = old.model_dump(include={"current_invoice_id", "current_amount", "current_appointment_id",
                                               "amount_set_at"}) if old else {}
                self.registers[(clinic_id, info.qr_id)] = QrRegister(
                    **info.model_dump(), **kept, clinic_id=clinic_id, synced_at=synced_at,
                    version=(old.version if old else 0) + 1)
            for (cid, qr_id), register in list(self.registers.items()):
                if cid == clinic_id and qr_id not in listed:
                    self.registers[(cid, qr_id)] = register.model_copy(update={"active": False})
        return self.list_registers(clinic_id)

    def list_registers(self, clinic_id: str) -> list[QrRegister]:
        return [r for (cid, _), r in sorted(self.registers.items()) if cid == clinic_id]

    def get_register(self, clinic_id: str, qr_id: str) -> QrRegister | None:
        return self.registers.get((clinic_id, qr_id))

    def set_register_amount(self, register: QrRegister, invoice: QrInvoice) -> None:
        with self.lock:
            current = self.registers[(register.clinic_id, register.qr_id)]
            if current.version != register.version:
                raise ConditionFailed()
            self.registers[(register.clinic_id, register.qr_id)] = current.model_copy(update={
                "current_invoice_id": invoice.invoice_id, "current_amount": invoice.amount,
                "current_appointment_id": invoice.appointment_id, "amount_set_at": invoice.created_at,
                "version": current.version + 1})

    def clear_register_amount(self, clinic_id: str, qr_id: str, invoice_id: str | None) -> bool:
        with self.lock:
            current = self.registers.get((clinic_id, qr_id))
            if current is None or (invoice_id and current.current_invoice_id != invoice_id):
                return False
            self.registers[(clinic_id, qr_id)] = current.model_copy(update={
                "current_invoice_id": None, "current_amount": None, "current_appointment_id": None,
                "amount_set_at": None, "version": current.version + 1})
            return True

    # invoices
    def put_invoice(self, invoice: QrInvoice) -> None:
        with self.lock:
            if (invoice.clinic_id, invoice.invoice_id) in self.invoices:
                raise ConditionFailed()
            self.invoices[(invoice.clinic_id, invoice.invoice_id)] = invoice

    def get_invoice(self, clinic_id: str, invoice_id: str) -> QrInvoice | None:
        return self.invoices.get((clinic_id, invoice_id))

    def invoice_and_payment(self, clinic_id: str, invoice_id: str) -> tuple[QrInvoice | None, QrPayment | None]:
        return self.invoices.get((clinic_id, invoice_id)), self.by_id.get((clinic_id, payment_id_for(invoice_id)))

    # event records, per clinic
    def event_recorded(self, clinic_id: str, event_id: str) -> bool:
        return (clinic_id, event_id) in self.events

    def record_event(self, clinic_id: str, event_id: str, *, kind: str, outcome: str, reason: str | None,
                     at: datetime) -> bool:
        with self.lock:
            if (clinic_id, event_id) in self.events:
                return False
            self.events[(clinic_id, event_id)] = (outcome, reason)
            return True

    def advance_invoice(self, clinic_id: str, update: InvoiceUpdate) -> bool:
        with self.lock:
            invoice = self.invoices.get((clinic_id, update.invoice_id))
            if invoice is None or (invoice.order_ms, invoice.status_rank) >= (update.order_ms, update.rank):
                return False
            self.invoices[(clinic_id, update.invoice_id)] = invoice.model_copy(update={
                "status": update.status, "order_ms": update.order_ms, "status_rank": update.rank})
            return True

    # payments
    def create_payment(self, payment: QrPayment) -> bool:
        with self.lock:
            if (payment.clinic_id, payment.payment_id) in self.by_id:
                return False
            self.by_id[(payment.clinic_id, payment.payment_id)] = payment
            return True

    def get_payment(self, clinic_id: str, payment_id: str) -> QrPayment | None:
        return self.by_id.get((clinic_id, payment_id))

    def advance_payment_invoice_status(self, clinic_id: str, payment_id: str, update: InvoiceUpdate) -> bool:
        with self.lock:
            payment = self.by_id.get((clinic_id, payment_id))
            if payment is None or (payment.invoice_order_ms, payment.invoice_rank) >= (update.order_ms, update.rank):
                return False
            self.by_id[(clinic_id, payment_id)] = payment.model_copy(update={
                "invoice_status": update.status, "invoice_order_ms": update.order_ms, "invoice_rank": update.rank})
            return True

    def claim_payment(self, clinic_id: str, payment_id: str, *, token: str, now: str, lease_until: str,
                      allow_failed: bool, respect_backoff: bool) -> QrPayment:
        with self.lock:
            payment = self.by_id.get((clinic_id, payment_id))
            if payment is None:
                raise ConditionFailed()
            state = payment.fiscal_status
            due = not respect_backoff or payment.next_attempt_at is None or payment.next_attempt_at <= now
            lapsed = state is FiscalStatus.FISCALIZING and (payment.claim_expires_at or "") < now
            if not ((state is FiscalStatus.PENDING and due) or lapsed or (allow_failed and state is FiscalStatus.FAILED)):
                raise ConditionFailed()
            claimed = payment.model_copy(update={"fiscal_status": FiscalStatus.FISCALIZING, "claim_token": token,
                                                  "claim_expires_at": lease_until, "attempts": payment.attempts + 1})
            self.by_id[(clinic_id, payment_id)] = claimed
            return claimed

    def complete_payment(self, clinic_id: str, payment_id: str, receipt: Receipt) -> bool:
        with self.lock:
            payment = self.by_id.get((clinic_id, payment_id))
            if payment is None or payment.receipt_id != receipt.id or payment.fiscal_status is FiscalStatus.FISCALIZED:
                return False
            self.by_id[(clinic_id, payment_id)] = payment.model_copy(update={
                "fiscal_status": FiscalStatus.FISCALIZED, "receipt": receipt, "claim_token": None,
                "claim_expires_at": None, "next_attempt_at": None, "last_error": None})
            return True

    def release_payment(self, clinic_id: str, payment_id: str, *, token: str, status: FiscalStatus,
                        last_error: str | None, next_attempt_at: str | None, new_receipt_id: str | None = None,
                        failed_receipt_id: str | None = None) -> bool:
        with self.lock:
            payment = self.by_id.get((clinic_id, payment_id))
            if payment is None or payment.claim_token != token or payment.fiscal_status is not FiscalStatus.FISCALIZING:
                return False
            update: dict[str, Any] = {"fiscal_status": status, "last_error": last_error or "unknown",
                                      "next_attempt_at": next_attempt_at, "claim_token": None, "claim_expires_at": None}
            if new_receipt_id:
                update["receipt_id"] = new_receipt_id
                update["failed_receipt_ids"] = [*payment.failed_receipt_ids, failed_receipt_id]
            self.by_id[(clinic_id, payment_id)] = payment.model_copy(update=update)
            return True

    def awaiting(self, clinic_id: str | None = None, *, shard: int | None = None,
                 limit: int | None = None) -> tuple[list[QrPayment], int]:
        found = sorted((p for p in self.by_id.values()
                        if p.fiscal_status is not FiscalStatus.FISCALIZED and (clinic_id is None or p.clinic_id == clinic_id)
                        and (shard is None or shard_of(p.clinic_id) == shard)),
                       key=lambda p: (p.clinic_id, p.paid_at, p.payment_id))[:limit]
        self.awaiting_reads += len(found)
        return found, len(found)

    def payments(self, clinic_id: str, filters: QrReportFilters) -> list[QrPayment]:
        rows = [p for (cid, _), p in self.by_id.items() if cid == clinic_id]
        return sorted(rows, key=lambda p: p.paid_at)


class FakeAcquirer:
    name = "monobank"

    def __init__(self, registers: list[QrRegisterInfo]):
        self.registers = registers
        self.amounts: list[QrAmountRequest] = []
        self.resets: list[str] = []

    def list_registers(self) -> list[QrRegisterInfo]:
        return list(self.registers)

    def put_amount(self, request: QrAmountRequest) -> str:
        self.amounts.append(request)
        return f"inv_{len(self.amounts)}"

    def reset_amount(self, qr_id: str) -> None:
        self.resets.append(qr_id)

    def invoice_status(self, invoice_id: str) -> InvoiceUpdate:
        raise AssertionError("not used by the unit tests: monobank itself is exercised against its sandbox")

    def parse_webhook(self, raw_body: bytes, headers: Any) -> InvoiceUpdate:
        raise AssertionError("not used by the unit tests: monobank itself is exercised against its sandbox")


class FakeRegister:
    """A cash register that behaves like Checkbox: one receipt per id, shifts, faults on demand."""

    def __init__(self, *, shift_open: bool = True):
        self.lock = threading.Lock()
        self.shift = ShiftState(status="OPENED", shift_id="s1") if shift_open else ShiftState(status="NONE")
        self.receipts: dict[str, ReceiptResult] = {}
        self.sell_calls = 0
        self.down = False
        self.error_next = 0
        self.processing_next = 0
        self.on_sell: Callable[[], None] | None = None

    def current_shift(self) -> ShiftState:
        return self.shift

    def open_shift(self) -> ShiftState:
        self.shift = ShiftState(status="OPENED", shift_id="s2")
        return self.shift

    def close_shift(self) -> ShiftState:
        if not self.shift.is_open:
            raise ShiftNotOpen()
        self.shift = ShiftState(status="NONE")
        return self.shift

    def sell(self, receipt: ReceiptRequest) -> ReceiptResult:
        with self.lock:
            self.sell_calls += 1
        if self.on_sell:
            self.on_sell()
        if self.down:
            raise ProviderUnavailable()
        if not self.shift.is_open:
            raise ShiftClosed()
        with self.lock:
            if receipt.receipt_id in self.receipts:
                return self.receipts[receipt.receipt_id]
            if self.error_next:
                self.error_next -= 1
                result = ReceiptResult(receipt_id=receipt.receipt_id, state="ERROR", error="DPS refused")
            elif self.processing_next:
                self.processing_next -= 1
                result = ReceiptResult(receipt_id=receipt.receipt_id, state="PROCESSING")
            else:
                number = sum(1 for r in self.receipts.values() if r.state == "DONE") + 1
                result = ReceiptResult(receipt_id=receipt.receipt_id, state="DONE", fiscal_code=f"FC{number}",
                                       tax_url=f"https://check.example/FC{number}", serial=number)
            self.receipts[receipt.receipt_id] = result
            return result

    def get_receipt(self, receipt_id: str) -> ReceiptResult | None:
        return self.receipts.get(receipt_id)

    @property
    def done(self) -> list[ReceiptResult]:
        return [r for r in self.receipts.values() if r.state == "DONE"]


class RejectingRegister(FakeRegister):
    def sell(self, receipt: ReceiptRequest) -> ReceiptResult:
        raise FiscalRejected("refused")


class FakeShiftStore:
    def __init__(self) -> None:
        self.state: tuple[ShiftState, int] | None = None

    def get_shift(self, clinic_id: str) -> tuple[ShiftState, int] | None:
        return self.state

    def save_shift(self, clinic_id: str, state: ShiftState, *, expected_version: int | None, updated_at: str) -> bool:
        current = self.state[1] if self.state else None
        if current != expected_version:
            return False
        self.state = (state, (expected_version or 0) + 1)
        return True
