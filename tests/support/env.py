"""Starts embedded AWS (moto server) and the local server in-process, and sets the environment the
functions read. Shared by the integration and end-to-end suites."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from local import aws, aws_faults, iam
from local.server import SANDBOXES, LocalApp, LocalServer, WSGIApp

OPERATOR_KEY = "op_test_operator_key"
SENDER = "payments@clinicpay.local"


@dataclass
class TestStack:
    __test__ = False  # a fixture value, not a test class

    moto: Any
    moto_endpoint: str
    server: LocalServer

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def sandbox_url(self, provider: str) -> str:
        return f"{self.base_url}/_sandbox/{provider}"

    def reset(self) -> None:
        requests.post(f"{self.moto_endpoint}/moto-api/reset", timeout=10)
        aws_faults.clear()
        aws.create_resources(SENDER)
        for name in SANDBOXES:
            try:
                module = importlib.import_module(f"local.sandboxes.{name}")
            except ModuleNotFoundError:
                continue
            reset = getattr(module, "reset", None)
            if reset:
                reset()
        from clinicpay import secrets
        from clinicpay.providers.monobank.signature import KEYS

        secrets.clear_cache()  # and the once-a-minute key re-read windows
        KEYS.clear()  # the monobank sandbox made a new signing key


def start_test_stack(extra_routes: dict[str, Any] | None = None,
                     middleware: Callable[[WSGIApp], WSGIApp] | None = None) -> TestStack:
    """`middleware` wraps the server's WSGI app (the fuzz run counts requests and answers with it)."""
    moto, endpoint = aws.start_moto()
    aws.point_boto3_at(endpoint)
    port = aws.free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ.update(aws.function_environment())
    os.environ.update({
        "PUBLIC_BASE_URL": base,
        "EMAIL_SENDER": SENDER,
        "CLINICPAY_OPERATOR_KEY": OPERATOR_KEY,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "clinicpay",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "CARDS_TABLE": "CardsTable",
        "PROVIDER_TIMEOUT_SECONDS": "3",
    })
    for name in SANDBOXES:
        os.environ.setdefault(f"{name.upper()}_API_BASE", f"{base}/_sandbox/{name}")
    # Settings are read from the environment once per process: drop what a test that ran before the
    # stack (a unit test on the same xdist worker) cached from the environment it had then.
    from clinicpay.settings import get_settings

    get_settings.cache_clear()
    # Handlers may make only the calls their role in template.yaml allows, as in AWS.
    iam.enforce({"EmailSender": SENDER, "PublicBaseUrl": base})
    app: WSGIApp = LocalApp(extra_routes)
    server = LocalServer(middleware(app) if middleware else app, port).start()
    stack = TestStack(moto, endpoint, server)
    stack.reset()
    return stack
