"""Each clinic's patient-token secret (the key its site signs patient tokens with), and the one it
replaced while that one is still honoured.

Item `CLINIC#{cid}` / `PATIENT_TOKEN_SECRET`: `current` {kid, secret, created_at}, `previous`
{kid, secret, valid_until} and `version` (each rotation is conditional on the version it read, so
two admins rotating at once cannot lose a secret the site is already using). The secret lives here,
not in Secrets Manager: the booking reads it with a strongly consistent GetItem, so a rotation holds
from the next request, and it lets a holder act as a patient of that clinic on the public routes
(book, save a card), never move money.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clinicpay.domain.errors import Conflict
from clinicpay.repositories.clinics import clinic_pk
from clinicpay.repositories.dynamo import plain, table, translated_errors

SK = "PATIENT_TOKEN_SECRET"


class PatientTokenSecrets:
    def __init__(self, table_name: str):
        self._table_name = table_name

    def _key(self, clinic_id: str) -> dict[str, str]:
        return {"pk": clinic_pk(clinic_id), "sk": SK}

    def read(self, clinic_id: str) -> dict[str, Any] | None:
        with translated_errors():
            item = table(self._table_name).get_item(Key=self._key(clinic_id), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def active(self, clinic_id: str, now: datetime) -> list[str]:
        """The secrets a token may be signed with now: the current one, then the previous one
        until its grace period ends."""
        item = self.read(clinic_id) or {}
        found = []
        if item.get("current"):
            found.append(str(item["current"]["secret"]))
        previous = item.get("previous")
        if previous and str(previous.get("valid_until", "")) > now.isoformat():
            found.append(str(previous["secret"]))
        return found

    def rotate(self, clinic_id: str, current: dict[str, str], previous: dict[str, str] | None,
               expected_version: int) -> int:
        values: dict[str, Any] = {":current": current, ":next": expected_version + 1}
        update = "SET #cur = :current, #ver = :next"
        if previous:
            update += ", #prev = :previous"
            values[":previous"] = previous
        else:
            update += " REMOVE #prev"
        condition = "attribute_not_exists(pk)" if expected_version == 0 else "#ver = :expected"
        if expected_version:
            values[":expected"] = expected_version
        with translated_errors(Conflict, "The secret was rotated by another request; read it again."):
            table(self._table_name).update_item(Key=self._key(clinic_id), UpdateExpression=update,
                                                ConditionExpression=condition,
                                                ExpressionAttributeNames={"#cur": "current", "#ver": "version",
                                                                          "#prev": "previous"},
                                                ExpressionAttributeValues=values)
        return expected_version + 1

    def delete(self, clinic_id: str) -> None:
        with translated_errors():
            table(self._table_name).delete_item(Key=self._key(clinic_id))
