"""Apply verified processor events about cards and off-session charges, each exactly once, and
only for what this clinic created.

Every step is a conditional write, so a repeated or concurrent delivery changes nothing; the event
id is recorded (per clinic) after the steps, so a delivery that failed half-way is simply applied
again. Events may arrive in any order: a charge that succeeded never goes back, and an older fact
never overwrites a newer one (see CardRepository.settle_charge).

One Stripe account may serve two clinics, and Stripe then sends every event to both endpoints. An
event counts here only for a setup or charge of THIS clinic: its metadata must not name another
clinic, a setup must be the SetupIntent we stored (or, before Stripe told us its id, for the
customer we made), a charge the PaymentIntent we stored, for the amount and currency we charged.
Anything else is `foreign` (usecases/ownership.py): recorded under this clinic's key and counted.
Refunds and disputes count for a charge whose PaymentIntent we stored for this clinic; those of a
payment through our link are the appointments ledger's (`not_a_card_charge` here), except that a
dispute of one is shown on its appointment (found by its payment row).

Our own asking (usecases/card_reconcile.py) comes through here too, as the events the processor's
current state would have sent (`observed_<id>_<status>`), recorded per clinic like any event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from clinicpay.domain.card import Card, CardSetup, Charge, Dispute, SetupStatus
from clinicpay.observability import logger, metrics
from clinicpay.ports.cards import ChargeResult
from clinicpay.usecases.card_messages import tell_bookings_confirmed
from clinicpay.usecases.card_refunds import apply_refund_observation
from clinicpay.usecases.cards import apply_charge_result, forget_card, store_card
from clinicpay.usecases.cards_ports import CardDeps
from clinicpay.usecases.ownership import (
    AMOUNT_MISMATCH,
    FOREIGN,
    OTHER_CLINIC,
    UNKNOWN_OBJECT,
    count_foreign,
    names_other_clinic,
)

if TYPE_CHECKING:
    from clinicpay.ports.cards import CardEvent

# A handler's verdict: an outcome, or (outcome, why) when the event changed nothing.
Verdict = str | tuple[str, str]


def apply_card_events(deps: CardDeps, clinic_id: str, events: list[CardEvent]) -> list[str]:
    return [apply_card_event(deps, clinic_id, event) for event in events]


def apply_card_event(deps: CardDeps, clinic_id: str, event: CardEvent) -> str:
    reason = None
    if deps.cards.event_seen(clinic_id, event.provider, event.event_id):
        outcome = "duplicate"
    else:
        handler = _HANDLERS.get(event.kind)
        if handler is None:
            verdict: Verdict = "ignored"
        elif names_other_clinic(event.metadata.get("clinic_id"), clinic_id):
            verdict = (FOREIGN, OTHER_CLINIC)
        else:
            verdict = handler(deps, clinic_id, event)
        outcome, reason = verdict if isinstance(verdict, tuple) else (verdict, None)
        if not deps.cards.record_event(clinic_id, event.provider, event.event_id, kind=event.kind, outcome=outcome,
                                       reason=reason, at=deps.clock()):
            outcome, reason = "duplicate", None
        elif outcome == FOREIGN and reason:
            count_foreign(event.provider, clinic_id, event.event_id, reason)
    logger.info("card event", extra={"clinic_id": clinic_id, "provider": event.provider, "event_id": event.event_id,
                                     "kind": event.kind, "outcome": outcome, "reason": reason})
    return outcome


def _setup_for(deps: CardDeps, clinic_id: str, event: CardEvent) -> CardSetup | None:
    """This clinic's setup the event is about, or None when it is about no setup of ours."""
    meta = event.metadata
    setup = None
    if meta.get("clinicpay_setup_ref") and meta.get("patient_id") and meta.get("clinic_id") == clinic_id:
        setup = deps.cards.get_setup(clinic_id, meta["patient_id"], meta["clinicpay_setup_ref"])
    if setup is None and event.setup_id:
        setup = deps.cards.find_setup(event.provider, event.setup_id)
    # An event delivered to one clinic's endpoint never touches another clinic's patients.
    if setup is None or setup.clinic_id != clinic_id:
        return None
    # Metadata is only text: the SetupIntent must be the one we stored, or (before Stripe told us its
    # id) one made for the customer we created for this patient.
    if setup.setup_id:
        return setup if setup.setup_id == event.setup_id else None
    return setup if event.customer_ref and event.customer_ref == setup.customer_ref else None


def _setup_succeeded(deps: CardDeps, clinic_id: str, event: CardEvent) -> Verdict:
    setup = _setup_for(deps, clinic_id, event)
    if setup is None or not event.card_token:
        return FOREIGN, UNKNOWN_OBJECT
    described = deps.vault_for(setup.provider).attach_card(event.card_token, setup.customer_ref)
    now = deps.clock()
    card = Card(card_id=setup.card_id, clinic_id=clinic_id, patient_id=setup.patient_id, provider=setup.provider,
                token=described.token, customer_ref=setup.customer_ref, brand=described.brand, last4=described.last4,
                exp_month=described.exp_month, exp_year=described.exp_year, consent=setup.consent, created_at=now)
    _, created = store_card(deps, card)
    deps.cards.finish_setup(setup, SetupStatus.COMPLETED, now)
    if setup.request_token:
        deps.card_requests.mark_completed(setup.request_token, now.isoformat())
    confirmed = deps.appointments.confirm_awaiting_card(clinic_id, setup.patient_id)
    if confirmed:
        metrics.add_metric(name="BookingConfirmedByCard", unit="Count", value=len(confirmed))
        logger.info("bookings confirmed by a saved card", extra={"clinic_id": clinic_id, "appointment_ids": confirmed})
        tell_bookings_confirmed(deps, clinic_id, confirmed)
    return "applied" if created else "already_applied"


def _setup_failed(deps: CardDeps, clinic_id: str, event: CardEvent) -> Verdict:
    setup = _setup_for(deps, clinic_id, event)
    if setup is None:
        return FOREIGN, UNKNOWN_OBJECT
    return "applied" if deps.cards.finish_setup(setup, SetupStatus.FAILED, deps.clock()) else "stale"


def _charge_event(deps: CardDeps, clinic_id: str, event: CardEvent) -> Verdict:
    charge = deps.cards.find_charge(event.provider, event.charge_reference) if event.charge_reference else None
    meta = event.metadata
    if charge is None and meta.get("clinicpay_charge_id") and meta.get("patient_id") and meta.get("clinic_id") == clinic_id:
        # The processor answered too late for the request that made it: our id is in its metadata.
        charge = deps.cards.get_charge(clinic_id, meta["patient_id"], meta["clinicpay_charge_id"])
        if charge is not None and charge.reference and charge.reference != event.charge_reference:
            charge = None  # we already know this charge's PaymentIntent, and it is another one
    if charge is None or charge.clinic_id != clinic_id:
        if meta.get("clinic_id") == clinic_id and meta.get("appointment_id"):
            return "not_a_card_charge"  # the PaymentIntent behind our payment link's Checkout
        return FOREIGN, UNKNOWN_OBJECT
    if event.amount is not None and event.amount != charge.amount:
        return FOREIGN, AMOUNT_MISMATCH
    status = {"charge_succeeded": "succeeded", "charge_failed": "failed",
              "charge_processing": "processing"}.get(event.kind, "requires_action")
    result = ChargeResult(status=status,  # type: ignore[arg-type]
                          reference=event.charge_reference or charge.reference,
                          failure_code=event.failure_code if status != "succeeded" else None,
                          action_url=charge.action_url if status == "requires_action" else None)
    _, changed = apply_charge_result(deps, charge, result, event.occurred_at)
    return "applied" if changed else "stale"


def _our_charge(deps: CardDeps, clinic_id: str, event: CardEvent) -> Charge | None:
    """This clinic's card charge a refund or dispute event is about (by the PaymentIntent we stored)."""
    charge = deps.cards.find_charge(event.provider, event.charge_reference) if event.charge_reference else None
    return charge if charge is not None and charge.clinic_id == clinic_id else None


def _charge_refunded(deps: CardDeps, clinic_id: str, event: CardEvent) -> Verdict:
    """`charge.refunded` carries only the running total. When it is more than we have counted, a
    refund we did not ask for was made (the dashboard); when one of ours still waits for its answer
    (it was lost), this may be it: ask the processor for the charge's refunds and apply each the
    way its own event would have."""
    charge = _our_charge(deps, clinic_id, event)
    if charge is None:
        return "not_a_card_charge"  # a payment through our link: the ledger of appointments reads it
    total = event.refunded_total
    if total is None or total.currency != charge.amount.currency or (event.amount and event.amount != charge.amount):
        return FOREIGN, AMOUNT_MISMATCH
    waiting = [r for r in deps.cards.list_refunds(clinic_id, charge.patient_id, charge.charge_id) if r.status == "pending"]
    if total.amount <= charge.amount_refunded and not waiting:
        return "already_applied"  # every refund behind this total is counted and settled
    assert charge.reference
    outcomes = [_refund_updated(deps, clinic_id, observed)
                for observed in deps.vault_for(charge.provider).observe_refunds(charge.reference)]
    return "applied" if "applied" in outcomes else "already_applied"


def _refund_updated(deps: CardDeps, clinic_id: str, event: CardEvent) -> Verdict:
    charge = _our_charge(deps, clinic_id, event)
    if charge is None or event.refund is None:
        return "not_a_card_charge"
    outcome = apply_refund_observation(deps, charge, event.refund)
    if outcome in ("foreign", "amount_mismatch", "exceeds_charge"):
        return FOREIGN, {"amount_mismatch": AMOUNT_MISMATCH, "exceeds_charge": AMOUNT_MISMATCH}.get(outcome, UNKNOWN_OBJECT)
    return outcome


def _dispute_updated(deps: CardDeps, clinic_id: str, event: CardEvent) -> Verdict:
    """A dispute of one of this clinic's payments: shown on the card charge, and on the appointment
    whose own payment it is (a card charge for the appointment, or a payment through our link)."""
    observed = event.dispute
    if observed is None or not event.charge_reference:
        return FOREIGN, UNKNOWN_OBJECT
    dispute = Dispute(dispute_id=observed.dispute_id, status=observed.status, amount=observed.amount,
                      reason=observed.reason, updated_at=event.occurred_at)
    charge = _our_charge(deps, clinic_id, event)
    if charge is not None:
        recorded = deps.cards.record_dispute(charge, dispute)
        appointment_id = charge.appointment_id
        opened = recorded == "opened"
    else:
        recorded, appointment_id = "updated", deps.appointments.paid_by(clinic_id, event.provider, event.charge_reference)
        if appointment_id is None:
            return FOREIGN, UNKNOWN_OBJECT
        before = (deps.appointments.get(clinic_id, appointment_id) or {}).get("dispute") or {}
        opened = before.get("dispute_id") != dispute.dispute_id
    if appointment_id:
        shown = deps.appointments.record_dispute(clinic_id, appointment_id, payment_reference=event.charge_reference,
                                                 dispute=dispute.model_dump(mode="json"))
        recorded = recorded if charge is not None else ("updated" if shown else "stale")
    if opened and recorded != "stale":
        metrics.add_metric(name="DisputeOpened", unit="Count", value=1)
        logger.warning("payment disputed", extra={"clinic_id": clinic_id, "dispute_id": dispute.dispute_id,
                                                  "payment_reference": event.charge_reference,
                                                  "reason": dispute.reason, "status": dispute.status})
    return "stale" if recorded == "stale" else "applied"


def _card_detached(deps: CardDeps, clinic_id: str, event: CardEvent) -> Verdict:
    card = deps.cards.find_card_by_token(event.provider, event.card_token) if event.card_token else None
    if card is None or card.clinic_id != clinic_id:
        return "unknown_card"  # already removed by us (we detach first), or never ours
    forget_card(deps, card)
    return "applied"


_HANDLERS: dict[str, Callable[[CardDeps, str, CardEvent], Verdict]] = {
    "setup_succeeded": _setup_succeeded,
    "setup_failed": _setup_failed,
    "charge_succeeded": _charge_event,
    "charge_failed": _charge_event,
    "charge_requires_action": _charge_event,
    "charge_processing": _charge_event,
    "charge_refunded": _charge_refunded,
    "refund_updated": _refund_updated,
    "dispute_updated": _dispute_updated,
    "card_detached": _card_detached,
}
