"""Whether an invocation is a job (clinicpay.fanout) or an HTTP request: the one question every
invocation of a function with jobs asks first. Kept apart from fanout so that HTTP containers, which
never run a job, do not import the job machinery (boto3 SQS, shards, ids) to ask it."""

from __future__ import annotations

from typing import Any


def is_job_event(event: Any) -> bool:
    """A scheduled or by-hand job ({"job": ...}, no HTTP request context) or the job queue's batch."""
    if not isinstance(event, dict):
        return False
    if "requestContext" not in event and isinstance(event.get("job"), str):
        return True
    records = event.get("Records")
    return isinstance(records, list) and bool(records) and all(
        isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
