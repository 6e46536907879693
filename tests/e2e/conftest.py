"""End-to-end fixtures: the real local stack (`python -m local.stack --no-demo`) in a subprocess."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import requests

from local import aws, template
from local.server import SANDBOXES

ROOT = template.ROOT
START_TIMEOUT_SECONDS = 60

# What the in-process integration stack may have put into this process's environment; the
# subprocess must derive its own values from its own port.
_INHERITED = {"PUBLIC_BASE_URL", "CLINICPAY_OPERATOR_KEY", "EMAIL_SENDER", "AWS_ENDPOINT_URL", "MOTO_PORT", "PORT",
              "PROVIDER_TIMEOUT_SECONDS", *aws.LOCAL_CREDENTIALS, *(f"{n.upper()}_API_BASE" for n in SANDBOXES)}


class LocalStack(NamedTuple):
    base_url: str
    operator_key: str


def _stack_env(port: int, operator_key: str) -> dict[str, str]:
    template_env = set(aws.function_environment())
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED and k not in template_env}
    env.update(PORT=str(port), CLINICPAY_OPERATOR_KEY=operator_key, PYTHONUNBUFFERED="1")
    return env


def _has_health_route() -> bool:
    health = next((r for r in template.routes() if r.route_key == "GET /health"), None)
    if health is None:
        return False
    function = template.functions()[health.function]
    return (function.code_uri / f"{function.handler.rsplit('.', 1)[0]}.py").is_file()


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    """Ready = /health answers 200; before the admin function exists, = the server answers at all."""
    wait_for_health = _has_health_route()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"local stack exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            response = requests.get(f"{base_url}/health" if wait_for_health else f"{base_url}/_local", timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:300]}"
        except requests.RequestException as error:
            last = type(error).__name__
        time.sleep(0.2)
    pytest.fail(f"local stack not ready after {START_TIMEOUT_SECONDS}s (last: {last}):\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    port = aws.free_port()
    operator_key = f"op_e2e_{secrets.token_urlsafe(16)}"
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile(prefix="clinicpay-stack-", suffix=".log", delete=False) as handle:
        log = Path(handle.name)
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "local.stack", "--no-demo"], cwd=ROOT,
                                   env=_stack_env(port, operator_key), stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(process, base_url, log)
        yield LocalStack(base_url, operator_key)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)
