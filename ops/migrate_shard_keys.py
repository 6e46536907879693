"""Move waiting items to their clinic's shard of the sparse job indexes (repositories/shards.py).

    python -m ops.migrate_shard_keys --table <AppointmentsTableName output> [--previous-shards N] [--apply]

Before sharding, every QR payment awaiting its receipt had fiscal_pending_pk = "PENDING" and every
appointment with a reminder to send had reminder_pk = "DUE": one partition each. The jobs now read
`PENDING#07`, `DUE#07`... one shard per invocation, so items stored under the old constant wait
unread until this runs. Run it right after the `sam deploy` that brings sharding (dry run first;
safe to repeat, and to run while the jobs run: each move is conditional on the old key still being
there, so a payment fiscalized or a reminder sent meanwhile is left alone). It reads only those
partitions (the waiting items, never the history) and moves each item with one UpdateItem.

After a deploy that changes CLINICPAY_SHARDS, run it with --previous-shards <old count>: it then
also reads the old count's partitions and moves what now belongs to another shard.

Why a one-off move and not jobs that also read the old partition for a release: the old partition
holds only what was waiting at the deploy (a day's backlog at most), the move takes seconds, and
the jobs stay free of a legacy path someone must remember to delete. Until it runs, nothing is lost:
the items keep their data and wait, and the daily check reports them once moved.
Needs dynamodb:Query on the AwaitingFiscalization, RemindersDue and DueByShard indexes and
dynamodb:UpdateItem on the table: run it with an operator's credentials, not a function's.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from clinicpay.repositories.shards import SHARDS, key_of, shard_key


@dataclass(frozen=True)
class ShardedIndex:
    index: str
    attribute: str  # the index's partition key attribute
    kind: str  # shard_key(kind, clinic_id)
    legacy: str | None  # the constant partition it had before sharding
    label: str = ""  # how the report names it, when one index holds several kinds

    @property
    def name(self) -> str:
        return self.label or self.index


INDEXES = (
    ShardedIndex("AwaitingFiscalization", "fiscal_pending_pk", "PENDING", "PENDING"),
    ShardedIndex("RemindersDue", "reminder_pk", "DUE", "DUE"),
    ShardedIndex("DueByShard", "due_pk", "OUTBOX", None),
    ShardedIndex("DueByShard", "due_pk", "LINKWATCH", None, label="DueByShard LINKWATCH"),
)


@dataclass
class Report:
    moved: dict[str, int] = field(default_factory=dict)  # index -> items moved (or, dry, to move)
    in_place: dict[str, int] = field(default_factory=dict)  # already in their shard
    gone: dict[str, int] = field(default_factory=dict)  # left the index while we worked

    def lines(self) -> list[str]:
        return [f"{i.name}: moved {self.moved.get(i.name, 0)}, already in their shard {self.in_place.get(i.name, 0)}, "
                f"done meanwhile {self.gone.get(i.name, 0)}" for i in INDEXES]


def partitions(index: ShardedIndex, previous_shards: int | None) -> list[str]:
    found = [index.legacy] if index.legacy else []
    if previous_shards:
        found += [key_of(index.kind, s) for s in range(previous_shards)]
    return found


def migrate(table_name: str, *, apply: bool, previous_shards: int | None = None,
            report: Report | None = None) -> Report:
    report = report or Report()
    table = boto3.resource("dynamodb").Table(table_name)
    for index in INDEXES:
        for partition in partitions(index, previous_shards):
            for item in _items(table, index, partition):
                wanted = shard_key(index.kind, str(item["clinic_id"]))
                if wanted == partition:
                    report.in_place[index.name] = report.in_place.get(index.name, 0) + 1
                    continue
                if apply and not _move(table, item, index.attribute, partition, wanted):
                    report.gone[index.name] = report.gone.get(index.name, 0) + 1
                    continue
                report.moved[index.name] = report.moved.get(index.name, 0) + 1
    return report


def _items(table: Any, index: ShardedIndex, partition: str) -> list[dict[str, Any]]:
    args: dict[str, Any] = {"IndexName": index.index, "KeyConditionExpression": Key(index.attribute).eq(partition)}
    found: list[dict[str, Any]] = []
    while True:
        page = table.query(**args)
        found += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return found
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _move(table: Any, item: dict[str, Any], attribute: str, old: str, new: str) -> bool:
    try:
        table.update_item(Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression="SET #a = :new",
                          ConditionExpression="#a = :old", ExpressionAttributeNames={"#a": attribute},
                          ExpressionAttributeValues={":new": new, ":old": old})
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.migrate_shard_keys", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="the stack's AppointmentsTable physical name")
    parser.add_argument("--previous-shards", type=int, help="the shard count before this deploy changed it")
    parser.add_argument("--apply", action="store_true", help="do it (without: only report what it would do)")
    args = parser.parse_args(argv)
    report = migrate(args.table, apply=args.apply, previous_shards=args.previous_shards)
    print((f"applied ({SHARDS} shards):" if args.apply else f"dry run, {SHARDS} shards (add --apply):"),
          *report.lines(), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
