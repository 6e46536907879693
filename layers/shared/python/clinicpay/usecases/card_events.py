"""Apply verified processor events about cards and off-session charges, each exactly once.

Every step is a conditional write, so a repeated or concurrent delivery changes nothing; the event
id is recorded after the steps, so a delivery that failed half-way is simply applied again. Events
may arrive in any order: a charge that succeeded never goes back, and an older fact never
overwrites a newer one (see CardRepository.settle_charge).
"""

from __future__ import annotations

from collections.abc import Callable

from clinicpay.domain.card import Card, CardSetup, SetupStatus
from clinicpay.observability import logger, metrics
from clinicpay.ports import CardEvent, ChargeResult
from clinicpay.usecases.cards import apply_charge_result, forget_card, store_card
from clinicpay.usecases.cards_ports import CardDeps


def apply_card_events(deps: CardDeps, clinic_id: str, events: list[CardEvent]) -> list[str]:
    return [apply_card_event(deps, clinic_id, event) for event in events]


def apply_card_event(deps: CardDeps, clinic_id: str, event: CardEvent) -> str:
    if deps.cards.event_seen(event.provider, event.event_id):
        outcome = "duplicate"
    else:
        handler = _HANDLERS.get(event.kind)
        outcome = handler(deps, clinic_id, event) if handler else "ignored"
        if not deps.cards.record_event(event.provider, event.event_id, clinic_id=clinic_id, kind=event.kind,
                                       outcome=outcome, at=deps.clock()):
            outcome = "duplicate"
    logger.info("card event", extra={"clinic_id": clinic_id, "provider": event.provider, "event_id": event.event_id,
                                     "kind": event.kind, "outcome": outcome})
    return outcome


def _setup_for(deps: CardDeps, clinic_id: str, event: CardEvent) -> CardSetup | None:
    meta = event.metadata
    setup = None
    if meta.get("clinicpay_setup_ref") and meta.get("patient_id") and meta.get("clinic_id") == clinic_id:
        setup = deps.cards.get_setup(clinic_id, meta["patient_id"], meta["clinicpay_setup_ref"])
    if setup is None and event.setup_id:
        setup = deps.cards.find_setup(event.provider, event.setup_id)
    # An event delivered to one clinic's endpoint never touches another clinic's patients.
    return setup if setup is not None and setup.clinic_id == clinic_id else None


def _setup_succeeded(deps: CardDeps, clinic_id: str, event: CardEvent) -> str:
    setup = _setup_for(deps, clinic_id, event)
    if setup is None or not event.card_token:
        return "unknown_setup"
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
    return "applied" if created else "already_applied"


def _setup_failed(deps: CardDeps, clinic_id: str, event: CardEvent) -> str:
    setup = _setup_for(deps, clinic_id, event)
    if setup is None:
        return "unknown_setup"
    return "applied" if deps.cards.finish_setup(setup, SetupStatus.FAILED, deps.clock()) else "stale"


def _charge_event(deps: CardDeps, clinic_id: str, event: CardEvent) -> str:
    charge = deps.cards.find_charge(event.provider, event.charge_reference) if event.charge_reference else None
    meta = event.metadata
    if charge is None and meta.get("clinicpay_charge_id") and meta.get("patient_id") and meta.get("clinic_id") == clinic_id:
        # The processor answered too late for the request that made it: our id is in its metadata.
        charge = deps.cards.get_charge(clinic_id, meta["patient_id"], meta["clinicpay_charge_id"])
    if charge is None or charge.clinic_id != clinic_id:
        return "not_a_card_charge"  # e.g. the PaymentIntent behind a payment link's Checkout
    status = {"charge_succeeded": "succeeded", "charge_failed": "failed"}.get(event.kind, "requires_action")
    result = ChargeResult(status=status,  # type: ignore[arg-type]
                          reference=event.charge_reference or charge.reference,
                          failure_code=event.failure_code if status != "succeeded" else None,
                          action_url=charge.action_url if status == "requires_action" else None)
    _, changed = apply_charge_result(deps, charge, result, event.occurred_at)
    return "applied" if changed else "stale"


def _card_detached(deps: CardDeps, clinic_id: str, event: CardEvent) -> str:
    card = deps.cards.find_card_by_token(event.provider, event.card_token) if event.card_token else None
    if card is None or card.clinic_id != clinic_id:
        return "unknown_card"  # already removed by us (we detach first), or never ours
    forget_card(deps, card)
    return "applied"


_HANDLERS: dict[str, Callable[[CardDeps, str, CardEvent], str]] = {
    "setup_succeeded": _setup_succeeded,
    "setup_failed": _setup_failed,
    "charge_succeeded": _charge_event,
    "charge_failed": _charge_event,
    "charge_requires_action": _charge_event,
    "card_detached": _card_detached,
}
