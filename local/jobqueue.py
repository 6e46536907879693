"""A scheduled job run locally the way AWS runs it, start to end, synchronously.

`run_job("reminders")`:
1. invokes the job's function with the schedule's Input (`{"job": "reminders"}`), as EventBridge
   Scheduler does: the dispatcher puts one message per shard on the function's job queue (moto SQS,
   the queue from template.yaml, through the role's `sqs:SendMessage`);
2. plays the queue's event source mapping (template.yaml: BatchSize, ReportBatchItemFailures):
   receives a batch with the function's role, invokes the function with the SQS event Lambda would
   build, deletes what succeeded; a failed message becomes visible again at once (in AWS, after its
   visibility timeout), so its retries, and its move to the DLQ after maxReceiveCount, happen
   within this run;
3. answers the shard reports of this run merged (clinicpay.fanout.merged), with `failed` naming
   shards that ended in the DLQ.
Each invocation gets its own Lambda context (the function's Timeout, or `timeout`) and takes its
turn like any other request (apigw._one_at_a_time); requests may interleave between shards.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import boto3

from local import apigw, iam, template


def run_job(job: str, *, timeout: float | None = None) -> dict[str, Any]:
    from clinicpay import fanout  # the layer is importable once the stack or the tests set it up

    logical_id = template.schedules()[job]
    handler = apigw.handler_for(logical_id)
    reports: list[dict[str, Any]] = []

    def collect(report: dict[str, Any]) -> None:
        reports.append(report)

    fanout.observers.append(collect)
    try:
        with apigw._one_at_a_time:
            dispatched = handler(apigw.scheduler_event(job), apigw.LambdaContext.for_function(logical_id, timeout))
        failed = drain(logical_id, timeout=timeout)
    finally:
        fanout.observers.remove(collect)
    result = fanout.merged([r for r in reports if r.get("run") == dispatched["run"]])
    result.update({"job": job, "run": dispatched["run"], "dispatched": dispatched["dispatched"]})
    mine = [f for f in failed if f.get("run") == dispatched["run"]]
    if mine:
        result["failed"] = mine
    return result


def mapping_of(logical_id: str) -> template.QueueMapping:
    found = [m for m in template.event_source_mappings() if m.function == logical_id]
    if len(found) != 1:
        raise LookupError(f"{logical_id} has {len(found)} job queue mappings in template.yaml, not one")
    return found[0]


def drain(logical_id: str, *, timeout: float | None = None) -> list[dict[str, Any]]:
    """Deliver every message on the function's job queue to it until the queue is empty; returns
    the bodies of the messages that went to the DLQ meanwhile."""
    mapping = mapping_of(logical_id)
    url = template.queue_url(mapping.queue)
    sqs = boto3.client("sqs")
    handler = apigw.handler_for(logical_id)
    while True:
        with iam.invoking(logical_id):  # the event source mapping reads with the function's role
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(mapping.batch_size, 10),
                                      AttributeNames=["All"], WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        if not messages:
            break
        event = {"Records": [_record(m, mapping.queue) for m in messages]}
        try:
            with apigw._one_at_a_time:
                answer = handler(event, apigw.LambdaContext.for_function(logical_id, timeout))
            refused = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])} \
                if mapping.reports_item_failures else set()
        except Exception:  # noqa: BLE001 - the whole batch failed, as Lambda sees an error
            refused = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in refused]
        if done:
            with iam.invoking(logical_id):
                for message in done:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        for message in messages:
            if message["MessageId"] in refused:  # visible again now (AWS: after the visibility timeout)
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
    return dead_letters(mapping.queue)


def dead_letters(queue: str) -> list[dict[str, Any]]:
    """The bodies in the queue's DLQ, left there (as AWS keeps them for a person to redrive)."""
    policy = template.queues()[queue].get("RedrivePolicy")
    if not policy:
        return []
    dlq = str(json.loads(policy)["deadLetterTargetArn"]).rsplit(":", 1)[1]
    sqs = boto3.client("sqs")
    seen = sqs.receive_message(QueueUrl=template.queue_url(dlq), MaxNumberOfMessages=10, VisibilityTimeout=0,
                               WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in seen]


def _record(message: dict[str, Any], queue: str) -> dict[str, Any]:
    """The record Lambda's SQS event source hands a function for one message."""
    attributes = message.get("Attributes", {})
    now = str(int(time.time() * 1000))
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                       "SentTimestamp": attributes.get("SentTimestamp", now),
                       "SenderId": attributes.get("SenderId", template.ACCOUNT_ID),
                       "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", now)},
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": template.local_arn("AWS::SQS::Queue", queue),
        "awsRegion": template.REGION,
    }
