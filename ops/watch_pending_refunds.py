"""Put every link refund left `pending` before refund reconciliation was deployed on its index.

    python -m ops.watch_pending_refunds --table <AppointmentsTable physical name> [--apply]

From the deploy that brings refund reconciliation, a pending refund (`REFUND#…`) carries
`due_pk=REFUNDWATCH#{shard}` / `due_sk` so the `link-reconcile` job asks the provider about it when
its answer or event never comes. A refund left pending before that has neither, and would wait
for its event for ever. Run this right after that deploy (dry run first; safe to repeat and to run
while the job runs): one Scan of the table, projected to what it needs, and for each pending refund
without the fields, an update that adds them, due now (conditional on the refund still being
pending with no such fields, so one the job or a webhook moved meanwhile is left alone). Needs
dynamodb:Scan and dynamodb:UpdateItem on the table: run it with an operator's credentials.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

from clinicpay.domain.ledger import Refund
from clinicpay.repositories.dynamo import plain
from clinicpay.repositories.ledger import REFUND_WATCH_KIND, refund_due_sk
from clinicpay.repositories.shards import shard_key
from ops import scanned


@dataclass
class Report:
    watched: int = 0  # refunds put on the index (or, dry, to put)
    already: int = 0  # pending refunds already on it


def watch_pending_refunds(table_name: str, *, apply: bool, now: datetime | None = None) -> Report:
    now = now or datetime.now(UTC)
    table = boto3.resource("dynamodb").Table(table_name)
    report = Report()
    args: dict[str, Any] = {"FilterExpression": "begins_with(sk, :refund) AND #s = :pending",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": {":refund": "REFUND#", ":pending": "pending"}}
    for item in map(plain, scanned(table, **args)):
        if "due_pk" in item:
            report.already += 1
            continue
        if not apply:
            report.watched += 1
            continue
        refund = Refund.model_validate(item)
        try:
            table.update_item(
                Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression="SET due_pk = :pk, due_sk = :sk",
                ConditionExpression="#s = :pending AND attribute_not_exists(due_pk)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":pk": shard_key(REFUND_WATCH_KIND, refund.clinic_id),
                                           ":sk": refund_due_sk(refund, now - timedelta(seconds=1)),
                                           ":pending": "pending"})
            report.watched += 1
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            report.already += 1
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.watch_pending_refunds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="the stack's AppointmentsTable physical name")
    parser.add_argument("--apply", action="store_true", help="do it (without: only report what it would do)")
    args = parser.parse_args(argv)
    report = watch_pending_refunds(args.table, apply=args.apply)
    print(("applied:" if args.apply else "dry run (add --apply):"),
          f"refunds put on the index {report.watched}, already on it {report.already}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
