"""Card-request tokens: the unguessable link that takes a patient to our consent page and then to
the processor's hosted card page. Made by the booking flow (create_link) and by staff card requests
(tokenize); redeemed by tokenize. Holds no card data."""

from __future__ import annotations

from typing import Any

from clinicpay.domain.errors import NotFound
from clinicpay.domain.ids import new_token
from clinicpay.repositories.dynamo import plain, table, translated_errors, without_none


class CardRequestRepository:
    def __init__(self, table_name: str):
        self._table_name = table_name

    def create(self, clinic_id: str, patient_id: str, channel: str, now: str, *,
               appointment_id: str | None = None, expires_at_epoch: int | None = None,
               token: str | None = None) -> str:
        """Returns the new token (or `token`, minted by the caller to store it elsewhere first).
        `channel` is the consent channel: online_booking or card_request."""
        token = token or new_token()
        item = without_none({"pk": f"CARDREQ#{token}", "sk": "CARDREQ", "clinic_id": clinic_id,
                             "patient_id": patient_id, "appointment_id": appointment_id, "channel": channel,
                             "status": "open", "created_at": now, "ttl": expires_at_epoch})
        with translated_errors():
            table(self._table_name).put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        return token

    def get(self, token: str) -> dict[str, Any]:
        with translated_errors():
            item = table(self._table_name).get_item(Key={"pk": f"CARDREQ#{token}", "sk": "CARDREQ"}).get("Item")
        if not item:
            raise NotFound("This card link is not valid.")
        return plain(item)

    def mark_completed(self, token: str, now: str) -> None:
        with translated_errors():
            table(self._table_name).update_item(
                Key={"pk": f"CARDREQ#{token}", "sk": "CARDREQ"},
                UpdateExpression="SET #s = :done, completed_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":done": "completed", ":now": now})


def card_setup_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}/cards/setup/{token}"
