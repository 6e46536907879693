"""How much the daily `unfiscalized-check` reads: items read vs QR payments stored.

    .venv/bin/python bench/bench_unfiscalized_check.py [--payments 20000] [--pending 20]

Stores N QR payments in moto (in-process, tables from template.yaml): `pending` of them still await
their receipt (made by QrRepository.create_payment, so they carry the sparse AwaitingFiscalization
attributes), the rest are fiscalized (the shape complete_payment leaves: no such attributes). Then
runs the real daily check (use case + repository), one shard at a time as the job queue hands them
out, against an in-memory register that fiscalizes everything, and prints what DynamoDB returned to
it, next to what a table scan would have read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "shared" / "python"), str(ROOT)]
os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                   "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_TRACE_DISABLED": "true"})
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from clinicpay import fanout  # noqa: E402
from clinicpay.domain.fiscal import FiscalStatus, Receipt, ReceiptRequest, ReceiptResult, ShiftState  # noqa: E402
from clinicpay.domain.money import Money  # noqa: E402
from clinicpay.domain.qr import BasketLine, CardPayment, QrPayment, iso  # noqa: E402
from clinicpay.repositories import qr as qr_repo  # noqa: E402
from clinicpay.repositories.qr import QrRepository  # noqa: E402
from clinicpay.repositories.shards import SHARDS  # noqa: E402
from clinicpay.usecases import fiscal_check  # noqa: E402
from local import template  # noqa: E402

TABLE = "AppointmentsTable"
CLINICS = 20
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


class AlwaysDone:
    """A register that fiscalizes every receipt at once (the bench measures reads, not Checkbox)."""

    def __init__(self) -> None:
        self.sold = 0

    def current_shift(self) -> ShiftState:
        return ShiftState(status="OPENED", shift_id="bench")

    def open_shift(self) -> ShiftState:
        return self.current_shift()

    def close_shift(self) -> ShiftState:
        return ShiftState(status="NONE")

    def sell(self, receipt: ReceiptRequest) -> ReceiptResult:
        self.sold += 1
        return ReceiptResult(receipt_id=receipt.receipt_id, state="DONE", fiscal_code=f"FC{self.sold}",
                             tax_url=f"https://check.example/FC{self.sold}")

    def get_receipt(self, receipt_id: str) -> ReceiptResult | None:
        return None


def payment(n: int) -> QrPayment:
    clinic_id = f"cl_bench_{n % CLINICS:02d}"
    amount = 10_000 + (n % 500) * 100
    return QrPayment(
        payment_id=f"qrp_p2_bench{n:06d}", clinic_id=clinic_id, invoice_id=f"p2_bench{n:06d}", qr_id="qr_bench",
        amount=Money(amount=amount, currency="UAH"), paid_at=iso(T0 + timedelta(seconds=30 * n)),
        card=CardPayment(masked_pan="444403******1902", approval_code="662476", rrn=f"{n:012d}"),
        basket=[BasketLine(name="Консультація", code="svc", qty=1, unit_price=amount)],
        created_at=iso(T0), receipt_id=f"00000000-0000-4000-8000-{n:012d}")


def fiscalized_item(p: QrPayment) -> dict[str, Any]:
    done = p.model_copy(update={"fiscal_status": FiscalStatus.FISCALIZED, "attempts": 1,
                                "receipt": Receipt(id=p.receipt_id, fiscal_code="FC", url="https://check.example/FC")})
    item = {"pk": qr_repo.clinic_pk(p.clinic_id), "sk": f"QRPAY#{p.payment_id}", "gsi1pk": qr_repo.ref_pk(p.invoice_id),
            "gsi1sk": "QRPAY", "amount_minor": p.amount.amount, **done.model_dump(mode="json")}
    return qr_repo.without_none(item)


def _moto_put() -> Callable[[dict[str, Any]], None]:
    """Write straight into moto's backend: the 19 980 history items need no boto3 round trip each
    (that alone takes about a minute); the pending ones go through the real repository."""
    from boto3.dynamodb.types import TypeSerializer
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    serializer = TypeSerializer()

    def put(item: dict[str, Any]) -> None:
        backend.put_item(TABLE, {k: serializer.serialize(v) for k, v in item.items()})

    return put


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=20_000)
    parser.add_argument("--pending", type=int, default=20)
    args = parser.parse_args()
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(**template.tables()[TABLE])
        repo = QrRepository(TABLE)
        qr_repo.table.cache_clear()
        started = time.perf_counter()
        every = max(args.payments // max(args.pending, 1), 1)
        awaiting = {i * every + i % every for i in range(args.pending)}  # spread over clinics and time
        put = _moto_put()
        for n in range(args.payments):
            p = payment(n)
            if n in awaiting:
                assert repo.create_payment(p)  # the real write, through boto3
            else:
                put(fiscalized_item(p))
        pending = len(awaiting)
        stored = time.perf_counter() - started

        register = AlwaysDone()
        metrics: dict[str, int] = {}

        def daily_check(day: int) -> dict[str, Any]:
            """As deployed: one invocation per shard of the index (clinicpay.fanout), reports merged."""
            return fanout.merged([fiscal_check.unfiscalized_check(
                repo, lambda _: register, clock=lambda: T0 + timedelta(days=day), emit=metrics.__setitem__, shard=shard)
                for shard in range(SHARDS)])

        started = time.perf_counter()
        first = daily_check(30)
        checked = time.perf_counter() - started
        second = daily_check(31)
        # What a scan (or a query over each clinic's whole history) would have to read.
        scanned = client.describe_table(TableName=TABLE)["Table"]["ItemCount"]

    print(f"QR payments stored                 {args.payments:>8}  ({pending} awaiting a receipt; stored in {stored:.1f} s)")
    print(f"items read by the daily check      {first['items_read']:>8}  (AwaitingFiscalization, {first['shards']} shard "
          f"queries; {checked:.2f} s)")
    print(f"  fiscalized / still pending       {first['fiscalized']:>5} / {first['remaining']}"
          f"  (receipts made: {register.sold}; clinics reported: {len(metrics)})")
    print(f"items read by the next day's check {second['items_read']:>8}  (fiscalized payments left the index)")
    print(f"items a table scan would read      {scanned:>8}")
    ratio = first["items_read"] / args.payments if args.payments else 0
    print(f"read / stored                      {ratio:>8.4f}")
    return 0 if first["items_read"] == pending and second["items_read"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
