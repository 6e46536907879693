"""In-memory fakes for the QR and fiscal ports: same conditions as the DynamoDB repositories, under a
lock, so use-case tests can race threads against them without AWS."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from clinicpay.domain.errors import ConditionFailed, ProviderUnavailable
from clinicpay.domain.fiscal import (
    AWAITING_STATES,
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
    FINAL_STATUSES,
    CardPayment,
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
    payment_id_for,
)
from clinicpay.ports import ProviderFiscalCheck, RefundRequest, RefundResult
from clinicpay.repositories.shards import shard_of

PUBLIC = {"pending": {"pending", "fiscalizing"}, "fiscalized": {"fiscalized"}, "failed": {"failed"}}


class FakeQrStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.registers: dict[tuple[str, str], QrRegister] = {}
        self.invoices: dict[tuple[str, str], QrInvoice] = {}
        self.by_id: dict[tuple[str, str], QrPayment] = {}
        self.events: dict[tuple[str, str], tuple[str, str | None]] = {}
        self.refund_items: dict[tuple[str, str, str], QrRefund] = {}
        self.undecided_since: dict[tuple[str, str, str], str] = {}
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
            if invoice is None or (invoice.status_rank, invoice.order_ms) >= (update.rank, update.order_ms):
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
            if payment is None or (payment.invoice_rank, payment.invoice_order_ms) >= (update.rank, update.order_ms):
                return False
            self.by_id[(clinic_id, payment_id)] = payment.model_copy(update={
                "invoice_status": update.status, "invoice_order_ms": update.order_ms, "invoice_rank": update.rank})
            return True

    # fiscal documents (sale: QRPAY#..., return: QRREF#...#...)
    def _get(self, clinic_id: str, key: str) -> FiscalDoc | None:
        if key.startswith("QRREF#"):
            payment_id, _, refund_id = key.removeprefix("QRREF#").partition("#")
            return self.refund_items.get((clinic_id, payment_id, refund_id))
        return self.by_id.get((clinic_id, key.removeprefix("QRPAY#")))

    def _put(self, doc: FiscalDoc) -> None:
        if isinstance(doc, QrRefund):
            self.refund_items[(doc.clinic_id, doc.payment_id, doc.refund_id)] = doc
        else:
            self.by_id[(doc.clinic_id, doc.payment_id)] = doc

    def get_doc(self, clinic_id: str, key: str) -> FiscalDoc | None:
        return self._get(clinic_id, key)

    def claim_doc(self, clinic_id: str, key: str, *, token: str, now: str, lease_until: str,
                  allow_failed: bool, respect_backoff: bool) -> FiscalDoc:
        with self.lock:
            doc = self._get(clinic_id, key)
            if doc is None:
                raise ConditionFailed()
            state = doc.fiscal_status
            due = not respect_backoff or doc.next_attempt_at is None or doc.next_attempt_at <= now
            lapsed = state is FiscalStatus.FISCALIZING and (doc.claim_expires_at or "") < now
            if not ((state is FiscalStatus.PENDING and due) or lapsed or (allow_failed and state is FiscalStatus.FAILED)):
                raise ConditionFailed()
            claimed = doc.model_copy(update={"fiscal_status": FiscalStatus.FISCALIZING, "claim_token": token,
                                              "claim_expires_at": lease_until, "attempts": doc.attempts + 1})
            self._put(claimed)
            return claimed

    def complete_doc(self, clinic_id: str, key: str, receipt: Receipt | None, *, status: FiscalStatus | None = None,
                     token: str | None = None, fiscalized_by: str | None = None) -> bool:
        with self.lock:
            doc = self._get(clinic_id, key)
            if doc is None:
                return False
            if status is None or status is FiscalStatus.FISCALIZED:
                if receipt is None or doc.receipt_id != receipt.id or doc.fiscal_status is FiscalStatus.FISCALIZED:
                    return False
                status = FiscalStatus.FISCALIZED
            elif doc.claim_token != token or doc.fiscal_status is not FiscalStatus.FISCALIZING:
                return False
            update: dict[str, Any] = {"fiscal_status": status, "claim_token": None, "claim_expires_at": None,
                                      "next_attempt_at": None, "last_error": None}
            if receipt is not None:
                update["receipt"] = receipt
            if fiscalized_by and isinstance(doc, QrPayment):
                update["fiscalized_by"] = fiscalized_by
            self._put(doc.model_copy(update=update))
            return True

    def release_doc(self, clinic_id: str, key: str, *, token: str, status: FiscalStatus,
                    last_error: str | None, next_attempt_at: str | None, new_receipt_id: str | None = None,
                    failed_receipt_id: str | None = None) -> bool:
        with self.lock:
            doc = self._get(clinic_id, key)
            if doc is None or doc.claim_token != token or doc.fiscal_status is not FiscalStatus.FISCALIZING:
                return False
            update: dict[str, Any] = {"fiscal_status": status, "last_error": last_error or "unknown",
                                      "next_attempt_at": next_attempt_at, "claim_token": None, "claim_expires_at": None}
            if new_receipt_id:
                update["receipt_id"] = new_receipt_id
                update["failed_receipt_ids"] = [*doc.failed_receipt_ids, failed_receipt_id]
            self._put(doc.model_copy(update=update))
            return True

    def awaiting(self, clinic_id: str | None = None, *, shard: int | None = None,
                 limit: int | None = None) -> tuple[list[FiscalDoc], int]:
        docs: list[FiscalDoc] = [*self.by_id.values(), *self.refund_items.values()]
        found = sorted((d for d in docs if d.fiscal_status in AWAITING_STATES
                        and (clinic_id is None or d.clinic_id == clinic_id)
                        and (shard is None or shard_of(d.clinic_id) == shard)),
                       key=lambda d: (d.clinic_id, d.created_at if isinstance(d, QrRefund) else d.paid_at,
                                      d.payment_id, isinstance(d, QrRefund)))[:limit]
        self.awaiting_reads += len(found)
        return found, len(found)

    # refunds
    def refunds(self, clinic_id: str, payment_id: str) -> list[QrRefund]:
        return sorted((r for (cid, pid, _), r in self.refund_items.items() if cid == clinic_id and pid == payment_id),
                      key=lambda r: (r.created_at, r.refund_id))

    def clinic_refunds(self, clinic_id: str) -> list[QrRefund]:
        return [r for (cid, _, _), r in self.refund_items.items() if cid == clinic_id]

    def get_refund(self, clinic_id: str, payment_id: str, refund_id: str) -> QrRefund | None:
        return self.refund_items.get((clinic_id, payment_id, refund_id))

    def record_refund(self, payment: QrPayment, refund: QrRefund, *, now: str) -> bool:
        with self.lock:
            if (refund.clinic_id, refund.payment_id, refund.refund_id) in self.refund_items:
                return False
            current = self.by_id.get((payment.clinic_id, payment.payment_id))
            if current is None or current.refunded + refund.amount.amount > current.amount.amount:
                raise ConditionFailed()
            settled = refund.amount.amount if refund.status == "succeeded" else 0
            self.by_id[(payment.clinic_id, payment.payment_id)] = current.model_copy(update={
                "refunded": current.refunded + refund.amount.amount,
                "refunded_settled": current.refunded_settled + settled})
            self.refund_items[(refund.clinic_id, refund.payment_id, refund.refund_id)] = refund
            self.undecided_since[(refund.clinic_id, refund.payment_id, refund.refund_id)] = refund.created_at
            return True

    def settle_refund(self, refund: QrRefund, *, status: str, now: str, failure_code: str | None = None,
                      fiscal_status: FiscalStatus | None = None, card: CardPayment | None = None) -> bool:
        with self.lock:
            key = (refund.clinic_id, refund.payment_id, refund.refund_id)
            current = self.refund_items.get(key)
            if current is None or current.status != "pending":
                return False
            payment = self.by_id[(refund.clinic_id, refund.payment_id)]
            update: dict[str, Any] = {"status": status, "settled_at": now}
            if status == "succeeded":
                update["fiscal_status"] = fiscal_status or FiscalStatus.NOT_REQUIRED
                if card is not None:
                    update["card"] = card
                payment = payment.model_copy(update={"refunded_settled": payment.refunded_settled + current.amount.amount})
            else:
                update["failure_code"] = failure_code or "failed"
                payment = payment.model_copy(update={"refunded": payment.refunded - current.amount.amount})
            self.refund_items[key] = current.model_copy(update=update)
            self.by_id[(refund.clinic_id, refund.payment_id)] = payment
            return True

    def retry_refund(self, payment: QrPayment, refund: QrRefund, *, now: str) -> bool:
        with self.lock:
            key = (refund.clinic_id, refund.payment_id, refund.refund_id)
            current = self.refund_items.get(key)
            stored = self.by_id[(payment.clinic_id, payment.payment_id)]
            if current is None or current.status != "failed":
                return False
            if stored.refunded + current.amount.amount > stored.amount.amount:
                raise ConditionFailed()
            self.by_id[(payment.clinic_id, payment.payment_id)] = stored.model_copy(update={
                "refunded": stored.refunded + current.amount.amount})
            self.refund_items[key] = current.model_copy(update={"status": "pending", "failure_code": None,
                                                                "settled_at": None})
            self.undecided_since[key] = now
            return True

    def undecided(self, clinic_id: str | None = None, *, shard: int | None = None,
                  older_than: str | None = None) -> list[Undecided]:
        found = [Undecided(i.clinic_id, i.invoice_id, "invoice", i.created_at) for i in self.invoices.values()
                 if i.status not in FINAL_STATUSES]
        found += [Undecided(r.clinic_id, r.invoice_id, "refund", self.undecided_since.get(k, r.created_at),
                            f"QRREF#{r.payment_id}#{r.refund_id}")
                  for k, r in self.refund_items.items() if r.status == "pending"]
        return sorted((u for u in found if (clinic_id is None or u.clinic_id == clinic_id)
                       and (older_than is None or u.since < older_than)), key=lambda u: u.since)

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

    statuses: dict[str, InvoiceUpdate]
    checks: dict[str, list[ProviderFiscalCheck]]

    def invoice_status(self, invoice_id: str) -> InvoiceUpdate:
        found = getattr(self, "statuses", {}).get(invoice_id)
        if found is None:
            raise ProviderUnavailable()
        return found

    def parse_webhook(self, raw_body: bytes, headers: Any) -> InvoiceUpdate:
        raise AssertionError("not used by the unit tests: monobank itself is exercised against its sandbox")

    def fiscal_checks(self, invoice_id: str) -> list[ProviderFiscalCheck]:
        return list(getattr(self, "checks", {}).get(invoice_id, []))


class FakeRefunds:
    """monobank's invoice/cancel as a RefundingGateway: answers as told, counts what it was asked."""

    name = "monobank"

    def __init__(self, answer: str = "succeeded", *, raises: Exception | None = None):
        self.lock = threading.Lock()
        self.answer = answer
        self.raises = raises
        self.requests: list[RefundRequest] = []
        self.on_refund: Callable[[], None] | None = None

    def refund(self, request: RefundRequest) -> RefundResult:
        if self.on_refund:
            self.on_refund()
        with self.lock:
            self.requests.append(request)
        if self.raises is not None:
            raise self.raises
        return RefundResult(provider_refund_id=request.refund_id, status=self.answer,  # type: ignore[arg-type]
                            failure_code="BAD_REQUEST" if self.answer == "failed" else None)


class FakeRegister:
    """A cash register that behaves like Checkbox: one receipt per id, shifts, faults on demand."""

    def __init__(self, *, shift_open: bool = True):
        self.lock = threading.Lock()
        self.shift = ShiftState(status="OPENED", shift_id="s1") if shift_open else ShiftState(status="NONE")
        self.receipts: dict[str, ReceiptResult] = {}
        self.amounts: dict[str, int] = {}
        self.kinds: dict[str, str] = {}
        self.related: dict[str, str] = {}
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
            if receipt.is_return:
                sale = self.receipts.get(receipt.related_receipt_id or "")
                if sale is None or sale.state != "DONE":
                    raise FiscalRejected("related receipt not found")
                returned = sum(self.amounts.get(r, 0) for r, of in self.related.items() if of == sale.receipt_id)
                if returned + receipt.payment.value > self.amounts[sale.receipt_id]:
                    raise FiscalRejected("return above the sale")
                self.related[receipt.receipt_id] = sale.receipt_id
            self.amounts[receipt.receipt_id] = receipt.payment.value
            self.kinds[receipt.receipt_id] = "RETURN" if receipt.is_return else "SELL"
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

    def done_of(self, kind: str) -> list[ReceiptResult]:
        return [r for r in self.done if self.kinds.get(r.receipt_id) == kind]


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
