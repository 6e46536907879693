"""Fiscalize QR payments: one receipt per payment, ever, and nothing lost when the register is down.

One attempt for one payment:
1. claim it: pending (due) -> fiscalizing, by a conditional write with a lease; whoever fails to
   claim does nothing (someone else holds it, or it is done);
2. sell the receipt under the payment's receipt id (minted when the payment was made and reused on
   every retry, so the register itself refuses a second receipt);
3. report back, only while still holding the claim: DONE -> fiscalized (and out of the waiting
   index); ERROR -> failed (a new receipt id is minted for a later manual retry, since the ERROR
   receipt is no fiscal document); shift closed -> pending, waiting for the shift; register down
   or slow -> pending with attempts, last_error and a bounded backoff.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

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
    next_attempt,
)
from clinicpay.domain.ids import new_token, new_uuid
from clinicpay.domain.qr import UAH, QrPayment, iso
from clinicpay.observability import logger
from clinicpay.ports import FiscalRegister, QrStore

RegisterFactory = Callable[[str], FiscalRegister]
Clock = Callable[[], datetime]


class Outcome(StrEnum):
    FISCALIZED = "fiscalized"
    ALREADY_FISCALIZED = "already_fiscalized"
    IN_PROGRESS = "in_progress"  # another actor holds the claim
    NOT_DUE = "not_due"  # waiting out its backoff (or failed: only a person retries that)
    SHIFT_CLOSED = "shift_closed"
    UNAVAILABLE = "unavailable"  # register down, slow, busy or refusing our credentials
    PROCESSING = "processing"  # accepted, not DONE within our wait: looked at again shortly
    FAILED = "failed"
    NOT_CONFIGURED = "not_configured"


# Outcomes after which the next payment of the same clinic would meet the same wall.
CLINIC_BLOCKING = frozenset({Outcome.SHIFT_CLOSED, Outcome.UNAVAILABLE, Outcome.NOT_CONFIGURED})


@dataclass
class FiscalizationResult:
    outcome: Outcome
    payment: QrPayment | None = None
    error: ClinicpayError | None = None


def receipt_for(payment: QrPayment) -> ReceiptRequest:
    """The sell receipt for a card payment: unit prices in kopecks, quantities in thousandths."""
    if payment.amount.currency != UAH:
        raise FiscalRejected(f"Receipts are in UAH; this payment is in {payment.amount.currency}.")
    goods = [ReceiptGood(code=line.code, name=line.name, price=line.unit_price, quantity=line.qty * 1000)
             for line in payment.basket]
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


def fiscalize_payment(store: QrStore, registers: RegisterFactory, clinic_id: str, payment_id: str, *,
                      clock: Clock, allow_failed: bool = False, respect_backoff: bool = True) -> FiscalizationResult:
    """One attempt at the payment's receipt. Never raises for register trouble: it is in the outcome."""
    payment = store.get_payment(clinic_id, payment_id)
    if payment is None:
        raise NotFound("No such QR payment.")
    if payment.fiscal_status is FiscalStatus.FISCALIZED:
        return FiscalizationResult(Outcome.ALREADY_FISCALIZED, payment)
    now = clock()
    token = new_token(16)
    try:
        claimed = store.claim_payment(clinic_id, payment_id, token=token, now=iso(now),
                                      lease_until=iso(now + CLAIM_LEASE), allow_failed=allow_failed,
                                      respect_backoff=respect_backoff)
    except ConditionFailed:
        current = store.get_payment(clinic_id, payment_id) or payment
        if current.fiscal_status is FiscalStatus.FISCALIZED:
            return FiscalizationResult(Outcome.ALREADY_FISCALIZED, current)
        if current.fiscal_status is FiscalStatus.FISCALIZING:
            return FiscalizationResult(Outcome.IN_PROGRESS, current)
        return FiscalizationResult(Outcome.NOT_DUE, current)
    result = _attempt(store, registers, claimed, token, clock)
    log = {"clinic_id": clinic_id, "payment_id": payment_id, "receipt_id": claimed.receipt_id,
           "attempt": claimed.attempts, "outcome": result.outcome.value}
    if result.error is not None:
        log["error_code"] = result.error.code
    logger.info("fiscalization attempt", extra=log)
    return result


def _attempt(store: QrStore, registers: RegisterFactory, claimed: QrPayment, token: str,
             clock: Clock) -> FiscalizationResult:
    clinic_id, payment_id = claimed.clinic_id, claimed.payment_id

    def release(outcome: Outcome, status: FiscalStatus, error: ClinicpayError | None, last_error: str,
                retry_at: datetime | None, new_receipt: bool = False) -> FiscalizationResult:
        store.release_payment(clinic_id, payment_id, token=token, status=status, last_error=last_error[:300],
                              next_attempt_at=iso(retry_at) if retry_at else None,
                              new_receipt_id=new_uuid() if new_receipt else None,
                              failed_receipt_id=claimed.receipt_id if new_receipt else None)
        return FiscalizationResult(outcome, store.get_payment(clinic_id, payment_id), error)

    try:
        request = receipt_for(claimed)
        result: ReceiptResult = registers(clinic_id).sell(request)
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
        # A bug must not strand the payment in `fiscalizing` until the lease runs out.
        release(Outcome.UNAVAILABLE, FiscalStatus.PENDING, None, "internal_error", next_attempt(clock(), claimed.attempts))
        raise
    if result.state == "DONE":
        receipt = Receipt(id=result.receipt_id, fiscal_code=result.fiscal_code, url=result.tax_url,
                          serial=result.serial, fiscalized_at=iso(clock()))
        store.complete_payment(clinic_id, payment_id, receipt)
        return FiscalizationResult(Outcome.FISCALIZED, store.get_payment(clinic_id, payment_id))
    if result.state == "ERROR":
        return release(Outcome.FAILED, FiscalStatus.FAILED, FiscalRejected(result.error),
                       f"receipt_error: {result.error or 'ERROR'}", None, new_receipt=True)
    return release(Outcome.PROCESSING, FiscalStatus.PENDING, None, "receipt_processing", clock() + PROCESSING_RETRY)


def complete_from_register(store: QrStore, clinic_id: str, result: ReceiptResult, clock: Clock) -> bool:
    """A receipt the register reports DONE (e.g. by webhook): the payment waiting for it is done."""
    if result.state != "DONE":
        return False
    waiting, _ = store.awaiting(clinic_id)
    payment = next((p for p in waiting if p.receipt_id == result.receipt_id), None)
    if payment is None:
        return False
    receipt = Receipt(id=result.receipt_id, fiscal_code=result.fiscal_code, url=result.tax_url, serial=result.serial,
                      fiscalized_at=iso(clock()))
    return store.complete_payment(clinic_id, payment.payment_id, receipt)


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
                      shard: int | None = None, respect_backoff: bool = True,
                      deadline: float | None = None) -> SweepReport:
    """Try every payment that awaits its receipt (read from the sparse index only): a clinic's, one
    shard's (a scheduled job's invocation, repositories/shards.py) or, with neither, all of them.

    A clinic whose register answers "shift closed", "down" or "not configured" is not asked again
    for its other payments in this sweep: they would meet the same wall. Failed payments wait for
    a person. `deadline` (time.monotonic) stops starting new attempts near the function's timeout.
    """
    waiting, items_read = store.awaiting(clinic_id, shard=shard)
    report = SweepReport(items_read=items_read)
    blocked: dict[str, Outcome] = {}
    for payment in waiting:
        sweep = report.clinics.setdefault(payment.clinic_id, ClinicSweep(payment.clinic_id))
        sweep.waiting += 1
        if payment.fiscal_status is FiscalStatus.FAILED:
            sweep.reasons["failed"] += 1
            continue
        if payment.clinic_id in blocked:
            sweep.reasons[blocked[payment.clinic_id].value] += 1
            continue
        if deadline is not None and time.monotonic() > deadline:
            sweep.reasons["not_reached"] += 1
            continue
        try:
            result = fiscalize_payment(store, registers, payment.clinic_id, payment.payment_id, clock=clock,
                                       respect_backoff=respect_backoff)
        except NotFound:
            sweep.waiting -= 1
            continue
        if result.outcome in (Outcome.FISCALIZED, Outcome.ALREADY_FISCALIZED):
            sweep.fiscalized += 1
            continue
        sweep.reasons[result.outcome.value] += 1
        if result.outcome in CLINIC_BLOCKING:
            blocked[payment.clinic_id] = result.outcome
    return report
