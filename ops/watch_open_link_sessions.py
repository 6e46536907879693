"""Give a reconciliation watch to every link session stored before link reconciliation was deployed.

    python -m ops.watch_open_link_sessions --table <AppointmentsTable physical name> [--apply]

From the deploy that brings `link-reconcile`, `/pay` writes a watch (LINKWATCH#, DueByShard) with
every provider session it stores. A session stored before that has none, so a webhook it loses would
go unnoticed until the session has expired (a day at most). Run this right after that deploy (dry
run first; safe to repeat and to run while the job runs): it reads the appointments (one Scan of
the table, projected to what it needs) and, for each one still unpaid or pending whose current
session has no watch, writes the watch, due now (conditional on there being none, so a watch the
job or `/pay` wrote meanwhile is left alone). Needs dynamodb:Scan and dynamodb:PutItem on the
table: run it with an operator's credentials, not a function's.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

from clinicpay.domain.appointment import ProviderSession
from clinicpay.repositories.dynamo import plain
from clinicpay.repositories.link_watches import FIRST_ASK, watch_item
from ops import scanned

UNDECIDED = ("unpaid", "pending")


@dataclass
class Report:
    watched: int = 0  # watches written (or, dry, to write)
    already: int = 0  # sessions that had their watch


def watch_open_sessions(table_name: str, *, apply: bool, now: datetime | None = None) -> Report:
    now = now or datetime.now(UTC)
    table = boto3.resource("dynamodb").Table(table_name)
    report = Report()
    args: dict[str, Any] = {
        "FilterExpression": "begins_with(sk, :appt) AND attribute_exists(provider_session) "
                            "AND payment_status IN (:unpaid, :pending)",
        "ProjectionExpression": "pk, sk, clinic_id, appointment_id, provider_session",
        "ExpressionAttributeValues": {":appt": "APPT#", ":unpaid": UNDECIDED[0], ":pending": UNDECIDED[1]}}
    for item in scanned(table, **args):
        stored = plain(item)
        session = ProviderSession.model_validate(stored["provider_session"])
        # Due now: its webhook may have been lost already.
        watch = watch_item(str(stored["clinic_id"]), str(stored["appointment_id"]), session,
                           now - FIRST_ASK - timedelta(seconds=1))
        if not apply:
            exists = table.get_item(Key={"pk": watch["pk"], "sk": watch["sk"]}).get("Item")
            report.already += bool(exists)
            report.watched += not exists
            continue
        try:
            table.put_item(Item=watch, ConditionExpression="attribute_not_exists(pk)")
            report.watched += 1
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            report.already += 1
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.watch_open_link_sessions",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="the stack's AppointmentsTable physical name")
    parser.add_argument("--apply", action="store_true", help="do it (without: only report what it would do)")
    args = parser.parse_args(argv)
    report = watch_open_sessions(args.table, apply=args.apply)
    print(("applied:" if args.apply else "dry run (add --apply):"),
          f"watches written {report.watched}, sessions already watched {report.already}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
