"""Patients as the clinic knows them, plus one non-secret fact the booking flow needs: whether a
card is on file. The cards themselves (tokens, consents) live in CardsTable, which only `tokenize`
may read; `tokenize` keeps this flag in step when cards are saved or removed."""

from __future__ import annotations

from typing import Any

from clinicpay.repositories.dynamo import plain, table, translated_errors


def _key(clinic_id: str, patient_id: str) -> dict[str, str]:
    return {"pk": f"CLINIC#{clinic_id}", "sk": f"PATIENT#{patient_id}"}


class PatientRepository:
    def __init__(self, table_name: str):
        self._table_name = table_name

    def get(self, clinic_id: str, patient_id: str) -> dict[str, Any] | None:
        with translated_errors():
            item = table(self._table_name).get_item(Key=_key(clinic_id, patient_id)).get("Item")
        return plain(item) if item else None

    def has_card_on_file(self, clinic_id: str, patient_id: str) -> bool:
        item = self.get(clinic_id, patient_id)
        return bool(item and item.get("cards_on_file", 0) > 0)

    def set_cards_on_file(self, clinic_id: str, patient_id: str, count: int) -> None:
        with translated_errors():
            table(self._table_name).update_item(
                Key=_key(clinic_id, patient_id), UpdateExpression="SET cards_on_file = :c, patient_id = :id",
                ExpressionAttributeValues={":c": count, ":id": patient_id})
