"""The clinic's fiscal shift as we last saw it at the register: CLINIC#{cid} / SHIFT.

The register (Checkbox) is the truth; this item is what the API shows between calls and tells us
when a shift has just opened (so waiting payments go out). Versioned: every save is conditional.
"""

from __future__ import annotations

from typing import Any

from clinicpay.domain.errors import ConditionFailed
from clinicpay.domain.fiscal import ShiftState
from clinicpay.repositories.dynamo import plain, table, translated_errors, without_none

SHIFT_SK = "SHIFT"


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
        item = {"pk": f"CLINIC#{clinic_id}", "sk": SHIFT_SK, **state.model_dump(mode="json"),
                "updated_at": updated_at, "version": (expected_version or 0) + 1}
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
