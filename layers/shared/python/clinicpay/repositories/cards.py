"""CardsTable (only `tokenize` may read it) and the two appointment writes cards make.

One partition per patient, `CLINIC#{cid}#PATIENT#{pid}`:
    CARD#{card_id}          a card: display data, the processor's token, its consent
    DEFAULT                 which card is the default (one item, so two saves cannot both win)
    CUSTOMER#{provider}     the processor's customer for this patient
    SETUP#{setup_ref}       one attempt to save a card, with the consent given before it
    CHARGE#{charge_id}      one off-session charge; `amount_refunded` reserves what its refunds give back
    REFUND#{refund_id}      money given back from a charge (ours, or started in the processor's dashboard)
    APPTCHARGE#{aid}#{why}  at most one live charge per appointment and reason
gsi1 (ByProviderRef): `REF#{provider}#{id}` for SetupIntents, PaymentIntents, refunds and card tokens.
AwaitingProvider (sparse): `recon_pk` = shard_key("CARDRECON", clinic), `recon_at` = when to ask the
processor: set on a charge or refund while its outcome is not final (sent and not answered,
processing, awaiting the patient's authentication, a refund pending), removed once it is.
Processor events are remembered per clinic at `EVENT#{clinic_id}#{provider}#{event_id}` / `EVENT`
(repositories/events.py): one Stripe account may serve two clinics and deliver every event to both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from clinicpay.domain.card import Card, CardRefund, CardSetup, Charge, Dispute, RefundStatus, SetupStatus
from clinicpay.domain.errors import ConditionFailed
from clinicpay.domain.money import Money
from clinicpay.repositories.dynamo import plain, table, translated_errors, without_none
from clinicpay.repositories.events import EVENT_SK, event_item, event_pk
from clinicpay.repositories.shards import shard_key
from clinicpay.snapstart import load_before_snapshot

if TYPE_CHECKING:
    from clinicpay.ports.cards import ChargeResult
    from clinicpay.repositories.appointments import AppointmentRepository

# The appointments' code loads with the card refunds and disputes that use it (CardAppointments), and
# before a SnapStart snapshot.
load_before_snapshot("clinicpay.repositories.appointments")

REF_INDEX = "ByProviderRef"
RECON_INDEX = "AwaitingProvider"
RECON_KIND = "CARDRECON"
FINAL_CHARGE_STATUSES = ("succeeded", "failed")

ReserveOutcome = Literal["reserved", "exists", "exceeds"]


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


def _recon(clinic_id: str, check_at: datetime) -> dict[str, str]:
    return {"recon_pk": shard_key(RECON_KIND, clinic_id), "recon_at": check_at.isoformat()}


def _claim_key(charge: Charge) -> dict[str, str]:
    """The appointment's claim for one reason: at most one live charge per appointment and reason."""
    return {"pk": patient_pk(charge.clinic_id, charge.patient_id),
            "sk": f"APPTCHARGE#{charge.appointment_id}#{charge.reason.value}"}


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
    def create_charge(self, charge: Charge, *, check_at: datetime) -> bool:
        """False when a charge with this id exists (a retried request with the same Idempotency-Key).
        Born awaiting the processor: if the request that made it dies before the answer is
        recorded, reconciliation asks the processor at `check_at`."""
        item = {"pk": patient_pk(charge.clinic_id, charge.patient_id), "sk": f"CHARGE#{charge.charge_id}",
                **_json(charge.model_dump(mode="json", exclude_none=True)), **_recon(charge.clinic_id, check_at)}
        return _conditional(self._table.put_item, Item=item, ConditionExpression="attribute_not_exists(pk)")

    def get_charge(self, clinic_id: str, patient_id: str, charge_id: str) -> Charge | None:
        item = self._get(patient_pk(clinic_id, patient_id), f"CHARGE#{charge_id}")
        return Charge.model_validate(item) if item else None

    def list_charges(self, clinic_id: str, patient_id: str) -> list[Charge]:
        """The patient's charges, newest first: one Query on the patient's partition."""
        charges = [Charge.model_validate(item) for item in self._query(patient_pk(clinic_id, patient_id), "CHARGE#")]
        return sorted(charges, key=lambda c: c.created_at, reverse=True)

    def find_charge(self, provider: str, reference: str) -> Charge | None:
        item = self._by_ref(provider, reference, "CHARGE")
        return Charge.model_validate(item) if item else None

    def settle_charge(self, charge: Charge, result: ChargeResult, at: datetime, *, check_at: datetime | None = None) -> bool:
        """Record what the processor said, unless the charge already succeeded or, for anything but
        a success, a newer fact is recorded (`status_at`): a late or repeated event never undoes a
        newer state. A success always lands: money that moved is a fact whatever the clock says
        (Stripe's event times have one-second resolution, ours milliseconds). A final status takes
        the charge off the reconciliation index; any other keeps it there, to be asked at `check_at`."""
        names = {"#s": "status", "#f": "failure_code", "#a": "action_url", "#r": "reference"}
        values: dict[str, Any] = {":s": result.status, ":at": epoch_ms(at), ":u": at.isoformat(),
                                  ":succeeded": "succeeded"}
        sets = ["#s = :s", "status_at = :at", "updated_at = :u"]
        if result.status == "succeeded":
            # The condition lets one write move a charge to succeeded; that writer tells the patient
            # (usecases/card_messages.py), and says so here, in the same write: no other call.
            sets.append("told_at = :u")
        removes = ["undecided"]
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
        if result.status in FINAL_CHARGE_STATUSES or check_at is None:
            removes += ["recon_pk", "recon_at"]
        else:
            sets += ["recon_pk = :rpk", "recon_at = :rat"]
            values.update({":rpk": shard_key(RECON_KIND, charge.clinic_id), ":rat": check_at.isoformat()})
        update = "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes)
        condition = "attribute_exists(pk) AND (attribute_not_exists(#s) OR #s <> :succeeded)"
        if result.status != "succeeded":
            condition += " AND (attribute_not_exists(status_at) OR status_at <= :at)"
        else:
            condition += " AND attribute_not_exists(told_at)"  # only ever set with succeeded: the same rule, named
        return _conditional(
            self._table.update_item,
            Key={"pk": patient_pk(charge.clinic_id, charge.patient_id), "sk": f"CHARGE#{charge.charge_id}"},
            UpdateExpression=update, ExpressionAttributeNames=names, ExpressionAttributeValues=values,
            ConditionExpression=condition)

    def mark_undecided(self, charge: Charge, at: datetime, *, check_at: datetime) -> bool:
        """We sent the charge and no answer says whether it was made: `processing`, undecided, until
        an event or our asking says. Only over the state we left it in (no answer recorded yet, or
        undecided before): an answer that arrived meanwhile (a webhook) is never overwritten."""
        return _conditional(
            self._table.update_item,
            Key={"pk": patient_pk(charge.clinic_id, charge.patient_id), "sk": f"CHARGE#{charge.charge_id}"},
            UpdateExpression="SET #s = :processing, undecided = :true, updated_at = :u, recon_pk = :rpk, recon_at = :rat",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(#s) OR "
                                "(#s = :processing AND undecided = :true))",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":processing": "processing", ":true": True, ":u": at.isoformat(),
                                       ":rpk": shard_key(RECON_KIND, charge.clinic_id), ":rat": check_at.isoformat()})

    def mark_not_sent(self, charge: Charge, at: datetime) -> bool:
        """Nothing reached the processor (it could not be asked): failed with `provider_unavailable`,
        which a retry with the same Idempotency-Key may send again. Only from the unanswered state:
        a charge that was ever sent keeps what that attempt may have done."""
        return _conditional(
            self._table.update_item,
            Key={"pk": patient_pk(charge.clinic_id, charge.patient_id), "sk": f"CHARGE#{charge.charge_id}"},
            UpdateExpression="SET #s = :failed, failure_code = :code, status_at = :at, updated_at = :u "
                             "REMOVE recon_pk, recon_at",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#s)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":failed": "failed", ":code": "provider_unavailable", ":at": epoch_ms(at),
                                       ":u": at.isoformat()})

    def reopen_charge(self, charge: Charge, at: datetime) -> bool:
        """A charge that failed without reaching the processor (or that the processor never made)
        goes back to unanswered, for a retry with the same Idempotency-Key to send it again."""
        return _conditional(
            self._table.update_item,
            Key={"pk": patient_pk(charge.clinic_id, charge.patient_id), "sk": f"CHARGE#{charge.charge_id}"},
            UpdateExpression="SET updated_at = :u REMOVE #s, failure_code, status_at",
            ConditionExpression="#s = :failed AND failure_code IN (:unavailable, :not_created)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":failed": "failed", ":unavailable": "provider_unavailable",
                                       ":not_created": "not_created", ":u": at.isoformat()})

    def claim_appointment_charge(self, charge: Charge) -> bool:
        """At most one live charge per appointment and reason: free, failed, or ours and not yet
        succeeded. A claim held by a charge that never finished is taken over only through
        `take_over_claim`, once that charge is known to be over (see usecases/cards.py)."""
        assert charge.appointment_id
        return _conditional(
            self._table.put_item,
            Item={**_claim_key(charge), "charge_id": charge.charge_id, "status": "pending",
                  "claimed_at": charge.created_at.isoformat()},
            ConditionExpression="attribute_not_exists(pk) OR #s = :failed OR (charge_id = :cid AND #s <> :succeeded)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":failed": "failed", ":cid": charge.charge_id, ":succeeded": "succeeded"})

    def appointment_claim(self, charge: Charge) -> dict[str, Any] | None:
        assert charge.appointment_id
        key = _claim_key(charge)
        return self._get(key["pk"], key["sk"])

    def take_over_claim(self, charge: Charge, claim: dict[str, Any]) -> bool:
        """Replace a claim exactly as it was read (same charge, same claim time, not succeeded)."""
        assert charge.appointment_id
        return _conditional(
            self._table.put_item,
            Item={**_claim_key(charge), "charge_id": charge.charge_id, "status": "pending",
                  "claimed_at": charge.created_at.isoformat()},
            ConditionExpression="charge_id = :old AND claimed_at = :old_at AND #s <> :succeeded",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":old": claim["charge_id"], ":old_at": claim["claimed_at"],
                                       ":succeeded": "succeeded"})

    def update_appointment_claim(self, charge: Charge, status: str) -> None:
        if not charge.appointment_id:
            return
        _conditional(
            self._table.update_item,
            Key=_claim_key(charge), UpdateExpression="SET #s = :s", ConditionExpression="charge_id = :cid AND #s <> :succeeded",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": status, ":cid": charge.charge_id, ":succeeded": "succeeded"})

    def record_dispute(self, charge: Charge, dispute: Dispute) -> Literal["opened", "updated", "stale"]:
        """Keep the newest word on the charge's dispute; `opened` the first time this dispute is seen."""
        key = {"pk": patient_pk(charge.clinic_id, charge.patient_id), "sk": f"CHARGE#{charge.charge_id}"}
        value = _json(dispute.model_dump(mode="json", exclude_none=True))
        if _conditional(self._table.update_item, Key=key, UpdateExpression="SET dispute = :d",
                        ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(dispute) OR "
                                            "dispute.dispute_id <> :id)",
                        ExpressionAttributeValues={":d": value, ":id": dispute.dispute_id}):
            return "opened"
        if _conditional(self._table.update_item, Key=key, UpdateExpression="SET dispute = :d",
                        ConditionExpression="dispute.dispute_id = :id AND dispute.updated_at <= :at",
                        # The stored time as stored (pydantic's JSON form), so the strings compare as times.
                        ExpressionAttributeValues={":d": value, ":id": dispute.dispute_id, ":at": value["updated_at"]}):
            return "updated"
        return "stale"

    # ---------------------------------------------------------------- refunds
    def reserve_refund(self, refund: CardRefund, charge: Charge, *, check_at: datetime) -> ReserveOutcome:
        """Record the refund and reserve its amount on the charge, in one transaction: the charge must
        have succeeded and have at least the amount left (`amount_refunded <= amount - refund`; DynamoDB
        conditions cannot add, so the limit is worked out here). `exists`: this refund is already
        recorded (the same request again); `exceeds`: not that much is left. A refund that failed
        without reaching the processor is recorded again (its retry)."""
        pk = patient_pk(refund.clinic_id, refund.patient_id)
        item = {"pk": pk, "sk": f"REFUND#{refund.refund_id}", **_json(refund.model_dump(mode="json", exclude_none=True)),
                **_recon(refund.clinic_id, check_at)}
        if refund.provider_refund_id:
            item.update(gsi1pk=ref_key(refund.provider, refund.provider_refund_id), gsi1sk="REFUND")
        writes = [
            {"Put": {"TableName": self._table_name, "Item": item,
                     "ConditionExpression": "attribute_not_exists(pk) OR (#s = :failed AND failure_code = :unsent)",
                     "ExpressionAttributeNames": {"#s": "status"},
                     "ExpressionAttributeValues": {":failed": "failed", ":unsent": "provider_unavailable"}}},
            {"Update": {"TableName": self._table_name, "Key": {"pk": pk, "sk": f"CHARGE#{charge.charge_id}"},
                        "UpdateExpression": "ADD amount_refunded :amount",
                        "ConditionExpression": "#s = :succeeded AND (attribute_not_exists(amount_refunded) OR "
                                               "amount_refunded <= :limit)",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":amount": refund.amount.amount, ":succeeded": "succeeded",
                                                      ":limit": charge.amount.amount - refund.amount.amount}}},
        ]
        try:
            self._table.meta.client.transact_write_items(TransactItems=writes)
            return "reserved"
        except ClientError as error:
            codes = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if error.response.get("Error", {}).get("Code") == "TransactionCanceledException" and codes:
                if codes[0] == "ConditionalCheckFailed":
                    return "exists"
                if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                    return "exceeds"
            with translated_errors():
                raise

    def get_refund(self, clinic_id: str, patient_id: str, refund_id: str) -> CardRefund | None:
        item = self._get(patient_pk(clinic_id, patient_id), f"REFUND#{refund_id}")
        return CardRefund.model_validate(item) if item else None

    def find_refund(self, provider: str, provider_refund_id: str) -> CardRefund | None:
        item = self._by_ref(provider, provider_refund_id, "REFUND")
        return CardRefund.model_validate(item) if item else None

    def refunds_by_charge(self, clinic_id: str, patient_id: str) -> dict[str, list[CardRefund]]:
        """Every refund of the patient's charges, oldest first per charge: one Query on the patient's partition."""
        found: dict[str, list[CardRefund]] = {}
        for item in self._query(patient_pk(clinic_id, patient_id), "REFUND#"):
            refund = CardRefund.model_validate(item)
            found.setdefault(refund.charge_id, []).append(refund)
        return {charge_id: sorted(refunds, key=lambda r: r.created_at) for charge_id, refunds in found.items()}

    def list_refunds(self, clinic_id: str, patient_id: str, charge_id: str) -> list[CardRefund]:
        refunds = [CardRefund.model_validate(item) for item in self._query(patient_pk(clinic_id, patient_id), "REFUND#")
                   if item.get("charge_id") == charge_id]
        return sorted(refunds, key=lambda r: r.created_at)

    def settle_refund(self, refund: CardRefund, *, status: RefundStatus, at: datetime,
                      provider_refund_id: str | None = None, failure_code: str | None = None,
                      check_at: datetime | None = None) -> bool:
        """pending -> pending (the processor's id learnt) | succeeded | failed, or succeeded -> failed
        (a card refund that fails later). A failure gives the reservation back to the charge, in the
        same transaction, once. False when the refund is not in a state this may follow."""
        key = {"pk": patient_pk(refund.clinic_id, refund.patient_id), "sk": f"REFUND#{refund.refund_id}"}
        names = {"#s": "status"}
        values: dict[str, Any] = {":s": status, ":u": at.isoformat(), ":pending": "pending"}
        sets = ["#s = :s", "updated_at = :u"]
        removes = ["undecided"]
        if provider_refund_id:
            sets += ["provider_refund_id = :pid", "gsi1pk = :gsi", "gsi1sk = :kind"]
            values.update({":pid": provider_refund_id, ":gsi": ref_key(refund.provider, provider_refund_id),
                           ":kind": "REFUND"})
        if failure_code:
            sets.append("failure_code = :code")
            values[":code"] = failure_code
        if status == "pending" and check_at is not None:
            sets += ["recon_pk = :rpk", "recon_at = :rat"]
            values.update({":rpk": shard_key(RECON_KIND, refund.clinic_id), ":rat": check_at.isoformat()})
        else:
            removes += ["recon_pk", "recon_at"]
        update = {"Key": key, "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes),
                  "ExpressionAttributeNames": names}
        if status != "failed":
            return _conditional(self._table.update_item, **update, ConditionExpression="#s = :pending",
                                ExpressionAttributeValues=values)
        values[":succeeded"] = "succeeded"
        writes = [
            {"Update": {"TableName": self._table_name, **update, "ExpressionAttributeValues": values,
                        "ConditionExpression": "#s IN (:pending, :succeeded)"}},
            {"Update": {"TableName": self._table_name, "Key": {"pk": key["pk"], "sk": f"CHARGE#{refund.charge_id}"},
                        "UpdateExpression": "ADD amount_refunded :back", "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": {":back": -refund.amount.amount}}},
        ]
        try:
            self._table.meta.client.transact_write_items(TransactItems=writes)
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                codes = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                if codes and codes[0] == "ConditionalCheckFailed":
                    return False
            with translated_errors():
                raise

    def mark_refund_undecided(self, refund: CardRefund, at: datetime, *, check_at: datetime) -> bool:
        return _conditional(
            self._table.update_item,
            Key={"pk": patient_pk(refund.clinic_id, refund.patient_id), "sk": f"REFUND#{refund.refund_id}"},
            UpdateExpression="SET undecided = :true, updated_at = :u, recon_pk = :rpk, recon_at = :rat",
            ConditionExpression="#s = :pending AND attribute_not_exists(provider_refund_id)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":true": True, ":u": at.isoformat(), ":pending": "pending",
                                       ":rpk": shard_key(RECON_KIND, refund.clinic_id), ":rat": check_at.isoformat()})

    def claim_refund_notice(self, refund: CardRefund, at: datetime) -> bool:
        """True once per refund: whoever wins tells the patient."""
        return _conditional(
            self._table.update_item,
            Key={"pk": patient_pk(refund.clinic_id, refund.patient_id), "sk": f"REFUND#{refund.refund_id}"},
            UpdateExpression="SET notified_at = :at", ConditionExpression="attribute_exists(pk) AND "
                                                                          "attribute_not_exists(notified_at)",
            ExpressionAttributeValues={":at": at.isoformat()})

    # ---------------------------------------------------------------- reconciliation (AwaitingProvider)
    def awaiting_provider(self, shard: int, due_by: datetime, *, clinic_id: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
        """Charges and refunds of one shard whose processor answer is due by `due_by`, oldest first
        (raw items: `sk` says which); only one clinic's when `clinic_id` is given."""
        args: dict[str, Any] = {"IndexName": RECON_INDEX, "Limit": limit,
                                "KeyConditionExpression": Key("recon_pk").eq(f"{RECON_KIND}#{shard:02d}")
                                & Key("recon_at").lte(due_by.isoformat())}
        if clinic_id:
            args["FilterExpression"] = Attr("clinic_id").eq(clinic_id)
        found: list[dict[str, Any]] = []
        with translated_errors():
            while len(found) < limit:
                page = self._table.query(**args)
                found += [plain(item) for item in page["Items"]]
                if "LastEvaluatedKey" not in page:
                    break
                args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def check_again(self, item: dict[str, Any], *, was: str, at: datetime) -> bool:
        """Move an item's next asking to `at`, unless something else moved it (or settled it) meanwhile."""
        return _conditional(
            self._table.update_item, Key={"pk": item["pk"], "sk": item["sk"]},
            UpdateExpression="SET recon_at = :at, recon_attempts = if_not_exists(recon_attempts, :zero) + :one",
            ConditionExpression="recon_at = :was", ExpressionAttributeValues={
                ":at": at.isoformat(), ":was": was, ":zero": 0, ":one": 1})

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

    def _appointments(self) -> AppointmentRepository:
        # Imported by the refunds and disputes that use it: a card setup page loads no appointment code.
        from clinicpay.repositories.appointments import AppointmentRepository

        return AppointmentRepository(self._table_name)

    def apply_refund(self, clinic_id: str, appointment_id: str, *, payment_reference: str, refund_id: str,
                     amount: Money) -> bool:
        return self._appointments().apply_refund(
            clinic_id, appointment_id, payment_reference=payment_reference, refund_id=refund_id, amount=amount)

    def revert_refund(self, clinic_id: str, appointment_id: str, *, payment_reference: str, refund_id: str,
                      amount: Money) -> bool:
        return self._appointments().revert_refund(
            clinic_id, appointment_id, payment_reference=payment_reference, refund_id=refund_id, amount=amount)

    def record_dispute(self, clinic_id: str, appointment_id: str, *, payment_reference: str,
                       dispute: dict[str, Any]) -> bool:
        return self._appointments().record_dispute(
            clinic_id, appointment_id, payment_reference=payment_reference, dispute=dispute)

    def paid_by(self, clinic_id: str, provider: str, reference: str) -> str | None:
        """The appointment a provider payment paid through our link (its payment row), if any."""
        with translated_errors():
            item = self._table.get_item(Key={"pk": f"CLINIC#{clinic_id}", "sk": f"PAYMENT#{provider}#{reference}"},
                                        ConsistentRead=True).get("Item")
        return str(item["appointment_id"]) if item and item.get("appointment_id") else None

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
