"""Embedded AWS for the local stack and the tests: moto in server mode, resources from template.yaml."""

from __future__ import annotations

import os
import socket
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


def start_moto(port: int | None = None) -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

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
    boto3.client("sesv2").create_email_identity(EmailIdentity=verified_sender)
