"""CardsTable (only `tokenize` may read it) and the two appointment writes cards make.

One partition per patient, `CLINIC#{cid}#PATIENT#{pid}`:
    CARD#{card_id}          a card: display data, the processor's token, its consent
    DEFAULT                 which card is the default (one item, so two saves cannot both win)
    CUSTOMER#{provider}     the processor's customer for this patient
    SETUP#{setup_ref}       one attempt to save a card, with the consent given before it
    CHARGE#{charge_id}      one off-session charge
    APPTCHARGE#{aid}#{why}  at most one live charge per appointment and reason
gsi1 (ByProviderRef): `REF#{provider}#{id}` for SetupIntents, PaymentIntents and card tokens.
Processor events are remembered per clinic at `EVENT#{clinic_id}#{provider}#{event_id}` / `EVENT`
(repositories/events.py): one Stripe account may serve two clinics and deliver every event to both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from clinicpay.domain.card import Card, CardSetup, Charge, SetupStatus
from clinicpay.domain.errors import ConditionFailed
from clinicpay.ports import ChargeResult
from clinicpay.repositories.dynamo import plain, table, translated_errors, without_none
from clinicpay.repositories.events import EVENT_SK, event_item, event_pk

REF_INDEX = "ByProviderRef"


def patient_pk(clinic_id: str, patient_id: str) -> str:
    return f"CLINIC#{clinic_id}#PATIENT#{patient_id}"


def ref_key(provider: str, reference: str) -> str:
    return f"REF#{provider}#{reference}"


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _conditional(call: Any, **kwargs: Any) -> bool:
    """Run a conditional write; False when its condition did not hold."""
    try:
        call(**kwargs)
        return True
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        with translated_errors():
            raise


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class CardRepository:
    def __init__(self, table_name: str):
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return table(self._table_name)

    def _query(self, pk: str, prefix: str) -> Iterator[dict[str, Any]]:
        args: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(pk) & Key("sk").begins_with(prefix),
                                "ConsistentRead": True}
        with translated_errors():
            while True:
                page = self._table.query(**args)
                yield from (plain(item) for item in page["Items"])
                if "LastEvaluatedKey" not in page:
                    return
                args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        with translated_errors():
            item = self._table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def _by_ref(self, provider: str, reference: str, kind: str) -> dict[str, Any] | None:
        with translated_errors():
            items = self._table.query(IndexName=REF_INDEX, KeyConditionExpression=Key("gsi1pk").eq(
                ref_key(provider, reference)) & Key("gsi1sk").eq(kind))["Items"]
        return plain(items[0]) if items else None

    # ---------------------------------------------------------------- cards
    def list_cards(self, clinic_id: str, patient_id: str) -> tuple[list[Card], str | None]:
        """Active cards, oldest first, and the default card's id."""
        pk = patient_pk(clinic_id, patient_id)
        cards = [Card.model_validate(item) for item in self._query(pk, "CARD#") if item.get("status") == "active"]
        default = self._get(pk, "DEFAULT")
        return sorted(cards, key=lambda c: c.created_at), (str(default["card_id"]) if default else None)

    def get_card(self, clinic_id: str, patient_id: str, card_id: str, *, removing_too: bool = False) -> Card | None:
        item = self._get(patient_pk(clinic_id, patient_id), f"CARD#{card_id}")
        wanted = ("active", "removing") if removing_too else ("active",)
        return Card.model_validate(item) if item and item.get("status") in wanted else None

    def find_card_by_token(self, provider: str, token: str) -> Card | None:
        item = self._by_ref(provider, token, "CARD")
        return Card.model_validate(item) if item and item.get("status") == "active" else None

    def put_card(self, card: Card) -> bool:
        """Save a card once; False when that card id is already stored (a repeated event)."""
        item = {"pk": patient_pk(card.clinic_id, card.patient_id), "sk": f"CARD#{card.card_id}",
                **_json(card.model_dump(mode="json", exclude_none=True)), "status": "active",
                "gsi1pk": ref_key(card.provider, card.token), "gsi1sk": "CARD"}
        return _conditional(self._table.put_item, Item=item, ConditionExpression="attribute_not_exists(pk)")

    def claim_default(self, clinic_id: str, patient_id: str, card_id: str) -> bool:
        """Make `card_id` the default only when there is none: the first saved card wins."""
        return _conditional(self._table.put_item,
                            Item={"pk": patient_pk(clinic_id, patient_id), "sk": "DEFAULT", "card_id": card_id},
                            ConditionExpression="attribute_not_exists(pk)")

    def set_default(self, clinic_id: str, patient_id: str, card_id: str) -> None:
        pk = patient_pk(clinic_id, patient_id)
        with translated_errors(ConditionFailed, "That card was removed meanwhile."):
            self._table.meta.client.transact_write_items(TransactItems=[
                {"ConditionCheck": {"TableName": self._table_name, "Key": {"pk": pk, "sk": f"CARD#{card_id}"},
                                    "ConditionExpression": "#s = :active",
                                    "ExpressionAttributeNames": {"#s": "status"},
                                    "ExpressionAttributeValues": {":active": "active"}}},
                {"Put": {"TableName": self._table_name, "Item": {"pk": pk, "sk": "DEFAULT", "card_id": card_id}}},
            ])

    def begin_removal(self, card: Card) -> bool:
        """active -> removing: out of every list and unusable at once, token kept until the processor
        has detached it (a failure there puts it back with `abort_removal`)."""
        return _conditional(
            self._table.update_item, Key={"pk": patient_pk(card.clinic_id, card.patient_id), "sk": f"CARD#{card.card_id}"},
            UpdateExpression="SET #s = :removing", ConditionExpression="#s IN (:active, :removing)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":removing": "removing", ":active": "active"})

    def abort_removal(self, card: Card) -> None:
        _conditional(
            self._table.update_item, Key={"pk": patient_pk(card.clinic_id, card.patient_id), "sk": f"CARD#{card.card_id}"},
            UpdateExpression="SET #s = :active", ConditionExpression="#s = :removing",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":removing": "removing", ":active": "active"})

    def remove_card(self, card: Card, *, was_default: bool, new_default: str | None, removed_at: datetime) -> None:
        """Mark the card removed and forget its token; if it was the default, hand the role on.

        The consent stays on the removed item: it is the record of what the patient agreed to."""
        pk = patient_pk(card.clinic_id, card.patient_id)
        writes: list[dict[str, Any]] = [{"Update": {
            "TableName": self._table_name, "Key": {"pk": pk, "sk": f"CARD#{card.card_id}"},
            "UpdateExpression": "SET #s = :removed, removed_at = :at REMOVE #t, gsi1pk, gsi1sk",
            "ConditionExpression": "#s IN (:active, :removing)",
            "ExpressionAttributeNames": {"#s": "status", "#t": "token"},
            "ExpressionAttributeValues": {":removed": "removed", ":active": "active", ":removing": "removing",
                                          ":at": removed_at.isoformat()}}}]
        if was_default:
            guard = {"ConditionExpression": "card_id = :old", "ExpressionAttributeValues": {":old": card.card_id}}
            if new_default:
                writes.append({"Put": {"TableName": self._table_name,
                                       "Item": {"pk": pk, "sk": "DEFAULT", "card_id": new_default}, **guard}})
            else:
                writes.append({"Delete": {"TableName": self._table_name, "Key": {"pk": pk, "sk": "DEFAULT"}, **guard}})
        with translated_errors(ConditionFailed, "The card changed meanwhile; try again."):
            self._table.meta.client.transact_write_items(TransactItems=writes)

    # ---------------------------------------------------------------- processor customers
    def customer_ref(self, clinic_id: str, patient_id: str, provider: str) -> str | None:
        item = self._get(patient_pk(clinic_id, patient_id), f"CUSTOMER#{provider}")
        return str(item["customer_ref"]) if item else None

    def keep_customer_ref(self, clinic_id: str, patient_id: str, provider: str, customer_ref: str) -> str:
        """Store the customer unless another request stored one first; returns the one kept."""
        pk = patient_pk(clinic_id, patient_id)
        if _conditional(self._table.put_item, Item={"pk": pk, "sk": f"CUSTOMER#{provider}",
                                                    "customer_ref": customer_ref},
                        ConditionExpression="attribute_not_exists(pk)"):
            return customer_ref
        return self.customer_ref(clinic_id, patient_id, provider) or customer_ref

    # ---------------------------------------------------------------- setups
    def put_setup(self, setup: CardSetup) -> None:
        item = {"pk": patient_pk(setup.clinic_id, setup.patient_id), "sk": f"SETUP#{setup.setup_ref}",
                **_json(setup.model_dump(mode="json", exclude_none=True))}
        with translated_errors():
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")

    def attach_session(self, setup: CardSetup, session_id: str, setup_id: str | None) -> None:
        names = {"#s": "status"}
        values: dict[str, Any] = {":session": session_id, ":open": SetupStatus.OPEN.value}
        update = "SET session_id = :session"
        if setup_id:
            update += ", setup_id = :setup, gsi1pk = :ref, gsi1sk = :kind"
            values.update({":setup": setup_id, ":ref": ref_key(setup.provider, setup_id), ":kind": "SETUP"})
        _conditional(self._table.update_item,
                     Key={"pk": patient_pk(setup.clinic_id, setup.patient_id), "sk": f"SETUP#{setup.setup_ref}"},
                     UpdateExpression=update, ConditionExpression="#s = :open", ExpressionAttributeNames=names,
                     ExpressionAttributeValues=values)

    def get_setup(self, clinic_id: str, patient_id: str, setup_ref: str) -> CardSetup | None:
        item = self._get(patient_pk(clinic_id, patient_id), f"SETUP#{setup_ref}")
        return CardSetup.model_validate(item) if item else None

    def find_setup(self, provider: str, setup_id: str) -> CardSetup | None:
        item = self._by_ref(provider, setup_id, "SETUP")
        return CardSetup.model_validate(item) if item else None

    def finish_setup(self, setup: CardSetup, status: SetupStatus, at: datetime) -> bool:
        """open -> completed | failed, once."""
        return _conditional(
            self._table.update_item,
            Key={"pk": patient_pk(setup.clinic_id, setup.patient_id), "sk": f"SETUP#{setup.setup_ref}"},
            UpdateExpression="SET #s = :to, finished_at = :at", ConditionExpression="#s = :open",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":to": status.value, ":open": SetupStatus.OPEN.value, ":at": at.isoformat()})

    # ---------------------------------------------------------------- charges
    def create_charge(self, charge: Charge) -> bool:
        """False when a charge with this id exists (a retried request with the same Idempotency-Key)."""
        item = {"pk": patient_pk(charge.clinic_id, charge.patient_id), "sk": f"CHARGE#{charge.charge_id}",
                **_json(charge.model_dump(mode="json", exclude_none=True))}
        return _conditional(self._table.put_item, Item=item, ConditionExpression="attribute_not_exists(pk)")

    def get_charge(self, clinic_id: str, patient_id: str, charge_id: str) -> Charge | None:
        item = self._get(patient_pk(clinic_id, patient_id), f"CHARGE#{charge_id}")
        return Charge.model_validate(item) if item else None

    def find_charge(self, provider: str, reference: str) -> Charge | None:
        item = self._by_ref(provider, reference, "CHARGE")
        return Charge.model_validate(item) if item else None

    def settle_charge(self, charge: Charge, result: ChargeResult, at: datetime) -> bool:
        """Record what the processor said, unless the charge already succeeded or, for anything but
        a success, a newer fact is recorded (`status_at`): a late or repeated event never undoes a
        newer state. A success always lands: money that moved is a fact whatever the clock says
        (Stripe's event times have one-second resolution, ours milliseconds)."""
        names = {"#s": "status", "#f": "failure_code", "#a": "action_url", "#r": "reference"}
        values: dict[str, Any] = {":s": result.status, ":at": epoch_ms(at), ":u": at.isoformat(),
                                  ":succeeded": "succeeded"}
        sets = ["#s = :s", "status_at = :at", "updated_at = :u"]
        removes = []
        for name, value in (("#f", result.failure_code), ("#a", result.action_url)):
            if value:
                sets.append(f"{name} = {name.replace('#', ':v')}")
                values[name.replace("#", ":v")] = value
            else:
                removes.append(name)
        if result.reference:
            sets += ["#r = :ref", "gsi1pk = :gsi", "gsi1sk = :kind"]
            values.update({":ref": result.reference, ":gsi": ref_key(charge.provider, result.reference),
                           ":kind": "CHARGE"})
        if not result.reference:
            del names["#r"]
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        condition = "attribute_exists(pk) AND (attribute_not_exists(#s) OR #s <> :succeeded)"
        if result.status != "succeeded":
            condition += " AND (attribute_not_exists(status_at) OR status_at <= :at)"
        return _conditional(
            self._table.update_item,
            Key={"pk": patient_pk(charge.clinic_id, charge.patient_id), "sk": f"CHARGE#{charge.charge_id}"},
            UpdateExpression=update, ExpressionAttributeNames=names, ExpressionAttributeValues=values,
            ConditionExpression=condition)

    def claim_appointment_charge(self, charge: Charge, *, stale_before: datetime) -> bool:
        """At most one live charge per appointment and reason: free, failed, ours and not yet
        succeeded, or a claim left pending long ago (its request died before the processor answered)."""
        assert charge.appointment_id
        return _conditional(
            self._table.put_item,
            Item={"pk": patient_pk(charge.clinic_id, charge.patient_id),
                  "sk": f"APPTCHARGE#{charge.appointment_id}#{charge.reason.value}", "charge_id": charge.charge_id,
                  "status": "pending", "claimed_at": charge.created_at.isoformat()},
            ConditionExpression="attribute_not_exists(pk) OR #s = :failed OR (charge_id = :cid AND #s <> :succeeded) "
                                "OR (#s = :pending AND claimed_at < :stale)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":failed": "failed", ":cid": charge.charge_id, ":pending": "pending",
                                       ":succeeded": "succeeded", ":stale": stale_before.isoformat()})

    def update_appointment_claim(self, charge: Charge, status: str) -> None:
        if not charge.appointment_id:
            return
        _conditional(
            self._table.update_item,
            Key={"pk": patient_pk(charge.clinic_id, charge.patient_id),
                 "sk": f"APPTCHARGE#{charge.appointment_id}#{charge.reason.value}"},
            UpdateExpression="SET #s = :s", ConditionExpression="charge_id = :cid AND #s <> :succeeded",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": status, ":cid": charge.charge_id, ":succeeded": "succeeded"})

    # ---------------------------------------------------------------- processor events
    def event_seen(self, clinic_id: str, provider: str, event_id: str) -> bool:
        return self._get(event_pk(clinic_id, provider, event_id), EVENT_SK) is not None

    def record_event(self, clinic_id: str, provider: str, event_id: str, *, kind: str, outcome: str,
                     reason: str | None = None, at: datetime) -> bool:
        """Remember what this clinic did with an event; False when a concurrent delivery recorded it first."""
        return _conditional(self._table.put_item, Item=event_item(clinic_id, provider, event_id, kind=kind,
                                                                  outcome=outcome, reason=reason, recorded_at=at),
                            ConditionExpression="attribute_not_exists(pk)")


class CardAppointments:
    """The appointment writes that cards make, in AppointmentsTable: a paid charge marks the
    appointment paid; a saved card confirms bookings that were waiting for one. Both conditional."""

    def __init__(self, table_name: str):
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return table(self._table_name)

    def get(self, clinic_id: str, appointment_id: str) -> dict[str, Any] | None:
        with translated_errors():
            item = self._table.get_item(Key={"pk": f"CLINIC#{clinic_id}", "sk": f"APPT#{appointment_id}"},
                                        ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def mark_paid(self, clinic_id: str, appointment_id: str, payment: dict[str, Any]) -> bool:
        """False when it is already paid (or refunded, or gone): paid once, whoever got there first.
        Only before any other money came in (the ledger's `amount_paid` is then the charge): a
        card charge is not yet a payment row of the appointment's ledger (usecases/refunds.py)."""
        return _conditional(
            self._table.update_item, Key={"pk": f"CLINIC#{clinic_id}", "sk": f"APPT#{appointment_id}"},
            UpdateExpression="SET payment_status = :paid, payment = :payment, amount_paid = :amount, "
                             "ledger_version = if_not_exists(ledger_version, :zero) + :one",
            ConditionExpression="attribute_exists(pk) AND payment_status <> :paid AND payment_status <> :refunded "
                                "AND (attribute_not_exists(amount_paid) OR amount_paid.amount = :zero)",
            ExpressionAttributeValues={":paid": "paid", ":refunded": "refunded", ":payment": _json(without_none(payment)),
                                       ":amount": _json(payment["amount"]), ":zero": 0, ":one": 1})

    def confirm_awaiting_card(self, clinic_id: str, patient_id: str) -> list[str]:
        """Every booking of this patient held for a card becomes confirmed; returns their ids."""
        args: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"CLINIC#{clinic_id}") & Key("sk").begins_with("APPT#"),
            "FilterExpression": Attr("status").eq("awaiting_card") & Attr("patient.id").eq(patient_id)}
        waiting: list[str] = []
        with translated_errors():
            while True:
                page = self._table.query(**args)
                waiting += [str(item["sk"]).removeprefix("APPT#") for item in page["Items"]]
                if "LastEvaluatedKey" not in page:
                    break
                args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [appointment_id for appointment_id in waiting if _conditional(
            self._table.update_item, Key={"pk": f"CLINIC#{clinic_id}", "sk": f"APPT#{appointment_id}"},
            UpdateExpression="SET #s = :confirmed", ConditionExpression="#s = :awaiting",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":confirmed": "confirmed", ":awaiting": "awaiting_card"})]
