"""tokenize's scheduled job `card-reconcile` (clinicpay.fanout): ask Stripe about the charges and
refunds still awaiting it. Loaded by the first job event (app.lambda_handler), never by a request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clinicpay import fanout
from clinicpay.api.route_groups import function_module
from clinicpay.deadline import provider_seconds_left
from clinicpay.repositories.cards import CardRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import card_reconcile
from clinicpay.usecases.card_reconcile import ReconcileDeps, reconcile_charges

dependencies = function_module(__file__, "dependencies")

RECONCILE_JOB = "card-reconcile"
RECONCILE_ITEM_SECONDS = 2.0


def _reconcile_deps() -> ReconcileDeps:
    settings = get_settings()
    return ReconcileDeps(cards=CardRepository(settings.cards_table), deps_for=dependencies.card_deps,
                         # An item takes a call or two to Stripe; none starts without time for them.
                         has_time=lambda: provider_seconds_left() > RECONCILE_ITEM_SECONDS)


def run_card_reconcile(shard: int) -> dict[str, Any]:
    """One shard of `card-reconcile` (clinicpay.fanout): ask Stripe about its due charges and refunds."""
    return card_reconcile.run_card_reconcile(_reconcile_deps(), shard, datetime.now(UTC))


def run_job(event: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """By hand (and for tests at a chosen moment): `{"job": "card-reconcile", "shard": k}` runs one
    shard, without "shard" every shard one after another, with "clinic_id" one clinic's items.
    The deployed path is the fan-out below (schedule -> dispatcher -> one message per shard)."""
    if event.get("job") != RECONCILE_JOB:
        raise ValueError("unknown job")
    shard, clinic_id = event.get("shard"), event.get("clinic_id")
    result = reconcile_charges(_reconcile_deps(), now=now or datetime.now(UTC),
                               shard=int(shard) if shard is not None else None,
                               clinic_id=str(clinic_id) if clinic_id else None)
    return {"job": RECONCILE_JOB, **result}


jobs = fanout.Jobs({RECONCILE_JOB: run_card_reconcile}, queue_url=lambda: get_settings().tokenize_jobs_queue_url)
