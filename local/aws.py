"""Embedded AWS for the local stack and the tests: moto in server mode, resources from template.yaml."""

from __future__ import annotations

import functools
import os
import socket
import threading
from typing import Any

import boto3

from local import template

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_dynamodb_request = threading.RLock()


def serialize_dynamodb_requests() -> None:
    """Make each DynamoDB request atomic in the moto server we run, as each is in DynamoDB.

    moto's TransactWriteItems deep-copies every table it touches before applying the transaction
    (without a lock) and, when one of its conditions fails, puts those copies back: any write another
    request made in between is wiped, and a request running meanwhile may read a half-applied
    transaction. DynamoDB itself does neither (a transaction is atomic and isolated; a failed one
    changes nothing). One lock around moto's handling of each DynamoDB request restores that: requests
    from many threads still interleave in any order, one whole request at a time, so races between
    conditional writes are exercised as in DynamoDB. Only the local emulation changes; in-process
    (ThreadedMotoServer), so the patch reaches the server the tests and `make run` start.
    """
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "clinicpay_serialized", False):
        return
    call_action = DynamoHandler.call_action

    @functools.wraps(call_action)
    def one_request_at_a_time(self: Any) -> Any:
        with _dynamodb_request:
            return call_action(self)

    one_request_at_a_time.clinicpay_serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = one_request_at_a_time  # type: ignore[method-assign]


def start_moto(port: int | None = None) -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    serialize_dynamodb_requests()
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def point_boto3_at(endpoint: str) -> None:
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ["AWS_ENDPOINT_URL"] = endpoint


def function_environment(parameters: dict[str, str] | None = None) -> dict[str, str]:
    """Every function's environment from the template, with intrinsic functions resolved the local way.

    Locally a table's physical name is its logical id; parameters take their defaults unless given
    in `parameters`; the process environment may still override the result.
    """
    resolver = template.Resolver(parameters)
    env: dict[str, str] = {}
    for function in template.functions().values():
        for name, value in resolver.resolve(function.environment).items():
            if isinstance(value, str | int | float | bool):
                env[name] = str(value)
    env.pop("POWERTOOLS_SERVICE_NAME", None)
    return env


def create_resources(verified_sender: str) -> None:
    dynamodb = boto3.client("dynamodb")
    existing = set(dynamodb.list_tables()["TableNames"])
    for name, args in template.tables().items():
        if name not in existing:
            dynamodb.create_table(**args)
    sqs = boto3.client("sqs")
    for name, attributes in template.queues().items():  # DLQs first: a redrive policy names its DLQ
        sqs.create_queue(QueueName=name, Attributes=attributes)
    boto3.client("sesv2").create_email_identity(EmailIdentity=verified_sender)
