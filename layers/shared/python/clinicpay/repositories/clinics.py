"""Clinics, their settings, services and (masked) gateway records."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key

from clinicpay.domain.clinic import Clinic, ClinicSettings, Service
from clinicpay.domain.errors import Conflict, NotFound
from clinicpay.repositories import shards
from clinicpay.repositories.dynamo import plain, table, translated_errors

DUE_INDEX = "DueByShard"
SCHEDULE_KIND = "SHIFTSCHED"


def clinic_pk(clinic_id: str) -> str:
    return f"CLINIC#{clinic_id}"


class ClinicRepository:
    def __init__(self, table_name: str):
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return table(self._table_name)

    def create(self, clinic: Clinic, settings: ClinicSettings) -> None:
        pk = clinic_pk(clinic.clinic_id)
        # One transaction: a clinic never exists without its settings.
        client = self._table.meta.client
        with translated_errors(Conflict, "A clinic with that id already exists."):
            client.transact_write_items(TransactItems=[
                {"Put": {"TableName": self._table_name, "Item": {"pk": pk, "sk": "PROFILE", **clinic.model_dump()},
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": self._table_name,
                         "Item": {"pk": pk, "sk": "SETTINGS", **settings.model_dump(mode="json")}}},
            ])

    def get(self, clinic_id: str) -> Clinic:
        with translated_errors():
            item = self._table.get_item(Key={"pk": clinic_pk(clinic_id), "sk": "PROFILE"}).get("Item")
        if not item:
            raise NotFound("No such clinic.")
        return Clinic.model_validate(plain(item))

    def get_settings(self, clinic_id: str) -> ClinicSettings:
        with translated_errors():
            item = self._table.get_item(Key={"pk": clinic_pk(clinic_id), "sk": "SETTINGS"}).get("Item")
        if not item:
            raise NotFound("No such clinic.")
        return ClinicSettings.model_validate(plain(item))

    def put_settings(self, clinic_id: str, settings: ClinicSettings) -> None:
        item: dict[str, Any] = {"pk": clinic_pk(clinic_id), "sk": "SETTINGS", **settings.model_dump(mode="json")}
        if settings.fiscal_shift_schedule is not None:
            # Found by the shift-schedule job, one shard of scheduled clinics per run (DueByShard).
            item.update({"due_pk": shards.shard_key(SCHEDULE_KIND, clinic_id), "due_sk": clinic_id})
        with translated_errors(NotFound, "No such clinic."):
            self._table.put_item(Item=item, ConditionExpression="attribute_exists(pk)")

    def scheduled_shift_clinics(self, shard: int) -> list[tuple[str, ClinicSettings]]:
        """Clinics in this shard whose fiscal shift opens and closes on a schedule."""
        args: dict[str, Any] = {"IndexName": DUE_INDEX,
                                "KeyConditionExpression": Key("due_pk").eq(shards.key_of(SCHEDULE_KIND, shard))}
        found: list[tuple[str, ClinicSettings]] = []
        while True:
            with translated_errors():
                page = self._table.query(**args)
            found += [(str(i["due_sk"]), ClinicSettings.model_validate(plain(i))) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return found
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put_service(self, clinic_id: str, service: Service) -> None:
        with translated_errors():
            self._table.put_item(Item={"pk": clinic_pk(clinic_id), "sk": f"SERVICE#{service.service_id}",
                                       **service.model_dump(mode="json")})

    def get_service(self, clinic_id: str, service_id: str) -> Service:
        with translated_errors():
            item = self._table.get_item(Key={"pk": clinic_pk(clinic_id), "sk": f"SERVICE#{service_id}"}).get("Item")
        if not item:
            raise NotFound("No such service.")
        return Service.model_validate(plain(item))

    def list_services(self, clinic_id: str) -> list[Service]:
        with translated_errors():
            items = self._table.query(KeyConditionExpression=Key("pk").eq(clinic_pk(clinic_id))
                                      & Key("sk").begins_with("SERVICE#"))["Items"]
        return [Service.model_validate(plain(i)) for i in items]

    def put_gateway(self, clinic_id: str, provider: str, masked: dict[str, str], verified: bool, updated_at: str) -> None:
        with translated_errors():
            self._table.put_item(Item={"pk": clinic_pk(clinic_id), "sk": f"GATEWAY#{provider}", "provider": provider,
                                       "masked": masked, "verified": verified, "updated_at": updated_at})

    def delete_gateway(self, clinic_id: str, provider: str) -> None:
        with translated_errors(NotFound, "That gateway is not configured."):
            self._table.delete_item(Key={"pk": clinic_pk(clinic_id), "sk": f"GATEWAY#{provider}"},
                                    ConditionExpression="attribute_exists(pk)")

    def list_gateways(self, clinic_id: str) -> list[dict[str, Any]]:
        with translated_errors():
            items = self._table.query(KeyConditionExpression=Key("pk").eq(clinic_pk(clinic_id))
                                      & Key("sk").begins_with("GATEWAY#"))["Items"]
        return [{"provider": i["provider"], "masked": i["masked"], "verified": i["verified"],
                 "updated_at": i["updated_at"]} for i in items]

    def has_gateway(self, clinic_id: str, provider: str) -> bool:
        with translated_errors():
            item = self._table.get_item(Key={"pk": clinic_pk(clinic_id), "sk": f"GATEWAY#{provider}"}).get("Item")
        return item is not None
