"""Provider event records: one item per (clinic, provider, event id), written once.

The clinic is part of the key because one provider account may serve several clinics (an owner's two
branches on one Fintoc or Stripe account) and the provider then delivers every event to every
clinic's endpoint. A record made at clinic B's endpoint for clinic A's event must never make clinic A
see that event as a repeat, so each clinic remembers what it did with an event under its own key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clinicpay.repositories.dynamo import without_none

EVENT_SK = "EVENT"


def event_pk(clinic_id: str, provider: str, event_id: str) -> str:
    return f"EVENT#{clinic_id}#{provider}#{event_id}"


def event_item(clinic_id: str, provider: str, event_id: str, *, kind: str, outcome: str,
               occurred_at: datetime | None = None, recorded_at: datetime | None = None,
               reason: str | None = None, **extra: Any) -> dict[str, Any]:
    """The record's item. `reason` says why a `foreign` (or `ignored`) event changed nothing."""
    return without_none({"pk": event_pk(clinic_id, provider, event_id), "sk": EVENT_SK, "clinic_id": clinic_id,
                         "provider": provider, "event_id": event_id, "kind": kind, "outcome": outcome,
                         "reason": reason, "occurred_at": occurred_at.isoformat() if occurred_at else None,
                         "recorded_at": recorded_at.isoformat() if recorded_at else None,
                         **{k: v for k, v in extra.items() if v is not None}})
