"""How long the current invocation may still spend on outbound calls.

Lambda stops a function at its timeout, and API Gateway then answers the patient with a bare 503
instead of our page. So every invocation (HTTP request or scheduled job) records when it will be
stopped, from `context.get_remaining_time_in_millis()`, and every outbound call takes its budget
from what is left:

- provider calls (providers/http.py) must end RESERVE_SECONDS before the stop, so the writes we make
  after a provider answers, and our own answer, still fit;
- AWS calls (botocore clients passed through `guard`) start an attempt only when the attempt, at its
  configured connect + read timeout, can end ANSWER_SECONDS before the stop.

Outside an invocation (unit tests, scripts, the local tools) there is no deadline and every call
keeps its own timeout, as before.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError

# Kept back from provider calls: the conditional writes after a provider answers (a handful of
# DynamoDB calls, each of which may need one AWS_ATTEMPT_SECONDS attempt) and rendering the answer.
RESERVE_SECONDS = 4.0
# Kept back from every call: serialising the answer and the runtime's own hand-over.
ANSWER_SECONDS = 0.5

# One AWS attempt at most: DynamoDB, Secrets Manager, SES and SNS answer in milliseconds in-region,
# so a second is plenty to connect and two to answer. Three attempts in all (standard mode: backoff
# with jitter, throttling included) keep a storage hiccup invisible without outliving the function.
AWS_CONNECT_SECONDS = 1.0
AWS_READ_SECONDS = 2.0
AWS_TOTAL_ATTEMPTS = 3

Clock = Callable[[], float]


@dataclass(frozen=True)
class Deadline:
    """When the current invocation is stopped, on `clock` (time.monotonic unless a test says otherwise)."""

    stops_at: float
    clock: Clock = time.monotonic

    def remaining(self) -> float:
        return self.stops_at - self.clock()

    def for_providers(self) -> float:
        """Seconds a provider call may still take."""
        return self.remaining() - RESERVE_SECONDS

    def for_aws(self) -> float:
        """Seconds an AWS call may still take."""
        return self.remaining() - ANSWER_SECONDS


_current: ContextVar[Deadline | None] = ContextVar("clinicpay_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the invocation being handled, or None outside one."""
    return _current.get()


def provider_seconds_left() -> float:
    """Seconds provider calls may still take in this invocation (infinity outside one): what a
    provider adapter's own waiting (polling a receipt, a shift) must end within."""
    found = current()
    return math.inf if found is None else found.for_providers()


@contextmanager
def bounded(seconds: float, *, clock: Clock = time.monotonic) -> Iterator[Deadline]:
    """Calls made inside the block belong to an invocation stopped `seconds` from now."""
    deadline = Deadline(clock() + seconds, clock)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


Handler = TypeVar("Handler", bound=Callable[..., Any])


def lambda_deadline(handler: Handler) -> Handler:
    """Decorates a `lambda_handler(event, context)`: everything it calls, HTTP route or scheduled
    job, runs under the deadline Lambda gives this invocation."""

    @functools.wraps(handler)
    def bounded_handler(event: Any, context: Any) -> Any:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return handler(event, context)
        with bounded(remaining() / 1000):
            return handler(event, context)

    bounded_handler.__dict__["clinicpay_deadline"] = True  # functools.wraps carries it to outer decorators
    return bounded_handler  # type: ignore[return-value]


# --- AWS clients -------------------------------------------------------------------------------

def aws_config(**overrides: Any) -> Config:
    """The botocore Config every clinicpay AWS client uses (bounded timeouts and retries)."""
    settings: dict[str, Any] = {"connect_timeout": AWS_CONNECT_SECONDS, "read_timeout": AWS_READ_SECONDS,
                                "retries": {"mode": "standard", "total_max_attempts": AWS_TOTAL_ATTEMPTS}}
    return Config(**{**settings, **overrides})


class NoTimeLeft(BotoCoreError):
    """An AWS call was not sent: an attempt could have outlived the invocation."""

    fmt = "No time left in this invocation for an AWS call."


def guard(client: Any) -> Any:
    """Make `client` (a botocore client) refuse to start an attempt, first or retry, that could run
    past the invocation's deadline. Nothing is sent; the caller sees a BotoCoreError (NoTimeLeft),
    which the repositories already turn into StorageUnavailable."""
    config = client.meta.config
    attempt_seconds = float(config.connect_timeout) + float(config.read_timeout)

    def refuse_late_attempt(**_: Any) -> None:
        deadline = current()
        if deadline is not None and deadline.for_aws() < attempt_seconds:
            raise NoTimeLeft()

    client.meta.events.register("before-send", refuse_late_attempt)
    return client
