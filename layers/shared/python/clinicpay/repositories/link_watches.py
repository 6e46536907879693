"""Watches on payment-link sessions: the provider sessions whose outcome we have not heard yet.

`/pay` writes one watch per provider session it stores, in the same transaction (so a link that made a
session always has its watch, and `/pay` makes no extra call): pk `CLINIC#{cid}`, sk
`LINKWATCH#{provider}#{session_id}`, on the DueByShard index while it waits (due_pk
`LINKWATCH#{shard}`, due_sk `{next ask}#{cid}#{provider}#{session_id}`). The `link-reconcile` job
reads one shard's due watches, asks the provider and applies the answer as its webhook would have
been applied (usecases/link_reconcile.py); a watch whose appointment was settled meanwhile (the
webhook came, as it nearly always does) is closed without asking. A closed watch leaves the index
and is kept 30 days (ttl) for the record: its `outcome` says how it ended.

The paying webhook writes nothing here: watches are dropped lazily, by the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from clinicpay.domain.appointment import ProviderSession
from clinicpay.repositories.dynamo import conditional, due_page, plain, table, translated_errors
from clinicpay.repositories.shards import key_of, shard_key

WATCH_KIND = "LINKWATCH"

# Younger than this, the webhook is most likely on its way: the first ask waits this long.
FIRST_ASK = timedelta(minutes=3)
# Then each ask waits longer (the last interval repeats), never past the end of the watch.
BACKOFF = (timedelta(minutes=10), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6))
# Asked until the session has expired at the provider and a little after (clocks differ) ...
EXPIRY_MARGIN = timedelta(minutes=10)
# ... or, for a session that names no expiry, this long after it was made.
UNDATED_WATCH = timedelta(hours=24)
# Money already underway (a `pending` bank transfer, a card `processing`) is watched this long:
# Fintoc decides a pending transfer within 10 days.
UNDERWAY_WATCH = timedelta(days=11)
# A closed watch is kept for the record, then DynamoDB's TTL removes it.
KEEP_CLOSED = timedelta(days=30)


def iso(moment: datetime) -> str:
    """Fixed-width UTC, so due_sk values compare as times."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def watch_key(clinic_id: str, provider: str, session_id: str) -> dict[str, str]:
    return {"pk": f"CLINIC#{clinic_id}", "sk": f"LINKWATCH#{provider}#{session_id}"}


def _due_sk(at: datetime, clinic_id: str, provider: str, session_id: str) -> str:
    return f"{iso(at)}#{clinic_id}#{provider}#{session_id}"


def next_ask(asks: int, now: datetime, until: datetime) -> datetime:
    """When to ask again after `asks` asks: the backoff, but never later than the watch's end."""
    wait = BACKOFF[min(max(asks, 1), len(BACKOFF)) - 1]
    return min(now + wait, until) if now < until else now + wait


@dataclass(frozen=True)
class LinkWatch:
    clinic_id: str
    appointment_id: str
    provider: str
    session_id: str
    created_at: datetime
    watch_until: datetime
    asks: int
    due_sk: str

    @property
    def due_at(self) -> datetime:
        return datetime.fromisoformat(self.due_sk.split("#", 1)[0])


def watch_item(clinic_id: str, appointment_id: str, session: ProviderSession, now: datetime) -> dict[str, Any]:
    """The watch `/pay` writes with the session it stores (first ask FIRST_ASK from now)."""
    until = (session.expires_at + EXPIRY_MARGIN) if session.expires_at else now + UNDATED_WATCH
    return {
        **watch_key(clinic_id, session.provider, session.session_id),
        "clinic_id": clinic_id, "appointment_id": appointment_id, "provider": session.provider,
        "session_id": session.session_id, "created_at": iso(now), "watch_until": iso(until), "asks": 0,
        "due_pk": shard_key(WATCH_KIND, clinic_id),
        "due_sk": _due_sk(now + FIRST_ASK, clinic_id, session.provider, session.session_id),
    }


def _watch(item: dict[str, Any]) -> LinkWatch:
    return LinkWatch(clinic_id=str(item["clinic_id"]), appointment_id=str(item["appointment_id"]),
                     provider=str(item["provider"]), session_id=str(item["session_id"]),
                     created_at=datetime.fromisoformat(str(item["created_at"])),
                     watch_until=datetime.fromisoformat(str(item["watch_until"])), asks=int(item.get("asks", 0)),
                     due_sk=str(item["due_sk"]))


class LinkWatchRepository:
    def __init__(self, table_name: str):
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return table(self._table_name)

    def due(self, shard: int, now: datetime, *, limit: int = 100,
            after: dict[str, Any] | None = None) -> tuple[list[LinkWatch], dict[str, Any] | None]:
        """One page of the shard's watches due by `now`, the most overdue first, and where the next
        page starts (None: no more). Only waiting watches are in the index."""
        # "~" sorts after "#": every due_sk whose time is `now` or earlier.
        items, last = due_page(self._table, key_of(WATCH_KIND, shard), f"{iso(now)}~", limit=limit, after=after)
        return [_watch(i) for i in items], last

    def get(self, clinic_id: str, provider: str, session_id: str) -> dict[str, Any] | None:
        with translated_errors():
            item = self._table.get_item(Key=watch_key(clinic_id, provider, session_id), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def claim(self, watch: LinkWatch, now: datetime, *, watch_until: datetime | None = None) -> LinkWatch | None:
        """Take the watch for this ask: move it to its next ask time, on condition nobody moved it
        since it was read (a shard run twice asks once). None when another run took it. Should the
        run die after this, the watch simply comes back at its next time."""
        until = max(watch.watch_until, watch_until) if watch_until else watch.watch_until
        asks = watch.asks + 1
        due_sk = _due_sk(next_ask(asks, now, until), watch.clinic_id, watch.provider, watch.session_id)
        claimed = conditional(lambda: self._table.update_item(
            Key=watch_key(watch.clinic_id, watch.provider, watch.session_id),
            UpdateExpression="SET due_sk = :next, asks = :asks, watch_until = :until, last_asked_at = :now",
            ConditionExpression="due_sk = :current",
            ExpressionAttributeValues={":next": due_sk, ":asks": asks, ":until": iso(until), ":now": iso(now),
                                       ":current": watch.due_sk}))
        if not claimed:
            return None
        return LinkWatch(watch.clinic_id, watch.appointment_id, watch.provider, watch.session_id, watch.created_at,
                         until, asks, due_sk)

    def extend(self, watch: LinkWatch, until: datetime) -> LinkWatch:
        """Watch longer (money underway at the provider); the next ask stays as claimed."""
        if until <= watch.watch_until:
            return watch
        conditional(lambda: self._table.update_item(
            Key=watch_key(watch.clinic_id, watch.provider, watch.session_id),
            UpdateExpression="SET watch_until = :until", ConditionExpression="due_sk = :current",
            ExpressionAttributeValues={":until": iso(until), ":current": watch.due_sk}))
        return LinkWatch(watch.clinic_id, watch.appointment_id, watch.provider, watch.session_id, watch.created_at,
                         until, watch.asks, watch.due_sk)

    def close(self, watch: LinkWatch, outcome: str, now: datetime) -> bool:
        """Out of the index for good, with how it ended; only while it is as it was read or claimed."""
        return conditional(lambda: self._table.update_item(
            Key=watch_key(watch.clinic_id, watch.provider, watch.session_id),
            UpdateExpression="SET outcome = :outcome, closed_at = :now, #ttl = :ttl REMOVE due_pk, due_sk",
            ConditionExpression="due_sk = :current", ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={":outcome": outcome, ":now": iso(now),
                                       ":ttl": int((now + KEEP_CLOSED).timestamp()), ":current": watch.due_sk}))
