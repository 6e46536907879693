"""Money back from QR payments.

Two ways in, one record each (QrRefund, `CLINIC#{cid}` / `QRREF#{payment_id}#{refund_id}`):
- staff ask (`refund_payment`): the amount is reserved on the payment first, by a conditional write
  (refunded + amount <= paid), so concurrent clicks never give back more than was paid; then
  monobank's invoice/cancel is asked with our refund id as `extRef`. Its answer settles the refund
  (succeeded, failed: the reservation is released) or leaves it pending: a lost answer is undecided,
  never a failure, and the webhook's cancelList (or reconciliation asking invoice/status) settles it;
- monobank reports (`apply_refund_facts`): every entry of `cancelList` is one refund, named by its
  extRef (ours: our refund id) or its creation time; a refund started in monobank's cabinet is
  recorded the first time it is seen (never above what is left of the payment); `reversed` means
  everything came back: refunds of ours still pending succeeded, and what no entry names is one
  reversal. Each is recorded once per clinic (a conditional put), settled once (pending -> decided).

A succeeded refund of a payment we fiscalize gets exactly one return receipt (usecases/fiscalization:
the same claim, lease and backoff as sales, in the same waiting index). A payment monobank
fiscalizes gets its return receipt from monobank (we send `items` with the cancel); a clinic that
fiscalizes elsewhere gets none from us.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from clinicpay.domain.errors import (
    ClinicpayError,
    ConditionFailed,
    Conflict,
    NotFound,
    ProviderError,
    ProviderOutcomeUnknown,
    ValidationFailed,
)
from clinicpay.domain.fiscal import FiscalStatus
from clinicpay.domain.ids import id_from_digest, new_uuid
from clinicpay.domain.money import Money
from clinicpay.domain.qr import (
    REVERSAL_KEY,
    BasketLine,
    CancelEntry,
    CardPayment,
    InvoiceStatus,
    InvoiceUpdate,
    QrPayment,
    QrRefund,
    iso,
    refund_lines,
)
from clinicpay.observability import logger, metrics
from clinicpay.ports.refunds import RefundRequest

if TYPE_CHECKING:
    from clinicpay.ports.qr import QrStore
    from clinicpay.ports.refunds import RefundingGateway

# A refund of ours that monobank's cancelList still does not show this long after we asked was
# never received (a cut connection before monobank took it): it failed, and its reservation goes.
REFUND_UNSEEN_GRACE = timedelta(minutes=30)
# Failures after which monobank never saw our extRef: the same refund (same Idempotency-Key) may be
# asked again. Any other failure is monobank's answer about that extRef, and final: a new dialog
# (a new key) makes a new refund.
NEVER_SENT = frozenset({"provider_unavailable", "gateway_not_configured", "provider_credentials_rejected",
                        "storage_unavailable", "not_received_by_provider"})


class NothingToRefund(Conflict):
    code, default_message = "nothing_to_refund", "Everything paid has already been given back."


class RefundExceedsBalance(Conflict):
    code, default_message = "refund_exceeds_balance", "That is more than is left to give back from this payment."


class RefundRefused(ProviderError):
    code, default_message = "refund_refused", "monobank refused the refund; nothing was given back."


def return_fiscal_status(payment: QrPayment) -> FiscalStatus:
    """What a succeeded refund of this payment needs: our return receipt, monobank's, or none."""
    if payment.fiscal_status is FiscalStatus.EXTERNAL or payment.fiscalized_by == "monobank":
        return FiscalStatus.EXTERNAL
    if payment.fiscal_status is FiscalStatus.NOT_REQUIRED or payment.fiscalized_by == "none":
        return FiscalStatus.NOT_REQUIRED
    return FiscalStatus.PENDING


def provider_refund_id(clinic_id: str, invoice_id: str, cancel_key: str) -> str:
    """The id of a refund monobank reported: the same entry always gets the same id, per clinic."""
    return id_from_digest("qrr", clinic_id, invoice_id, cancel_key)


def refund_id_for(clinic_id: str, payment_id: str, idempotency_key: str | None) -> str:
    """Ours: from the Idempotency-Key when there is one (the same key, the same refund, the same
    monobank extRef), else a new one. Minted before anything is written or asked."""
    if idempotency_key:
        return id_from_digest("qrr", clinic_id, payment_id, "key", idempotency_key)
    return id_from_digest("qrr", clinic_id, payment_id, "new", new_uuid())


def _returned(refunds: list[QrRefund]) -> list[BasketLine]:
    return [line for r in refunds if r.status != "failed" for line in r.lines]


def monobank_items(lines: list[BasketLine]) -> list[dict[str, object]]:
    """invoice/cancel `items` (monobank makes the return receipt from them when it fiscalizes)."""
    return [{"name": line.name, "qty": line.qty, "sum": line.unit_price, "code": line.code} for line in lines]


def _count(name: str) -> None:
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="provider", value="monobank")


# --- staff refunds -------------------------------------------------------------------------------

@dataclass
class RefundOutcome:
    refund: QrRefund
    payment: QrPayment
    repeated: bool = False  # the same refund id again: nothing new was asked


def refund_payment(store: QrStore, gateway: Callable[[], RefundingGateway], clinic_id: str, payment_id: str, *,
                   refund_id: str, amount: Money | None, reason: str | None, now: datetime) -> RefundOutcome:
    """Give back `amount` (everything left when None) of a QR payment through monobank."""
    payment = store.get_payment(clinic_id, payment_id)
    if payment is None:
        raise NotFound("No such QR payment.")
    existing = store.get_refund(clinic_id, payment_id, refund_id)
    if existing is not None and existing.status != "failed":
        return RefundOutcome(existing, payment, repeated=True)
    if existing is not None and existing.failure_code not in NEVER_SENT:
        raise RefundRefused(details=[{"refund_id": refund_id, "provider_code": existing.failure_code}])
    reserved = _reserve(store, payment, existing, refund_id, amount, reason, now)
    if isinstance(reserved, RefundOutcome):
        return reserved
    return _ask(store, gateway, payment, reserved, reason, now)


def _reserve(store: QrStore, payment: QrPayment, existing: QrRefund | None, refund_id: str, amount: Money | None,
             reason: str | None, now: datetime) -> QrRefund | RefundOutcome:
    """The refund recorded with its amount reserved on the payment, or the one another request
    with the same id recorded first."""
    clinic_id, payment_id = payment.clinic_id, payment.payment_id
    try:
        if existing is not None:
            if not store.retry_refund(payment, existing, now=iso(now)):
                return RefundOutcome(store.get_refund(clinic_id, payment_id, refund_id) or existing, payment,
                                     repeated=True)
            return existing
        refund = _new_refund(store, payment, refund_id, amount, reason, now)
        if not store.record_refund(payment, refund, now=iso(now)):
            found = store.get_refund(clinic_id, payment_id, refund_id)
            return RefundOutcome(found or refund, store.get_payment(clinic_id, payment_id) or payment, repeated=True)
        return refund
    except ConditionFailed:
        # Someone else's refund took what was left between our read and our reservation.
        current = store.get_payment(clinic_id, payment_id) or payment
        if current.refundable <= 0:
            raise NothingToRefund() from None
        raise RefundExceedsBalance(details=[{"refundable": current.refundable}]) from None


def _ask(store: QrStore, gateway: Callable[[], RefundingGateway], payment: QrPayment, refund: QrRefund,
         reason: str | None, now: datetime) -> RefundOutcome:
    """monobank's invoice/cancel, and what its answer settles."""
    clinic_id, refund_id = payment.clinic_id, refund.refund_id
    log = {"clinic_id": clinic_id, "payment_id": payment.payment_id, "refund_id": refund_id,
           "amount": refund.amount.amount}
    logger.info("qr refund reserved", extra=log)
    fiscal_items = monobank_items(refund.lines) if return_fiscal_status(payment) is FiscalStatus.EXTERNAL else None
    request = RefundRequest(clinic_id=clinic_id, refund_id=refund_id, payment_reference=payment.invoice_id,
                            amount=refund.amount, idempotency_key=f"clinicpay-{clinic_id}-refund-{refund_id}",
                            reason=reason, fiscal_items=fiscal_items)
    try:
        result = gateway().refund(request)
    except ProviderOutcomeUnknown:
        # monobank may have taken it: pending until its cancelList says (webhook or reconciliation).
        logger.warning("qr refund undecided: waits for monobank", extra=log)
        return _outcome(store, payment, refund)
    except ClinicpayError as error:
        # Nothing was applied (unreachable, not configured): the reservation goes, the same
        # Idempotency-Key may try again.
        store.settle_refund(refund, status="failed", now=iso(now), failure_code=error.code)
        logger.warning("qr refund not sent", extra={**log, "error_code": error.code})
        raise
    if result.status == "failed":
        store.settle_refund(refund, status="failed", now=iso(now), failure_code=result.failure_code)
        raise RefundRefused(details=[{"refund_id": refund_id, "provider_code": result.failure_code}])
    if result.status == "succeeded":
        store.settle_refund(refund, status="succeeded", now=iso(now), fiscal_status=return_fiscal_status(payment))
    logger.info("qr refund asked", extra={**log, "status": result.status})
    return _outcome(store, payment, refund)


def _outcome(store: QrStore, payment: QrPayment, refund: QrRefund) -> RefundOutcome:
    return RefundOutcome(store.get_refund(refund.clinic_id, refund.payment_id, refund.refund_id) or refund,
                         store.get_payment(payment.clinic_id, payment.payment_id) or payment)


def _new_refund(store: QrStore, payment: QrPayment, refund_id: str, amount: Money | None, reason: str | None,
                now: datetime) -> QrRefund:
    if payment.refundable <= 0:
        raise NothingToRefund()
    if amount is not None:
        if amount.currency != payment.amount.currency:
            raise ValidationFailed(details=[{"field": "amount.currency",
                                             "message": f"must be the payment's currency {payment.amount.currency}"}])
        if amount.amount <= 0:
            raise ValidationFailed(details=[{"field": "amount.amount", "message": "must be above zero"}])
        if amount.amount > payment.refundable:
            raise RefundExceedsBalance(details=[{"refundable": payment.refundable}])
    value = amount.amount if amount is not None else payment.refundable
    earlier = store.refunds(payment.clinic_id, payment.payment_id)
    return QrRefund(refund_id=refund_id, clinic_id=payment.clinic_id, payment_id=payment.payment_id,
                    invoice_id=payment.invoice_id, amount=Money(amount=value, currency=payment.amount.currency),
                    status="pending", source="clinicpay", cancel_key=f"ext:{refund_id}",
                    lines=refund_lines(payment.basket, value, _returned(earlier)), reason=reason,
                    created_at=iso(now), receipt_id=new_uuid())


# --- what monobank reports --------------------------------------------------------------------------

def apply_refund_facts(store: QrStore, clinic_id: str, payment: QrPayment, update: InvoiceUpdate,
                       now: datetime) -> list[QrRefund]:
    """Record and settle the refunds an invoice report names (cancelList, `reversed`), each once.
    Returns the succeeded refunds whose return receipt of ours awaits, to be made now."""
    if not update.cancels and update.status is not InvoiceStatus.REVERSED:
        return []
    known = {r.cancel_key: r for r in store.refunds(clinic_id, payment.payment_id)}
    for entry in update.cancels:
        refund = known.get(entry.key)
        if refund is None:
            recorded = _record_reported(store, payment, entry.key, entry.amount, entry.status, entry, list(known.values()),
                                        now)
            if recorded is not None:
                known[entry.key] = recorded
                payment = store.get_payment(clinic_id, payment.payment_id) or payment
        elif refund.status == "pending" and entry.status != "processing":
            _settle(store, payment, refund, "succeeded" if entry.status == "success" else "failed", now, entry)
    if update.status is InvoiceStatus.REVERSED:
        # Everything came back: whatever of ours is still pending is part of it ...
        for refund in list(known.values()):
            if refund.status == "pending":
                _settle(store, payment, refund, "succeeded", now, None)
        payment = store.get_payment(clinic_id, payment.payment_id) or payment
        # ... and what no cancelList entry names came back as one reversal.
        rest = payment.amount.amount - payment.refunded
        if rest > 0 and REVERSAL_KEY not in known:
            _record_reported(store, payment, REVERSAL_KEY, Money(amount=rest, currency=payment.amount.currency),
                             "success", None, list(known.values()), now)
    return [r for r in store.refunds(clinic_id, payment.payment_id)
            if r.status == "succeeded" and r.fiscal_status is FiscalStatus.PENDING]


def _record_reported(store: QrStore, payment: QrPayment, key: str, amount: Money | None, status: str,
                     entry: CancelEntry | None, earlier: list[QrRefund], now: datetime) -> QrRefund | None:
    """A refund monobank reports that we have no record of (started in monobank's cabinet, or a
    reversal): recorded once, never above what is left of the payment."""
    log = {"clinic_id": payment.clinic_id, "payment_id": payment.payment_id, "cancel_key": key}
    if status == "failure":
        return None  # a refund monobank did not make: nothing came back, nothing to record
    if amount is None or amount.amount <= 0 or amount.currency != payment.amount.currency:
        logger.warning("monobank refund without a usable amount ignored", extra=log)
        return None
    succeeded = status == "success"
    refund = QrRefund(
        refund_id=provider_refund_id(payment.clinic_id, payment.invoice_id, key), clinic_id=payment.clinic_id,
        payment_id=payment.payment_id, invoice_id=payment.invoice_id, amount=amount,
        status="succeeded" if succeeded else "pending", source="monobank", cancel_key=key,
        lines=refund_lines(payment.basket, amount.amount, _returned(earlier)),
        provider_created_at=entry.created_raw if entry else None,
        card=CardPayment(approval_code=entry.approval_code, rrn=entry.rrn) if entry else CardPayment(),
        created_at=iso(now), settled_at=iso(now) if succeeded else None, receipt_id=new_uuid(),
        fiscal_status=return_fiscal_status(payment) if succeeded else FiscalStatus.NOT_REQUIRED)
    try:
        created = store.record_refund(payment, refund, now=iso(now))
    except ConditionFailed:
        # More than is left: another record already holds this money (e.g. a reversal reported
        # before the entry that names it). Never above what was paid.
        logger.warning("monobank refund above what is left of the payment: not recorded", extra={
            **log, "amount": amount.amount})
        _count("QrRefundAboveBalance")
        return None
    if created:
        logger.info("refund reported by monobank recorded", extra={**log, "refund_id": refund.refund_id,
                                                                   "status": refund.status,
                                                                   "amount": amount.amount})
        return refund
    return store.get_refund(payment.clinic_id, payment.payment_id, refund.refund_id)


def _settle(store: QrStore, payment: QrPayment, refund: QrRefund, status: str, now: datetime,
            entry: CancelEntry | None) -> None:
    card = CardPayment(approval_code=entry.approval_code, rrn=entry.rrn) if entry and status == "succeeded" else None
    changed = store.settle_refund(refund, status=status, now=iso(now),
                                  failure_code="cancel_failure" if status == "failed" else None,
                                  fiscal_status=return_fiscal_status(payment) if status == "succeeded" else None,
                                  card=card)
    if changed:
        logger.info("qr refund settled", extra={"clinic_id": refund.clinic_id, "payment_id": refund.payment_id,
                                                "refund_id": refund.refund_id, "status": status})


def settle_unseen(store: QrStore, refund: QrRefund, update: InvoiceUpdate, now: datetime, *, asked_at: str) -> bool:
    """A refund of ours monobank's answer still does not list, long after we asked (`asked_at`): it
    never reached monobank (the cancel was lost before it took it). Failed, reservation released."""
    if refund.status != "pending" or refund.source != "clinicpay" or any(c.key == refund.cancel_key
                                                                          for c in update.cancels):
        return False
    if update.status is InvoiceStatus.REVERSED or asked_at > iso(now - REFUND_UNSEEN_GRACE):
        return False
    return store.settle_refund(refund, status="failed", now=iso(now), failure_code="not_received_by_provider")
