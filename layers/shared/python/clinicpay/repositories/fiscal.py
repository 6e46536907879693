"""The clinic's fiscal shift as we last saw it at the register: CLINIC#{cid} / SHIFT, and what the
shift schedule last did: CLINIC#{cid} / SHIFTSCHED.

The register (Checkbox) is the truth; the SHIFT item is what the API shows between calls and tells
us when a shift has just opened (so waiting payments go out). Versioned: every save is conditional.
While it is open (as far as we know) it carries `due_pk` = shard_key("SHIFTOPEN", cid) in the
DueByShard index, so the daily check finds shifts left open too long without reading every clinic.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key

from clinicpay.domain.errors import ConditionFailed
from clinicpay.domain.fiscal import ShiftState
from clinicpay.repositories import shards
from clinicpay.repositories.dynamo import plain, table, translated_errors, without_none

SHIFT_SK = "SHIFT"
SCHEDULE_SK = "SHIFTSCHED"
DUE_INDEX = "DueByShard"
OPEN_KIND = "SHIFTOPEN"
# Statuses in which a shift is, or is becoming, open: it counts towards the 24 hours.
OPEN_STATUSES = frozenset({"CREATED", "OPENING", "OPENED", "CLOSING"})


class ShiftRepository:
    def __init__(self, table_name: str):
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return table(self._table_name)

    def get_shift(self, clinic_id: str) -> tuple[ShiftState, int] | None:
        with translated_errors():
            item = self._table.get_item(Key={"pk": f"CLINIC#{clinic_id}", "sk": SHIFT_SK}, ConsistentRead=True).get("Item")
        if not item:
            return None
        item = plain(item)
        return ShiftState.model_validate(item), int(item.get("version", 0))

    def save_shift(self, clinic_id: str, state: ShiftState, *, expected_version: int | None, updated_at: str) -> bool:
        """Store `state` if nobody saved since `expected_version` was read (None: never saved)."""
        item = {"pk": f"CLINIC#{clinic_id}", "sk": SHIFT_SK, "clinic_id": clinic_id, **state.model_dump(mode="json"),
                "updated_at": updated_at, "version": (expected_version or 0) + 1}
        if state.status in OPEN_STATUSES:
            item.update({"due_pk": shards.shard_key(OPEN_KIND, clinic_id),
                         "due_sk": f"{state.opened_at or updated_at}#{clinic_id}"})
        if expected_version is None:
            condition, values = "attribute_not_exists(pk)", None
        else:
            condition, values = "version = :v", {":v": expected_version}
        args: dict[str, Any] = {"Item": without_none(item), "ConditionExpression": condition}
        if values:
            args["ExpressionAttributeValues"] = values
        try:
            with translated_errors():
                self._table.put_item(**args)
        except ConditionFailed:
            return False
        return True

    def open_shifts(self, shard: int) -> list[tuple[str, ShiftState, str]]:
        """Shifts we last saw open, in one shard, oldest first: (clinic, state, when we saw it)."""
        items: list[dict[str, Any]] = []
        args: dict[str, Any] = {"IndexName": DUE_INDEX,
                                "KeyConditionExpression": Key("due_pk").eq(shards.key_of(OPEN_KIND, shard))}
        while True:
            with translated_errors():
                page = self._table.query(**args)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                break
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found = []
        for raw in items:
            item = plain(raw)
            found.append((str(item["pk"]).removeprefix("CLINIC#"), ShiftState.model_validate(item),
                          str(item.get("updated_at", ""))))
        return found

    # --- the schedule's own memory ----------------------------------------------------------------
    def schedule_done(self, clinic_id: str) -> dict[str, str]:
        """The last open and close boundaries the schedule acted on: {"open": iso, "close": iso}."""
        with translated_errors():
            item = self._table.get_item(Key={"pk": f"CLINIC#{clinic_id}", "sk": SCHEDULE_SK},
                                        ConsistentRead=True).get("Item")
        item = plain(item or {})
        return {k: str(item[k]) for k in ("open", "close") if item.get(k)}

    def claim_boundary(self, clinic_id: str, action: str, boundary: str) -> bool:
        """Take the schedule's `action` ("open" or "close") at `boundary` for this run; False when
        another run already did (so two overlapping runs never both act)."""
        try:
            with translated_errors():
                self._table.update_item(
                    Key={"pk": f"CLINIC#{clinic_id}", "sk": SCHEDULE_SK},
                    UpdateExpression="SET #a = :b",
                    ConditionExpression="attribute_not_exists(#a) OR #a < :b",
                    ExpressionAttributeNames={"#a": action}, ExpressionAttributeValues={":b": boundary})
        except ConditionFailed:
            return False
        return True

    def release_boundary(self, clinic_id: str, action: str, boundary: str, previous: str | None) -> None:
        """Give a boundary back (the register did not do it): the next run tries again."""
        values: dict[str, Any] = {":b": boundary}
        if previous:
            expression, values[":p"] = "SET #a = :p", previous
        else:
            expression = "REMOVE #a"
        try:
            with translated_errors():
                self._table.update_item(Key={"pk": f"CLINIC#{clinic_id}", "sk": SCHEDULE_SK},
                                        UpdateExpression=expression, ConditionExpression="#a = :b",
                                        ExpressionAttributeNames={"#a": action}, ExpressionAttributeValues=values)
        except ConditionFailed:
            pass
