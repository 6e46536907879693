"""Payment rows, refunds and desk payments (domain/ledger.py), in AppointmentsTable.

Items (pk `CLINIC#{cid}`):
- `PAYMENT#{provider}#{reference}`: one per payment (a link payment is written by the paying
  transaction in repositories/appointments.apply_paid; a desk payment here). `refunded` counts
  every refund not failed, `refund_pending` the part not confirmed yet, `pending_refunds` the ids
  of those refunds.
- `REFUND#{appointment_id}#{refund_id}`: one per refund, listed per appointment with one Query.
  While it is `pending` it is also on the DueByShard index (due_pk `REFUNDWATCH#{shard}`, due_sk
  `{next ask}#{cid}#{appointment_id}#{refund_id}`): the `link-reconcile` job asks the provider about
  refunds whose event has not come (usecases/refunds.reconcile_refunds). The write that settles or
  fails it takes it off the index, so waiting costs no extra write.

Every write is one transaction with the items it keeps consistent, each conditional:
- a refund reserves its amount on its payment row (`refunded <= amount - this refund`, a condition
  on the row's own immutable amount, so concurrent refunds can never give back more than was
  paid) as it is created, before any provider call;
- a refund settles (pending -> succeeded) together with the appointment's `amount_refunded` and
  status, on condition that the appointment's ledger is still at the version the new totals were
  worked out from; it fails (pending -> failed) together with the release of its reservation;
- a desk payment is written with the appointment's `amount_paid` and status, the same way.
A refused condition is reported by name; the use case decides (read again, or answer 409).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from clinicpay.domain.appointment import PaymentStatus
from clinicpay.domain.ledger import Payment, PaymentMethod, Refund
from clinicpay.domain.money import Money
from clinicpay.repositories.appointments import StoredAppointment, appointment_key, version_condition
from clinicpay.repositories.dynamo import conditional, due_page, plain, table, translated_errors, without_none
from clinicpay.repositories.events import event_item
from clinicpay.repositories.shards import key_of, shard_key

TRANSACTION_ATTEMPTS = 3
REFUND_WATCH_KIND = "REFUNDWATCH"
# Younger than this, the provider's answer or event is most likely on its way: the first ask waits.
FIRST_REFUND_ASK = timedelta(minutes=5)
# Then each ask waits longer; the last interval repeats for as long as the refund is pending (a
# Fintoc refund waits for the next payout batch, business days only).
REFUND_ASK_BACKOFF = (timedelta(minutes=10), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6))


def next_refund_ask(asks: int, now: datetime) -> datetime:
    return now + REFUND_ASK_BACKOFF[min(max(asks, 1), len(REFUND_ASK_BACKOFF)) - 1]


def _due_iso(moment: datetime) -> str:
    """Fixed-width UTC, so due_sk values compare as times."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def refund_due_sk(refund: Refund, at: datetime) -> str:
    return f"{_due_iso(at)}#{refund.clinic_id}#{refund.appointment_id}#{refund.refund_id}"


@dataclass(frozen=True)
class WaitingRefund:
    """A pending refund as the reconciliation job reads it from the index."""

    refund: Refund
    due_sk: str
    asks: int


def payment_key(clinic_id: str, provider: str, reference: str) -> dict[str, str]:
    return {"pk": f"CLINIC#{clinic_id}", "sk": f"PAYMENT#{provider}#{reference}"}


def refund_key(clinic_id: str, appointment_id: str, refund_id: str) -> dict[str, str]:
    return {"pk": f"CLINIC#{clinic_id}", "sk": f"REFUND#{appointment_id}#{refund_id}"}


class EventRecord:
    """An event to record (once, per clinic) in the same transaction as the change it causes."""

    def __init__(self, clinic_id: str, provider: str, event_id: str, *, kind: str, occurred_at: datetime,
                 appointment_id: str | None, outcome: str = "applied", reason: str | None = None):
        self.item = event_item(clinic_id, provider, event_id, kind=kind, outcome=outcome, reason=reason,
                               occurred_at=occurred_at, appointment_id=appointment_id)


Reserved = Literal["reserved", "exists", "exceeds", "duplicate"]
Settled = Literal["settled", "not_pending", "moved", "duplicate"]
Failed = Literal["failed", "not_pending", "duplicate"]
Recorded = Literal["recorded", "exists", "exceeds", "moved", "duplicate"]
Reverted = Literal["reverted", "not_succeeded", "moved", "duplicate"]


class LedgerRepository:
    def __init__(self, table_name: str):
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return table(self._table_name)

    # ---------------------------------------------------------------- reads
    def payments_of(self, stored: StoredAppointment) -> list[Payment]:
        """The appointment's payment rows (one BatchGetItem), newest first."""
        appointment = stored.appointment
        keys = set(stored.payment_keys)
        if not keys and appointment.payment is not None:
            # Paid before the ledger kept `payment_keys`: its one payment is on the appointment.
            keys.add(f"{appointment.payment.provider}#{appointment.payment.reference}")
        if not keys:
            return []
        pk = f"CLINIC#{appointment.clinic_id}"
        request: dict[str, Any] = {self._table_name: {
            "Keys": [{"pk": pk, "sk": f"PAYMENT#{k}"} for k in sorted(keys)], "ConsistentRead": True}}
        found: list[Payment] = []
        with translated_errors():
            while request:
                response = self._table.meta.client.batch_get_item(RequestItems=request)
                found += [_payment(plain(i)) for i in response.get("Responses", {}).get(self._table_name, [])]
                request = response.get("UnprocessedKeys") or {}
        return sorted(found, key=lambda p: p.paid_at, reverse=True)

    def get_payment(self, clinic_id: str, provider: str, reference: str) -> Payment | None:
        with translated_errors():
            item = self._table.get_item(Key=payment_key(clinic_id, provider, reference), ConsistentRead=True).get("Item")
        return _payment(plain(item)) if item else None

    def get_refund(self, clinic_id: str, appointment_id: str, refund_id: str) -> Refund | None:
        with translated_errors():
            item = self._table.get_item(Key=refund_key(clinic_id, appointment_id, refund_id),
                                        ConsistentRead=True).get("Item")
        return Refund.model_validate(plain(item)) if item else None

    def get_refunds(self, clinic_id: str, appointment_id: str, refund_ids: list[str]) -> list[Refund]:
        if not refund_ids:
            return []
        request: dict[str, Any] = {self._table_name: {
            "Keys": [refund_key(clinic_id, appointment_id, r) for r in dict.fromkeys(refund_ids)], "ConsistentRead": True}}
        found: list[Refund] = []
        with translated_errors():
            while request:
                response = self._table.meta.client.batch_get_item(RequestItems=request)
                found += [Refund.model_validate(plain(i)) for i in response.get("Responses", {}).get(self._table_name, [])]
                request = response.get("UnprocessedKeys") or {}
        return found

    def list_refunds(self, clinic_id: str, appointment_id: str) -> list[Refund]:
        args: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(f"CLINIC#{clinic_id}")
                                & Key("sk").begins_with(f"REFUND#{appointment_id}#"), "ConsistentRead": True}
        items: list[dict[str, Any]] = []
        with translated_errors():
            while True:
                page = self._table.query(**args)
                items += page["Items"]
                if "LastEvaluatedKey" not in page:
                    break
                args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted((Refund.model_validate(plain(i)) for i in items), key=lambda r: r.created_at)

    # ---------------------------------------------------------------- refunds
    def reserve_refund(self, refund: Refund, payment: Payment, *, again: bool = False,
                       event: EventRecord | None = None) -> Reserved:
        """Create the refund `pending` and reserve its amount on the payment, or nothing.
        `again`: the refund exists, failed because the provider could not be reached (nothing was
        sent), and is tried once more under the same id."""
        if refund.amount.amount > payment.amount.amount:
            return "exceeds"
        writes = [self._refund_put(refund) if not again else {"Update": {
            "TableName": self._table_name, "Key": refund_key(refund.clinic_id, refund.appointment_id, refund.refund_id),
            "UpdateExpression": "SET #s = :pending, updated_at = :now, due_pk = :due_pk, due_sk = :due_sk "
                                "REMOVE failure_code",
            "ConditionExpression": "#s = :failed AND failure_code = :unavailable",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":pending": "pending", ":failed": "failed", ":unavailable": "provider_unavailable",
                                          ":now": _iso(refund.updated_at or refund.created_at),
                                          **{f":{k}": v for k, v in _refund_due(
                                              refund, refund.updated_at or refund.created_at).items()}}}},
            self._reserve(refund, payment, pending=True)]
        if event:
            writes.append(self._event_put(event))
        reason = self._transact(writes)
        return {None: "reserved", 0: "exists", 1: "exceeds", 2: "duplicate"}[reason]  # type: ignore[return-value]

    def settle_refund(self, refund: Refund, stored: StoredAppointment, *, refunded: Money, status: PaymentStatus,
                      provider_refund_id: str | None, at: datetime, event: EventRecord | None = None) -> Settled:
        """pending -> succeeded, with the appointment's new `amount_refunded` and status."""
        writes = [
            self._refund_move(refund, "pending", "succeeded", at, provider_refund_id=provider_refund_id),
            {"Update": {"TableName": self._table_name,
                        "Key": payment_key(refund.clinic_id, refund.provider, refund.payment_reference),
                        "UpdateExpression": "SET refund_pending = refund_pending - :a DELETE pending_refunds :rid",
                        "ExpressionAttributeValues": {":a": refund.amount.amount, ":rid": {refund.refund_id}}}},
            self._ledger_update(stored, {"amount_refunded": refunded.model_dump()}, status),
        ]
        if event:
            writes.append(self._event_put(event))
        reason = self._transact(writes)
        return {None: "settled", 0: "not_pending", 2: "moved", 3: "duplicate"}[reason]  # type: ignore[return-value]

    def fail_refund(self, refund: Refund, *, failure_code: str | None, provider_refund_id: str | None, at: datetime,
                    event: EventRecord | None = None, unnamed: bool = False) -> Failed:
        """pending -> failed, and its reservation released: the amount can be refunded again.
        `unnamed`: only while no provider id is kept on it (one noted since it was read: the provider has it)."""
        writes = [
            self._refund_move(refund, "pending", "failed", at, provider_refund_id=provider_refund_id,
                              failure_code=failure_code, unnamed=unnamed),
            {"Update": {"TableName": self._table_name,
                        "Key": payment_key(refund.clinic_id, refund.provider, refund.payment_reference),
                        "UpdateExpression": "SET refunded = refunded - :a, refund_pending = refund_pending - :a "
                                            "DELETE pending_refunds :rid",
                        "ExpressionAttributeValues": {":a": refund.amount.amount, ":rid": {refund.refund_id}}}},
        ]
        if event:
            writes.append(self._event_put(event))
        reason = self._transact(writes)
        return {None: "failed", 0: "not_pending", 2: "duplicate"}[reason]  # type: ignore[return-value]

    def revert_settled_refund(self, refund: Refund, stored: StoredAppointment, *, refunded: Money,
                              status: PaymentStatus, failure_code: str | None, at: datetime,
                              event: EventRecord | None = None) -> Reverted:
        """succeeded -> failed (the provider failed it after it had succeeded: the money never
        reached the patient), with the payment row's `refunded` and the appointment's totals and
        status given back."""
        writes = [
            self._refund_move(refund, "succeeded", "failed", at, failure_code=failure_code,
                              failed_after_success=True),
            {"Update": {"TableName": self._table_name,
                        "Key": payment_key(refund.clinic_id, refund.provider, refund.payment_reference),
                        "UpdateExpression": "SET refunded = refunded - :a",
                        "ConditionExpression": "refunded >= :a",
                        "ExpressionAttributeValues": {":a": refund.amount.amount}}},
            self._ledger_update(stored, {"amount_refunded": refunded.model_dump()}, status),
        ]
        if event:
            writes.append(self._event_put(event))
        reason = self._transact(writes)
        return {None: "reverted", 0: "not_succeeded", 1: "not_succeeded", 2: "moved",  # type: ignore[return-value]
                3: "duplicate"}[reason]

    def note_provider_refund(self, refund: Refund, provider_refund_id: str, at: datetime) -> None:
        """Remember the provider's id of a refund still pending (its events may not echo ours)."""
        with translated_errors():
            try:
                self._table.update_item(
                    Key=refund_key(refund.clinic_id, refund.appointment_id, refund.refund_id),
                    UpdateExpression="SET provider_refund_id = :prid, updated_at = :now",
                    ConditionExpression="#s = :pending AND attribute_not_exists(provider_refund_id)",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":prid": provider_refund_id, ":now": _iso(at), ":pending": "pending"})
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise

    def record_settled_refund(self, refund: Refund, payment: Payment, stored: StoredAppointment, *,
                              refunded: Money, status: PaymentStatus, event: EventRecord | None = None) -> Recorded:
        """A refund already done (at the desk, or one the provider reports done that we had not
        heard of): created `succeeded`, counted on its payment and on the appointment at once."""
        if refund.amount.amount > payment.amount.amount:
            return "exceeds"
        writes = [self._refund_put(refund), self._reserve(refund, payment, pending=False),
                  self._ledger_update(stored, {"amount_refunded": refunded.model_dump()}, status)]
        if event:
            writes.append(self._event_put(event))
        reason = self._transact(writes)
        return {None: "recorded", 0: "exists", 1: "exceeds", 2: "moved", 3: "duplicate"}[reason]  # type: ignore[return-value]

    # ---------------------------------------------------------------- refunds the provider has not settled
    def due_refunds(self, shard: int, now: datetime, *, limit: int = 100,
                    after: dict[str, Any] | None = None) -> tuple[list[WaitingRefund], dict[str, Any] | None]:
        """One page of the shard's pending refunds due for an ask by `now`, the most overdue first,
        and where the next page starts (None: no more)."""
        items, last = due_page(self._table, key_of(REFUND_WATCH_KIND, shard), f"{_due_iso(now)}~",
                               limit=limit, after=after)
        return [WaitingRefund(Refund.model_validate(item), str(item["due_sk"]), int(item.get("refund_asks", 0)))
                for item in items], last

    def claim_refund_ask(self, waiting: WaitingRefund, now: datetime) -> WaitingRefund | None:
        """Take the refund for this ask: move it to its next ask, on condition nobody moved it since it
        was read and it is still pending (a shard run twice asks once). None when another run took
        it. Should the run die after this, the refund simply comes back at its next time."""
        refund = waiting.refund
        asks = waiting.asks + 1
        due_sk = refund_due_sk(refund, next_refund_ask(asks, now))
        claimed = conditional(lambda: self._table.update_item(
            Key=refund_key(refund.clinic_id, refund.appointment_id, refund.refund_id),
            UpdateExpression="SET due_sk = :next, refund_asks = :asks, last_asked_at = :now",
            ConditionExpression="due_sk = :current AND #s = :pending", ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":next": due_sk, ":asks": asks, ":now": _due_iso(now),
                                       ":current": waiting.due_sk, ":pending": "pending"}))
        return WaitingRefund(refund, due_sk, asks) if claimed else None

    # ---------------------------------------------------------------- desk payments
    def record_desk_payment(self, payment: Payment, stored: StoredAppointment, *, paid: Money,
                            status: PaymentStatus) -> Literal["recorded", "exists", "moved"]:
        """The payment row and the appointment's new `amount_paid` and status, at once; a balance
        fully paid also drops the link's provider session, so the link stops offering it."""
        clinic_id = stored.appointment.clinic_id
        row = without_none({**payment_key(clinic_id, payment.provider, payment.reference),
                            **payment.model_dump(mode="json", exclude_none=True, exclude={"pending_refunds"})})
        removes = ["provider_session"] if paid.amount >= stored.appointment.price.amount else []
        writes = [
            {"Put": {"TableName": self._table_name, "Item": row, "ConditionExpression": "attribute_not_exists(pk)"}},
            self._ledger_update(stored, {"amount_paid": paid.model_dump()}, status,
                                add_payment_key=f"{payment.provider}#{payment.reference}", removes=removes),
        ]
        reason = self._transact(writes)
        return {None: "recorded", 0: "exists", 1: "moved"}[reason]  # type: ignore[return-value]

    # ---------------------------------------------------------------- pieces
    def _refund_move(self, refund: Refund, was: str, becomes: str, at: datetime, *,
                     provider_refund_id: str | None = None, failure_code: str | None = None,
                     failed_after_success: bool = False, unnamed: bool = False) -> dict[str, Any]:
        """The refund's own write in a move `was` -> `becomes` (conditional on `was`, and with
        `unnamed` on no provider id being kept on it); a decided refund leaves the reconciliation index."""
        fields: dict[str, Any] = {"status": becomes, "updated_at": _iso(at), "provider_refund_id": provider_refund_id,
                                  "failure_code": failure_code, "failed_after_success": failed_after_success or None}
        fields = {name: value for name, value in fields.items() if value is not None}
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": value for i, value in enumerate(fields.values())}
        return {"Update": {
            "TableName": self._table_name, "Key": refund_key(refund.clinic_id, refund.appointment_id, refund.refund_id),
            "UpdateExpression": "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields)))
                                + " REMOVE due_pk, due_sk",
            "ConditionExpression": "#f0 = :was" + (" AND attribute_not_exists(provider_refund_id)" if unnamed else ""),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {**values, ":was": was}}}

    def _refund_put(self, refund: Refund) -> dict[str, Any]:
        item = without_none({**refund_key(refund.clinic_id, refund.appointment_id, refund.refund_id),
                             **refund.model_dump(mode="json", exclude_none=True)})
        if refund.status == "pending":
            item.update(_refund_due(refund, refund.created_at))
        return {"Put": {"TableName": self._table_name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}

    def _reserve(self, refund: Refund, payment: Payment, *, pending: bool) -> dict[str, Any]:
        # DynamoDB conditions cannot add, so "refunded + amount <= paid" is written as
        # "refunded <= paid - amount", the payment's amount being fixed for ever.
        limit = payment.amount.amount - refund.amount.amount
        update = "SET refunded = if_not_exists(refunded, :zero) + :a"
        values: dict[str, Any] = {":zero": 0, ":a": refund.amount.amount, ":limit": limit, ":paid": payment.amount.amount,
                                  ":aid": refund.appointment_id}
        if pending:
            update += ", refund_pending = if_not_exists(refund_pending, :zero) + :a ADD pending_refunds :rid"
            values[":rid"] = {refund.refund_id}
        return {"Update": {
            "TableName": self._table_name, "Key": payment_key(refund.clinic_id, refund.provider, refund.payment_reference),
            "UpdateExpression": update, "ExpressionAttributeValues": values,
            "ConditionExpression": "attribute_exists(pk) AND appointment_id = :aid AND amount.amount = :paid "
                                   "AND (attribute_not_exists(refunded) OR refunded <= :limit)"}}

    def _ledger_update(self, stored: StoredAppointment, amounts: dict[str, Any], status: PaymentStatus, *,
                       add_payment_key: str | None = None, removes: list[str] | None = None) -> dict[str, Any]:
        appointment = stored.appointment
        names = {f"#a{i}": name for i, name in enumerate(amounts)}
        values: dict[str, Any] = {f":a{i}": value for i, value in enumerate(amounts.values())}
        values.update({":status": status.value, ":next": stored.ledger_version + 1, ":version": stored.ledger_version})
        update = "SET " + ", ".join([f"#a{i} = :a{i}" for i in range(len(amounts))]
                                    + ["payment_status = :status", "ledger_version = :next"])
        if add_payment_key:
            update += " ADD payment_keys :pk"
            values[":pk"] = {add_payment_key}
        if removes:
            update += " REMOVE " + ", ".join(removes)
        return {"Update": {"TableName": self._table_name,
                           "Key": appointment_key(appointment.clinic_id, appointment.appointment_id),
                           "UpdateExpression": update, "ExpressionAttributeNames": names,
                           "ExpressionAttributeValues": values,
                           "ConditionExpression": f"attribute_exists(pk) AND {version_condition(stored.ledger_version)}"}}

    def _event_put(self, event: EventRecord) -> dict[str, Any]:
        return {"Put": {"TableName": self._table_name, "Item": event.item, "ConditionExpression": "attribute_not_exists(pk)"}}

    def _transact(self, writes: list[dict[str, Any]]) -> int | None:
        """None when the transaction ran; else the index of the first write whose condition failed.
        A transaction that collided with another one on the same items (DynamoDB's
        TransactionConflict: concurrent clicks) is tried again, a few times."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                self._table.meta.client.transact_write_items(TransactItems=writes)
                return None
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                    codes = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                    for index, code in enumerate(codes):
                        if code == "ConditionalCheckFailed":
                            return index
                    if "TransactionConflict" in codes and attempt + 1 < TRANSACTION_ATTEMPTS:
                        time.sleep(0.05 * (attempt + 1))
                        continue
                with translated_errors():
                    raise
        raise AssertionError("unreachable")


def _refund_due(refund: Refund, created: datetime) -> dict[str, str]:
    return {"due_pk": shard_key(REFUND_WATCH_KIND, refund.clinic_id),
            "due_sk": refund_due_sk(refund, created + FIRST_REFUND_ASK)}


def _payment(item: dict[str, Any]) -> Payment:
    return Payment.model_validate({**item, "method": item.get("method") or PaymentMethod.ONLINE.value})


def _iso(moment: datetime) -> str:
    return moment.isoformat()
