"""What the stack costs a month: with no traffic, per clinic, and per 10,000 payments (us-east-1 list prices).

    .venv/bin/python bench/cost_model.py [--clinics 10000] [--secrets-per-clinic 1.5] [--qr-clinics 2000]

Counts come from template.yaml (functions and their memory, schedules, alarms, job queues) and
repositories/shards.py (invocations per job run); prices and usage assumptions are the constants
below, each with where it comes from. Free tiers are left out (they are per account, and other
workloads may use them up): the figures are list prices. README.md ("What it costs") quotes this.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "layers" / "shared" / "python"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from clinicpay.repositories.shards import SHARDS  # noqa: E402
from local import template  # noqa: E402

MONTH_SECONDS = 30 * 24 * 3600
MONTH_MINUTES = 30 * 24 * 60


@dataclass(frozen=True)
class Price:
    value: float
    unit: str
    source: str


# Checked with the search tool (stored copies, read 2026-11): [P] the AWS Price List API for Lambda in
# us-east-1 (effective 2025-10-01) as transcribed in a public repository; [W] AWS or third-party
# pricing pages quoting the same figure. [A]: an assumption, not confirmed in a stored source.
PRICES = {
    "lambda_request": Price(0.20 / 1e6, "request", "[P] $0.20 per 1M requests"),
    "lambda_gb_s_arm": Price(0.0000133334, "GB-s", "[P] arm64, first 7.5B GB-s"),
    "snapstart_cache": Price(0.0000015046, "GB-s cached", "[P] SnapStart cached snapshot"),
    "snapstart_restore": Price(0.0001397998, "GB restored", "[P] SnapStart restore"),
    "ddb_write": Price(0.625 / 1e6, "write request unit", "[W] on-demand, after the Nov 2024 cut"),
    "ddb_read": Price(0.125 / 1e6, "read request unit", "[W] on-demand, after the Nov 2024 cut"),
    "ddb_storage": Price(0.25, "GB-month", "[A] standard table class"),
    "ddb_pitr": Price(0.20, "GB-month", "[A] continuous backups"),
    "secret": Price(0.40, "secret-month", "[W] Secrets Manager"),
    "secret_call": Price(0.05 / 10_000, "API call", "[W] $0.05 per 10,000 calls"),
    "scheduler": Price(1.00 / 1e6, "invocation", "[W] EventBridge Scheduler (14M a month free)"),
    "sqs": Price(0.40 / 1e6, "request", "[W] standard queue, 64 KB chunks"),
    "alarm": Price(0.10, "alarm metric-month", "[W] standard resolution"),
    "alarm_insights": Price(0.10, "metric analyzed-month", "[A] Metrics Insights query alarm"),
    "logs_ingest": Price(0.50, "GB", "[W] CloudWatch Logs standard ingestion"),
    "logs_store": Price(0.03, "GB-month", "[A] CloudWatch Logs storage"),
    "xray": Price(5.00 / 1e6, "trace recorded", "[A] X-Ray (100k a month free)"),
    "http_api": Price(1.00 / 1e6, "request", "[W] HTTP API, first 300M"),
    "ses": Price(0.10 / 1000, "email", "[A] SES outbound"),
}

# Usage assumptions (not measured: Lambda bills what each environment really takes).
JOB_INVOCATION_SECONDS = 0.1  # a dispatcher (two SendMessageBatch) or a shard with nothing due (one Query)
LOG_BYTES_PER_INVOCATION = 1_000  # START/END/REPORT and our one line a run
ESM_POLLERS_PER_QUEUE = 5  # Lambda keeps 5 long polls (20 s) on an idle queue once MaximumConcurrency is set
RESTORES_PER_JOB_RUN = 2  # environments restored from the snapshot per run spaced 15 min or more


def schedule_runs_per_month() -> dict[str, float]:
    runs = {}
    for resource in template.load()["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] != "ScheduleV2":
                continue
            expression = event["Properties"]["ScheduleExpression"]
            job = json.loads(event["Properties"]["Input"])["job"]
            found = re.match(r"rate\((\d+) minutes?\)", expression)
            runs[job] = MONTH_MINUTES / int(found.group(1)) if found else 30.0  # cron: once a day
    return runs


def line(name: str, amount: float, arithmetic: str) -> tuple[str, float, str]:
    return name, amount, arithmetic


def idle(clinics: int, secrets_per_clinic: float, qr_clinics: int) -> list[tuple[str, float, str]]:
    p = {k: v.value for k, v in PRICES.items()}
    functions = template.functions()
    memory_gb = 0.5  # Globals MemorySize 512 (no function overrides it)
    runs = schedule_runs_per_month()
    total_runs = sum(runs.values())
    invocations = total_runs * (1 + SHARDS)
    resources = template.load()["Resources"]
    alarms = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    insights = [a for a in alarms if "Metrics" in a["Properties"]]
    job_queues = [q for q, r in resources.items() if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r["Properties"]]
    polls = len(job_queues) * ESM_POLLERS_PER_QUEUE * MONTH_SECONDS / 20
    job_messages = total_runs * (2 + SHARDS * 2)  # 2 SendMessageBatch, a receive and a delete per shard
    gb_s = invocations * JOB_INVOCATION_SECONDS * memory_gb
    # message-retry runs every 5 minutes: its environments stay warm
    restores = (total_runs - runs.get("message-retry", 0)) * RESTORES_PER_JOB_RUN
    logs_gb = invocations * LOG_BYTES_PER_INVOCATION / 1e9
    secrets = 1 + clinics * secrets_per_clinic  # the operator key, and each clinic's gateway credentials
    schedule_text = ", ".join(f"{job} {n:,.0f}" for job, n in runs.items())
    return [
        line("EventBridge Scheduler", total_runs * p["scheduler"], f"{total_runs:,.0f} runs ({schedule_text}) x $1.00/M"),
        line("Lambda requests", invocations * p["lambda_request"],
             f"{total_runs:,.0f} runs x (1 dispatcher + {SHARDS} shards) = {invocations:,.0f} x $0.20/M"),
        line("Lambda duration", gb_s * p["lambda_gb_s_arm"],
             f"{invocations:,.0f} x {JOB_INVOCATION_SECONDS} s x {memory_gb} GB = {gb_s:,.0f} GB-s x $0.0000133334"),
        line("Lambda SnapStart cache", len(functions) * memory_gb * MONTH_SECONDS * p["snapstart_cache"],
             f"{len(functions)} functions x {memory_gb} GB x {MONTH_SECONDS:,} s x $0.0000015046 (one live version each)"),
        line("Lambda SnapStart restores", restores * memory_gb * p["snapstart_restore"],
             f"{restores:,.0f} restores ({RESTORES_PER_JOB_RUN} per 15-min or daily run) x {memory_gb} GB x $0.0001397998"),
        line("SQS", (polls + job_messages) * p["sqs"],
             f"({len(job_queues)} queues x {ESM_POLLERS_PER_QUEUE} idle long polls / 20 s = {polls:,.0f}) + "
             f"({total_runs:,.0f} runs x {2 + SHARDS * 2} = {job_messages:,.0f}) requests x $0.40/M"),
        line("DynamoDB reads", total_runs * SHARDS * p["ddb_read"],
             f"{total_runs * SHARDS:,.0f} empty shard queries x 1 RRU x $0.125/M"),
        line("Secrets Manager", secrets * p["secret"],
             f"(1 operator key + {clinics:,} clinics x {secrets_per_clinic} gateway secrets) x $0.40"),
        line("CloudWatch alarms", (len(alarms) - len(insights)) * p["alarm"]
             + (2 + 1 + qr_clinics) * p["alarm_insights"],
             f"{len(alarms) - len(insights)} metric alarms x $0.10 + Metrics Insights alarms reading "
             f"{2 + 1 + qr_clinics:,} metrics (amount mismatch: 2 services, given up: 1, unfiscalized: "
             f"{qr_clinics:,} QR clinics) x $0.10"),
        line("CloudWatch Logs", logs_gb * (p["logs_ingest"] + p["logs_store"]),
             f"{invocations:,.0f} x {LOG_BYTES_PER_INVOCATION} B = {logs_gb:.2f} GB x ($0.50 + $0.03 kept 30 days)"),
        line("X-Ray", invocations * p["xray"], f"{invocations:,.0f} traced invocations x $5/M (Tracing: Active)"),
    ]


# One link payment (booking with link, the patient's click, the paid webhook), with its messages.
# DynamoDB calls per flow are bench/dynamodb_calls.py's (book 2, webhook 2); units assume items of
# 1-2 KB and transactions at twice the units.
PER_PAYMENT = {
    "http_requests": 14,  # book, /pay, /pay/result, 10 payment-status polls, webhook
    "lambda_seconds": 2.0,  # the provider call on /pay dominates
    "read_units": 35,
    "write_units": 24,  # booking and paid transactions (3 items each, x2), session, reminder claim, idempotency
    "stored_kb": 6,  # appointment, link, patient, event record, payment row
    "secret_calls": 2,  # cached 5 minutes per container; at most one on /pay and one on the webhook
    "emails": 3,  # created, reminder, receipt (SMS priced by country: not included)
    "log_kb": 40,
}


def per_payments(payments: int) -> list[tuple[str, float, str]]:
    p = {k: v.value for k, v in PRICES.items()}
    n, u = payments, PER_PAYMENT
    gb = n * u["stored_kb"] / 1e6
    return [
        line("API Gateway (HTTP API)", n * u["http_requests"] * p["http_api"],
             f"{n:,} x {u['http_requests']} requests x $1.00/M"),
        line("Lambda requests", n * u["http_requests"] * p["lambda_request"], f"{n:,} x {u['http_requests']} x $0.20/M"),
        line("Lambda duration", n * u["lambda_seconds"] * 0.5 * p["lambda_gb_s_arm"],
             f"{n:,} x {u['lambda_seconds']} s x 0.5 GB x $0.0000133334"),
        line("DynamoDB requests", n * (u["read_units"] * p["ddb_read"] + u["write_units"] * p["ddb_write"]),
             f"{n:,} x ({u['read_units']} RRU x $0.125/M + {u['write_units']} WRU x $0.625/M)"),
        line("DynamoDB storage (a month)", gb * (p["ddb_storage"] + p["ddb_pitr"]),
             f"{gb:.2f} GB x ($0.25 + $0.20 point-in-time recovery)"),
        line("Secrets Manager calls", n * u["secret_calls"] * p["secret_call"], f"{n:,} x {u['secret_calls']} x $0.05/10k"),
        line("SES", n * u["emails"] * p["ses"], f"{n:,} x {u['emails']} emails x $0.10/1000"),
        line("CloudWatch Logs", n * u["log_kb"] / 1e6 * p["logs_ingest"], f"{n:,} x {u['log_kb']} KB x $0.50/GB"),
        line("X-Ray", n * u["http_requests"] * p["xray"], f"{n:,} x {u['http_requests']} traces x $5/M"),
    ]


def show(title: str, rows: list[tuple[str, float, str]]) -> float:
    print(title)
    for name, amount, arithmetic in rows:
        print(f"  {name:<28} ${amount:>10,.2f}   {arithmetic}")
    total = sum(a for _, a, _ in rows)
    print(f"  {'total':<28} ${total:>10,.2f}")
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clinics", type=int, default=10_000)
    parser.add_argument("--secrets-per-clinic", type=float, default=1.5,
                        help="gateway secrets a clinic stores (Fintoc or Stripe: 1; monobank and Checkbox: 2)")
    parser.add_argument("--qr-clinics", type=int, default=2_000, help="clinics whose QR payments the daily check reports")
    args = parser.parse_args()
    show("A month with no traffic and no clinic (list prices, us-east-1):", idle(0, 0, 0))
    show(f"A month with no traffic, {args.clinics:,} clinics configured:", idle(args.clinics, args.secrets_per_clinic,
                                                                                args.qr_clinics))
    show("Per 10,000 link payments (on top):", per_payments(10_000))
    print("Sources: " + "; ".join(f"{k} {v.source}" for k, v in PRICES.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
