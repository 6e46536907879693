"""repositories/shards.py spreads clinics evenly and stably; clinicpay.fanout runs one shard per
message and reports only the shards that failed (no AWS here: the SQS paths are in
tests/integration/test_sharded_jobs.py)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from clinicpay import fanout
from clinicpay.domain.ids import id_from_digest
from clinicpay.job_events import is_job_event
from clinicpay.repositories import shards
from clinicpay.repositories.shards import SHARDS, checked, key_of, shard_key, shard_of


def test_the_shard_of_a_clinic_is_the_first_eight_bytes_of_its_sha256_modulo_the_count() -> None:
    # Stable across processes, deploys and languages: anyone can compute where a clinic's items are.
    for clinic_id in ("cl_bcdfghjkmnpqrstv", "cl_7Hc2pQ9xKd", "clínica-ñ"):
        expected = int(hashlib.sha256(clinic_id.encode()).hexdigest()[:16], 16) % 16
        assert shard_of(clinic_id, 16) == expected
    assert SHARDS == 16  # the default (CLINICPAY_SHARDS unset in the tests)
    assert shard_key("PENDING", "cl_bcdfghjkmnpqrstv") == f"PENDING#{shard_of('cl_bcdfghjkmnpqrstv'):02d}"
    assert key_of("DUE", 3) == "DUE#03" and key_of("OUTBOX", 15) == "OUTBOX#15"


def test_ten_thousand_clinics_spread_evenly_over_the_shards() -> None:
    # Ids as we mint them (new_id's alphabet), drawn deterministically so the figure is the same each run.
    per_shard = Counter(shard_of(id_from_digest("cl", str(n), length=20)) for n in range(10_000))
    assert set(per_shard) == set(range(SHARDS))
    mean = 10_000 / SHARDS
    assert max(per_shard.values()) / mean < 1.06 and min(per_shard.values()) / mean > 0.93


@pytest.mark.parametrize("value", [-1, 16, 99, "x", None, True, 2.5, "1e3"])
def test_a_shard_outside_the_range_or_not_a_whole_number_is_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        checked(value)


def test_a_shard_in_range_is_taken_from_a_number_or_its_text() -> None:
    assert checked(0) == 0 and checked("15") == 15


def test_a_shard_count_outside_1_to_100_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("0", "101"):
        monkeypatch.setenv("CLINICPAY_SHARDS", value)
        with pytest.raises(ValueError):
            shards._configured()
    monkeypatch.setenv("CLINICPAY_SHARDS", "32")
    assert shards._configured() == 32


# ------------------------------------------------------------------ fan-out without AWS
def sqs_event(*bodies: Any) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{n}", "receiptHandle": f"r{n}", "body": json.dumps(b),
                         "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1",
                                        "SenderId": "x", "ApproximateFirstReceiveTimestamp": "1"},
                         "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:JobShards", "awsRegion": "us-east-1"}
                        for n, b in enumerate(bodies)]}


def jobs_that_fail_on(bad_shard: int, ran: list[int]) -> fanout.Jobs:
    def sweep(shard: int) -> dict[str, Any]:
        if shard == bad_shard:
            raise RuntimeError("storage down")
        ran.append(shard)
        return {"items_read": shard, "clinics": {f"cl_{shard}": {"remaining": 1}}}

    return fanout.Jobs({"sweep": sweep}, queue_url=lambda: "unused")


def test_a_batch_reports_only_the_shard_that_failed_and_runs_the_others() -> None:
    ran: list[int] = []
    jobs = jobs_that_fail_on(2, ran)
    answer = jobs.handle(sqs_event({"job": "sweep", "shard": 1, "run": "r"}, {"job": "sweep", "shard": 2, "run": "r"},
                                   {"job": "sweep", "shard": 3, "run": "r"}), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert ran == [1, 3]


@pytest.mark.parametrize("body", [{"job": "nope", "shard": 1}, {"job": "sweep", "shard": 16}, {"job": "sweep"},
                                  ["not", "an", "object"], "{"])
def test_a_message_naming_no_job_or_no_shard_of_it_fails_alone(body: Any) -> None:
    ran: list[int] = []
    jobs = jobs_that_fail_on(99, ran)
    event = sqs_event(body, {"job": "sweep", "shard": 4})
    if body == "{":
        event["Records"][0]["body"] = "{"
    assert jobs.handle(event, None) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert ran == [4]


def test_a_batch_whose_every_shard_failed_fails_the_invocation() -> None:
    # Powertools raises, so Lambda counts an error (the function's Errors alarm) and the batch returns.
    with pytest.raises(BatchProcessingError):
        jobs_that_fail_on(5, []).handle(sqs_event({"job": "sweep", "shard": 5}), None)


def test_a_shard_run_by_hand_runs_in_the_invocation_and_reports_to_observers() -> None:
    seen: list[dict[str, Any]] = []
    fanout.observers.append(seen.append)
    try:
        report = jobs_that_fail_on(99, []).handle({"job": "sweep", "shard": 7}, None)
    finally:
        fanout.observers.remove(seen.append)
    assert report == {"job": "sweep", "shard": 7, "run": "by-hand", "items_read": 7,
                      "clinics": {"cl_7": {"remaining": 1}}}
    assert seen == [report]


def test_an_unknown_job_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match="unknown job"):
        jobs_that_fail_on(99, []).handle({"job": "drop-tables"}, None)


def test_shard_reports_merge_into_one_job_report() -> None:
    merged = fanout.merged([
        {"job": "fiscal-retry", "shard": 0, "run": "r", "items_read": 2, "fiscalized": 1,
         "clinics": {"a": {"waiting": 2, "reasons": {"not_due": 1}}}},
        {"job": "fiscal-retry", "shard": 1, "run": "r", "items_read": 3, "fiscalized": 3,
         "clinics": {"b": {"waiting": 3, "reasons": {}}}},
        {"job": "fiscal-retry", "shard": 2, "run": "r", "items_read": 0, "fiscalized": 0, "clinics": {}},
    ])
    assert merged == {"shards": 3, "job": "fiscal-retry", "items_read": 5, "fiscalized": 4,
                      "clinics": {"a": {"waiting": 2, "reasons": {"not_due": 1}}, "b": {"waiting": 3, "reasons": {}}}}


@pytest.mark.parametrize(("event", "is_job"), [
    ({"job": "reminders"}, True),
    ({"job": "reminders", "shard": 3}, True),
    (sqs_event({"job": "reminders", "shard": 3}), True),
    ({"job": "reminders", "requestContext": {"http": {}}}, False),  # an HTTP request with a "job" field
    ({"Records": [{"eventSource": "aws:s3"}]}, False),
    ({"Records": []}, False),
    ({"version": "2.0", "routeKey": "GET /health"}, False),
])
def test_job_events_are_told_from_http_requests(event: dict[str, Any], is_job: bool) -> None:
    assert is_job_event(event) is is_job
