"""QR registers, QR invoices and QR payments in the AppointmentsTable (keys: ARCHITECTURE.md).

    register  CLINIC#{cid} / QR#{qr_id}
    invoice   CLINIC#{cid} / QRINV#{invoice_id}   gsi1pk REF#monobank#{invoice_id}, gsi1sk QRINV
    payment   CLINIC#{cid} / QRPAY#{payment_id}   gsi1pk REF#monobank#{invoice_id}, gsi1sk QRPAY
              fiscal_pending_pk / fiscal_pending_sk only while the payment awaits its receipt
    refund    CLINIC#{cid} / QRREF#{payment_id}#{refund_id}   money given back from a payment, and
              its return receipt (fiscal_pending_* while that receipt awaits, like a payment's)
    event     EVENT#{cid}#monobank#{event_id} / EVENT   what this clinic did with a webhook we could
              not match by key alone (foreign, or confirmed with monobank)

Undecided QR invoices (until monobank reports a final status) and refunds of ours (until monobank
says how they went) carry `due_pk` = shard_key("QRUNDECIDED", cid) and `due_sk` = "{since}#{cid}#..."
in the DueByShard index: what reconciliation asks monobank about when a webhook never came.

The AwaitingFiscalization index is sparse: a payment is in it from creation until its receipt is
DONE, and the completing write REMOVEs both attributes, so the daily check never reads history. Its
partition key is the clinic's shard (`PENDING#07`, repositories/shards.py), so no partition takes
every clinic's writes and a job reads one shard per invocation.
Every change is a conditional write on the state it expects.
"""

from __future__ import annotations

from datetime import datetime
from functools import reduce
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key

from clinicpay.domain.errors import ConditionFailed
from clinicpay.domain.fiscal import AWAITING_STATES, FiscalStatus, Receipt
from clinicpay.domain.qr import (
    FINAL_STATUSES,
    CardPayment,
    FiscalDoc,
    InvoiceUpdate,
    QrInvoice,
    QrPayment,
    QrRefund,
    QrRegister,
    QrRegisterInfo,
    QrReportFilters,
    Undecided,
    payment_id_for,
    payment_key,
    refund_key,
)
from clinicpay.repositories.dynamo import conditional, plain, table, translated_errors, without_none
from clinicpay.repositories.events import EVENT_SK, event_item, event_pk
from clinicpay.repositories.shards import all_shards, key_of, shard_key

AWAITING_INDEX = "AwaitingFiscalization"
PENDING_KIND = "PENDING"  # fiscal_pending_pk = shard_key(PENDING_KIND, clinic_id), e.g. "PENDING#07"
PROVIDER = "monobank"
DUE_INDEX = "DueByShard"
UNDECIDED_KIND = "QRUNDECIDED"

_PUBLIC_TO_STATES = {
    "pending": [FiscalStatus.PENDING.value, FiscalStatus.FISCALIZING.value],
    "fiscalized": [FiscalStatus.FISCALIZED.value],
    "failed": [FiscalStatus.FAILED.value],
    "external": [FiscalStatus.EXTERNAL.value],
    "not_required": [FiscalStatus.NOT_REQUIRED.value],
}


def clinic_pk(clinic_id: str) -> str:
    return f"CLINIC#{clinic_id}"


def ref_pk(invoice_id: str) -> str:
    return f"REF#{PROVIDER}#{invoice_id}"


def pending_pk(clinic_id: str) -> str:
    """fiscal_pending_pk of anything of this clinic that awaits a fiscal document: its shard."""
    return shard_key(PENDING_KIND, clinic_id)


def pending_sk(payment: QrPayment) -> str:
    # Clinic first (one clinic's waiting payments are one range), then oldest first.
    return f"{payment.clinic_id}#{payment.paid_at}#{payment.payment_id}"


def refund_pending_sk(refund: QrRefund) -> str:
    # After its payment (it is made later): a sweep meets the sale before its returns.
    return f"{refund.clinic_id}#{refund.created_at}#{refund.payment_id}#{refund.refund_id}"


def _undecided(clinic_id: str, since: str, rest: str) -> dict[str, str]:
    return {"due_pk": shard_key(UNDECIDED_KIND, clinic_id), "due_sk": f"{since}#{clinic_id}#{rest}"}


def _payment(item: dict[str, Any]) -> QrPayment:
    return QrPayment.model_validate(plain(item))


def _refund(item: dict[str, Any]) -> QrRefund:
    return QrRefund.model_validate(plain(item))


def _doc(item: dict[str, Any]) -> FiscalDoc:
    return _refund(item) if str(item["sk"]).startswith("QRREF#") else _payment(item)


def _refund_item(refund: QrRefund) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": clinic_pk(refund.clinic_id), "sk": refund_key(refund.payment_id, refund.refund_id),
                            **refund.model_dump(mode="json")}
    if refund.fiscal_status in AWAITING_STATES:
        item.update({"fiscal_pending_pk": pending_pk(refund.clinic_id), "fiscal_pending_sk": refund_pending_sk(refund)})
    if refund.status == "pending":
        item.update(_undecided(refund.clinic_id, refund.created_at, f"R#{refund.payment_id}#{refund.refund_id}"))
    return without_none(item)


class QrRepository:
    def __init__(self, table_name: str):
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return table(self._table_name)

    # --- registers ----------------------------------------------------------------------------
    def put_registers(self, clinic_id: str, registers: list[QrRegisterInfo], synced_at: str) -> list[QrRegister]:
        listed = {r.qr_id for r in registers}
        with translated_errors():
            for register in registers:
                # Only the acquirer's fields: the amount we put on it stays as it is.
                self._table.update_item(
                    Key={"pk": clinic_pk(clinic_id), "sk": f"QR#{register.qr_id}"},
                    UpdateExpression="SET qr_id = :q, short_qr_id = :s, amount_type = :t, page_url = :u, "
                                     "clinic_id = :c, synced_at = :at, active = :yes, "
                                     "version = if_not_exists(version, :zero) + :one",
                    ExpressionAttributeValues={":q": register.qr_id, ":s": register.short_qr_id,
                                               ":t": register.amount_type, ":u": register.page_url, ":c": clinic_id,
                                               ":at": synced_at, ":yes": True, ":zero": 0, ":one": 1})
        for stale in (r for r in self.list_registers(clinic_id) if r.qr_id not in listed and r.active):
            # Gone from the acquirer's list: kept for the report's history, no longer offered.
            with translated_errors():
                self._table.update_item(Key={"pk": clinic_pk(clinic_id), "sk": f"QR#{stale.qr_id}"},
                                        UpdateExpression="SET active = :no, synced_at = :at",
                                        ConditionExpression="attribute_exists(pk)",
                                        ExpressionAttributeValues={":no": False, ":at": synced_at})
        return self.list_registers(clinic_id)

    def list_registers(self, clinic_id: str) -> list[QrRegister]:
        items = self._query_all(KeyConditionExpression=Key("pk").eq(clinic_pk(clinic_id))
                                & Key("sk").begins_with("QR#"))
        return [QrRegister.model_validate(plain(i)) for i in items]

    def get_register(self, clinic_id: str, qr_id: str) -> QrRegister | None:
        with translated_errors():
            item = self._table.get_item(Key={"pk": clinic_pk(clinic_id), "sk": f"QR#{qr_id}"},
                                        ConsistentRead=True).get("Item")
        return QrRegister.model_validate(plain(item)) if item else None

    def set_register_amount(self, register: QrRegister, invoice: QrInvoice) -> None:
        """Record the amount now on the register; ConditionFailed if someone changed it meanwhile."""
        with translated_errors():
            self._table.update_item(
                Key={"pk": clinic_pk(register.clinic_id), "sk": f"QR#{register.qr_id}"},
                UpdateExpression="SET current_invoice_id = :i, current_amount = :a, current_appointment_id = :ap, "
                                 "amount_set_at = :at, version = version + :one",
                ConditionExpression="version = :v",
                ExpressionAttributeValues={":i": invoice.invoice_id, ":a": invoice.amount.model_dump(),
                                           ":ap": invoice.appointment_id, ":at": invoice.created_at, ":one": 1,
                                           ":v": register.version})

    def clear_register_amount(self, clinic_id: str, qr_id: str, invoice_id: str | None) -> bool:
        """Forget the amount (paid, failed or reset). With `invoice_id`, only if it is still that one."""
        condition = "attribute_exists(pk)" + (" AND current_invoice_id = :i" if invoice_id else "")
        values: dict[str, Any] = {":one": 1}
        if invoice_id:
            values[":i"] = invoice_id
        try:
            with translated_errors():
                self._table.update_item(
                    Key={"pk": clinic_pk(clinic_id), "sk": f"QR#{qr_id}"},
                    UpdateExpression="REMOVE current_invoice_id, current_amount, current_appointment_id, "
                                     "amount_set_at SET version = version + :one",
                    ConditionExpression=condition, ExpressionAttributeValues=values)
        except ConditionFailed:
            return False
        return True

    # --- invoices -----------------------------------------------------------------------------
    def put_invoice(self, invoice: QrInvoice) -> None:
        # Undecided until monobank reports a final status: reconciliation asks about it meanwhile.
        item = {"pk": clinic_pk(invoice.clinic_id), "sk": f"QRINV#{invoice.invoice_id}",
                "gsi1pk": ref_pk(invoice.invoice_id), "gsi1sk": "QRINV", **invoice.model_dump(mode="json"),
                **_undecided(invoice.clinic_id, invoice.created_at, f"I#{invoice.invoice_id}")}
        with translated_errors():
            self._table.put_item(Item=without_none(item), ConditionExpression="attribute_not_exists(pk)")

    def get_invoice(self, clinic_id: str, invoice_id: str) -> QrInvoice | None:
        with translated_errors():
            item = self._table.get_item(Key={"pk": clinic_pk(clinic_id), "sk": f"QRINV#{invoice_id}"},
                                        ConsistentRead=True).get("Item")
        return QrInvoice.model_validate(plain(item)) if item else None

    def invoice_and_payment(self, clinic_id: str, invoice_id: str) -> tuple[QrInvoice | None, QrPayment | None]:
        """This clinic's record of the invoice (we put the amount) and its payment (already recorded),
        in one BatchGetItem: either one proves the invoice is this clinic's."""
        keys = [{"pk": clinic_pk(clinic_id), "sk": f"QRINV#{invoice_id}"},
                {"pk": clinic_pk(clinic_id), "sk": f"QRPAY#{payment_id_for(invoice_id)}"}]
        found: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {self._table_name: {"Keys": keys, "ConsistentRead": True}}
        with translated_errors():
            while request:
                response = self._table.meta.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table_name, []):
                    found[str(item["sk"]).partition("#")[0]] = plain(item)
                request = response.get("UnprocessedKeys") or {}
        invoice, payment = found.get("QRINV"), found.get("QRPAY")
        return (QrInvoice.model_validate(invoice) if invoice else None,
                QrPayment.model_validate(payment) if payment else None)

    # --- provider event records (repositories/events.py) -------------------------------------------
    def event_recorded(self, clinic_id: str, event_id: str) -> bool:
        with translated_errors():
            item = self._table.get_item(Key={"pk": event_pk(clinic_id, PROVIDER, event_id), "sk": EVENT_SK},
                                        ConsistentRead=True, ProjectionExpression="pk").get("Item")
        return item is not None

    def record_event(self, clinic_id: str, event_id: str, *, kind: str, outcome: str, reason: str | None,
                     at: datetime) -> bool:
        """Remember what this clinic did with a monobank event; False when it already did."""
        item = event_item(clinic_id, PROVIDER, event_id, kind=kind, outcome=outcome, reason=reason, recorded_at=at)
        return conditional(lambda: self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)"))

    def advance_invoice(self, clinic_id: str, update: InvoiceUpdate) -> bool:
        """Record the invoice's status if this update is further along than what is stored (status
        rank, then date); a final status takes it out of the undecided index."""
        return self._advance(clinic_id, f"QRINV#{update.invoice_id}", "status", "order_ms", "status_rank", update,
                             settled=update.status in FINAL_STATUSES)

    def _advance(self, clinic_id: str, sk: str, status: str, order: str, rank: str, update: InvoiceUpdate, *,
                 settled: bool = False) -> bool:
        try:
            with translated_errors():
                self._table.update_item(
                    Key={"pk": clinic_pk(clinic_id), "sk": sk},
                    UpdateExpression="SET #status = :s, #order = :ms, #rank = :r" + (" REMOVE due_pk, due_sk"
                                                                                    if settled else ""),
                    ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(#rank) OR #rank < :r "
                                        "OR (#rank = :r AND #order < :ms))",
                    ExpressionAttributeNames={"#status": status, "#order": order, "#rank": rank},
                    ExpressionAttributeValues={":s": update.status.value, ":ms": update.order_ms, ":r": update.rank})
        except ConditionFailed:
            return False
        return True

    # --- payments -----------------------------------------------------------------------------
    def create_payment(self, payment: QrPayment) -> bool:
        """Store a new payment, awaiting its receipt. False if it already exists (never overwritten)."""
        item = {"pk": clinic_pk(payment.clinic_id), "sk": f"QRPAY#{payment.payment_id}",
                "gsi1pk": ref_pk(payment.invoice_id), "gsi1sk": "QRPAY",
                "fiscal_pending_pk": pending_pk(payment.clinic_id), "fiscal_pending_sk": pending_sk(payment),
                "amount_minor": payment.amount.amount, **payment.model_dump(mode="json")}
        if payment.fiscal_status not in AWAITING_STATES:
            # monobank fiscalizes it, or nobody here does: it never awaits a receipt of ours.
            del item["fiscal_pending_pk"], item["fiscal_pending_sk"]
        try:
            with translated_errors():
                self._table.put_item(Item=without_none(item), ConditionExpression="attribute_not_exists(pk)")
        except ConditionFailed:
            return False
        return True

    def get_payment(self, clinic_id: str, payment_id: str) -> QrPayment | None:
        with translated_errors():
            item = self._table.get_item(Key={"pk": clinic_pk(clinic_id), "sk": f"QRPAY#{payment_id}"},
                                        ConsistentRead=True).get("Item")
        return _payment(item) if item else None

    def advance_payment_invoice_status(self, clinic_id: str, payment_id: str, update: InvoiceUpdate) -> bool:
        return self._advance(clinic_id, f"QRPAY#{payment_id}", "invoice_status", "invoice_order_ms", "invoice_rank",
                             update)

    def get_doc(self, clinic_id: str, key: str) -> FiscalDoc | None:
        with translated_errors():
            item = self._table.get_item(Key={"pk": clinic_pk(clinic_id), "sk": key}, ConsistentRead=True).get("Item")
        return _doc(item) if item else None

    def claim_doc(self, clinic_id: str, key: str, *, token: str, now: str, lease_until: str,
                  allow_failed: bool, respect_backoff: bool) -> FiscalDoc:
        """pending (due) -> fiscalizing, or take over a lapsed lease; failed too when asked by a person.
        Raises ConditionFailed when someone else holds it, it is not due, or it is done."""
        waiting = "#fs = :pending"
        if respect_backoff:
            waiting += " AND (attribute_not_exists(next_attempt_at) OR next_attempt_at <= :now)"
        allowed = [f"({waiting})", "(#fs = :fiscalizing AND claim_expires_at < :now)"]
        if allow_failed:
            allowed.append("#fs = :failed")
        values: dict[str, Any] = {":pending": FiscalStatus.PENDING.value, ":fiscalizing": FiscalStatus.FISCALIZING.value,
                                  ":now": now, ":token": token, ":lease": lease_until, ":zero": 0, ":one": 1}
        if allow_failed:
            values[":failed"] = FiscalStatus.FAILED.value
        with translated_errors():
            answer = self._table.update_item(
                Key={"pk": clinic_pk(clinic_id), "sk": key},
                UpdateExpression="SET #fs = :fiscalizing, claim_token = :token, claim_expires_at = :lease, "
                                 "attempts = if_not_exists(attempts, :zero) + :one",
                ConditionExpression=f"attribute_exists(pk) AND ({' OR '.join(allowed)})",
                ExpressionAttributeNames={"#fs": "fiscal_status"},
                ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
        return _doc(answer["Attributes"])

    def complete_doc(self, clinic_id: str, key: str, receipt: Receipt | None, *, status: FiscalStatus | None = None,
                     token: str | None = None, fiscalized_by: str | None = None) -> bool:
        """-> fiscalized with its receipt, and out of the AwaitingFiscalization index: only for the
        receipt id the document holds; False if it is already fiscalized or holds another id.
        With `status` (external, not_required) the claim's holder (`token`) settles it without a
        receipt of ours: monobank made one (`receipt`), or none is due."""
        sets = ["#fs = :done"]
        values: dict[str, Any] = {}
        if receipt is not None:
            sets.append("receipt = :receipt")
            values[":receipt"] = without_none(receipt.model_dump(mode="json"))
        if fiscalized_by:
            sets.append("fiscalized_by = :by")
            values[":by"] = fiscalized_by
        if status is None or status is FiscalStatus.FISCALIZED:
            if receipt is None:
                raise ValueError("a fiscalized document has a receipt")
            values.update({":done": FiscalStatus.FISCALIZED.value, ":rid": receipt.id})
            condition = "attribute_exists(pk) AND receipt_id = :rid AND #fs <> :done"
        else:
            values.update({":done": status.value, ":token": token, ":fiscalizing": FiscalStatus.FISCALIZING.value})
            condition = "claim_token = :token AND #fs = :fiscalizing"
        try:
            with translated_errors():
                self._table.update_item(
                    Key={"pk": clinic_pk(clinic_id), "sk": key},
                    UpdateExpression=f"SET {', '.join(sets)} REMOVE fiscal_pending_pk, fiscal_pending_sk, "
                                     "claim_token, claim_expires_at, next_attempt_at, last_error",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#fs": "fiscal_status"}, ExpressionAttributeValues=values)
        except ConditionFailed:
            return False
        return True

    def release_doc(self, clinic_id: str, key: str, *, token: str, status: FiscalStatus,
                    last_error: str | None, next_attempt_at: str | None,
                    new_receipt_id: str | None = None, failed_receipt_id: str | None = None) -> bool:
        """fiscalizing -> pending | failed, only by the claim's holder. A new receipt id is minted
        only after the register reported the old one as ERROR (no fiscal document exists for it)."""
        sets = ["#fs = :status", "last_error = :err"]
        removes = ["claim_token", "claim_expires_at"]
        values: dict[str, Any] = {":status": status.value, ":err": last_error or "unknown", ":token": token,
                                  ":fiscalizing": FiscalStatus.FISCALIZING.value}
        if next_attempt_at:
            sets.append("next_attempt_at = :next")
            values[":next"] = next_attempt_at
        else:
            removes.append("next_attempt_at")
        if new_receipt_id:
            sets += ["receipt_id = :new", "failed_receipt_ids = list_append(if_not_exists(failed_receipt_ids, :none), "
                                          ":old)"]
            values.update({":new": new_receipt_id, ":none": [], ":old": [failed_receipt_id]})
        try:
            with translated_errors():
                self._table.update_item(
                    Key={"pk": clinic_pk(clinic_id), "sk": key},
                    UpdateExpression=f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
                    ConditionExpression="claim_token = :token AND #fs = :fiscalizing",
                    ExpressionAttributeNames={"#fs": "fiscal_status"}, ExpressionAttributeValues=values)
        except ConditionFailed:
            return False
        return True

    # --- refunds ------------------------------------------------------------------------------
    def refunds(self, clinic_id: str, payment_id: str) -> list[QrRefund]:
        items = self._query_all(KeyConditionExpression=Key("pk").eq(clinic_pk(clinic_id))
                                & Key("sk").begins_with(refund_key(payment_id, "")), ConsistentRead=True)
        return sorted((_refund(i) for i in items), key=lambda r: (r.created_at, r.refund_id))

    def clinic_refunds(self, clinic_id: str) -> list[QrRefund]:
        items = self._query_all(KeyConditionExpression=Key("pk").eq(clinic_pk(clinic_id))
                                & Key("sk").begins_with("QRREF#"))
        return [_refund(i) for i in items]

    def get_refund(self, clinic_id: str, payment_id: str, refund_id: str) -> QrRefund | None:
        with translated_errors():
            item = self._table.get_item(Key={"pk": clinic_pk(clinic_id), "sk": refund_key(payment_id, refund_id)},
                                        ConsistentRead=True).get("Item")
        return _refund(item) if item else None

    def record_refund(self, payment: QrPayment, refund: QrRefund, *, now: str) -> bool:
        """Reserve the refund's amount on the payment (never above what it was paid) and store the
        refund, in one transaction. False when the refund was recorded before (nothing changes);
        ConditionFailed when the payment has not that much left."""
        amount = refund.amount.amount
        sets = "refunded = if_not_exists(refunded, :zero) + :a"
        if refund.status == "succeeded":
            sets += ", refunded_settled = if_not_exists(refunded_settled, :zero) + :a"
        items = [
            {"Update": {"TableName": self._table_name,
                        "Key": {"pk": clinic_pk(payment.clinic_id), "sk": payment_key(payment.payment_id)},
                        "UpdateExpression": f"SET {sets}",
                        # DynamoDB conditions hold no arithmetic: "refunded + a <= amount" is
                        # "refunded <= amount - a", the amount paid never changing.
                        "ConditionExpression": "attribute_exists(pk) AND (attribute_not_exists(refunded) "
                                               "OR refunded <= :most)",
                        "ExpressionAttributeValues": {":a": amount, ":zero": 0,
                                                      ":most": payment.amount.amount - amount}}},
            {"Put": {"TableName": self._table_name, "Item": _refund_item(refund),
                     "ConditionExpression": "attribute_not_exists(pk)"}},
        ]
        if amount > payment.amount.amount:
            raise ConditionFailed()
        try:
            self._transact(items)
        except ConditionFailed:
            if self.get_refund(payment.clinic_id, payment.payment_id, refund.refund_id) is not None:
                return False
            raise
        return True

    def settle_refund(self, refund: QrRefund, *, status: str, now: str, failure_code: str | None = None,
                      fiscal_status: FiscalStatus | None = None, card: CardPayment | None = None) -> bool:
        """pending -> succeeded (the payment's settled amount grows; its return receipt awaits when
        `fiscal_status` is pending) or failed (the payment's reservation is released). False when the
        refund was not pending (settled before: nothing changes)."""
        key = {"pk": clinic_pk(refund.clinic_id), "sk": refund_key(refund.payment_id, refund.refund_id)}
        sets = ["#st = :status", "settled_at = :now"]
        values: dict[str, Any] = {":status": status, ":now": now, ":pending": "pending"}
        if status == "succeeded":
            fiscal = fiscal_status or FiscalStatus.NOT_REQUIRED
            sets.append("fiscal_status = :fs")
            values[":fs"] = fiscal.value
            if fiscal in AWAITING_STATES:
                sets += ["fiscal_pending_pk = :fpk", "fiscal_pending_sk = :fsk"]
                values.update({":fpk": pending_pk(refund.clinic_id), ":fsk": refund_pending_sk(refund)})
            if card is not None:
                sets.append("card = :card")
                values[":card"] = without_none(card.model_dump(mode="json"))
            payment_update = "SET refunded_settled = if_not_exists(refunded_settled, :zero) + :a"
        else:
            sets.append("failure_code = :code")
            values[":code"] = failure_code or "failed"
            payment_update = "SET refunded = refunded - :a"
        items = [
            {"Update": {"TableName": self._table_name, "Key": key,
                        "UpdateExpression": f"SET {', '.join(sets)} REMOVE due_pk, due_sk",
                        "ConditionExpression": "#st = :pending",
                        "ExpressionAttributeNames": {"#st": "status"}, "ExpressionAttributeValues": values}},
            {"Update": {"TableName": self._table_name,
                        "Key": {"pk": clinic_pk(refund.clinic_id), "sk": payment_key(refund.payment_id)},
                        "UpdateExpression": payment_update,
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": {":a": refund.amount.amount,
                                                      **({":zero": 0} if status == "succeeded" else {})}}},
        ]
        try:
            self._transact(items)
        except ConditionFailed:
            return False
        return True

    def retry_refund(self, payment: QrPayment, refund: QrRefund, *, now: str) -> bool:
        """failed -> pending again, its amount reserved again (the same refund id is asked again)."""
        amount = refund.amount.amount
        undecided = _undecided(refund.clinic_id, now, f"R#{refund.payment_id}#{refund.refund_id}")
        items = [
            {"Update": {"TableName": self._table_name,
                        "Key": {"pk": clinic_pk(payment.clinic_id), "sk": payment_key(payment.payment_id)},
                        "UpdateExpression": "SET refunded = if_not_exists(refunded, :zero) + :a",
                        "ConditionExpression": "attribute_exists(pk) AND (attribute_not_exists(refunded) "
                                               "OR refunded <= :most)",
                        "ExpressionAttributeValues": {":a": amount, ":zero": 0,
                                                      ":most": payment.amount.amount - amount}}},
            {"Update": {"TableName": self._table_name,
                        "Key": {"pk": clinic_pk(refund.clinic_id),
                                "sk": refund_key(refund.payment_id, refund.refund_id)},
                        "UpdateExpression": "SET #st = :pending, due_pk = :dpk, due_sk = :dsk "
                                            "REMOVE failure_code, settled_at",
                        "ConditionExpression": "#st = :failed",
                        "ExpressionAttributeNames": {"#st": "status"},
                        "ExpressionAttributeValues": {":pending": "pending", ":failed": "failed",
                                                      ":dpk": undecided["due_pk"], ":dsk": undecided["due_sk"]}}},
        ]
        try:
            self._transact(items)
        except ConditionFailed:
            return False
        return True

    def undecided(self, clinic_id: str | None = None, *, shard: int | None = None,
                  older_than: str | None = None) -> list[Undecided]:
        """QR invoices and refunds of ours still undecided, oldest first: one shard (a job's
        invocation), the clinic's shard filtered to the clinic, or every shard."""
        if clinic_id is not None:
            partitions = [shard_key(UNDECIDED_KIND, clinic_id)]
        else:
            partitions = [key_of(UNDECIDED_KIND, s) for s in ([shard] if shard is not None
                                                                       else all_shards())]
        found: list[Undecided] = []
        for partition in partitions:
            condition = Key("due_pk").eq(partition)
            if older_than:
                condition = condition & Key("due_sk").lt(older_than)
            for item in self._query_all(IndexName=DUE_INDEX, KeyConditionExpression=condition):
                item = plain(item)
                if clinic_id is not None and item.get("clinic_id") != clinic_id:
                    continue
                since = str(item["due_sk"]).split("#", 1)[0]
                if str(item["sk"]).startswith("QRREF#"):
                    found.append(Undecided(item["clinic_id"], item["invoice_id"], "refund", since, str(item["sk"])))
                else:
                    found.append(Undecided(item["clinic_id"], item["invoice_id"], "invoice", since))
        return found

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """One TransactWriteItems; ConditionFailed when a condition did not hold."""
        with translated_errors():
            self._table.meta.client.transact_write_items(TransactItems=items)

    def awaiting(self, clinic_id: str | None = None, *, shard: int | None = None,
                 limit: int | None = None) -> tuple[list[FiscalDoc], int]:
        """Documents awaiting their receipt (sales and returns), oldest first per clinic: the sparse index, nothing else.
        A clinic's (one range of its shard), one shard's (a job's invocation), or, with neither,
        every shard's in turn."""
        if clinic_id:
            partitions = [pending_pk(clinic_id)]
        else:
            partitions = [key_of(PENDING_KIND, s) for s in ([shard] if shard is not None else all_shards())]
        items: list[dict[str, Any]] = []
        for partition in partitions:
            condition = Key("fiscal_pending_pk").eq(partition)
            if clinic_id:
                condition = condition & Key("fiscal_pending_sk").begins_with(f"{clinic_id}#")
            left = None if limit is None else limit - len(items)
            items += self._query_all(IndexName=AWAITING_INDEX, KeyConditionExpression=condition, limit=left)
            if limit is not None and len(items) >= limit:
                break
        return [_doc(i) for i in items], len(items)

    def payments(self, clinic_id: str, filters: QrReportFilters) -> list[QrPayment]:
        conditions: list[ConditionBase] = []
        if filters.paid_from:
            conditions.append(Attr("paid_at").gte(filters.paid_from))
        if filters.paid_to:
            conditions.append(Attr("paid_at").lt(filters.paid_to))
        if filters.qr_id:
            conditions.append(Attr("qr_id").eq(filters.qr_id))
        if filters.fiscal_status:
            conditions.append(Attr("fiscal_status").is_in(_PUBLIC_TO_STATES[filters.fiscal_status]))
        if filters.min_amount is not None:
            conditions.append(Attr("amount_minor").gte(filters.min_amount))
        if filters.max_amount is not None:
            conditions.append(Attr("amount_minor").lte(filters.max_amount))
        args: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(clinic_pk(clinic_id))
                                & Key("sk").begins_with("QRPAY#")}
        if conditions:
            args["FilterExpression"] = reduce(lambda a, b: a & b, conditions)
        return sorted((_payment(i) for i in self._query_all(**args)), key=lambda p: (p.paid_at, p.payment_id))

    def appointment_exists(self, clinic_id: str, appointment_id: str) -> bool:
        """Whether the clinic has that appointment (key from ARCHITECTURE.md; read-only here)."""
        with translated_errors():
            item = self._table.get_item(Key={"pk": clinic_pk(clinic_id), "sk": f"APPT#{appointment_id}"},
                                        ProjectionExpression="pk").get("Item")
        return item is not None

    def _query_all(self, *, limit: int | None = None, **args: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            with translated_errors():
                page = self._table.query(**args)
            items.extend(page.get("Items", []))
            if limit is not None and len(items) >= limit:
                return items[:limit]
            if "LastEvaluatedKey" not in page:
                return items
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
