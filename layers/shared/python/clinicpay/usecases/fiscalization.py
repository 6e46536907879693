"""Fiscalize QR payments and their refunds: one receipt per fiscal document, ever, and nothing lost
when the register is down.

A fiscal document is a payment's sale receipt (the QRPAY item) or a refund's return receipt (its
QRREF item): the same claim, lease, backoff and waiting index serve both. One attempt for one
document:
1. claim it: pending (due) -> fiscalizing, by a conditional write with a lease; whoever fails to
   claim does nothing (someone else holds it, or it is done);
2. sell the receipt under the document's receipt id (minted when the document was made and reused
   on every retry, so the register itself refuses a second receipt). A return receipt refers to the
   sale receipt (`related_receipt_id`), so it waits, pending, until the sale is fiscalized; a sale
   monobank already fiscalized itself (its fiscal-checks, when `checks` is given) gets no receipt of
   ours, and neither do its returns (monobank makes those);
3. report back, only while still holding the claim: DONE -> fiscalized (and out of the waiting
   index); ERROR -> failed (a new receipt id is minted for a later manual retry, since the ERROR
   receipt is no fiscal document); shift closed -> pending, waiting for the shift; register down
   or slow -> pending with attempts, last_error and a bounded backoff.
A sale that becomes fiscalized sends its waiting returns at once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from clinicpay.domain.errors import ClinicpayError, ConditionFailed, GatewayNotConfigured, NotFound
from clinicpay.domain.fiscal import (
    CLAIM_LEASE,
    PROCESSING_RETRY,
    CardPaymentLine,
    FiscalRejected,
    FiscalStatus,
    Receipt,
    ReceiptGood,
    ReceiptRequest,
    ReceiptResult,
    ShiftClosed,
    WaitingForSale,
    next_attempt,
)
from clinicpay.domain.ids import new_token, new_uuid
from clinicpay.domain.qr import UAH, FiscalDoc, QrPayment, QrRefund, doc_key, iso, payment_key
from clinicpay.observability import logger
from clinicpay.ports.qr import FiscalRegister

if TYPE_CHECKING:
    from clinicpay.ports.qr import ProviderFiscalCheck, QrStore

RegisterFactory = Callable[[str], FiscalRegister]
Clock = Callable[[], datetime]


class ProviderChecks(Protocol):
    """The acquirer's own receipts for an invoice (monobank's fiscal-checks)."""

    def fiscal_checks(self, invoice_id: str) -> list[ProviderFiscalCheck]: ...


ChecksFactory = Callable[[str], ProviderChecks]


class Outcome(StrEnum):
    FISCALIZED = "fiscalized"
    ALREADY_FISCALIZED = "already_fiscalized"
    EXTERNAL = "external"  # monobank made the receipt itself: none of ours
    NOT_REQUIRED = "not_required"  # the clinic's setting: no receipt through us
    IN_PROGRESS = "in_progress"  # another actor holds the claim
    NOT_DUE = "not_due"  # waiting out its backoff (or failed: only a person retries that)
    SHIFT_CLOSED = "shift_closed"
    WAITING_FOR_SALE = "waiting_for_sale"  # a return receipt whose sale receipt is not made yet
    UNAVAILABLE = "unavailable"  # register down, slow, busy or refusing our credentials
    PROCESSING = "processing"  # accepted, not DONE within our wait: looked at again shortly
    FAILED = "failed"
    NOT_CONFIGURED = "not_configured"


# Outcomes after which the next payment of the same clinic would meet the same wall.
CLINIC_BLOCKING = frozenset({Outcome.SHIFT_CLOSED, Outcome.UNAVAILABLE, Outcome.NOT_CONFIGURED})
# Outcomes after which a document no longer waits for anything of ours.
DONE = frozenset({Outcome.FISCALIZED, Outcome.ALREADY_FISCALIZED, Outcome.EXTERNAL, Outcome.NOT_REQUIRED})
_SETTLED = frozenset({FiscalStatus.FISCALIZED, FiscalStatus.EXTERNAL, FiscalStatus.NOT_REQUIRED})


@dataclass
class FiscalizationResult:
    outcome: Outcome
    doc: FiscalDoc | None = None
    error: ClinicpayError | None = None
    returns: list[FiscalizationResult] = field(default_factory=list)  # a sale's returns sent after it

    @property
    def payment(self) -> QrPayment | None:
        return self.doc if isinstance(self.doc, QrPayment) else None


def _goods(lines: list[Any]) -> list[ReceiptGood]:
    return [ReceiptGood(code=line.code, name=line.name, price=line.unit_price, quantity=line.qty * 1000)
            for line in lines]


def receipt_for(payment: QrPayment) -> ReceiptRequest:
    """The sell receipt for a card payment: unit prices in kopecks, quantities in thousandths. Its
    amount is what the patient paid, whatever was refunded since (refunds get return receipts)."""
    if payment.amount.currency != UAH:
        raise FiscalRejected(f"Receipts are in UAH; this payment is in {payment.amount.currency}.")
    goods = _goods(payment.basket)
    if not goods or sum(g.total for g in goods) != payment.amount.amount:
        raise FiscalRejected("The payment's basket does not add up to the amount paid.")
    card = payment.card
    return ReceiptRequest(
        receipt_id=payment.receipt_id,
        goods=goods,
        payment=CardPaymentLine(value=payment.amount.amount, card_mask=card.masked_pan, auth_code=card.approval_code,
                                rrn=card.rrn, payment_system=card.payment_system, bank_name=card.bank,
                                terminal=card.terminal),
    )


def return_receipt_for(refund: QrRefund, payment: QrPayment) -> ReceiptRequest:
    """The return receipt for a refund: its lines returned (`is_return`), the money going back to the
    card it came from, and the sale receipt it returns (`related_receipt_id`)."""
    if payment.receipt is None or payment.fiscal_status is not FiscalStatus.FISCALIZED:
        raise WaitingForSale()
    if refund.amount.currency != UAH:
        raise FiscalRejected(f"Receipts are in UAH; this refund is in {refund.amount.currency}.")
    goods = _goods(refund.lines)
    if not goods or sum(g.total for g in goods) != refund.amount.amount:
        raise FiscalRejected("The refund's lines do not add up to the amount given back.")
    card = payment.card
    return ReceiptRequest(
        receipt_id=refund.receipt_id,
        goods=goods,
        payment=CardPaymentLine(value=refund.amount.amount, card_mask=card.masked_pan,
                                auth_code=refund.card.approval_code or card.approval_code,
                                rrn=refund.card.rrn or card.rrn, payment_system=card.payment_system,
                                bank_name=card.bank, terminal=card.terminal),
        is_return=True,
        related_receipt_id=payment.receipt.id,
    )


def fiscalize_payment(store: QrStore, registers: RegisterFactory, clinic_id: str, payment_id: str, *,
                      clock: Clock, allow_failed: bool = False, respect_backoff: bool = True,
                      checks: ChecksFactory | None = None) -> FiscalizationResult:
    """One attempt at the payment's sale receipt (then its waiting returns). Never raises for
    register trouble: it is in the outcome."""
    return fiscalize_document(store, registers, clinic_id, payment_key(payment_id), clock=clock,
                              allow_failed=allow_failed, respect_backoff=respect_backoff, checks=checks)


def fiscalize_document(store: QrStore, registers: RegisterFactory, clinic_id: str, key: str, *, clock: Clock,
                       allow_failed: bool = False, respect_backoff: bool = True,
                       checks: ChecksFactory | None = None) -> FiscalizationResult:
    """One attempt at one fiscal document (`key`: clinicpay.domain.qr.doc_key)."""
    doc = store.get_doc(clinic_id, key)
    if doc is None:
        raise NotFound("No such QR payment." if key.startswith("QRPAY#") else "No such refund.")
    if doc.fiscal_status in _SETTLED:
        return FiscalizationResult(Outcome.ALREADY_FISCALIZED, doc)
    now = clock()
    token = new_token(16)
    try:
        claimed = store.claim_doc(clinic_id, key, token=token, now=iso(now), lease_until=iso(now + CLAIM_LEASE),
                                  allow_failed=allow_failed, respect_backoff=respect_backoff)
    except ConditionFailed:
        current = store.get_doc(clinic_id, key) or doc
        if current.fiscal_status in _SETTLED:
            return FiscalizationResult(Outcome.ALREADY_FISCALIZED, current)
        if current.fiscal_status is FiscalStatus.FISCALIZING:
            return FiscalizationResult(Outcome.IN_PROGRESS, current)
        return FiscalizationResult(Outcome.NOT_DUE, current)
    result = _attempt(store, registers, claimed, token, clock, checks)
    log = {"clinic_id": clinic_id, "document": "return" if isinstance(claimed, QrRefund) else "sale",
           "payment_id": claimed.payment_id, "receipt_id": claimed.receipt_id, "attempt": claimed.attempts,
           "outcome": result.outcome.value}
    if result.error is not None:
        log["error_code"] = result.error.code
    logger.info("fiscalization attempt", extra=log)
    if result.outcome in (Outcome.FISCALIZED, Outcome.EXTERNAL) and isinstance(result.doc, QrPayment):
        result.returns = fiscalize_returns(store, registers, result.doc, clock=clock, checks=checks)
    return result


def fiscalize_returns(store: QrStore, registers: RegisterFactory, payment: QrPayment, *, clock: Clock,
                      checks: ChecksFactory | None = None, allow_failed: bool = False) -> list[FiscalizationResult]:
    """The payment's return receipts that wait (for their sale, a shift, the register): now. With
    `allow_failed` (a person asked) the ones the register refused are tried again too."""
    if payment.refunded_settled <= 0:
        return []
    wanted = {FiscalStatus.PENDING, FiscalStatus.FAILED} if allow_failed else {FiscalStatus.PENDING}
    results = []
    for refund in store.refunds(payment.clinic_id, payment.payment_id):
        if refund.status == "succeeded" and refund.fiscal_status in wanted:
            results.append(fiscalize_document(store, registers, payment.clinic_id, doc_key(refund), clock=clock,
                                              respect_backoff=False, checks=checks, allow_failed=allow_failed))
    return results


def _attempt(store: QrStore, registers: RegisterFactory, claimed: FiscalDoc, token: str, clock: Clock,
             checks: ChecksFactory | None) -> FiscalizationResult:
    clinic_id, key = claimed.clinic_id, doc_key(claimed)

    def release(outcome: Outcome, status: FiscalStatus, error: ClinicpayError | None, last_error: str,
                retry_at: datetime | None, new_receipt: bool = False) -> FiscalizationResult:
        store.release_doc(clinic_id, key, token=token, status=status, last_error=last_error[:300],
                          next_attempt_at=iso(retry_at) if retry_at else None,
                          new_receipt_id=new_uuid() if new_receipt else None,
                          failed_receipt_id=claimed.receipt_id if new_receipt else None)
        return FiscalizationResult(outcome, store.get_doc(clinic_id, key), error)

    try:
        request = _request(store, checks, claimed, clock)
        if isinstance(request, _NoReceipt):
            store.complete_doc(clinic_id, key, request.receipt, status=request.status, token=token,
                               fiscalized_by=request.fiscalized_by)
            return FiscalizationResult(request.outcome, store.get_doc(clinic_id, key))
        result: ReceiptResult = registers(clinic_id).sell(request)
    except WaitingForSale as error:
        # Not due before its sale receipt; the sale, once fiscalized, sends it at once.
        return release(Outcome.WAITING_FOR_SALE, FiscalStatus.PENDING, error, error.code,
                       next_attempt(clock(), claimed.attempts))
    except ShiftClosed as error:
        # Not the payment's fault and not a fault that passes with time: it waits for the shift,
        # and opening the shift sends it out.
        return release(Outcome.SHIFT_CLOSED, FiscalStatus.PENDING, error, error.code, None)
    except GatewayNotConfigured as error:
        return release(Outcome.NOT_CONFIGURED, FiscalStatus.PENDING, error, "fiscal_register_not_configured",
                       next_attempt(clock(), claimed.attempts))
    except FiscalRejected as error:
        detail = next((d.get("provider_message") for d in error.details if isinstance(d, dict)), None)
        return release(Outcome.FAILED, FiscalStatus.FAILED, error, f"{error.code}: {detail or error.message}", None)
    except ClinicpayError as error:
        return release(Outcome.UNAVAILABLE, FiscalStatus.PENDING, error, error.code,
                       next_attempt(clock(), claimed.attempts))
    except Exception:
        # A bug must not strand the document in `fiscalizing` until the lease runs out.
        release(Outcome.UNAVAILABLE, FiscalStatus.PENDING, None, "internal_error", next_attempt(clock(), claimed.attempts))
        raise
    if result.state == "DONE":
        receipt = Receipt(id=result.receipt_id, fiscal_code=result.fiscal_code, url=result.tax_url,
                          serial=result.serial, fiscalized_at=iso(clock()))
        store.complete_doc(clinic_id, key, receipt)
        return FiscalizationResult(Outcome.FISCALIZED, store.get_doc(clinic_id, key))
    if result.state == "ERROR":
        return release(Outcome.FAILED, FiscalStatus.FAILED, FiscalRejected(result.error),
                       f"receipt_error: {result.error or 'ERROR'}", None, new_receipt=True)
    return release(Outcome.PROCESSING, FiscalStatus.PENDING, None, "receipt_processing", clock() + PROCESSING_RETRY)


@dataclass
class _NoReceipt:
    """A document settled without a receipt of ours: monobank made it, or none is due."""

    outcome: Outcome
    status: FiscalStatus
    receipt: Receipt | None = None
    fiscalized_by: str | None = None


def _request(store: QrStore, checks: ChecksFactory | None, claimed: FiscalDoc,
             clock: Clock) -> ReceiptRequest | _NoReceipt:
    """What to ask the register for this document, or why nothing."""
    if isinstance(claimed, QrRefund):
        payment = store.get_payment(claimed.clinic_id, claimed.payment_id)
        if payment is None:
            raise FiscalRejected("The refunded payment is not on record.")
        if payment.fiscal_status is FiscalStatus.EXTERNAL:
            # monobank fiscalized the sale: the return is monobank's too (fiscal-checks shows it).
            return _NoReceipt(Outcome.EXTERNAL, FiscalStatus.EXTERNAL)
        if payment.fiscal_status is FiscalStatus.NOT_REQUIRED:
            return _NoReceipt(Outcome.NOT_REQUIRED, FiscalStatus.NOT_REQUIRED)
        return return_receipt_for(claimed, payment)
    made = _made_by_provider(checks, claimed)
    if made is not None:
        logger.warning("monobank already fiscalized this payment: no receipt of ours", extra={
            "clinic_id": claimed.clinic_id, "payment_id": claimed.payment_id, "source": made.source})
        return _NoReceipt(Outcome.EXTERNAL, FiscalStatus.EXTERNAL,
                          Receipt(id=made.id, url=made.tax_url, source=made.source, fiscalized_at=iso(clock())),
                          fiscalized_by="monobank")
    return receipt_for(claimed)


def _made_by_provider(checks: ChecksFactory | None, payment: QrPayment) -> ProviderFiscalCheck | None:
    """monobank's own sale receipt for this payment, if it made (or is making) one. The safety net
    never holds a receipt back: when monobank cannot be asked, ours is made (the clinic's setting
    says we fiscalize), and the answer is logged."""
    if checks is None:
        return None
    try:
        found = checks(payment.clinic_id).fiscal_checks(payment.invoice_id)
    except ClinicpayError as error:
        logger.info("monobank fiscal-checks not available; making our receipt", extra={
            "clinic_id": payment.clinic_id, "payment_id": payment.payment_id, "error_code": error.code})
        return None
    return next((check for check in found if check.type == "sale" and check.made), None)


def complete_from_register(store: QrStore, clinic_id: str, result: ReceiptResult, clock: Clock) -> bool:
    """A receipt the register reports DONE (e.g. by webhook): the document waiting for it is done."""
    if result.state != "DONE":
        return False
    waiting, _ = store.awaiting(clinic_id)
    doc = next((d for d in waiting if d.receipt_id == result.receipt_id), None)
    if doc is None:
        return False
    receipt = Receipt(id=result.receipt_id, fiscal_code=result.fiscal_code, url=result.tax_url, serial=result.serial,
                      fiscalized_at=iso(clock()))
    return store.complete_doc(clinic_id, doc_key(doc), receipt)


# --- sweeps over the waiting payments ---------------------------------------------------------

@dataclass
class ClinicSweep:
    clinic_id: str
    waiting: int = 0
    fiscalized: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def remaining(self) -> int:
        return self.waiting - self.fiscalized

    def view(self) -> dict[str, Any]:
        return {"waiting": self.waiting, "fiscalized": self.fiscalized, "remaining": self.remaining,
                "reasons": dict(self.reasons)}


@dataclass
class SweepReport:
    items_read: int = 0
    clinics: dict[str, ClinicSweep] = field(default_factory=dict)

    @property
    def fiscalized(self) -> int:
        return sum(c.fiscalized for c in self.clinics.values())

    @property
    def remaining(self) -> int:
        return sum(c.remaining for c in self.clinics.values())

    def view(self) -> dict[str, Any]:
        return {"items_read": self.items_read, "fiscalized": self.fiscalized, "remaining": self.remaining,
                "clinics": {cid: c.view() for cid, c in sorted(self.clinics.items())}}


def fiscalize_waiting(store: QrStore, registers: RegisterFactory, *, clock: Clock, clinic_id: str | None = None,
                      shard: int | None = None, respect_backoff: bool = True, deadline: float | None = None,
                      checks: ChecksFactory | None = None) -> SweepReport:
    """Try every document (sale or return receipt) that awaits its receipt (read from the sparse
    index only): a clinic's, one shard's (a scheduled job's invocation, repositories/shards.py) or,
    with neither, all of them.

    A clinic whose register answers "shift closed", "down" or "not configured" is not asked again
    for its other payments in this sweep: they would meet the same wall. Failed payments wait for
    a person. `deadline` (time.monotonic) stops starting new attempts near the function's timeout.
    """
    waiting, items_read = store.awaiting(clinic_id, shard=shard)
    report = SweepReport(items_read=items_read)
    blocked: dict[str, Outcome] = {}
    # Sales before returns: a return refers to its sale receipt, and a sale sends its returns.
    for doc in sorted(waiting, key=lambda d: isinstance(d, QrRefund)):
        sweep = report.clinics.setdefault(doc.clinic_id, ClinicSweep(doc.clinic_id))
        sweep.waiting += 1
        if doc.fiscal_status is FiscalStatus.FAILED:
            sweep.reasons["failed"] += 1
            continue
        if doc.clinic_id in blocked:
            sweep.reasons[blocked[doc.clinic_id].value] += 1
            continue
        if deadline is not None and time.monotonic() > deadline:
            sweep.reasons["not_reached"] += 1
            continue
        try:
            result = fiscalize_document(store, registers, doc.clinic_id, doc_key(doc), clock=clock,
                                        respect_backoff=respect_backoff, checks=checks)
        except NotFound:
            sweep.waiting -= 1
            continue
        if result.outcome in DONE:
            sweep.fiscalized += 1
            continue
        sweep.reasons[result.outcome.value] += 1
        if result.outcome in CLINIC_BLOCKING:
            blocked[doc.clinic_id] = result.outcome
    return report
