"""The sharded daily `unfiscalized-check` at 10,000 clinics and 2,000,000 stored QR payments.

    .venv/bin/python bench/bench_sharded_jobs.py [--clinics 10000] [--history 2000000] [--today 5000]
                                                 [--pending 0.1] [--check-clinics 120] [--check-history 600]

A day at scale: clinics of skewed sizes (log-normal, seeded), their payment history (fiscalized, so
outside the AwaitingFiscalization index), and today's payments made through the real repository
(`QrRepository.create_payment`: each is an index write to its clinic's shard, PENDING#nn); most get
their receipt at payment time (`fiscalize_payment`, a register that answers DONE), `--pending` of
them meet a register that is down and wait. Then the daily check runs as deployed: one invocation per
shard (clinicpay.fanout `Jobs.run_shard`, the real use case and repository), against a register that
is back. Printed: index writes per shard (max/mean), items read per run against items due (and
against what a scan would read), and the longest single invocation (items, DynamoDB calls, time).

Storage: moto cannot hold two million items here (kilobytes of objects each; a Query on an index
walks every item), so the table is bench/support/dynamo_standin.py, an in-memory stand-in whose update and
condition expressions are moto's own. It is checked first: a small day (`--check-*`, history made
through the real create + complete calls) runs on moto (in-process) and on the stand-in, and the
per-shard figures must be identical. At scale the history is loaded in its final, fiscalized shape
(the check shows the real calls leave such items outside the index). Times are in-process: the
stand-in answers in microseconds where DynamoDB takes milliseconds, so the longest invocation is
also projected at an assumed DYNAMODB_MS per call.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "layers" / "shared" / "python"), str(ROOT), str(ROOT / "bench" / "support")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
BENCH_ENVIRONMENT = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                     "POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_TRACE_DISABLED": "true"}
if __name__ == "__main__":  # run by hand: in-process moto, quiet logs (the tests import it in their own environment)
    os.environ.update(BENCH_ENVIRONMENT)
    os.environ.pop("AWS_ENDPOINT_URL", None)

import logging  # noqa: E402
from contextlib import nullcontext  # noqa: E402

from dynamo_standin import StandInTable  # noqa: E402

from clinicpay import fanout  # noqa: E402
from clinicpay.domain.errors import ProviderUnavailable  # noqa: E402
from clinicpay.domain.fiscal import FiscalStatus, ReceiptRequest, ReceiptResult, ShiftState  # noqa: E402
from clinicpay.domain.ids import id_from_digest  # noqa: E402
from clinicpay.domain.money import Money  # noqa: E402
from clinicpay.domain.qr import BasketLine, CardPayment, QrPayment, iso  # noqa: E402
from clinicpay.repositories import qr as qr_repo  # noqa: E402
from clinicpay.repositories.qr import AWAITING_INDEX, PENDING_KIND, QrRepository  # noqa: E402
from clinicpay.repositories.shards import SHARDS, key_of, shard_key, shard_of  # noqa: E402
from clinicpay.usecases import fiscal_check  # noqa: E402
from clinicpay.usecases.fiscalization import fiscalize_payment  # noqa: E402
from local import template  # noqa: E402

TABLE = "AppointmentsTable"
DAY = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # the daily check's run (07:00 Kyiv is 05:00 UTC; any hour will do)
DYNAMODB_MS = 10.0  # assumed time of one DynamoDB call from Lambda, in-region (an assumption, not measured here)
BUSINESS_HOURS = 8  # today's payments arrive over this many hours, for the per-partition write rate

logging.getLogger("clinicpay").setLevel(logging.ERROR)


class Register:
    """Checkbox as the benchmark needs it: DONE at once, or down (the payment waits)."""

    def __init__(self, up: bool = True):
        self.up, self.sold = up, 0

    def current_shift(self) -> ShiftState:
        return ShiftState(status="OPENED", shift_id="bench")

    def open_shift(self) -> ShiftState:
        return self.current_shift()

    def close_shift(self) -> ShiftState:
        return ShiftState(status="NONE")

    def sell(self, receipt: ReceiptRequest) -> ReceiptResult:
        if not self.up:
            raise ProviderUnavailable("Checkbox is down (bench)")
        self.sold += 1
        return ReceiptResult(receipt_id=receipt.receipt_id, state="DONE", fiscal_code=f"FC{self.sold}",
                             tax_url=f"https://check.example/FC{self.sold}")

    def get_receipt(self, receipt_id: str) -> ReceiptResult | None:
        return None


@dataclass
class Day:
    clinics: list[str]
    history: list[tuple[int, int]]  # (clinic index, n)
    today: list[tuple[int, int, bool]]  # (clinic index, n, stays pending)


def make_day(clinics: int, history: int, today: int, pending: float, seed: int = 12) -> Day:
    rng = random.Random(seed)
    ids = [id_from_digest("cl", "bench", str(n), length=20) for n in range(clinics)]
    weights = [rng.lognormvariate(0, 1.0) for _ in ids]  # a few big clinics, many small ones
    owners = rng.choices(range(clinics), weights=weights, k=history + today)
    return Day(ids, [(owners[n], n) for n in range(history)],
               [(owners[history + n], history + n, rng.random() < pending) for n in range(today)])


def payment(clinic_id: str, n: int, paid_at: datetime) -> QrPayment:
    amount = 10_000 + (n % 500) * 100
    return QrPayment(
        payment_id=f"qrp_p{n:08d}", clinic_id=clinic_id, invoice_id=f"p{n:08d}", qr_id="qr_bench",
        amount=Money(amount=amount, currency="UAH"), paid_at=iso(paid_at),
        card=CardPayment(masked_pan="444403******1902", approval_code="662476", rrn=f"{n:012d}"),
        basket=[BasketLine(name="Консультація", code="svc", qty=1, unit_price=amount)],
        created_at=iso(paid_at), receipt_id=f"00000000-0000-4000-8000-{n:012d}")


def fiscalized_row(clinic_id: str, n: int) -> dict[str, Any]:
    """A history item as complete_payment leaves it: fiscalized, no AwaitingFiscalization attributes."""
    p = payment(clinic_id, n, DAY - timedelta(days=1 + n % 700))
    item = {"pk": qr_repo.clinic_pk(clinic_id), "sk": f"QRPAY#{p.payment_id}", "gsi1pk": qr_repo.ref_pk(p.invoice_id),
            "gsi1sk": "QRPAY", "amount_minor": p.amount.amount,
            **p.model_dump(mode="json", exclude_none=True), "fiscal_status": FiscalStatus.FISCALIZED.value,
            "attempts": 1, "receipt": {"id": p.receipt_id, "fiscal_code": "FC", "url": "https://check.example/FC"}}
    return item


@dataclass
class Run:
    index_items_before: dict[int, int]  # shard -> items in its AwaitingFiscalization partition before the check
    reports: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[int, float] = field(default_factory=dict)
    calls: dict[int, int] = field(default_factory=dict)
    load_seconds: float = 0.0


def run_day(day: Day, repo: QrRepository, *, real_history: bool, add_cold: Callable[[int, int], None] | None,
            count_calls: Callable[[], int]) -> Run:
    """Load the day into `repo`'s table, then run the daily check shard by shard."""
    started = time.perf_counter()
    up, down = Register(up=True), Register(up=False)
    for clinic, n in day.history:
        clinic_id = day.clinics[clinic]
        if real_history:  # the real calls: created (in the index), then fiscalized (out of it)
            assert repo.create_payment(payment(clinic_id, n, DAY - timedelta(days=1 + n % 700)))
            fiscalize_payment(repo, lambda _: up, clinic_id, f"qrp_p{n:08d}", clock=lambda: DAY - timedelta(days=1))
        else:
            assert add_cold is not None
            add_cold(clinic, n)
    for clinic, n, stays_pending in day.today:
        clinic_id = day.clinics[clinic]
        paid = DAY - timedelta(hours=12) + timedelta(seconds=n % 36_000)
        assert repo.create_payment(payment(clinic_id, n, paid))
        register = down if stays_pending else up
        fiscalize_payment(repo, lambda _, r=register: r, clinic_id, f"qrp_p{n:08d}",  # type: ignore[misc]
                          clock=lambda at=paid: at)
    run = Run({s: repo.awaiting(shard=s)[1] for s in range(SHARDS)}, load_seconds=time.perf_counter() - started)

    back = Register(up=True)
    jobs = fanout.Jobs({"unfiscalized-check": lambda shard: fiscal_check.unfiscalized_check(
        repo, lambda _: back, clock=lambda: DAY, emit=lambda *_: None, shard=shard)}, queue_url=lambda: "")
    for shard in range(SHARDS):  # as the job queue hands them out, one invocation each
        calls_before, started = count_calls(), time.perf_counter()
        run.reports.append(jobs.run_shard("unfiscalized-check", shard, run="bench"))
        run.seconds[shard], run.calls[shard] = time.perf_counter() - started, count_calls() - calls_before
    return run


def per_shard_reads(run: Run) -> list[int]:
    return [r["items_read"] for r in sorted(run.reports, key=lambda r: r["shard"])]


# ------------------------------------------------------------------ the check against moto
def on_moto(day: Day) -> Run:
    """The day on moto: in-process (mock_aws), or the moto server boto3 already points at (the tests'),
    whose AppointmentsTable must be empty."""
    import boto3
    from moto import mock_aws

    calls: Counter[str] = Counter()
    with nullcontext() if os.environ.get("AWS_ENDPOINT_URL") else mock_aws():
        if TABLE not in boto3.client("dynamodb").list_tables()["TableNames"]:
            boto3.client("dynamodb").create_table(**template.tables()[TABLE])
        qr_repo.table.cache_clear()
        session = boto3._get_default_session()
        session.events.register("before-call.dynamodb", lambda event_name, **_: calls.update([event_name]))
        try:
            return run_day(day, QrRepository(TABLE), real_history=True, add_cold=None,
                           count_calls=lambda: sum(calls.values()))
        finally:
            session.events.unregister("before-call.dynamodb")
            qr_repo.table.cache_clear()


def on_standin(day: Day, *, real_history: bool) -> tuple[Run, StandInTable]:
    standin = StandInTable(template.tables()[TABLE])
    standin.materialize_cold_with(lambda row: fiscalized_row(day.clinics[row[0]], row[1]))
    original = qr_repo.table
    qr_repo.table = lambda name: standin  # type: ignore[assignment]
    try:
        run = run_day(day, QrRepository(TABLE), real_history=real_history,
                      add_cold=lambda clinic, n: standin.add_cold(qr_repo.clinic_pk(day.clinics[clinic]),
                                                                  f"QRPAY#qrp_p{n:08d}", (clinic, n)),
                      count_calls=lambda: sum(standin.calls.values()))
    finally:
        qr_repo.table = original  # type: ignore[assignment]
    return run, standin


def same_on_moto_and_standin(day: Day) -> tuple[bool, Run, Run]:
    """Run the day (history through the real create and complete calls) on moto and on the stand-in:
    items per shard before the check, items read per shard, what each shard left waiting, and the
    DynamoDB calls each shard invocation made must all be the same."""
    moto_run = on_moto(day)
    standin_run, _ = on_standin(day, real_history=True)
    same = (moto_run.index_items_before == standin_run.index_items_before
            and per_shard_reads(moto_run) == per_shard_reads(standin_run)
            and [r["remaining"] for r in moto_run.reports] == [r["remaining"] for r in standin_run.reports]
            and moto_run.calls == standin_run.calls)
    return same, moto_run, standin_run


def check_standin(clinics: int, history: int) -> None:
    day = make_day(clinics, history, today=history // 5, pending=0.05, seed=7)
    same, moto_run, standin_run = same_on_moto_and_standin(day)
    waiting = sum(moto_run.index_items_before.values())
    print(f"stand-in checked against moto: {clinics} clinics, {history + len(day.today)} payments made through the real "
          f"calls, {waiting} waiting; items per shard, items read per shard, DynamoDB calls per shard "
          f"{'identical' if same else 'DIFFERENT'} (moto {moto_run.load_seconds:.1f} s to load, stand-in "
          f"{standin_run.load_seconds:.1f} s)")
    if not same:
        print("  moto    ", per_shard_reads(moto_run), moto_run.calls)
        print("  stand-in", per_shard_reads(standin_run), standin_run.calls)
        raise SystemExit(1)


# ------------------------------------------------------------------ at scale
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clinics", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=2_000_000, help="stored, fiscalized payments")
    parser.add_argument("--today", type=int, default=5_000, help="payments made today")
    parser.add_argument("--pending", type=float, default=0.1,
                        help="share of today's payments still waiting (Checkbox was down for part of the day)")
    parser.add_argument("--check-clinics", type=int, default=120)
    parser.add_argument("--check-history", type=int, default=600)
    args = parser.parse_args()

    check_standin(args.check_clinics, args.check_history)
    started = time.perf_counter()
    day = make_day(args.clinics, args.history, args.today, args.pending)
    run, standin = on_standin(day, real_history=False)
    figures = summarize(day, run, standin)
    took = time.perf_counter() - started
    print(figures.text(args, took))
    return 0 if figures.ok else 1


@dataclass
class Figures:
    stored: int
    due: int
    read: int
    scan: int
    writes: list[int]
    lifetime_writes: list[int]
    clinics_per_shard: list[int]
    longest_shard: int
    longest_items: int
    longest_calls: int
    longest_seconds: float
    all_calls: int
    all_seconds: float
    ok: bool

    def text(self, args: argparse.Namespace, took: float) -> str:
        mean = statistics.mean(self.writes)
        busiest_rate = max(self.writes) / (BUSINESS_HOURS * 3600)
        single_rate = sum(self.writes) / (BUSINESS_HOURS * 3600)
        projected = self.longest_calls * DYNAMODB_MS / 1000
        one_function = self.all_calls * DYNAMODB_MS / 1000
        lines = [
            f"clinics {args.clinics}, payments stored {self.stored} ({args.history} history + {args.today} today), "
            f"{SHARDS} shards; simulated in {took:.0f} s",
            "index writes per shard (a payment enters AwaitingFiscalization when made, leaves at its receipt):",
            f"  today's {args.today} payments, counted on the real calls: max/mean {max(self.writes) / mean:.3f}   "
            f"min/mean {min(self.writes) / mean:.3f}   mean {mean:.0f}",
            f"  all {self.stored} payments' lifetimes (2 writes each, by their clinic's shard_key): max/mean "
            f"{max(self.lifetime_writes) / statistics.mean(self.lifetime_writes):.3f}   min/mean "
            f"{min(self.lifetime_writes) / statistics.mean(self.lifetime_writes):.3f}",
            f"  clinics per shard max/mean {max(self.clinics_per_shard) / statistics.mean(self.clinics_per_shard):.3f}",
            f"  busiest partition {busiest_rate:.2f} writes/s over {BUSINESS_HOURS} business hours "
            f"(one PENDING partition would take {single_rate:.2f}/s; DynamoDB allows 1000 WCU/s per partition)",
            f"items read by the daily check {self.read}   items due {self.due}   "
            f"{'equal' if self.read == self.due else 'NOT EQUAL'}   (a scan would read {self.scan})",
            f"longest single invocation: shard {self.longest_shard}, {self.longest_items} items, "
            f"{self.longest_calls} DynamoDB calls, {self.longest_seconds * 1000:.0f} ms in-process "
            f"(~{projected:.1f} s at {DYNAMODB_MS:.0f} ms a call)",
            f"the same run as one invocation (before sharding): {self.due} items, {self.all_calls} DynamoDB calls, "
            f"{self.all_seconds * 1000:.0f} ms in-process (~{one_function:.1f} s at {DYNAMODB_MS:.0f} ms a call)",
        ]
        return "\n".join(lines)


def summarize(day: Day, run: Run, standin: StandInTable) -> Figures:
    writes = [standin.writes[(AWAITING_INDEX, key_of(PENDING_KIND, s))] for s in range(SHARDS)]
    clinics_per_shard = Counter(shard_of(c) for c in day.clinics)
    shard_of_clinic = [shard_of(c) for c in day.clinics]
    lifetime = Counter(shard_of_clinic[c] for c, _ in day.history) + Counter(shard_of_clinic[c] for c, _, _ in day.today)
    due = sum(run.index_items_before.values())
    read = sum(per_shard_reads(run))
    by_shard = {r["shard"]: r for r in run.reports}
    # The invocation with the most work (its in-process time is noisy on a shared machine; its
    # DynamoDB calls and items are what its time in Lambda follows).
    longest = max(range(SHARDS), key=lambda s: (by_shard[s]["items_read"], run.calls[s], run.seconds[s]))
    standin.scan()
    scan = standin.reads[("table", "*")]
    # What the stand-in holds is what was loaded: history rows plus today's payments, each in its shard.
    expected_today = Counter(shard_key(PENDING_KIND, day.clinics[c]) for c, _, _ in day.today)
    entered = {s: expected_today[key_of(PENDING_KIND, s)] for s in range(SHARDS)}
    ok = (read == due and all(by_shard[s]["items_read"] == run.index_items_before[s] for s in range(SHARDS))
          and all(writes[s] == 2 * entered[s] for s in range(SHARDS))  # in at creation, out at its receipt
          and sum(r["remaining"] for r in run.reports) == 0)
    return Figures(stored=standin.item_count, due=due, read=read, scan=scan, writes=writes,
                   lifetime_writes=[2 * lifetime[s] for s in range(SHARDS)],
                   clinics_per_shard=[clinics_per_shard[s] for s in range(SHARDS)], longest_shard=longest,
                   longest_items=by_shard[longest]["items_read"], longest_calls=run.calls[longest],
                   longest_seconds=run.seconds[longest], all_calls=sum(run.calls.values()),
                   all_seconds=sum(run.seconds.values()), ok=ok)


if __name__ == "__main__":
    sys.exit(main())
