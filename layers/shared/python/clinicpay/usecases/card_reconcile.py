"""Reconciliation of card charges and refunds: nothing waits forever on an event that never came.

Every charge or refund whose outcome is not final sits on a sparse index (CardsTable
`AwaitingProvider`, sharded by clinic) with the time it is due to be asked about: a charge from the
moment it is recorded (so one whose request died mid-call is found too), an undecided one (timeout,
409, 5xx), one processing or awaiting the patient's authentication, a refund pending. A run takes one
shard (or one clinic) and asks the processor about each due item, then applies the answer through
the webhook code path (usecases/card_events.py) as the event that state would have sent: recorded
per clinic under `observed_<id>_<status>`, every write conditional, so an answer applied by a
webhook, a retry or an earlier run is not applied twice.

- A charge whose PaymentIntent we know is asked for it; one we never learnt (its answer was lost) is
  looked for among the customer's PaymentIntents by our id in their metadata. Not there: the
  processor never made it, and it fails `not_created` (a retry with the same key may send it again).
- A refund is looked for among its charge's refunds (by the processor's id or our id in its
  metadata); not there: never made, and its reservation goes back.
- Whatever is still not final is asked about again later, less and less often (RECHECK).

Entry point for the jobs fan-out: `reconcile_charges(deps, shard=k, now=...)` (or `clinic_id=`);
the tokenize function runs it for `{"job": "card-reconcile", "shard": k}`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from clinicpay.domain.card import CardRefund, Charge
from clinicpay.domain.errors import ClinicpayError
from clinicpay.observability import logger, metrics
from clinicpay.ports.cards import ChargeResult
from clinicpay.repositories.shards import SHARDS, shard_of
from clinicpay.usecases.card_events import apply_card_event
from clinicpay.usecases.cards import apply_charge_result
from clinicpay.usecases.cards_ports import CardDeps, CardStore

if TYPE_CHECKING:
    from clinicpay.ports.cards import CardEvent

# Asked again after each look that found it still open: 5 min, 15 min, 1 h, 6 h, then daily.
RECHECK = (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=6), timedelta(days=1))


@dataclass
class ReconcileDeps:
    cards: CardStore  # the whole table: a shard holds many clinics
    deps_for: Callable[[str], CardDeps]  # one clinic's card deps (its processor credentials)
    has_time: Callable[[], bool] = field(default=lambda: True)


def reconcile_charges(deps: ReconcileDeps, *, now: datetime, shard: int | None = None, clinic_id: str | None = None,
                      limit: int = 200) -> dict[str, Any]:
    """Ask the processor about every due charge and refund of one shard (or one clinic's)."""
    shards = [shard] if shard is not None else [shard_of(clinic_id)] if clinic_id else list(range(SHARDS))
    outcomes: Counter[str] = Counter()
    clinics: dict[str, CardDeps] = {}
    for number in shards:
        for item in deps.cards.awaiting_provider(number, now, clinic_id=clinic_id, limit=limit):
            if not deps.has_time():
                outcomes["deferred"] += 1
                continue
            cid = str(item["clinic_id"])
            try:
                card_deps = clinics.get(cid) or clinics.setdefault(cid, deps.deps_for(cid))
                outcome = _reconcile(card_deps, item, now)
            except ClinicpayError as error:
                # The processor (or the clinic's credentials) could not be read: asked again later.
                logger.warning("reconciliation deferred", extra={"clinic_id": cid, "sk": item["sk"],
                                                                 "error_code": error.code})
                deps.cards.check_again(item, was=str(item["recon_at"]), at=now + _later(item))
                outcome = "deferred"
            outcomes[outcome] += 1
    metrics.add_metric(name="CardsReconciled", unit="Count", value=sum(outcomes.values()))
    logger.info("card reconciliation", extra={"shards": shards, "clinic_id": clinic_id, "outcomes": dict(outcomes)})
    return {"shards": shards, "outcomes": dict(outcomes)}


def _later(item: dict[str, Any]) -> timedelta:
    return RECHECK[min(int(item.get("recon_attempts") or 0), len(RECHECK) - 1)]


def _reconcile(deps: CardDeps, item: dict[str, Any], now: datetime) -> str:
    if str(item["sk"]).startswith("CHARGE#"):
        outcome, still_open = _charge(deps, Charge.model_validate(item))
    else:
        outcome, still_open = _refund(deps, CardRefund.model_validate(item))
    if still_open:
        deps.cards.check_again(item, was=str(item["recon_at"]), at=now + _later(item))
    return outcome


def _charge(deps: CardDeps, charge: Charge) -> tuple[str, bool]:
    vault = deps.vault_for(charge.provider)
    observed: CardEvent | None
    if charge.reference:
        observed = vault.observe_charge(charge.reference)
    else:
        customer = charge.customer_ref or deps.cards.customer_ref(charge.clinic_id, charge.patient_id, charge.provider)
        observed = vault.find_charge(customer, charge.charge_id, charge.created_at) if customer else None
    if observed is None:
        # Due means older than the processor's answer could take: it never made this charge.
        _, changed = apply_charge_result(deps, charge, ChargeResult(status="failed", failure_code="not_created"),
                                         deps.clock())
        return ("not_created" if changed else "stale"), False
    outcome = apply_card_event(deps, charge.clinic_id, observed)
    stored = deps.cards.get_charge(charge.clinic_id, charge.patient_id, charge.charge_id)
    return outcome, stored is not None and stored.status not in ("succeeded", "failed")


def _refund(deps: CardDeps, refund: CardRefund) -> tuple[str, bool]:
    charge = deps.cards.get_charge(refund.clinic_id, refund.patient_id, refund.charge_id)
    if charge is None or not charge.reference:
        return "unknown_charge", False
    mine = [event for event in deps.vault_for(refund.provider).observe_refunds(charge.reference)
            if event.refund is not None and (event.refund.provider_refund_id == refund.provider_refund_id
                                             or event.refund.metadata.get("clinicpay_refund_id") == refund.refund_id)]
    if not mine:
        if refund.provider_refund_id:
            return "unknown_refund", True  # the processor named it to us: look again later
        # Never made: its reservation goes back to the charge.
        changed = deps.cards.settle_refund(refund, status="failed", failure_code="not_created", at=deps.clock())
        return ("not_created" if changed else "stale"), False
    outcome = apply_card_event(deps, charge.clinic_id, mine[0])
    stored = deps.cards.get_refund(refund.clinic_id, refund.patient_id, refund.refund_id)
    return outcome, stored is not None and stored.status == "pending"


def run_card_reconcile(deps: ReconcileDeps, shard: int, now: datetime) -> dict[str, Any]:
    """The jobs fan-out's convention (`run_<job>(deps, shard, ...)`): one shard. Its report holds
    counts only (`outcomes`): clinicpay.fanout sums the shards' reports and counts them itself as
    `shards`, so the list of shards `reconcile_charges` names is left out."""
    result = reconcile_charges(deps, now=now, shard=shard)
    return {"outcomes": result["outcomes"]}
