"""Appointments, their payment links and provider sessions, and the payment events applied to them.

Every state change here is a conditional write on the state it expects; the transaction that marks
an appointment paid also records the event id and the payment row, so a repeat cannot pay twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from clinicpay.domain.appointment import Appointment, ProviderSession, settled_status
from clinicpay.domain.clinic import Clinic, ClinicSettings, Service
from clinicpay.domain.errors import ConditionFailed, Conflict, NotFound, StorageUnavailable
from clinicpay.domain.money import Money
from clinicpay.notify.builtin import Text
from clinicpay.repositories.dynamo import conditional, plain, table, translated_errors, without_none
from clinicpay.repositories.events import event_item
from clinicpay.repositories.link_watches import watch_item
from clinicpay.repositories.shards import key_of, shard_key

if TYPE_CHECKING:
    from clinicpay.ports.payments import PaymentEvent

# reminder_pk = shard_key(REMINDER_KIND, clinic_id), e.g. "DUE#07" (repositories/shards.py): the
# RemindersDue index has one partition per shard, and the reminders job reads one per invocation.
REMINDER_KIND = "DUE"
REMINDERS_DUE_INDEX = "RemindersDue"
# Statuses a new provider session may be made in: nothing paid yet, or a balance still to collect.
COLLECTING = ("unpaid", "pending", "deposit_paid", "partially_refunded")
# How often a ledger write is tried again when another one moved the ledger in between.
LEDGER_ATTEMPTS = 8


def appointment_key(clinic_id: str, appointment_id: str) -> dict[str, str]:
    return {"pk": f"CLINIC#{clinic_id}", "sk": f"APPT#{appointment_id}"}


def _json(value: Any) -> Any:
    # What DynamoDB stores of a plain dict (dates as text). A model's own `model_dump(mode="json")`
    # is that already and goes in as it is.
    return json.loads(json.dumps(value, default=str))


@dataclass
class ReceiptContext:
    appointment: Appointment
    clinic: Clinic
    settings: ClinicSettings | None
    templates: dict[str, Text]
    link_token: str | None


@dataclass
class StoredAppointment:
    appointment: Appointment
    link_token: str | None
    link_expires_at: datetime | None
    session: ProviderSession | None
    session_attempts: int
    reminders_pending: list[str]
    # Every provider session (checkout session, invoice) ever stored for this appointment: a
    # provider event counts only for one of these, even after a newer session replaced it.
    session_ids: frozenset[str] = field(default_factory=frozenset)
    # "{session_id}:{amount}:{currency}" for every session made with the ledger: what each asked.
    session_asks: frozenset[str] = field(default_factory=frozenset)
    # Bumped by every write that changes the ledger (payments, settled refunds): ledger writes are
    # conditional on the version they were worked out from.
    ledger_version: int = 0
    balance_requested: bool = False  # staff asked the link to collect the balance (deposit paid first)
    payment_keys: frozenset[str] = field(default_factory=frozenset)  # "{provider}#{reference}" of its payment rows
    paid_session_id: str | None = None  # the provider session the last online payment came through
    # The booking confirmation held back while the patient pays (usecases/appointments.py): the
    # entry of `reminders_pending` at which the reminders job sends it instead of a reminder.
    confirmation_due_at: str | None = None
    # A booking held for a card: the entry at which the reminders job reminds the patient who left
    # the card step (once), and the card link's token it sends them back to.
    card_reminder_due_at: str | None = None
    card_request_token: str | None = None

    def owns_session(self, session_id: str | None) -> bool:
        if not session_id:
            return False
        return session_id in self.session_ids or (self.session is not None and self.session.session_id == session_id)

    def asked(self, session_id: str | None, amount: Money) -> bool:
        """Whether `amount` is what we asked in that session (any session of ours may be paid the
        whole price: sessions made before the ledger asked nothing else)."""
        if not self.owns_session(session_id):
            return False
        return ask_key(str(session_id), amount) in self.session_asks or amount == self.appointment.price


def ask_key(session_id: str, amount: Money) -> str:
    return f"{session_id}:{amount.amount}:{amount.currency}"


def version_condition(version: int, placeholder: str = ":version") -> str:
    """`ledger_version` is what it was when the write was worked out (absent on older records)."""
    if version == 0:
        return f"(attribute_not_exists(ledger_version) OR ledger_version = {placeholder})"
    return f"ledger_version = {placeholder}"


@dataclass
class EventAttempt:
    """What a conditional event write came to: applied; a repeat of a recorded event; or refused by
    the appointment's condition, with the appointment as it was (None when there is none)."""

    outcome: Literal["applied", "duplicate", "refused", "already_applied"]
    current: StoredAppointment | None = None


@dataclass
class BookingContext:
    """Everything booking needs about a clinic, read in one BatchGetItem."""

    clinic: Clinic
    settings: ClinicSettings
    service: Service
    templates: dict[str, Text]  # "CLINIC#x/TEMPLATE#..." -> text, for the candidates asked for


class AppointmentRepository:
    def __init__(self, table_name: str):
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return table(self._table_name)

    # ---------------------------------------------------------------- reads
    def _batch_get(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        request: dict[str, Any] = {self._table_name: {"Keys": [{"pk": pk, "sk": sk} for pk, sk in dict.fromkeys(keys)]}}
        with translated_errors():
            while request:
                # The resource's client (de)serializes attribute values for us.
                response = self._table.meta.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table_name, []):
                    found[(item["pk"], item["sk"])] = plain(item)
                request = response.get("UnprocessedKeys") or {}
        return found

    @staticmethod
    def _texts(found: dict[tuple[str, str], dict[str, Any]], template_keys: list[tuple[str, str]]) -> dict[str, Text]:
        return {f"{owner}/{sk}": Text(str(found[(owner, sk)].get("subject", "")), str(found[(owner, sk)]["body"]))
                for owner, sk in template_keys if (owner, sk) in found}

    def booking_context(self, clinic_id: str, service_id: str, template_keys: list[tuple[str, str]]) -> BookingContext:
        """Clinic, settings, service and the clinic's own templates, in one BatchGetItem."""
        pk = f"CLINIC#{clinic_id}"
        found = self._batch_get([(pk, "PROFILE"), (pk, "SETTINGS"), (pk, f"SERVICE#{service_id}"), *template_keys])
        profile, settings = found.get((pk, "PROFILE")), found.get((pk, "SETTINGS"))
        service = found.get((pk, f"SERVICE#{service_id}"))
        if not profile or not settings:
            raise NotFound("No such clinic.")
        if not service:
            raise NotFound("No such service.", code="service_not_found")
        return BookingContext(Clinic.model_validate(profile), ClinicSettings.model_validate(settings),
                              Service.model_validate(service), self._texts(found, template_keys))

    def receipt_context(self, clinic_id: str, appointment_id: str,
                        template_keys: list[tuple[str, str]]) -> ReceiptContext:
        """The paid appointment (with its link token), its clinic, the clinic's settings and
        templates, in one BatchGetItem."""
        pk = f"CLINIC#{clinic_id}"
        found = self._batch_get([(pk, f"APPT#{appointment_id}"), (pk, "PROFILE"), (pk, "SETTINGS"), *template_keys])
        item, profile = found.get((pk, f"APPT#{appointment_id}")), found.get((pk, "PROFILE"))
        if not item or not profile:
            raise NotFound("No such appointment.")
        settings = found.get((pk, "SETTINGS"))
        return ReceiptContext(Appointment.model_validate(item), Clinic.model_validate(profile),
                              ClinicSettings.model_validate(settings) if settings else None,
                              self._texts(found, template_keys), item.get("link_token"))

    def get(self, clinic_id: str, appointment_id: str, *, consistent: bool = False) -> StoredAppointment:
        with translated_errors():
            item = self._table.get_item(Key=appointment_key(clinic_id, appointment_id),
                                        ConsistentRead=consistent).get("Item")
        if not item:
            raise NotFound("No such appointment.")
        return _stored(plain(item))

    def get_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], StoredAppointment]:
        """Appointments by (clinic_id, appointment_id), in BatchGetItem calls; absent ones are left out."""
        found: dict[tuple[str, str], StoredAppointment] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):  # BatchGetItem takes at most 100 keys
            chunk = unique[start:start + 100]
            items = self._batch_get([(f"CLINIC#{cid}", f"APPT#{aid}") for cid, aid in chunk])
            for cid, aid in chunk:
                item = items.get((f"CLINIC#{cid}", f"APPT#{aid}"))
                if item:
                    found[(cid, aid)] = _stored(item)
        return found

    def find_link(self, token: str) -> tuple[str, str] | None:
        with translated_errors():
            item = self._table.get_item(Key={"pk": f"LINK#{token}", "sk": "LINK"}).get("Item")
        return (str(item["clinic_id"]), str(item["appointment_id"])) if item else None

    def read_for_clinic(self, clinic_id: str, payment_status: str | None,
                        max_read: int) -> tuple[list[StoredAppointment], bool]:
        """The clinic's appointments (one partition, never another clinic's), with `payment_status`
        when given; at most `max_read` items evaluated. True when that was all of them."""
        args: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(f"CLINIC#{clinic_id}")
                                & Key("sk").begins_with("APPT#")}
        if payment_status:
            args["FilterExpression"] = Attr("payment_status").eq(payment_status)
        found: list[StoredAppointment] = []
        read = 0
        with translated_errors():
            while True:
                page = self._table.query(**args, Limit=max_read - read)
                read += page.get("ScannedCount", len(page["Items"]))
                found += [_stored(plain(i)) for i in page["Items"]]
                if "LastEvaluatedKey" not in page:
                    return found, True
                if read >= max_read:
                    return found, False
                args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def due_reminders(self, shard: int, now_iso: str, limit: int = 100,
                      after: dict[str, Any] | None = None) -> tuple[list[StoredAppointment], dict[str, Any] | None]:
        """One page of the shard's reminders due by `now_iso`, oldest first, and where the next page
        starts (None: no more). Only what is due is read (the sparse RemindersDue index)."""
        args: dict[str, Any] = {"IndexName": REMINDERS_DUE_INDEX, "Limit": limit,
                                "KeyConditionExpression": Key("reminder_pk").eq(key_of(REMINDER_KIND, shard))
                                & Key("reminder_due_at").lte(now_iso)}
        if after:
            args["ExclusiveStartKey"] = after
        with translated_errors():
            page = self._table.query(**args)
        return [_stored(plain(i)) for i in page["Items"]], page.get("LastEvaluatedKey")

    # ---------------------------------------------------------------- writes
    def create(self, appointment: Appointment, *, link_token: str | None, link_expires_at: datetime | None,
               reminders_pending: list[str], patient_write: PatientWrite = "replace",
               confirmation_due_at: str | None = None, card_reminder_due_at: str | None = None,
               card_request_token: str | None = None) -> None:
        """Appointment, its link and the patient record, all or nothing. `patient_write`: "replace"
        (staff: the patient's latest details), "create" (a public booking's fresh patient: a new
        record, never an existing one) or "fill" (a patient proved by a token: only details the
        record does not have yet)."""
        item = without_none({
            **appointment_key(appointment.clinic_id, appointment.appointment_id),
            # balance_due is worked out from the amounts when read, never stored.
            **appointment.model_dump(mode="json", exclude_none=True, exclude={"balance_due"}),
            "ledger_version": 0,
            "link_token": link_token,
            "link_expires_at": link_expires_at.isoformat() if link_expires_at else None,
            "session_attempts": 0,
            "reminders_pending": reminders_pending or None,
            "reminder_pk": shard_key(REMINDER_KIND, appointment.clinic_id) if reminders_pending else None,
            "reminder_due_at": reminders_pending[0] if reminders_pending else None,
            "confirmation_due_at": confirmation_due_at,
            "card_reminder_due_at": card_reminder_due_at,
            "card_request_token": card_request_token,
        })
        writes: list[dict[str, Any]] = [{"Put": {"TableName": self._table_name, "Item": item,
                                                 "ConditionExpression": "attribute_not_exists(pk)"}}]
        if link_token:
            writes.append({"Put": {"TableName": self._table_name, "ConditionExpression": "attribute_not_exists(pk)",
                                   "Item": {"pk": f"LINK#{link_token}", "sk": "LINK", "clinic_id": appointment.clinic_id,
                                            "appointment_id": appointment.appointment_id}}})
        writes.append(_PATIENT_WRITES[patient_write](self._table_name, appointment))
        with translated_errors(Conflict, "An appointment with that id already exists."):
            self._table.meta.client.transact_write_items(TransactItems=writes)

    def save_session(self, clinic_id: str, appointment_id: str, session: ProviderSession, expected_attempts: int,
                     *, expected_version: int = 0, now: datetime | None = None) -> bool:
        """Store a fresh provider session unless another click stored one first, or the ledger moved
        since the session's terms were worked out (returns False then).

        The session's watch (repositories/link_watches.py) is written in the same transaction, one
        call as before: should the provider's webhook never come, the link-reconcile job asks."""
        values: dict[str, Any] = {":s": session.model_dump(mode="json", exclude_none=True),
                                  ":next": expected_attempts + 1, ":expected": expected_attempts,
                                  ":sid": {session.session_id}, ":version": expected_version}
        statuses = ", ".join(f":st{i}" for i in range(len(COLLECTING)))
        values.update({f":st{i}": status for i, status in enumerate(COLLECTING)})
        values[":cancelled"] = "cancelled"
        update = "SET provider_session = :s, session_attempts = :next ADD session_ids :sid"
        if session.amount is not None:
            update += ", session_asks :ask"
            values[":ask"] = {ask_key(session.session_id, session.amount)}
        watch = watch_item(clinic_id, appointment_id, session, now or datetime.now(UTC))
        writes = [
            {"Update": {"TableName": self._table_name, "Key": appointment_key(clinic_id, appointment_id),
                        "UpdateExpression": update, "ExpressionAttributeValues": values,
                        # A cancel that landed since the click read the appointment: no checkout is kept.
                        "ConditionExpression": f"session_attempts = :expected AND payment_status IN ({statuses}) "
                                               f"AND {version_condition(expected_version)} "
                                               "AND (attribute_not_exists(#booking) OR #booking <> :cancelled)",
                        "ExpressionAttributeNames": {"#booking": "status"}}},
            {"Put": {"TableName": self._table_name, "Item": watch}},
        ]
        return _transacted(lambda: self._table.meta.client.transact_write_items(TransactItems=writes))

    def request_balance(self, clinic_id: str, appointment_id: str, expected_version: int) -> bool:
        """The link collects the balance from now on, and never expires (staff sent it)."""
        return conditional(lambda: self._table.update_item(
            Key=appointment_key(clinic_id, appointment_id),
            UpdateExpression="SET balance_requested = :yes REMOVE link_expires_at",
            ConditionExpression=f"attribute_exists(pk) AND {version_condition(expected_version)}",
            ExpressionAttributeValues={":yes": True, ":version": expected_version}))

    def cancel(self, clinic_id: str, appointment_id: str, at: datetime, reason: str | None) -> bool:
        """Mark the appointment cancelled and take it off the reminders index, once: False when it
        was already cancelled (the first cancel's time and reason stay). NotFound when there is none."""
        values: dict[str, Any] = {":cancelled": "cancelled", ":at": at.isoformat()}
        update = "SET #s = :cancelled, cancelled_at = :at"
        if reason:
            update += ", cancel_reason = :reason"
            values[":reason"] = reason
        done = conditional(lambda: self._table.update_item(
            Key=appointment_key(clinic_id, appointment_id),
            UpdateExpression=update + " REMOVE reminder_pk, reminder_due_at, reminders_pending",
            ConditionExpression="attribute_exists(pk) AND #s <> :cancelled",
            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues=values))
        if not done:
            self.get(clinic_id, appointment_id, consistent=True)  # NotFound when there is no such appointment
        return done

    def claim_reminder(self, clinic_id: str, appointment_id: str, due_at: str, remaining: list[str]) -> bool:
        """Move past the reminder due at `due_at`; only one runner wins, so each is sent once."""
        if remaining:
            update = "SET reminder_due_at = :next, reminders_pending = :rest"
            values: dict[str, Any] = {":due": due_at, ":next": remaining[0], ":rest": remaining}
        else:
            update = "REMOVE reminder_due_at, reminder_pk, reminders_pending"
            values = {":due": due_at}
        return conditional(lambda: self._table.update_item(
            Key=appointment_key(clinic_id, appointment_id), UpdateExpression=update,
            ConditionExpression="reminder_due_at = :due", ExpressionAttributeValues=values))

    def release_reminder(self, clinic_id: str, appointment_id: str, due_at: str, pending: list[str]) -> None:
        """Undo a claim whose message could not be sent, so the next run tries again."""
        with translated_errors():
            self._table.update_item(Key=appointment_key(clinic_id, appointment_id),
                                    UpdateExpression="SET reminder_due_at = :due, reminder_pk = :p, reminders_pending = :all",
                                    ExpressionAttributeValues={":due": due_at, ":p": shard_key(REMINDER_KIND, clinic_id),
                                                               ":all": pending})

    # ---------------------------------------------------------------- payment events
    # An event moves an appointment only if it is about a provider session we stored on it (its id
    # in `session_ids`, or the current `provider_session`) and, where the event names an amount, for
    # what that session asked (`session_asks`; the whole price is always a fair ask). Both are part
    # of the write's condition, so proving ownership costs no extra read; a refused write hands back
    # the appointment as it was (ALL_OLD) for the use case to say why.
    _OURS = "(contains(session_ids, :sid) OR provider_session.session_id = :sid)"
    _ASKED = f"(contains(session_asks, :ask) OR ({_OURS} AND price.amount = :amount AND price.currency = :currency))"

    def record_event(self, clinic_id: str, event: PaymentEvent, outcome: str, reason: str | None = None) -> bool:
        """Remember an event id for this clinic; False when it was already recorded (a repeat delivery)."""
        return conditional(lambda: self._table.put_item(Item=_event_item(clinic_id, event, outcome, reason),
                                                        ConditionExpression="attribute_not_exists(pk)"))

    def apply_paid(self, clinic_id: str, event: PaymentEvent) -> EventAttempt:
        """One transaction: event recorded, payment row written (once per provider payment), the
        appointment's ledger and status moved, on condition that the appointment exists and holds
        the event's session for the event's amount.

        The session made at the click carries the ledger as it will be once paid; when the ledger
        has not moved since (the usual case) the transaction copies it, with no read first. When it
        has (a desk payment, a settled refund, or a payment on an older session), the totals are
        worked out again from the appointment the refusal handed back and the write is retried on
        that version. Outcomes: applied, duplicate (the event), already_applied (this payment was
        applied under another event), refused (not ours: `current` says why)."""
        assert event.appointment_id and event.payment_reference and event.session_id and event.amount
        payment = without_none({
            "provider": event.provider, "reference": event.payment_reference, "amount": event.amount.model_dump(),
            "fee": event.fee.model_dump() if event.fee else None, "paid_at": event.occurred_at.isoformat(),
            # The session it came through: link reconciliation closes that session's watch unasked.
            "session_id": event.session_id})
        key = appointment_key(clinic_id, event.appointment_id)
        values: dict[str, Any] = {":payment": payment, ":t": event.occurred_at.isoformat(), ":sid": event.session_id,
                                  ":ask": ask_key(event.session_id, event.amount),
                                  ":pk": {f"{event.provider}#{event.payment_reference}"}}
        tail = ", payment = :payment, last_event_at = :t ADD payment_keys :pk " \
               "REMOVE reminder_pk, reminder_due_at, reminders_pending"
        appointment_write: dict[str, Any] = {
            "TableName": self._table_name, "Key": key,
            "UpdateExpression": "SET payment_status = provider_session.status_after, "
                                "amount_paid = provider_session.paid_after, ledger_version = ledger_version + :one" + tail,
            "ConditionExpression": "attribute_exists(pk) AND provider_session.session_id = :sid "
                                   "AND contains(session_asks, :ask) AND provider_session.ledger_version = ledger_version",
            "ExpressionAttributeValues": {**values, ":one": 1}, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        writes = [
            {"Put": {"TableName": self._table_name, "Item": _event_item(clinic_id, event, "applied"),
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": self._table_name, "ConditionExpression": "attribute_not_exists(pk)",
                     "Item": {"pk": f"CLINIC#{clinic_id}", "sk": f"PAYMENT#{event.provider}#{event.payment_reference}",
                              "appointment_id": event.appointment_id, "method": "online", "refunded": 0,
                              "refund_pending": 0, **payment}}},
            {"Update": appointment_write},
        ]
        for _ in range(LEDGER_ATTEMPTS):
            attempt = self._attempt(writes, appointment_at=2)
            current = attempt.current
            if attempt.outcome != "refused" or current is None or not current.asked(event.session_id, event.amount):
                return attempt
            # Ours and for what we asked: the ledger moved since the session was made. Work it out
            # from the appointment as it is and write on that version.
            appointment = current.appointment
            paid = Money(amount=appointment.amount_paid.amount + event.amount.amount, currency=appointment.price.currency)
            status = settled_status(appointment.price, paid, appointment.amount_refunded, appointment.payment_status)
            explicit = {**values, ":status": status.value, ":paid": paid.model_dump(), ":amount": event.amount.amount,
                        ":currency": event.amount.currency, ":version": current.ledger_version,
                        ":next": current.ledger_version + 1}
            writes[2] = {"Update": {
                **appointment_write, "ExpressionAttributeValues": explicit,
                "UpdateExpression": "SET payment_status = :status, amount_paid = :paid, ledger_version = :next" + tail,
                "ConditionExpression": f"attribute_exists(pk) AND {self._ASKED} AND {version_condition(current.ledger_version)}"}}
        raise StorageUnavailable("The appointment kept changing; try again.")

    def apply_status(self, clinic_id: str, event: PaymentEvent, *, to_status: str | None,
                     clear_session_id: str | None = None) -> EventAttempt:
        """A non-final event (pending, failed, expired), recorded and applied in one transaction:
        only for a session we stored, when it is newer than the last event applied and no money
        has come in yet, so an old, late or foreign event never undoes a newer state.
        `clear_session_id` also drops the current provider session if it is still that one."""
        assert event.appointment_id and event.session_id
        sets = ["last_event_at = :t", "last_event = :kind"]
        values: dict[str, Any] = {":t": event.occurred_at.isoformat(), ":kind": event.kind, ":unpaid": "unpaid",
                                  ":pending": "pending", ":sid": event.session_id}
        removes = []
        if to_status:
            sets.append("payment_status = :status")
            values[":status"] = to_status
        condition = ("attribute_exists(pk) AND payment_status IN (:unpaid, :pending) "
                     "AND (attribute_not_exists(last_event_at) OR last_event_at <= :t)")
        if event.amount:
            condition += f" AND {self._ASKED}"
            values.update({":ask": ask_key(event.session_id, event.amount), ":amount": event.amount.amount,
                           ":currency": event.amount.currency})
        else:
            condition += f" AND {self._OURS}"
        if clear_session_id:
            removes.append("provider_session")
            condition += " AND provider_session.session_id = :clear"
            values[":clear"] = clear_session_id
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        writes = [
            {"Put": {"TableName": self._table_name, "Item": _event_item(clinic_id, event, "applied"),
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": {"TableName": self._table_name, "Key": appointment_key(clinic_id, event.appointment_id),
                        "UpdateExpression": expression, "ConditionExpression": condition,
                        "ExpressionAttributeValues": values, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
        ]
        return self._attempt(writes, appointment_at=1)

    # ---------------------------------------------------------------- refunds and disputes of a payment
    # A card charge that paid the appointment (tokenize) is refunded through its charge; the
    # appointment's ledger follows here.
    def apply_refund(self, clinic_id: str, appointment_id: str, *, payment_reference: str, refund_id: str,
                     amount: Money) -> bool:
        """Count a refund of the appointment's payment once (its id joins `refund_ids`):
        `amount_refunded` grows and `payment_status` becomes partially_refunded or refunded. False
        when it was counted already, or the appointment's payment is another one (or would be
        refunded beyond what was paid: never)."""
        return self._move_refunded(clinic_id, appointment_id, payment_reference, refund_id, amount, +1)

    def revert_refund(self, clinic_id: str, appointment_id: str, *, payment_reference: str, refund_id: str,
                      amount: Money) -> bool:
        """Take back a refund counted before that failed afterwards (a card refund can)."""
        return self._move_refunded(clinic_id, appointment_id, payment_reference, refund_id, amount, -1)

    def _move_refunded(self, clinic_id: str, appointment_id: str, reference: str, refund_id: str, amount: Money,
                       sign: int) -> bool:
        """The appointment's ledger (`amount_refunded`, status from domain/ledger.settled_status),
        moved once per refund id (`refund_ids`) and never beyond what was paid, by a write
        conditional on `ledger_version` like every other ledger write (usecases/refunds.py's
        included), so the two never overwrite each other; a write that lost a race reads again.
        A card charge's refunds are already reserved on the charge (repositories/cards.py); this is
        the appointment's view of them."""
        key = appointment_key(clinic_id, appointment_id)
        for _ in range(LEDGER_ATTEMPTS):
            with translated_errors():
                item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
            if not item:
                return False
            current = _stored(plain(item))
            appointment = current.appointment
            payment = appointment.payment
            counted = refund_id in set(item.get("refund_ids") or ())
            if payment is None or payment.reference != reference or amount.currency != appointment.amount_paid.currency \
                    or counted == (sign > 0):
                return False  # another payment, or counted already (taken back already)
            refunded = appointment.amount_refunded.amount + sign * amount.amount
            if not 0 <= refunded <= appointment.amount_paid.amount:
                return False  # never beyond what was paid
            total = Money(amount=refunded, currency=amount.currency)
            status = settled_status(appointment.price, appointment.amount_paid, total, appointment.payment_status)
            change = "ADD refund_ids :ids" if sign > 0 else "DELETE refund_ids :ids"
            moved = conditional(partial(
                self._table.update_item, Key=key,
                UpdateExpression=f"SET amount_refunded = :money, payment_status = :status, ledger_version = :next {change}",
                ConditionExpression=f"#pay.#ref = :ref AND {version_condition(current.ledger_version)}",
                ExpressionAttributeNames={"#pay": "payment", "#ref": "reference"},
                ExpressionAttributeValues={":money": total.model_dump(), ":status": status.value, ":ids": {refund_id},
                                           ":ref": reference, ":version": current.ledger_version,
                                           ":next": current.ledger_version + 1}))
            if moved:
                return True
        raise StorageUnavailable("The appointment kept changing; try again.")

    def record_dispute(self, clinic_id: str, appointment_id: str, *, payment_reference: str,
                       dispute: dict[str, Any]) -> bool:
        """Show the newest word on a dispute of the appointment's own payment."""
        return conditional(lambda: self._table.update_item(
            Key=appointment_key(clinic_id, appointment_id), UpdateExpression="SET dispute = :d",
            ConditionExpression="#pay.#ref = :ref AND (attribute_not_exists(dispute) OR "
                                "dispute.dispute_id <> :id OR dispute.updated_at <= :at)",
            ExpressionAttributeNames={"#pay": "payment", "#ref": "reference"},
            ExpressionAttributeValues={":d": _json(dispute), ":ref": payment_reference, ":id": dispute["dispute_id"],
                                       ":at": dispute["updated_at"]}))

    def _attempt(self, writes: list[dict[str, Any]], *, appointment_at: int) -> EventAttempt:
        """Run an event transaction whose first write records the event; `appointment_at` is the
        index of the appointment's write; any other write refused is the payment row (applied before)."""
        try:
            self._table.meta.client.transact_write_items(TransactItems=writes)
            return EventAttempt("applied")
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                with translated_errors():
                    raise
            reasons = error.response.get("CancellationReasons", [])
            codes = [r.get("Code") for r in reasons]
            if codes and codes[0] == "ConditionalCheckFailed":
                return EventAttempt("duplicate")
            refused = [i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"]
            if any(i != appointment_at for i in refused):
                return EventAttempt("already_applied")
            if appointment_at in refused:
                old = reasons[appointment_at].get("Item")
                return EventAttempt("refused", _stored(plain(_deserialized(old))) if old else None)
            with translated_errors():
                raise


_DESERIALIZER = TypeDeserializer()


def _transacted(write: Any) -> bool:
    """Run a transaction; False when a condition refused it (nothing was written)."""
    try:
        with translated_errors():
            write()
        return True
    except ConditionFailed:
        return False


def _deserialized(item: dict[str, Any]) -> dict[str, Any]:
    # Cancellation reasons come back in DynamoDB's wire format ({"S": ...}), even through the
    # resource's client, which translates only successful answers.
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def _patient_fields(appointment: Appointment) -> dict[str, Any]:
    patient = appointment.patient
    return {"name": patient.name, "email": patient.email, "phone": patient.phone,
            "locale": patient.locale.value if patient.locale else None}


def _patient_key(appointment: Appointment) -> dict[str, str]:
    return {"pk": f"CLINIC#{appointment.clinic_id}", "sk": f"PATIENT#{appointment.patient.id}"}


def _patient_update(table_name: str, appointment: Appointment) -> dict[str, Any]:
    # Staff bookings: the patient's latest contact details travel in the booking's own transaction.
    fields = _patient_fields(appointment)
    return {"Update": {
        "TableName": table_name, "Key": _patient_key(appointment),
        "UpdateExpression": "SET #n = :n, email = :e, phone = :p, locale = :l, updated_at = :u, patient_id = :id",
        "ExpressionAttributeNames": {"#n": "name"},
        "ExpressionAttributeValues": {":n": fields["name"], ":e": fields["email"], ":p": fields["phone"],
                                      ":l": fields["locale"], ":u": appointment.created_at.isoformat(),
                                      ":id": appointment.patient.id}}}


def _patient_create(table_name: str, appointment: Appointment) -> dict[str, Any]:
    # A public booking without proof: a patient record of its own, minted now; never an existing one.
    return {"Put": {"TableName": table_name, "ConditionExpression": "attribute_not_exists(pk)", "Item": without_none({
        **_patient_key(appointment), **_patient_fields(appointment), "patient_id": appointment.patient.id,
        "created_at": appointment.created_at.isoformat(), "source": "online_booking"})}}


def _patient_fill(table_name: str, appointment: Appointment) -> dict[str, Any]:
    # A patient proved by the clinic's token: what we already hold is never replaced.
    fields = {k: v for k, v in _patient_fields(appointment).items() if v is not None}
    names = {f"#f{i}": name for i, name in enumerate(fields)}
    values = {f":f{i}": value for i, value in enumerate(fields.values())}
    sets = [f"{alias} = if_not_exists({alias}, :f{i})" for i, alias in enumerate(names)]
    update: dict[str, Any] = {
        "TableName": table_name, "Key": _patient_key(appointment),
        "UpdateExpression": "SET " + ", ".join([*sets, "patient_id = :id"]),
        "ExpressionAttributeValues": {**values, ":id": appointment.patient.id}}
    if names:
        update["ExpressionAttributeNames"] = names
    return {"Update": update}


PatientWrite = Literal["replace", "create", "fill"]
_PATIENT_WRITES = {"replace": _patient_update, "create": _patient_create, "fill": _patient_fill}


def _event_item(clinic_id: str, event: PaymentEvent, outcome: str, reason: str | None = None) -> dict[str, Any]:
    return event_item(clinic_id, event.provider, event.event_id, kind=event.kind, outcome=outcome, reason=reason,
                      occurred_at=event.occurred_at, appointment_id=event.appointment_id,
                      session_id=event.session_id)


def _stored(item: dict[str, Any]) -> StoredAppointment:
    session = item.get("provider_session")
    expires = item.get("link_expires_at")
    return StoredAppointment(
        appointment=Appointment.model_validate(item),
        link_token=item.get("link_token"),
        link_expires_at=datetime.fromisoformat(expires) if expires else None,
        session=ProviderSession.model_validate(session) if session else None,
        session_attempts=int(item.get("session_attempts", 0)),
        reminders_pending=list(item.get("reminders_pending") or []),
        session_ids=frozenset(str(s) for s in item.get("session_ids") or ()),
        session_asks=frozenset(str(s) for s in item.get("session_asks") or ()),
        ledger_version=int(item.get("ledger_version", 0)),
        balance_requested=bool(item.get("balance_requested")),
        payment_keys=frozenset(str(s) for s in item.get("payment_keys") or ()),
        paid_session_id=(item.get("payment") or {}).get("session_id"),
        confirmation_due_at=item.get("confirmation_due_at"),
        card_reminder_due_at=item.get("card_reminder_due_at"),
        card_request_token=item.get("card_request_token"),
    )
