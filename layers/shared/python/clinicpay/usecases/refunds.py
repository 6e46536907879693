"""Refunds: money given back from a payment we recorded, asked by staff or started at the provider.

One ledger for both (repositories/ledger.py):
- A refund reserves its amount on the payment it gives back from, by a conditional write, BEFORE
  the provider is asked: twenty concurrent clicks can never give back more than was paid. The same
  Idempotency-Key is the same refund id (so the same provider refund); without a key, the second
  of two full refunds finds nothing left (409 `nothing_to_refund`).
- The provider's answer: succeeded -> settled (the appointment's `amount_refunded` and status move
  in the same transaction); a refusal -> failed, the reservation released; undecided
  (ProviderOutcomeUnknown) -> stays `pending` until the provider's event (or our asking again with
  the same key) settles it; unreachable (nothing sent) -> failed `provider_unavailable`, released,
  503, and the same key tries again.
- A desk payment is refunded at the desk: recorded `succeeded` at once, no provider call.
- Provider events about refunds (`PaymentEvent.refund`) go through the same code, once per clinic:
  a refund we know settles or fails; one we do not know (started at the provider's dashboard) is
  recorded, never above what is left, only when its payment is one we recorded for this clinic.
- The patient is told (`refund_issued`) once per refund, when it succeeds.
- A refund still pending because the provider's answer or event never came is asked about by the
  `link-reconcile` job (`reconcile_refunds`), from 5 minutes after it was made and then less and
  less often for as long as it is pending: a refund the provider has is settled as its event would
  have; one it never received is sent again under the same key while the provider still keeps keys
  (23 h), and after that released (`failed`, `not_received_by_provider`) for staff to refund again.
  monobank, which deduplicates nothing, is never sent one again: unlisted after 30 minutes, released.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from clinicpay.domain.errors import (
    ClinicpayError,
    Conflict,
    NotFound,
    NothingToRefund,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderUnavailable,
    RefundExceedsRemaining,
    StorageUnavailable,
    ValidationFailed,
)
from clinicpay.domain.ids import id_from_digest, new_id
from clinicpay.domain.ledger import DESK, Payment, PaymentMethod, Refund
from clinicpay.domain.ledger import settled_status as status_for
from clinicpay.domain.money import Money
from clinicpay.observability import logger, metrics
from clinicpay.ports.refunds import RefundRequest, RefundResult
from clinicpay.repositories.appointments import LEDGER_ATTEMPTS, AppointmentRepository
from clinicpay.repositories.ledger import EventRecord, LedgerRepository
from clinicpay.usecases.ownership import AMOUNT_MISMATCH, FOREIGN, OTHER_CLINIC, UNKNOWN_OBJECT, names_other_clinic

if TYPE_CHECKING:
    from clinicpay.ports.payments import PaymentEvent, RefundNotice
    from clinicpay.ports.refunds import RefundingGateway, RefundLookup
    from clinicpay.repositories.ledger import WaitingRefund

RefundNotifier = Callable[[str, str, Money], object]  # (clinic_id, appointment_id, amount refunded)
# A refund the provider never received may be sent again under the same key only while the provider
# still keeps that key: Stripe keeps idempotency keys at least 24 hours; Fintoc's are treated alike.
RESEND_WITHIN = timedelta(hours=23)
# A provider that cannot deduplicate (monobank: no documented extRef deduplication) lists a refund
# it received within minutes; one still unlisted after this is released, never sent again.
UNLISTED_RELEASE_AFTER = timedelta(minutes=30)


@dataclass
class RefundDeps:
    appointments: AppointmentRepository
    ledger: LedgerRepository
    gateway_for: Callable[[str, str], RefundingGateway]  # (clinic_id, provider) -> the clinic's gateway
    notify: RefundNotifier = field(default=lambda *_: None)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


@dataclass
class RefundAsk:
    amount: Money | None = None  # default: everything left on the payment
    payment_reference: str | None = None  # default: the latest online payment with something left
    reason: str | None = None
    idempotency_key: str | None = None


def refund_id_for_key(clinic_id: str, appointment_id: str, idempotency_key: str) -> str:
    return id_from_digest("rf", clinic_id, appointment_id, "refund", idempotency_key)


def provider_idempotency_key(clinic_id: str, refund_id: str) -> str:
    return f"clinicpay-{clinic_id}-refund-{refund_id}"


# ------------------------------------------------------------------ staff asks
def request_refund(deps: RefundDeps, clinic_id: str, appointment_id: str, ask: RefundAsk) -> tuple[Refund, bool]:
    """Returns the refund and whether this call created it (False: the same key was seen before)."""
    refund_id = refund_id_for_key(clinic_id, appointment_id, ask.idempotency_key) if ask.idempotency_key \
        else new_id("rf")
    if ask.idempotency_key:
        existing = deps.ledger.get_refund(clinic_id, appointment_id, refund_id)
        if existing is not None:
            return _again(deps, existing, ask), False
    try:
        return _new_refund(deps, clinic_id, appointment_id, refund_id, ask)
    except (NothingToRefund, RefundExceedsRemaining):
        if ask.idempotency_key:
            # The same key's click, a moment ahead of this one, may be what took it.
            existing = deps.ledger.get_refund(clinic_id, appointment_id, refund_id)
            if existing is not None:
                return _again(deps, existing, ask, ask_provider=False), False
        raise


def _new_refund(deps: RefundDeps, clinic_id: str, appointment_id: str, refund_id: str,
                ask: RefundAsk) -> tuple[Refund, bool]:
    stored = deps.appointments.get(clinic_id, appointment_id, consistent=True)
    price = stored.appointment.price
    if ask.amount is not None and ask.amount.currency != price.currency:
        raise ValidationFailed(details=[{"field": "amount.currency", "message": f"must be {price.currency}"}])
    payments = deps.ledger.payments_of(stored)
    if not payments and stored.appointment.amount_paid.amount > 0:
        # Paid by charging a card on file (tokenize): that money is the charge's, reserved and
        # refunded on it; the appointment's totals follow (AppointmentRepository.apply_refund).
        raise Conflict("This appointment was paid by a card charge: refund the charge "
                       "(POST .../patients/{patient_id}/charges/{charge_id}/refunds).", code="refund_through_charge")
    payment = _payment_to_refund(payments, ask.payment_reference)
    amount = ask.amount or payment.refundable
    if payment.refundable.amount <= 0:
        raise NothingToRefund()
    if amount.amount > payment.refundable.amount:
        raise RefundExceedsRemaining(details=[{"payment_reference": payment.reference,
                                               "remaining": payment.refundable.model_dump()}])
    now = deps.clock()
    refund = Refund(refund_id=refund_id, clinic_id=clinic_id, appointment_id=appointment_id,
                    provider=payment.provider, payment_reference=payment.reference, amount=amount,
                    status="succeeded" if payment.method is PaymentMethod.DESK else "pending",
                    reason=ask.reason, created_at=now, updated_at=now)
    if payment.method is PaymentMethod.DESK:
        return _record_desk_refund(deps, refund, payment)
    gateway = _gateway(deps, clinic_id, payment.provider)  # before reserving: a missing gateway reserves nothing
    reserved = deps.ledger.reserve_refund(refund, payment)
    if reserved == "exists":
        # The same key, at the same moment: that call is asking the provider; this one answers
        # with the refund as it stands.
        return _again(deps, _existing(deps, refund), ask, ask_provider=False), False
    if reserved == "exceeds":
        _refused_reservation(deps, refund.clinic_id, payment)
    metrics.add_metric(name="RefundRequested", unit="Count", value=1)
    return _ask_provider(deps, gateway, refund), True


def list_refunds(deps: RefundDeps, clinic_id: str, appointment_id: str) -> list[Refund]:
    deps.appointments.get(clinic_id, appointment_id)  # 404 for an appointment this clinic does not have
    return deps.ledger.list_refunds(clinic_id, appointment_id)


def _payment_to_refund(payments: list[Payment], reference: str | None) -> Payment:
    if reference is not None:
        for payment in payments:
            if payment.reference == reference:
                return payment
        raise NotFound("This appointment has no payment with that reference.", code="payment_not_found")
    if not payments:
        raise NothingToRefund("Nothing has been paid for this appointment.")
    left = [p for p in payments if p.refundable.amount > 0]
    # Newest first: the latest online payment with something left, else the latest desk one.
    chosen = next((p for p in left if p.method is PaymentMethod.ONLINE), None) or next(iter(left), None)
    if chosen is None:
        raise NothingToRefund()
    return chosen


def _refused_reservation(deps: RefundDeps, clinic_id: str, payment: Payment) -> NoReturn:
    """Another refund took what this one wanted while we were deciding: say what is left."""
    current = deps.ledger.get_payment(clinic_id, payment.provider, payment.reference)
    left = current.refundable if current else Money(amount=0, currency=payment.amount.currency)
    if left.amount <= 0:
        raise NothingToRefund()
    raise RefundExceedsRemaining(details=[{"payment_reference": payment.reference, "remaining": left.model_dump()}])


def _gateway(deps: RefundDeps, clinic_id: str, provider: str) -> RefundingGateway:
    gateway = deps.gateway_for(clinic_id, provider)
    if not callable(getattr(gateway, "refund", None)):
        raise Conflict(f"Refunds through {provider} are not available yet.", code="refund_not_supported")
    return gateway


def _existing(deps: RefundDeps, refund: Refund) -> Refund:
    found = deps.ledger.get_refund(refund.clinic_id, refund.appointment_id, refund.refund_id)
    if found is None:  # it existed a moment ago and refunds are never deleted
        raise StorageUnavailable()
    return found


def _again(deps: RefundDeps, existing: Refund, ask: RefundAsk, *, ask_provider: bool = True) -> Refund:
    """The same Idempotency-Key again: the same refund. An undecided one is asked again with the
    same provider key (the provider answers for the refund it made, or makes it once); one that
    never reached the provider is tried again."""
    if ask.amount is not None and ask.amount != existing.amount or (
            ask.payment_reference is not None and ask.payment_reference != existing.payment_reference):
        raise ValidationFailed("That Idempotency-Key was used for another refund.", code="idempotency_key_reused")
    if existing.provider == DESK or not ask_provider:
        return existing
    if existing.status == "pending" and existing.provider_refund_id is None:
        return _ask_provider(deps, _gateway(deps, existing.clinic_id, existing.provider), existing)
    if existing.status == "failed" and existing.failure_code == "provider_unavailable":
        payment = deps.ledger.get_payment(existing.clinic_id, existing.provider, existing.payment_reference)
        if payment is None:
            raise StorageUnavailable()
        gateway = _gateway(deps, existing.clinic_id, existing.provider)
        retry = existing.model_copy(update={"status": "pending", "failure_code": None, "updated_at": deps.clock()})
        reserved = deps.ledger.reserve_refund(retry, payment, again=True)
        if reserved == "exceeds":
            _refused_reservation(deps, existing.clinic_id, payment)
        if reserved == "exists":  # a concurrent retry took it
            return _existing(deps, existing)
        return _ask_provider(deps, gateway, retry)
    return existing


def _request(refund: Refund) -> RefundRequest:
    return RefundRequest(clinic_id=refund.clinic_id, refund_id=refund.refund_id,
                         payment_reference=refund.payment_reference, amount=refund.amount,
                         idempotency_key=provider_idempotency_key(refund.clinic_id, refund.refund_id),
                         reason=refund.reason)


def _ask_provider(deps: RefundDeps, gateway: RefundingGateway, refund: Refund) -> Refund:
    request = _request(refund)
    log = {"clinic_id": refund.clinic_id, "appointment_id": refund.appointment_id, "refund_id": refund.refund_id,
           "provider": refund.provider}
    try:
        result = gateway.refund(request)
    except ProviderOutcomeUnknown:
        # It may have been made: it stays pending (reserved) until the provider says.
        logger.warning("refund undecided, kept pending", extra=log)
        metrics.add_metric(name="RefundUndecided", unit="Count", value=1)
        return refund
    except ProviderUnavailable:
        # Nothing was sent: released, and the same key tries again.
        deps.ledger.fail_refund(refund, failure_code="provider_unavailable", provider_refund_id=None, at=deps.clock())
        logger.warning("refund not sent: provider unavailable", extra=log)
        raise
    except ProviderError as error:
        provider_code = next((d.get("provider_code") for d in error.details if isinstance(d, dict)), None)
        result = RefundResult(status="failed", failure_code=str(provider_code or error.code))
    logger.info("refund answered", extra={**log, "status": result.status, "failure_code": result.failure_code})
    return apply_provider_answer(deps, refund, result)


def apply_provider_answer(deps: RefundDeps, refund: Refund, result: RefundResult) -> Refund:
    """What the provider says of a pending refund (its answer, or our asking it later, e.g. by a
    reconciliation job): settled, failed and released, or still pending with its id kept."""
    now = deps.clock()
    decided = {"provider_refund_id": result.provider_refund_id or refund.provider_refund_id, "updated_at": now}
    if result.status == "succeeded":
        if _settle(deps, refund, result.provider_refund_id) != "settled":
            return _existing(deps, refund)  # an event settled (or failed) it meanwhile
        return refund.model_copy(update={**decided, "status": "succeeded"})
    if result.status == "failed":
        if deps.ledger.fail_refund(refund, failure_code=result.failure_code,
                                   provider_refund_id=result.provider_refund_id, at=now) != "failed":
            return _existing(deps, refund)
        metrics.add_metric(name="RefundFailed", unit="Count", value=1)
        return refund.model_copy(update={**decided, "status": "failed", "failure_code": result.failure_code})
    if result.provider_refund_id and refund.provider_refund_id is None:
        deps.ledger.note_provider_refund(refund, result.provider_refund_id, now)
    return refund.model_copy(update=decided)


def _settle(deps: RefundDeps, refund: Refund, provider_refund_id: str | None,
            event: EventRecord | None = None) -> str:
    """pending -> succeeded with the appointment's totals, retried while other ledger writes move
    it; the patient is told by the one call that settles it."""
    for _ in range(LEDGER_ATTEMPTS):
        stored = deps.appointments.get(refund.clinic_id, refund.appointment_id, consistent=True)
        appointment = stored.appointment
        refunded = Money(amount=appointment.amount_refunded.amount + refund.amount.amount,
                         currency=appointment.price.currency)
        status = status_for(appointment.price, appointment.amount_paid, refunded, appointment.payment_status)
        outcome = deps.ledger.settle_refund(refund, stored, refunded=refunded, status=status,
                                            provider_refund_id=provider_refund_id, at=deps.clock(), event=event)
        if outcome == "moved":
            continue
        if outcome == "settled":
            _refunded(deps, refund)
        return outcome
    raise StorageUnavailable("The appointment kept changing; try again.")


def _record_desk_refund(deps: RefundDeps, refund: Refund, payment: Payment) -> tuple[Refund, bool]:
    for _ in range(LEDGER_ATTEMPTS):
        stored = deps.appointments.get(refund.clinic_id, refund.appointment_id, consistent=True)
        appointment = stored.appointment
        refunded = Money(amount=appointment.amount_refunded.amount + refund.amount.amount,
                         currency=appointment.price.currency)
        status = status_for(appointment.price, appointment.amount_paid, refunded, appointment.payment_status)
        outcome = deps.ledger.record_settled_refund(refund, payment, stored, refunded=refunded, status=status)
        if outcome == "recorded":
            logger.info("desk refund recorded", extra={"clinic_id": refund.clinic_id, "refund_id": refund.refund_id,
                                                       "appointment_id": refund.appointment_id})
            _refunded(deps, refund)
            return refund, True
        if outcome == "exists":
            return _existing(deps, refund), False
        if outcome == "exceeds":
            _refused_reservation(deps, refund.clinic_id, payment)
        # moved: another ledger write came first; work it out again
    raise StorageUnavailable("The appointment kept changing; try again.")


def _refunded(deps: RefundDeps, refund: Refund) -> None:
    metrics.add_metric(name="RefundSucceeded", unit="Count", value=1)
    try:
        deps.notify(refund.clinic_id, refund.appointment_id, refund.amount)
    except ClinicpayError as error:  # the refund is recorded; the message is best effort
        logger.warning("refund message not sent", extra={"refund_id": refund.refund_id, "error_code": error.code})


# ------------------------------------------------------------------ refunds whose answer never came
def reconcile_refunds(deps: RefundDeps, shard: int, now: datetime,
                      has_time: Callable[[], bool] = lambda: True) -> dict[str, int]:
    """Ask the providers about one shard's pending refunds that are due, the most overdue first, while
    there is time. Each is claimed first (a shard run twice asks once); each ask ends in one of:
    settled / failed (the provider decided: applied as its event would be, the patient told once),
    pending (still at the provider), asked_again (the provider never received it: sent again under
    the same key), released (never received and too old to send again), unanswered (no answer:
    it comes back at its next time), no_lookup (the provider cannot be asked), taken (another run)."""
    counts: dict[str, int] = {}
    after: dict[str, Any] | None = None
    while has_time():
        page, after = deps.ledger.due_refunds(shard, now, after=after)
        for waiting in page:
            if not has_time():
                break
            outcome = _reconcile_refund(deps, waiting, now)
            counts[outcome] = counts.get(outcome, 0) + 1
        if after is None:
            break
    if counts:
        logger.info("refunds reconciled", extra={"shard": shard, **counts})
    return counts


def _reconcile_refund(deps: RefundDeps, waiting: WaitingRefund, now: datetime) -> str:
    claimed = deps.ledger.claim_refund_ask(waiting, now)
    if claimed is None:
        return "taken"
    refund = claimed.refund
    log = {"clinic_id": refund.clinic_id, "appointment_id": refund.appointment_id, "refund_id": refund.refund_id,
           "provider": refund.provider, "asks": claimed.asks}
    try:
        gateway = deps.gateway_for(refund.clinic_id, refund.provider)
        if not callable(getattr(gateway, "find_refund", None)):
            return "no_lookup"
        lookup: RefundLookup = gateway  # type: ignore[assignment]
        found = lookup.find_refund(_request(refund), refund.provider_refund_id)
        if found is None and refund.provider_refund_id is None:
            waited = now - refund.created_at
            if lookup.refund_resend_safe and waited < RESEND_WITHIN:
                logger.warning("refund never reached the provider: sent again under its key", extra=log)
                after = _ask_provider(deps, gateway, refund)
                return "asked_again" if after.status == "pending" else _settled_outcome(after)
            if not lookup.refund_resend_safe and waited < UNLISTED_RELEASE_AFTER:
                return "unanswered"
            if deps.ledger.fail_refund(refund, failure_code="not_received_by_provider", provider_refund_id=None,
                                       at=now, unnamed=True) == "failed":
                metrics.add_metric(name="RefundNotReceivedByProvider", unit="Count", value=1)
                logger.warning("refund never reached the provider and is too old to send again: released",
                               extra=log)
                return "released"
            return "taken"
        if found is None:  # the provider gave us its id: it has the refund, whatever this answer says
            return "unanswered"
    except ClinicpayError as error:  # no answer, nothing configured, storage: asked again next time
        logger.warning("refund not reconciled this time", extra={**log, "error_code": error.code})
        return "unanswered"
    return _settled_outcome(apply_provider_answer(deps, refund, found))


def _settled_outcome(refund: Refund) -> str:
    return {"succeeded": "settled", "failed": "failed"}.get(refund.status, "pending")


# ------------------------------------------------------------------ provider events
def apply_refund_notice(deps: RefundDeps, clinic_id: str, event: PaymentEvent) -> tuple[str, str | None]:
    """A provider event about a refund -> (outcome, reason). Outcomes: applied, duplicate, recorded
    (nothing to change: e.g. still in progress), stale (the refund is already decided), foreign,
    refused (more than is left on the payment: logged loudly, `RefundLedgerMismatch`)."""
    notice = event.refund
    assert notice is not None
    record = _recorder(deps, clinic_id, event)
    if names_other_clinic(event.details.get("clinic_id"), clinic_id):
        return record(FOREIGN, OTHER_CLINIC)
    # Whose money: a payment row of this clinic (written only for payments we recorded here).
    payment = deps.ledger.get_payment(clinic_id, event.provider, notice.payment_reference)
    if payment is None:
        return record(FOREIGN, UNKNOWN_OBJECT)
    if notice.amount.currency != payment.amount.currency or notice.amount.amount <= 0:
        return record(FOREIGN, AMOUNT_MISMATCH)
    refund = _known_refund(deps, clinic_id, payment, notice)
    at = deps.clock()
    entry = EventRecord(clinic_id, event.provider, event.event_id, kind=f"refund_{notice.status}",
                        occurred_at=event.occurred_at, appointment_id=payment.appointment_id)
    if refund is None:
        return _unknown_refund(deps, clinic_id, event, notice, payment, entry, record)
    if refund.status == "succeeded" and notice.status == "failed":
        return _failed_after_success(deps, refund, notice, entry, record)
    if refund.status != "pending":
        return record("stale", f"refund_{refund.status}")
    if notice.status == "succeeded":
        outcome = _settle(deps, refund, notice.provider_refund_id, entry)
        return ("applied", None) if outcome == "settled" else _after(outcome, record)
    if notice.status == "failed":
        failed = deps.ledger.fail_refund(refund, failure_code=notice.failure_code,
                                         provider_refund_id=notice.provider_refund_id, at=at, event=entry)
        if failed == "failed":
            metrics.add_metric(name="RefundFailed", unit="Count", value=1)
            return "applied", None
        return _after(failed, record)
    if notice.provider_refund_id and refund.provider_refund_id is None:
        deps.ledger.note_provider_refund(refund, notice.provider_refund_id, at)
    return record("recorded", "refund_pending")


def _failed_after_success(deps: RefundDeps, refund: Refund, notice: RefundNotice, entry: EventRecord,
                          record: Callable[[str, str | None], tuple[str, str | None]]) -> tuple[str, str | None]:
    """A refund the provider failed after it had succeeded (Stripe: the card was closed, the bank
    sent it back): the money never reached the patient, so the ledger gives it back to the payment
    (refundable again) and the appointment's totals and status move back; staff are alerted."""
    for _ in range(LEDGER_ATTEMPTS):
        stored = deps.appointments.get(refund.clinic_id, refund.appointment_id, consistent=True)
        appointment = stored.appointment
        refunded = Money(amount=max(0, appointment.amount_refunded.amount - refund.amount.amount),
                         currency=appointment.price.currency)
        status = status_for(appointment.price, appointment.amount_paid, refunded, appointment.payment_status)
        outcome = deps.ledger.revert_settled_refund(refund, stored, refunded=refunded, status=status,
                                                    failure_code=notice.failure_code, at=deps.clock(), event=entry)
        if outcome == "moved":
            continue
        if outcome == "reverted":
            metrics.add_metric(name="RefundFailedAfterSuccess", unit="Count", value=1)
            logger.error("refund failed after it had succeeded: the money is back on the payment",
                         extra={"clinic_id": refund.clinic_id, "appointment_id": refund.appointment_id,
                                "refund_id": refund.refund_id, "provider": refund.provider,
                                "failure_code": notice.failure_code})
            return "applied", None
        if outcome == "duplicate":
            return _after(outcome, record)
        return record("stale", f"refund_{refund.status}")
    raise StorageUnavailable("The appointment kept changing; try again.")


def _known_refund(deps: RefundDeps, clinic_id: str, payment: Payment, notice: RefundNotice) -> Refund | None:
    """Ours (the provider echoed our id, for this payment and amount), or one we already recorded
    from an earlier event, or a pending one of ours whose answer we never got (its provider id
    unknown) for the same amount."""
    candidates = [notice.refund_id] if notice.refund_id else []
    if notice.provider_refund_id:
        candidates.append(_provider_refund_id(clinic_id, payment.provider, notice.provider_refund_id))
    for refund in deps.ledger.get_refunds(clinic_id, payment.appointment_id, candidates):
        if refund.payment_reference == payment.reference and refund.amount == notice.amount and (
                refund.provider_refund_id in (None, notice.provider_refund_id)):
            return refund
    pending = [r for r in deps.ledger.get_refunds(clinic_id, payment.appointment_id, _pending_ids(deps, payment))
               if r.status == "pending" and r.provider_refund_id in (None, notice.provider_refund_id)
               and r.amount == notice.amount and r.payment_reference == payment.reference]
    return min(pending, key=lambda r: r.created_at) if pending else None


def _pending_ids(deps: RefundDeps, payment: Payment) -> list[str]:
    return sorted(payment.pending_refunds)


def _provider_refund_id(clinic_id: str, provider: str, provider_refund_id: str) -> str:
    return id_from_digest("rf", clinic_id, provider, provider_refund_id)


def _unknown_refund(deps: RefundDeps, clinic_id: str, event: PaymentEvent, notice: RefundNotice, payment: Payment,
                    entry: EventRecord, record: Callable[[str, str | None], tuple[str, str | None]]) -> tuple[str, str | None]:
    """A refund made at the provider's dashboard: recorded as ours to show, never above what is left."""
    if notice.status == "failed" or not notice.provider_refund_id:
        return record("ignored", "unknown_refund_failed" if notice.status == "failed" else "no_refund_id")
    now = deps.clock()
    refund = Refund(refund_id=_provider_refund_id(clinic_id, event.provider, notice.provider_refund_id),
                    clinic_id=clinic_id, appointment_id=payment.appointment_id, provider=event.provider,
                    payment_reference=payment.reference, amount=notice.amount, status=notice.status,
                    source="provider", provider_refund_id=notice.provider_refund_id, created_at=now, updated_at=now)
    if notice.status == "pending":
        reserved = deps.ledger.reserve_refund(refund, payment, event=entry)
        if reserved == "reserved":
            return "applied", None
        return _after(reserved, record)
    for _ in range(LEDGER_ATTEMPTS):
        stored = deps.appointments.get(clinic_id, payment.appointment_id, consistent=True)
        appointment = stored.appointment
        refunded = Money(amount=appointment.amount_refunded.amount + refund.amount.amount,
                         currency=appointment.price.currency)
        status = status_for(appointment.price, appointment.amount_paid, refunded, appointment.payment_status)
        outcome = deps.ledger.record_settled_refund(refund, payment, stored, refunded=refunded, status=status,
                                                    event=entry)
        if outcome == "recorded":
            logger.info("provider-initiated refund recorded", extra={
                "clinic_id": clinic_id, "refund_id": refund.refund_id, "provider": event.provider})
            _refunded(deps, refund)
            return "applied", None
        if outcome != "moved":
            return _after(outcome, record)
    raise StorageUnavailable("The appointment kept changing; try again.")


def _after(outcome: str, record: Callable[[str, str | None], tuple[str, str | None]]) -> tuple[str, str | None]:
    if outcome == "duplicate":
        return "duplicate", None
    if outcome == "exceeds":
        # The provider gave back money our ledger says is not there (e.g. a dashboard refund of
        # what a refund of ours, never answered, had reserved). A person must look.
        logger.error("provider refund above what is left on the payment")
        metrics.add_metric(name="RefundLedgerMismatch", unit="Count", value=1)
        return record("refused", "exceeds_remaining")
    if outcome in ("exists", "not_pending"):
        return record("stale", "already_decided")
    return record("stale", outcome)


def _recorder(deps: RefundDeps, clinic_id: str, event: PaymentEvent) -> Callable[[str, str | None], tuple[str, str | None]]:
    def record(outcome: str, reason: str | None) -> tuple[str, str | None]:
        if not deps.appointments.record_event(clinic_id, event, outcome, reason):
            return "duplicate", None
        return outcome, reason
    return record


def refund_view(refund: Refund) -> dict[str, Any]:
    return refund.view()
