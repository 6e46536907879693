"""Carry a deployment made before KeysTable and per-stage secret names over to them.

    python -m ops.migrate_keys_and_secrets --stage prod --app-table <AppointmentsTable name> \
        --keys-table <KeysTable name> [--old-prefix clinicpay] [--apply]

Run it once, after `sam deploy` has created KeysTable and before clinics call the new functions
(until then their keys answer 401 and their gateways 409 gateway_not_configured). Without
--apply it only says what it would do. What it does, each step safe to repeat:
- every `KEY#...` item of AppointmentsTable is copied to KeysTable (hash, clinic, role, dates;
  never a key, which was never stored); the old item stays until you delete it (--delete-old-keys).
- every secret `<old-prefix>/clinics/<clinic>/<provider>` is copied to
  `clinicpay/<stage>/clinics/<clinic>/<provider>` unless that exists; the old secret stays (delete it
  with a recovery window once the new stack works).
It needs dynamodb:Scan/DeleteItem on the app table, PutItem on KeysTable, and ListSecrets,
GetSecretValue, CreateSecret on the secrets: run it with an operator's credentials, not a function's.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError


@dataclass
class Report:
    keys_copied: list[str] = field(default_factory=list)  # key ids
    keys_present: list[str] = field(default_factory=list)
    keys_deleted: list[str] = field(default_factory=list)
    secrets_copied: list[str] = field(default_factory=list)  # new names
    secrets_present: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"keys copied to KeysTable: {len(self.keys_copied)} {self.keys_copied}",
                f"keys already there: {len(self.keys_present)}",
                f"old key items deleted: {len(self.keys_deleted)}",
                f"secrets copied: {len(self.secrets_copied)} {self.secrets_copied}",
                f"secrets already there: {len(self.secrets_present)}"]


def migrate_keys(app_table: str, keys_table: str, *, apply: bool, delete_old: bool, report: Report) -> None:
    dynamodb = boto3.resource("dynamodb")
    source, target = dynamodb.Table(app_table), dynamodb.Table(keys_table)
    args: dict[str, Any] = {"FilterExpression": Attr("pk").begins_with("KEY#") & Attr("sk").eq("KEY")}
    while True:
        page = source.scan(**args)
        for item in page.get("Items", []):
            record = {k: item[k] for k in ("pk", "clinic_id", "role", "key_id", "created_at", "prefix", "revoked_at")
                      if k in item}
            if apply:
                try:
                    target.put_item(Item=record, ConditionExpression="attribute_not_exists(pk)")
                    report.keys_copied.append(str(item["key_id"]))
                except ClientError as error:
                    if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                        raise
                    report.keys_present.append(str(item["key_id"]))
                if delete_old:
                    source.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
                    report.keys_deleted.append(str(item["key_id"]))
            else:
                report.keys_copied.append(str(item["key_id"]))
        if "LastEvaluatedKey" not in page:
            return
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def migrate_secrets(old_prefix: str, stage: str, *, apply: bool, report: Report) -> None:
    client = boto3.client("secretsmanager")
    old_root, new_root = f"{old_prefix}/clinics/", f"clinicpay/{stage}/clinics/"
    paginator = client.get_paginator("list_secrets")
    for page in paginator.paginate(Filters=[{"Key": "name", "Values": [old_root]}]):
        for secret in page.get("SecretList", []):
            name = secret["Name"]
            if not name.startswith(old_root) or secret.get("DeletedDate"):
                continue  # the name filter matches prefixes; deleted gateways stay deleted
            new_name = new_root + name[len(old_root):]
            if not apply:
                report.secrets_copied.append(new_name)
                continue
            value = client.get_secret_value(SecretId=name)["SecretString"]
            try:
                client.create_secret(Name=new_name, SecretString=value,
                                     Description=f"clinicpay gateway credentials (copied from {name})")
                report.secrets_copied.append(new_name)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceExistsException":
                    raise
                report.secrets_present.append(new_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.migrate_keys_and_secrets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True)
    parser.add_argument("--app-table", required=True, help="the stack's AppointmentsTable physical name")
    parser.add_argument("--keys-table", required=True, help="the stack's KeysTable physical name (output KeysTableName)")
    parser.add_argument("--old-prefix", default="clinicpay", help="SECRETS_PREFIX of the old deployment")
    parser.add_argument("--apply", action="store_true", help="do it (without: only report what it would do)")
    parser.add_argument("--delete-old-keys", action="store_true", help="delete the KEY# items from the app table")
    args = parser.parse_args(argv)
    report = Report()
    migrate_keys(args.app_table, args.keys_table, apply=args.apply, delete_old=args.delete_old_keys, report=report)
    migrate_secrets(args.old_prefix, args.stage, apply=args.apply, report=report)
    print(("applied:" if args.apply else "dry run (add --apply):"), *report.lines(), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
