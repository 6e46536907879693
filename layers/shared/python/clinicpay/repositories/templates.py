"""Message templates an organization sets and a clinic overrides."""

from __future__ import annotations

from clinicpay.notify.builtin import Text
from clinicpay.repositories.dynamo import table, translated_errors


def _key(owner: str, kind: str, channel: str, locale: str) -> dict[str, str]:
    return {"pk": owner, "sk": f"TEMPLATE#{kind}#{channel}#{locale}"}


def org_owner(org_id: str) -> str:
    return f"ORG#{org_id}"


def clinic_owner(clinic_id: str) -> str:
    return f"CLINIC#{clinic_id}"


class TemplateRepository:
    def __init__(self, table_name: str):
        self._table_name = table_name

    def put(self, owner: str, kind: str, channel: str, locale: str, text: Text, updated_at: str) -> None:
        with translated_errors():
            table(self._table_name).put_item(Item={**_key(owner, kind, channel, locale), "subject": text.subject,
                                                   "body": text.body, "updated_at": updated_at})

    def get(self, owner: str, kind: str, channel: str, locale: str) -> Text | None:
        with translated_errors():
            item = table(self._table_name).get_item(Key=_key(owner, kind, channel, locale)).get("Item")
        return Text(item.get("subject", ""), item["body"]) if item else None
