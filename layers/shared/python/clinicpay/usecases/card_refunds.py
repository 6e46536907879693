"""Money back from card charges: staff refunds (full or partial) and refunds started in the
processor's dashboard, each counted once, never above what the charge has left.

- A refund reserves its amount on the charge before the processor is asked, in the same
  transaction that records it (`amount_refunded <= amount - refund`), so concurrent clicks can never
  give back more than was charged; a refusal, or a refund that fails later (a card refund can, after
  it succeeded), gives the reservation back.
- The refund id comes from the caller's Idempotency-Key (else it is new), and the processor's
  idempotency key from the refund id: the same click again reaches the same processor refund.
- An answer we did not get leaves the refund `pending` (undecided) until the processor's event,
  our asking (card_reconcile) or a retry says; it is never marked failed on a guess.
- A refund the processor reports that we did not ask for (the dashboard) is recorded the same way,
  reserved under the same rule, and told to the patient like ours.
- A refund that succeeded is reflected on the charge's appointment when the charge paid it
  (payment_status partially_refunded / refunded, amount_refunded), and the patient is told once
  (message kind `refund_issued`, email and SMS).
"""

from __future__ import annotations

from typing import Any

from clinicpay.domain.card import CardRefund, Charge, ChargeReason
from clinicpay.domain.errors import (
    ClinicpayError,
    Conflict,
    NotFound,
    ProviderOutcomeUnknown,
    ProviderUnavailable,
    ValidationFailed,
)
from clinicpay.domain.ids import id_from_digest, new_id
from clinicpay.domain.money import Money
from clinicpay.notify.formatting import format_money
from clinicpay.notify.messages import render, resolve_template
from clinicpay.observability import logger, metrics
from clinicpay.ports.cards import RefundObservation
from clinicpay.ports.messaging import OutgoingMessage
from clinicpay.ports.refunds import RefundRequest
from clinicpay.usecases.cards import require_patient
from clinicpay.usecases.cards_ports import CardDeps

REFUND_MESSAGE = "refund_issued"


class ChargeNotRefundable(Conflict):
    code, default_message = "charge_not_refundable", "Only a charge that succeeded can be refunded."


class RefundExceedsRemaining(Conflict):
    code, default_message = "refund_exceeds_remaining", "That is more than is left to refund on this charge."


def refund_charge(deps: CardDeps, clinic_id: str, patient_id: str, charge_id: str, *, amount: Money | None,
                  reason: str | None, idempotency_key: str | None) -> dict[str, Any]:
    """Give back `amount` (default: all that is left) of a charge that succeeded."""
    now = deps.clock()
    require_patient(deps, clinic_id, patient_id)
    charge = deps.cards.get_charge(clinic_id, patient_id, charge_id)
    if charge is None:
        raise NotFound("No such charge.")
    if charge.status != "succeeded" or not charge.reference:
        raise ChargeNotRefundable()
    refund_id = id_from_digest("rf", clinic_id, charge_id, idempotency_key) if idempotency_key else new_id("rf", 12)
    stored = deps.cards.get_refund(clinic_id, patient_id, refund_id) if idempotency_key else None
    if stored is not None and stored.failure_code != "provider_unavailable":
        # The same request again: the same refund, asked about again only while it has no answer.
        return _send(deps, charge, stored) if stored.status == "pending" and not stored.provider_refund_id \
            else stored.view()
    if amount is None and charge.refundable <= 0:
        raise _exceeds("Nothing is left to refund on this charge.", charge)
    amount = amount or Money(amount=charge.refundable, currency=charge.amount.currency)
    if amount.currency != charge.amount.currency:
        raise ValidationFailed(details=[{"field": "amount.currency", "message": f"must be {charge.amount.currency}"}])
    if amount.amount <= 0:
        raise ValidationFailed("A refund must be more than zero.", code="invalid_amount",
                               details=[{"field": "amount.amount", "message": "must be greater than 0"}])
    refund = CardRefund(refund_id=refund_id, clinic_id=clinic_id, patient_id=patient_id, charge_id=charge_id,
                        provider=charge.provider, amount=amount, reason=reason, created_at=now, updated_at=now)
    reserved = deps.cards.reserve_refund(refund, charge, check_at=now + deps.check_after)
    if reserved == "exceeds":
        raise _exceeds(None, deps.cards.get_charge(clinic_id, patient_id, charge_id) or charge)
    if reserved == "exists":
        stored = deps.cards.get_refund(clinic_id, patient_id, refund_id)
        if stored is None:
            raise Conflict("The refund changed meanwhile; try again.", code="state_conflict")
        if stored.status != "pending" or stored.provider_refund_id:
            return stored.view()  # the same request again: the same refund
        refund = stored  # recorded, and no answer yet: ask again under the same key
    return _send(deps, charge, refund)


def _exceeds(message: str | None, charge: Charge) -> RefundExceedsRemaining:
    return RefundExceedsRemaining(message, details=[{"field": "amount", "refundable": {
        "amount": charge.refundable, "currency": charge.amount.currency}}])


def _send(deps: CardDeps, charge: Charge, refund: CardRefund) -> dict[str, Any]:
    assert charge.reference
    request = RefundRequest(clinic_id=refund.clinic_id, refund_id=refund.refund_id, payment_reference=charge.reference,
                            amount=refund.amount, reason=refund.reason,
                            idempotency_key=f"clinicpay-{refund.clinic_id}-refund-{refund.refund_id}")
    try:
        result = deps.vault_for(charge.provider).refund(request)
    except ProviderOutcomeUnknown:
        at = deps.clock()
        deps.cards.mark_refund_undecided(refund, at, check_at=at + deps.check_after)
        metrics.add_metric(name="RefundUndecided", unit="Count", value=1)
        logger.warning("card refund undecided", extra={"clinic_id": refund.clinic_id, "refund_id": refund.refund_id})
        return _stored(deps, refund).view()
    except ProviderUnavailable:
        # Nothing reached the processor: the reservation goes back; the same request may be sent again.
        deps.cards.settle_refund(refund, status="failed", failure_code="provider_unavailable", at=deps.clock())
        raise
    observed = RefundObservation(provider_refund_id=result.provider_refund_id or "", payment_reference=charge.reference,
                                 amount=refund.amount, status=result.status, failure_code=result.failure_code)
    if refund.undecided and result.status == "failed":
        # Refused on a retry, while the first attempt may have refunded: what Stripe holds decides.
        made = [event.refund for event in deps.vault_for(charge.provider).observe_refunds(charge.reference)
                if event.refund and event.refund.metadata.get("clinicpay_refund_id") == refund.refund_id]
        if made:
            observed = made[0]
    settle(deps, charge, refund, observed)
    logger.info("card refund", extra={"clinic_id": refund.clinic_id, "refund_id": refund.refund_id,
                                      "charge_id": charge.charge_id, "status": result.status,
                                      "failure_code": result.failure_code})
    metrics.add_metric(name=f"Refund_{result.status}", unit="Count", value=1)
    return _stored(deps, refund).view()


def _stored(deps: CardDeps, refund: CardRefund) -> CardRefund:
    return deps.cards.get_refund(refund.clinic_id, refund.patient_id, refund.refund_id) or refund


def list_refunds(deps: CardDeps, clinic_id: str, patient_id: str, charge_id: str) -> list[dict[str, Any]]:
    require_patient(deps, clinic_id, patient_id)
    if deps.cards.get_charge(clinic_id, patient_id, charge_id) is None:
        raise NotFound("No such charge.")
    return [refund.view() for refund in deps.cards.list_refunds(clinic_id, patient_id, charge_id)]


# ---------------------------------------------------------------------------- what the processor says
def settle(deps: CardDeps, charge: Charge, refund: CardRefund, observed: RefundObservation) -> bool:
    """Move a recorded refund to what the processor says, then what follows (the appointment, the
    patient). True when this changed the refund."""
    at = deps.clock()
    changed = deps.cards.settle_refund(
        refund, status=observed.status, at=at, provider_refund_id=observed.provider_refund_id or None,
        failure_code=observed.failure_code if observed.status == "failed" else None,
        check_at=at + deps.check_after if observed.status == "pending" else None)
    stored = _stored(deps, refund)
    if stored.status == "succeeded":
        _reflect(deps, charge, stored, applied=True)
        _tell_patient(deps, charge, stored)
    elif stored.status == "failed" and changed and refund.status == "succeeded":
        _reflect(deps, charge, stored, applied=False)  # it had succeeded: the appointment takes it back
    if changed and stored.status == "failed":
        metrics.add_metric(name="RefundFailed", unit="Count", value=1)
        logger.warning("card refund failed", extra={"clinic_id": refund.clinic_id, "refund_id": refund.refund_id,
                                                    "failure_code": stored.failure_code})
    return changed


def apply_refund_observation(deps: CardDeps, charge: Charge, observed: RefundObservation) -> str:
    """A refund of one of this clinic's charges, as the processor reports it (event or our asking):
    ours (by the processor's id, or our id in its metadata) moves to its new state; one we did not
    ask for (the dashboard) is recorded first, reserved like ours. Returns the outcome."""
    refund = deps.cards.find_refund(charge.provider, observed.provider_refund_id)
    ours = observed.metadata.get("clinicpay_refund_id")
    if refund is None and ours and observed.metadata.get("clinic_id") == charge.clinic_id:
        refund = deps.cards.get_refund(charge.clinic_id, charge.patient_id, ours)
    if refund is not None and refund.charge_id != charge.charge_id:
        return "foreign"
    if refund is None:
        found = _record_processor_refund(deps, charge, observed)
        if isinstance(found, str):
            return found
        refund = found
    if refund.status == observed.status and refund.provider_refund_id == observed.provider_refund_id:
        settle(deps, charge, refund, observed)  # nothing to move; what follows is made sure of
        return "already_applied"
    return "applied" if settle(deps, charge, refund, observed) else "stale"


def _record_processor_refund(deps: CardDeps, charge: Charge, observed: RefundObservation) -> CardRefund | str:
    if observed.amount is None or observed.amount.currency != charge.amount.currency:
        return "amount_mismatch"
    if observed.status == "failed":
        return "ignored"  # never moved money, and we never counted it
    now = deps.clock()
    refund = CardRefund(refund_id=id_from_digest("rf", charge.clinic_id, charge.provider, observed.provider_refund_id),
                        clinic_id=charge.clinic_id, patient_id=charge.patient_id, charge_id=charge.charge_id,
                        provider=charge.provider, amount=observed.amount, source="processor",
                        provider_refund_id=observed.provider_refund_id, created_at=now, updated_at=now)
    reserved = deps.cards.reserve_refund(refund, charge, check_at=now + deps.check_after)
    if reserved == "exceeds":
        # The processor never refunds more than was paid: our ledger and theirs disagree. Loud.
        metrics.add_metric(name="RefundLedgerMismatch", unit="Count", value=1)
        logger.error("processor refund beyond what is left on the charge", extra={
            "clinic_id": charge.clinic_id, "charge_id": charge.charge_id,
            "provider_refund_id": observed.provider_refund_id})
        return "exceeds_charge"
    stored = deps.cards.get_refund(charge.clinic_id, charge.patient_id, refund.refund_id)
    if reserved == "reserved":
        logger.info("refund started at the processor recorded", extra={
            "clinic_id": charge.clinic_id, "charge_id": charge.charge_id, "refund_id": refund.refund_id})
    return stored or refund


def _reflect(deps: CardDeps, charge: Charge, refund: CardRefund, *, applied: bool) -> None:
    """An appointment's own payment refunded (or a refund of it taken back) shows on the appointment."""
    if not charge.appointment_id or charge.reason is not ChargeReason.APPOINTMENT or not charge.reference:
        return
    move = deps.appointments.apply_refund if applied else deps.appointments.revert_refund
    try:
        move(charge.clinic_id, charge.appointment_id, payment_reference=charge.reference, refund_id=refund.refund_id,
             amount=refund.amount)
    except ClinicpayError as error:
        # The refund itself is recorded; the next event or asking about it tries this again.
        logger.warning("refund not reflected on the appointment", extra={
            "clinic_id": charge.clinic_id, "appointment_id": charge.appointment_id, "error_code": error.code})


def _tell_patient(deps: CardDeps, charge: Charge, refund: CardRefund) -> None:
    """Once per refund (whoever claims the notice first), by email and SMS where we have them."""
    if deps.notifier is None or deps.templates is None:
        return
    patient = deps.patients.get(refund.clinic_id, refund.patient_id) or {}
    destinations = [(c, patient.get(field)) for c, field in (("email", "email"), ("sms", "phone"))]
    if not any(address for _, address in destinations):
        return
    if not deps.cards.claim_refund_notice(refund, deps.clock()):
        return
    clinic = deps.clinics.get(refund.clinic_id)
    locale = str(patient.get("locale") or clinic.locale.value)
    values = {"patient_name": str(patient.get("name") or ""), "clinic_name": clinic.name,
              "amount": format_money(refund.amount, locale), "amount_paid": format_money(charge.amount, locale),
              "service_name": "", "starts_at": ""}
    for channel, address in destinations:
        if not address:
            continue
        template, _ = resolve_template(deps.templates, REFUND_MESSAGE, channel, locale, clinic.clinic_id, clinic.org_id)
        text = render(template, locale, values)
        try:
            deps.notifier.send(OutgoingMessage(channel=channel, to=str(address),  # type: ignore[arg-type]
                                               subject=(text.subject or None) if channel == "email" else None,
                                               body=text.body, kind=REFUND_MESSAGE, clinic_id=clinic.clinic_id,
                                               locale=locale))
        except ClinicpayError as error:
            logger.warning("message not sent", extra={"kind": REFUND_MESSAGE, "channel": channel,
                                                      "error_code": error.code, "refund_id": refund.refund_id})
