"""Scheduled jobs that fan out: one invocation per shard, through the function's job queue (SQS).

A job that sweeps a sharded index (repositories/shards.py) is never one invocation over every
clinic. The function that owns it answers three kinds of event:

    {"job": "reminders"}                 EventBridge Scheduler (or a person): the DISPATCHER. It
                                         sends one message per shard, {"job", "shard", "run"}, to
                                         the function's job queue (SendMessageBatch, 10 a call)
                                         and returns; it reads nothing.
    {"Records": [<SQS messages>]}        the queue's event source mapping: each message is ONE
                                         SHARD of one job, run with the invocation's own deadline.
                                         Powertools' BatchProcessor reports the messages whose
                                         shard raised (ReportBatchItemFailures): only those come
                                         back, after the visibility timeout, and after
                                         maxReceiveCount tries they wait in the queue's DLQ.
    {"job": "reminders", "shard": 3}     one shard now, in this invocation (by hand:
                                         `aws lambda invoke --payload '{"job": "reminders", "shard": 3}'`).

A shard's work is claimed item by item with conditional writes, so a shard run twice (SQS delivers
at least once; a dispatcher retried after a partial send sends every shard again) does nothing
twice. Adding a job: write `run_<job>(deps, shard) -> dict` (counts), register it in the function's
`Jobs({...})`, add a ScheduleV2 event with `Input: '{"job": "<job>"}'` to the function in
template.yaml; the queue, its DLQ, the event source mapping and their alarms are per function, not
per job. Locally `POST /_local/jobs/<job>` (local/jobqueue.py) runs the dispatcher, then every
message it sent through the same handler, synchronously, and returns the shards' reports merged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import boto3

from clinicpay import deadline
from clinicpay.domain.ids import new_id
from clinicpay.observability import logger
from clinicpay.repositories.shards import all_shards, checked

ShardJob = Callable[[int], dict[str, Any]]
"""Runs one shard of a job in the current invocation; returns its report (counts)."""

# Called with every shard's report (its "job", "shard" and "run" included). Empty in Lambda; the
# local stack and the benchmarks collect the reports of a whole run through it.
observers: list[Callable[[dict[str, Any]], None]] = []

_BATCH = 10  # SendMessageBatch takes at most ten entries


@lru_cache(maxsize=1)
def _sqs() -> Any:
    return deadline.guard(boto3.client("sqs", config=deadline.aws_config()))


@dataclass(frozen=True)
class Jobs:
    """The jobs one function runs and the queue their shards travel through."""

    jobs: Mapping[str, ShardJob]
    queue_url: Callable[[], str]

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if "Records" in event:
            return self.consume(event, context)
        job = self._known(event["job"])
        if "shard" in event:
            return self.run_shard(job, checked(event["shard"]), run=str(event.get("run") or "by-hand"))
        return self.dispatch(job)

    def _known(self, job: Any) -> str:
        if job not in self.jobs:
            logger.error("unknown job", extra={"job": str(job)[:64]})
            raise ValueError(f"unknown job {str(job)[:64]!r}; known: {sorted(self.jobs)}")
        return str(job)

    # ------------------------------------------------------------------ dispatcher
    def dispatch(self, job: str) -> dict[str, Any]:
        """One message per shard on the job queue. Entries SQS refuses are sent once more; if any
        is still refused the invocation raises, and its retry (EventInvokeConfig) sends every shard
        again, which is harmless (shards are idempotent)."""
        run = new_id("run")
        at = datetime.now(UTC).isoformat()
        bodies = {str(s): json.dumps({"job": job, "shard": s, "run": run, "dispatched_at": at}) for s in all_shards()}
        refused = self._send(bodies)
        if refused:
            refused = self._send({entry: bodies[entry] for entry in refused})
        if refused:
            logger.error("job shards not enqueued", extra={"job": job, "run": run, "shards": sorted(refused)})
            raise RuntimeError(f"{job}: SQS refused shards {sorted(refused, key=int)}")
        logger.info("job dispatched", extra={"job": job, "run": run, "shards": len(bodies)})
        return {"job": job, "run": run, "dispatched": len(bodies)}

    def _send(self, bodies: dict[str, str]) -> list[str]:
        refused: list[str] = []
        entries = [{"Id": entry, "MessageBody": body} for entry, body in bodies.items()]
        for start in range(0, len(entries), _BATCH):
            answer = _sqs().send_message_batch(QueueUrl=self.queue_url(), Entries=entries[start:start + _BATCH])
            refused += [str(f["Id"]) for f in answer.get("Failed", [])]
        return refused

    # ------------------------------------------------------------------ one shard
    def run_shard(self, job: str, shard: int, *, run: str) -> dict[str, Any]:
        report = {"job": job, "shard": shard, "run": run, **self.jobs[job](shard)}
        for observer in list(observers):
            observer(report)
        return report

    # ------------------------------------------------------------------ the queue's batches
    def consume(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Each message is one shard; a shard that raises is reported as a batch item failure (it
        alone comes back). Powertools raises BatchProcessingError when every message failed, so
        the invocation counts as an error (the function's Errors alarm) and the batch returns."""
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType  # lazily: only job invocations

        processor = BatchProcessor(event_type=EventType.SQS)

        def one_message(record: Any) -> dict[str, Any]:
            body = json.loads(record.body)
            if not isinstance(body, dict):
                raise ValueError("a job message is a JSON object")
            job = self._known(body.get("job"))
            return self.run_shard(job, checked(body.get("shard")), run=str(body.get("run") or "unknown"))

        with processor(event["Records"], one_message, context):
            processed = processor.process()
        failed = [record.message_id for status, _, record in processed if status == "fail"]
        if failed:
            logger.warning("job shards failed; they come back after the visibility timeout",
                           extra={"messages": failed})
        return dict(processor.response())


def merged(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One job's shard reports as one: counts summed, per-clinic sections joined (a clinic is in one
    shard), `shards` = how many reports. What `POST /_local/jobs/<job>` answers."""
    total: dict[str, Any] = {"shards": len(reports)}
    for report in reports:
        _add(total, {k: v for k, v in report.items() if k not in ("shard", "run")})
    return total


def _add(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if key not in total:
            total[key] = json.loads(json.dumps(value))  # a copy: later reports add to it
        elif isinstance(value, bool) or isinstance(value, str):
            continue  # the job's name and other labels: the first report's
        elif isinstance(value, int | float):
            total[key] += value
        elif isinstance(value, dict):
            _add(total[key], value)
        elif isinstance(value, list):
            total[key] += value
