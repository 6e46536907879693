"""Messages SES or SNS refused for a passing reason, kept until the `message-retry` job sends them.

    kept message  CLINIC#{cid} / OUTBOX#{outbox_id}
                  due_pk = "OUTBOX#07" (the clinic's shard), due_sk = when it is next due,
                  both only while it waits (or is being sent): the sparse DueByShard index

States: waiting -> sending (claimed by a conditional write, with a lease) -> sent | waiting (refused
again, with its next attempt) | refused (SES/SNS called it permanently invalid) | given_up (too many
attempts). Only the holder of the claim may move it on, so a message is sent by one job run at a
time. Every item expires (`ttl`) 30 days after it was kept: its body holds a payment link.

DueByShard is the stack's generic "work due, by shard" index (due_pk = f"{kind}#{shard:02d}",
due_sk = an ISO time): another kind of item that waits for a job may use it with its own kind
(CloudFormation adds one GSI per stack update, so sharing it spares a deploy).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from clinicpay.domain.ids import new_id
from clinicpay.domain.model import Model
from clinicpay.ports.messaging import OutgoingMessage
from clinicpay.repositories.dynamo import conditional, due_page, plain, table, translated_errors, without_none
from clinicpay.repositories.shards import key_of, shard_key

OUTBOX_KIND = "OUTBOX"
KEPT_FOR = timedelta(days=30)

KeptState = Literal["waiting", "sending", "sent", "refused", "given_up"]


class KeptMessage(Model):
    outbox_id: str
    clinic_id: str
    channel: Literal["email", "sms"]
    to: str
    subject: str | None = None
    body: str = ""
    kind: str
    locale: str | None = None
    state: KeptState
    attempts: int
    created_at: str
    next_attempt_at: str | None = None
    last_error: str | None = None
    message_id: str | None = None
    sent_at: str | None = None

    @property
    def message(self) -> OutgoingMessage:
        return OutgoingMessage(channel=self.channel, to=self.to, subject=self.subject, body=self.body,
                               kind=self.kind, clinic_id=self.clinic_id, locale=self.locale)


def _key(clinic_id: str, outbox_id: str) -> dict[str, str]:
    return {"pk": f"CLINIC#{clinic_id}", "sk": f"OUTBOX#{outbox_id}"}


def _iso(moment: datetime) -> str:
    return moment.isoformat()


class MessageOutbox:
    def __init__(self, table_name: str):
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return table(self._table_name)

    def keep(self, message: OutgoingMessage, *, error: str, now: datetime, next_attempt_at: datetime) -> str:
        """Keep a message its first send could not deliver (that was attempt 1); returns its id."""
        outbox_id = new_id("ob")
        item = without_none({
            **_key(message.clinic_id, outbox_id), "outbox_id": outbox_id, "clinic_id": message.clinic_id,
            "channel": message.channel, "to": message.to, "subject": message.subject, "body": message.body,
            "kind": message.kind, "locale": message.locale, "state": "waiting", "attempts": 1, "created_at": _iso(now),
            "next_attempt_at": _iso(next_attempt_at), "last_error": error,
            "due_pk": shard_key(OUTBOX_KIND, message.clinic_id), "due_sk": _iso(next_attempt_at),
            "ttl": int((now + KEPT_FOR).timestamp())})
        with translated_errors():
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        return outbox_id

    def get(self, clinic_id: str, outbox_id: str) -> KeptMessage | None:
        with translated_errors():
            item = self._table.get_item(Key=_key(clinic_id, outbox_id), ConsistentRead=True).get("Item")
        return KeptMessage.model_validate(plain(item)) if item else None

    def due(self, shard: int, now: datetime, *, limit: int = 100,
            after: dict[str, Any] | None = None) -> tuple[list[KeptMessage], dict[str, Any] | None]:
        """One page of the shard's messages due by `now` (waiting, or a lapsed claim), and where the
        next page starts (None: no more)."""
        items, last = due_page(self._table, key_of(OUTBOX_KIND, shard), _iso(now), limit=limit, after=after)
        return [KeptMessage.model_validate(i) for i in items], last

    def claim(self, clinic_id: str, outbox_id: str, *, token: str, now: datetime,
              lease_until: datetime) -> KeptMessage | None:
        """waiting (due) -> sending, or take over a claim whose lease lapsed; None if someone else
        holds it, it is not due, or it is done. The attempt is counted here, before the send."""
        answer: dict[str, Any] = {}

        def write() -> None:
            answer.update(self._table.update_item(
                Key=_key(clinic_id, outbox_id),
                UpdateExpression="SET #st = :sending, claim_token = :t, claim_expires_at = :lease, due_sk = :lease, "
                                 "attempts = attempts + :one",
                ConditionExpression="attribute_exists(pk) AND ((#st = :waiting AND next_attempt_at <= :now) "
                                    "OR (#st = :sending AND claim_expires_at < :now))",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={":sending": "sending", ":waiting": "waiting", ":t": token,
                                           ":lease": _iso(lease_until), ":now": _iso(now), ":one": 1},
                ReturnValues="ALL_NEW"))

        if not conditional(write):
            return None
        return KeptMessage.model_validate(plain(answer["Attributes"]))

    def mark_sent(self, clinic_id: str, outbox_id: str, *, token: str, message_id: str, now: datetime) -> bool:
        """sending -> sent, by the claim's holder; out of the index, body dropped."""
        return conditional(lambda: self._table.update_item(
            Key=_key(clinic_id, outbox_id),
            UpdateExpression="SET #st = :sent, message_id = :mid, sent_at = :now "
                             "REMOVE due_pk, due_sk, claim_token, claim_expires_at, next_attempt_at, body, subject",
            ConditionExpression="claim_token = :t AND #st = :sending",
            ExpressionAttributeNames={"#st": "state"},
            ExpressionAttributeValues={":sent": "sent", ":sending": "sending", ":mid": message_id,
                                       ":now": _iso(now), ":t": token}))

    def release(self, clinic_id: str, outbox_id: str, *, token: str, error: str, next_attempt_at: datetime) -> bool:
        """sending -> waiting again (refused for a passing reason), due at `next_attempt_at`."""
        due = _iso(next_attempt_at)
        return conditional(lambda: self._table.update_item(
            Key=_key(clinic_id, outbox_id),
            UpdateExpression="SET #st = :waiting, next_attempt_at = :due, due_sk = :due, last_error = :err "
                             "REMOVE claim_token, claim_expires_at",
            ConditionExpression="claim_token = :t AND #st = :sending",
            ExpressionAttributeNames={"#st": "state"},
            ExpressionAttributeValues={":waiting": "waiting", ":sending": "sending", ":due": due, ":err": error,
                                       ":t": token}))

    def finish(self, clinic_id: str, outbox_id: str, *, token: str, state: Literal["refused", "given_up"],
               error: str, now: datetime) -> bool:
        """sending -> refused | given_up: out of the index, kept (with its body) until it expires."""
        return conditional(lambda: self._table.update_item(
            Key=_key(clinic_id, outbox_id),
            UpdateExpression="SET #st = :final, last_error = :err, finished_at = :now "
                             "REMOVE due_pk, due_sk, claim_token, claim_expires_at, next_attempt_at",
            ConditionExpression="claim_token = :t AND #st = :sending",
            ExpressionAttributeNames={"#st": "state"},
            ExpressionAttributeValues={":final": state, ":sending": "sending", ":err": error, ":now": _iso(now),
                                       ":t": token}))
