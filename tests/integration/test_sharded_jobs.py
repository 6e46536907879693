"""Scheduled jobs fan out over SQS, one shard per invocation (issue 12 item 4): the dispatcher, the
job queue's event source mapping as local/jobqueue.py plays it, a shard that keeps failing, and the
sharded-jobs benchmark's figures at a small scale (bench/bench_sharded_jobs.py)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from clinicpay import fanout
from clinicpay.api.route_groups import function_module
from clinicpay.repositories.shards import SHARDS, shard_key, shard_of
from local import apigw, outbox, template
from tests.support.clinics import ClinicKeys, add_service, create_clinic
from tests.support.env import TestStack

TABLE = "AppointmentsTable"


def clinics_in_different_shards(count: int) -> list[ClinicKeys]:
    found: dict[int, ClinicKeys] = {}
    while len(found) < count:
        keys = create_clinic()
        found.setdefault(shard_of(keys.clinic_id), keys)
    return list(found.values())


def book_with_reminder(clinic: ClinicKeys, email: str, *, due: bool) -> dict[str, Any]:
    starts = (datetime.now(UTC) + timedelta(hours=30)).replace(microsecond=0).isoformat()
    created = clinic.staff().post(clinic.path("/appointments"), json={
        "patient": {"id": email.split("@")[0], "name": "Eva", "email": email}, "service_id": "control",
        "starts_at": starts, "booked_by": "staff"})
    assert created.status == 201, created.body
    appointment = dict(created.json())
    if due:  # time moves on to its 24-hour reminder
        at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        boto3.resource("dynamodb").Table(TABLE).update_item(
            Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{appointment['appointment_id']}"},
            UpdateExpression="SET reminder_due_at = :d, reminders_pending = :p", ExpressionAttributeValues={":d": at, ":p": [at]})
    return appointment


@pytest.fixture
def clinics(stack: TestStack) -> list[ClinicKeys]:
    found = clinics_in_different_shards(3)
    for keys in found:
        add_service(keys, "control", 0, online=False)
    return found


@pytest.fixture
def shard_reports() -> Any:
    seen: list[dict[str, Any]] = []
    fanout.observers.append(seen.append)
    yield seen
    fanout.observers.remove(seen.append)


def queue_bodies(queue: str) -> list[dict[str, Any]]:
    sqs, bodies = boto3.client("sqs"), []
    while True:
        got = sqs.receive_message(QueueUrl=template.queue_url(queue), MaxNumberOfMessages=10, VisibilityTimeout=60)
        if not got.get("Messages"):
            return bodies
        bodies += [json.loads(m["Body"]) for m in got["Messages"]]


def test_reminders_are_keyed_by_shard_and_each_shard_invocation_reads_only_its_due_ones(
        clinics: list[ClinicKeys], shard_reports: list[dict[str, Any]]) -> None:
    # Given, in three clinics of three shards, one reminder due and one not yet
    for n, clinic in enumerate(clinics):
        book_with_reminder(clinic, f"due{n}@example.cl", due=True)
        book_with_reminder(clinic, f"later{n}@example.cl", due=False)
    items = [i for i in boto3.resource("dynamodb").Table(TABLE).scan()["Items"] if str(i["sk"]).startswith("APPT#")]
    assert {i["reminder_pk"] for i in items} == {shard_key("DUE", c.clinic_id) for c in clinics}
    # When the job runs (the dispatcher, then one invocation per shard from the job queue)
    result = apigw.invoke_job("reminders")
    # Then every shard ran once, and together they read exactly the three due reminders
    assert (result["dispatched"], result["shards"]) == (SHARDS, SHARDS)
    assert (result["items_read"], result["sent"]) == (3, 3)
    mine = [r for r in shard_reports if r["run"] == result["run"]]
    assert sorted(r["shard"] for r in mine) == list(range(SHARDS))
    reads = {r["shard"]: r["items_read"] for r in mine}
    assert reads == {s: (1 if s in {shard_of(c.clinic_id) for c in clinics} else 0) for s in range(SHARDS)}
    assert all(len(outbox.messages(to=f"due{n}@example.cl")) == 2 for n in range(3))  # booked, reminded
    assert queue_bodies("CreateLinkJobShards") == []


def test_a_shard_run_by_hand_touches_only_its_own_clinics(clinics: list[ClinicKeys]) -> None:
    for n, clinic in enumerate(clinics):
        book_with_reminder(clinic, f"hand{n}@example.cl", due=True)
    handler = apigw.handler_for("CreateLinkFunction")
    # When an operator runs one shard (aws lambda invoke --payload '{"job": "reminders", "shard": k}')
    report = handler({"job": "reminders", "shard": shard_of(clinics[0].clinic_id)},
                     apigw.LambdaContext.for_function("CreateLinkFunction"))
    # Then only that clinic's reminder went out, and nothing was enqueued
    assert (report["shard"], report["run"], report["sent"], report["items_read"]) == (
        shard_of(clinics[0].clinic_id), "by-hand", 1, 1)
    assert [len(outbox.messages(to=f"hand{n}@example.cl")) for n in range(3)] == [2, 1, 1]
    assert queue_bodies("CreateLinkJobShards") == []


def test_the_dispatcher_puts_one_message_per_shard_on_its_own_functions_queue(stack: TestStack) -> None:
    handler = apigw.handler_for("FiscalizeFunction")
    answer = handler({"job": "fiscal-retry"}, apigw.LambdaContext.for_function("FiscalizeFunction"))
    bodies = queue_bodies("FiscalizeJobShards")
    assert answer["dispatched"] == SHARDS and len(bodies) == SHARDS
    assert Counter(b["shard"] for b in bodies) == Counter(range(SHARDS))
    assert {(b["job"], b["run"]) for b in bodies} == {("fiscal-retry", answer["run"])}
    assert queue_bodies("CreateLinkJobShards") == []


def test_a_shard_that_keeps_failing_waits_in_the_dlq_and_every_other_shard_finishes(
        clinics: list[ClinicKeys], monkeypatch: pytest.MonkeyPatch) -> None:
    for n, clinic in enumerate(clinics):
        book_with_reminder(clinic, f"dlq{n}@example.cl", due=True)
    apigw.handler_for("CreateLinkFunction")
    # create_link's jobs module, as its handler loads it on a job event (functions/create_link/jobs.py)
    jobs = function_module(apigw._modules["CreateLinkFunction"].__file__, "jobs").jobs
    broken = shard_of(clinics[0].clinic_id)
    real = jobs.jobs["reminders"]

    def reminders(shard: int) -> dict[str, Any]:
        if shard == broken:
            raise RuntimeError("this shard's storage is down")
        return dict(real(shard))

    monkeypatch.setitem(jobs.jobs, "reminders", reminders)
    # When the job runs
    result = apigw.invoke_job("reminders")
    # Then the broken shard was tried maxReceiveCount times and waits in the DLQ, named; the others ran
    assert [(f["job"], f["shard"]) for f in result["failed"]] == [("reminders", broken)]
    assert result["shards"] == SHARDS - 1 and result["sent"] == 2
    assert outbox.messages(to="dlq0@example.cl")[-1]["subject"] != outbox.messages(to="dlq1@example.cl")[-1]["subject"]
    redrive = json.loads(template.queues()["CreateLinkJobShards"]["RedrivePolicy"])
    dlq = boto3.client("sqs").get_queue_attributes(QueueUrl=template.queue_url("CreateLinkJobShardsDLQ"),
                                                   AttributeNames=["All"])["Attributes"]
    assert int(dlq["ApproximateNumberOfMessages"]) == 1 and redrive["maxReceiveCount"] == 3
    # And once the shard works again, the next run sends its reminder (it stayed due)
    monkeypatch.setitem(jobs.jobs, "reminders", real)
    assert apigw.invoke_job("reminders")["sent"] == 1


def test_the_sharded_jobs_benchmark_holds_at_a_small_scale(stack: TestStack) -> None:
    """bench/bench_sharded_jobs.py in small: its stand-in table agrees with moto, and the sharded
    daily check reads exactly what waits, each shard in one invocation, however long the history."""
    sys.path.insert(0, str(template.ROOT / "bench"))
    try:
        import bench_sharded_jobs as bench
    finally:
        sys.path.remove(str(template.ROOT / "bench"))  # the module keeps bench/support on the path
    day = bench.make_day(clinics=40, history=80, today=60, pending=0.3, seed=3)
    same, moto_run, _ = bench.same_on_moto_and_standin(day)
    assert same, (bench.per_shard_reads(moto_run), moto_run.calls)
    assert sum(bench.per_shard_reads(moto_run)) == sum(moto_run.index_items_before.values()) > 0
    # At a larger history (only the stand-in holds it), still only what waits is read
    big = bench.make_day(clinics=4_000, history=40_000, today=300, pending=0.1, seed=4)
    run, standin = bench.on_standin(big, real_history=False)
    figures = bench.summarize(big, run, standin)
    assert figures.ok and figures.read == figures.due and figures.scan == 40_300
    # Clinics of log-normal sizes, 250 a shard: the busiest shard takes 1.28x the mean (10,000
    # clinics: 1.09x, in the benchmark); one PENDING partition took all of them.
    assert max(figures.lifetime_writes) / (sum(figures.lifetime_writes) / SHARDS) < 1.35
    assert figures.longest_items < figures.due
