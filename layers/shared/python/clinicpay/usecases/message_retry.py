"""The `message-retry` job: emails and SMS that SES/SNS refused for a passing reason, sent once.

Scheduled, one invocation per shard (clinicpay.fanout). For each kept message due in the shard:
claim it (a conditional write: only one run holds it, for a lease), send it through SES/SNS, then,
still holding the claim, record it sent. Refused again for a passing reason: back to waiting, on a
growing backoff; refused as invalid, or after MAX_ATTEMPTS: out of the queue, logged and counted
(`MessageGivenUp`, which alarms). A run that dies between the send and the record leaves the claim
to lapse, and the message is sent again after the lease: at least once, never lost; twice only then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from clinicpay.domain.ids import new_token
from clinicpay.notify.transport import MessageRefused, Transport
from clinicpay.observability import logger
from clinicpay.repositories.message_outbox import KeptMessage, MessageOutbox

LEASE = timedelta(minutes=5)  # far longer than one SES/SNS call (three attempts of 3 s at most)
MAX_ATTEMPTS = 10
# After the n-th attempt failed, wait BACKOFF[n - 1] (the last one for later attempts): ten attempts
# span about a day, so a sending pause or a quota reset is waited out, and nobody gets a reminder
# for an appointment long past.
BACKOFF = tuple(timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 120, 240, 480, 720))


@dataclass
class MessageRetryDeps:
    outbox: MessageOutbox
    transport: Transport
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    has_time: Callable[[], bool] = lambda: True
    gave_up: Callable[[KeptMessage, str], None] = lambda kept, why: None  # a metric, in the handler


def next_attempt_after(attempts: int) -> timedelta:
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def run_message_retry(deps: MessageRetryDeps, shard: int) -> dict[str, int]:
    counts = {"items_read": 0, "sent": 0, "waiting": 0, "given_up": 0, "refused": 0, "skipped": 0}
    page: dict[str, Any] | None = None
    while deps.has_time():
        due, page = deps.outbox.due(shard, deps.clock(), after=page)
        counts["items_read"] += len(due)
        for kept in due:
            if not deps.has_time():
                logger.warning("message-retry run stopped before its function's timeout; the rest stay due",
                               extra={"shard": shard, **counts})
                return counts
            counts[_retry_one(deps, kept)] += 1
        if page is None:
            break
    logger.info("message-retry run", extra={"shard": shard, **counts})
    return counts


def _retry_one(deps: MessageRetryDeps, kept: KeptMessage) -> str:
    now = deps.clock()
    token = new_token()
    claimed = deps.outbox.claim(kept.clinic_id, kept.outbox_id, token=token, now=now, lease_until=now + LEASE)
    if claimed is None:
        return "skipped"  # another run holds it, or it is done or not due any more
    extra = {"clinic_id": claimed.clinic_id, "outbox_id": claimed.outbox_id, "channel": claimed.channel,
             "kind": claimed.kind, "attempts": claimed.attempts}
    try:
        message_id = deps.transport.deliver(claimed.message)
    except MessageRefused as refusal:
        if refusal.permanent or claimed.attempts >= MAX_ATTEMPTS:
            state: Literal["refused", "given_up"] = "refused" if refusal.permanent else "given_up"
            deps.outbox.finish(claimed.clinic_id, claimed.outbox_id, token=token, state=state, error=refusal.code,
                               now=deps.clock())
            logger.error("kept message not sent; giving up", extra={**extra, "error_class": refusal.code,
                                                                    "state": state})
            deps.gave_up(claimed, state)
            return state
        deps.outbox.release(claimed.clinic_id, claimed.outbox_id, token=token, error=refusal.code,
                            next_attempt_at=deps.clock() + next_attempt_after(claimed.attempts))
        logger.warning("kept message refused again; waits for its next attempt",
                       extra={**extra, "error_class": refusal.code})
        return "waiting"
    if not deps.outbox.mark_sent(claimed.clinic_id, claimed.outbox_id, token=token, message_id=message_id,
                                 now=deps.clock()):
        logger.warning("kept message sent after its claim lapsed", extra=extra)
    logger.info("kept message sent", extra={**extra, "message_id": message_id})
    return "sent"
