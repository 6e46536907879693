"""Deadlines: each invocation's remaining time bounds every outbound call. Provider attempts are
cut to what is left (less the reserve for our own answer) on a clock the tests control; AWS
attempts that could outlive the invocation are not sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import urllib3

from clinicpay import deadline
from clinicpay.domain.errors import ProviderOutcomeUnknown, ProviderUnavailable, StorageUnavailable
from clinicpay.providers import http
from clinicpay.repositories.dynamo import conditional, translated_errors
from tests.support.provider_server import ProviderServer

KEYED = {"Idempotency-Key": "appt-ap_1-0"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class LambdaContext:
    def __init__(self, clock: Clock, seconds: float):
        self.ends = clock() + seconds
        self.clock = clock

    def get_remaining_time_in_millis(self) -> int:
        return int((self.ends - self.clock()) * 1000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hanging(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> list[float]:
    """A provider that never answers: every attempt lasts its whole timeout. Returns the timeouts."""
    timeouts: list[float] = []

    def send(method: str, url: str, body: Any, headers: Any, timeout: float) -> http.HttpResponse:
        timeouts.append(round(timeout, 3))
        clock.advance(timeout)
        raise http._Failed(error=urllib3.exceptions.ReadTimeoutError(None, url, "read timed out"))  # type: ignore[arg-type]

    monkeypatch.setattr(http, "_send", send)
    monkeypatch.setattr(http, "_sleep", clock.advance)
    return timeouts


def invocation(clock: Clock, seconds: float) -> Any:
    return deadline.bounded(seconds, clock=clock)


# --- provider calls ------------------------------------------------------------------------------

def test_outside_an_invocation_the_calls_timeouts_and_retries_are_as_before(hanging: list[float], clock: Clock) -> None:
    with pytest.raises(ProviderOutcomeUnknown):
        http.request("fintoc", "POST", "https://api.fintoc.test/v1/checkout_sessions", headers=KEYED, retry_post=True)
    assert hanging == [8.0, 8.0, 8.0] and clock.now - 1000 == pytest.approx(25.2)  # the 25.3 s of issue 10


def test_in_a_20_s_function_attempts_share_what_is_left_less_the_reserve(hanging: list[float], clock: Clock) -> None:
    with invocation(clock, 20.0), pytest.raises(ProviderOutcomeUnknown):
        http.request("fintoc", "POST", "https://api.fintoc.test/v1/checkout_sessions", headers=KEYED, retry_post=True)
    # 8 s, a 0.4 s backoff, then what is left of 20 - 4: no third attempt
    assert hanging == [8.0, 7.6]
    assert clock.now - 1000 == pytest.approx(20.0 - deadline.RESERVE_SECONDS)


def test_time_spent_before_the_call_comes_off_its_budget(hanging: list[float], clock: Clock) -> None:
    with invocation(clock, 20.0):
        clock.advance(5.0)  # reading the link, the clinic, the secret...
        with pytest.raises(ProviderUnavailable):
            http.request("fintoc", "GET", "https://api.fintoc.test/v1/checkout_sessions/cs_1")
    assert hanging == [8.0, 2.6]


def test_no_retry_starts_when_the_backoff_would_leave_less_than_a_useful_attempt(hanging: list[float], clock: Clock) -> None:
    with invocation(clock, 13.2), pytest.raises(ProviderOutcomeUnknown):
        http.request("stripe", "POST", "https://api.stripe.test/v1/payment_intents", headers=KEYED, retry_post=True)
    assert hanging == [8.0]  # 1.2 s were left; after a 0.4 s backoff, 0.8 s < MIN_ATTEMPT_SECONDS


def test_when_the_budget_is_gone_nothing_is_sent_and_the_call_is_unavailable(hanging: list[float], clock: Clock) -> None:
    with invocation(clock, deadline.RESERVE_SECONDS + 0.5), pytest.raises(ProviderUnavailable) as late:
        http.request("stripe", "POST", "https://api.stripe.test/v1/payment_intents", headers=KEYED, retry_post=True)
    assert hanging == [] and not isinstance(late.value, ProviderOutcomeUnknown)


def test_a_caller_that_chose_a_shorter_timeout_keeps_it(hanging: list[float], clock: Clock) -> None:
    with invocation(clock, deadline.RESERVE_SECONDS + 0.7), pytest.raises(ProviderUnavailable):
        http.request("fintoc", "GET", "https://api.fintoc.test/v1/webhook_endpoints", timeout=0.5, attempts=1)
    assert hanging == [0.5]


def test_the_handler_decorator_sets_the_deadline_for_its_invocation_only(clock: Clock) -> None:
    seen: list[float | None] = []

    @deadline.lambda_deadline
    def handler(event: Any, context: Any) -> str:
        found = deadline.current()
        seen.append(found.remaining() if found else None)
        if event == "boom":
            raise RuntimeError("boom")
        return "ok"

    assert handler("job", LambdaContext(clock, 20.0)) == "ok"
    assert seen[0] is not None and 19.0 < seen[0] <= 20.0 and deadline.current() is None
    with pytest.raises(RuntimeError):
        handler("boom", LambdaContext(clock, 20.0))
    assert deadline.current() is None
    # A handler called without a Lambda context (a script) runs without a deadline
    assert handler("no context", None) == "ok" and seen[-1] is None
    assert getattr(handler, "clinicpay_deadline", False)


# --- AWS calls -----------------------------------------------------------------------------------

@pytest.fixture
def fake_dynamodb() -> Iterator[ProviderServer]:
    server = ProviderServer().start()
    yield server
    server.stop()


def dynamodb_client(server: ProviderServer) -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=server.url(""), aws_access_key_id="unit",
                          aws_secret_access_key="unit", config=deadline.aws_config())
    return deadline.guard(client)


def test_aws_clients_have_bounded_timeouts_and_attempts(fake_dynamodb: ProviderServer) -> None:
    config = dynamodb_client(fake_dynamodb).meta.config
    assert (config.connect_timeout, config.read_timeout) == (deadline.AWS_CONNECT_SECONDS, deadline.AWS_READ_SECONDS)
    assert config.retries == {"mode": "standard", "total_max_attempts": deadline.AWS_TOTAL_ATTEMPTS}


def test_an_aws_attempt_that_could_outlive_the_invocation_is_not_sent(fake_dynamodb: ProviderServer, clock: Clock) -> None:
    client = dynamodb_client(fake_dynamodb)
    attempt = deadline.AWS_CONNECT_SECONDS + deadline.AWS_READ_SECONDS
    with invocation(clock, deadline.ANSWER_SECONDS + attempt + 0.1):
        client.get_item(TableName="AppointmentsTable", Key={"pk": {"S": "a"}, "sk": {"S": "b"}})
    assert len(fake_dynamodb.seen) == 1
    with invocation(clock, deadline.ANSWER_SECONDS + attempt - 0.1), pytest.raises(deadline.NoTimeLeft):
        client.get_item(TableName="AppointmentsTable", Key={"pk": {"S": "a"}, "sk": {"S": "b"}})
    assert len(fake_dynamodb.seen) == 1
    client.get_item(TableName="AppointmentsTable", Key={"pk": {"S": "a"}, "sk": {"S": "b"}})  # no invocation: sent
    assert len(fake_dynamodb.seen) == 2


def test_an_aws_retry_is_not_sent_once_time_runs_short(fake_dynamodb: ProviderServer, clock: Clock) -> None:
    client = dynamodb_client(fake_dynamodb)
    # Each attempt takes a second on the invocation's clock
    client.meta.events.register("needs-retry", lambda **_: clock.advance(1.0))
    fake_dynamodb.then("answer", 500, {"__type": "InternalServerError"}, times=3)
    with invocation(clock, deadline.ANSWER_SECONDS + 3.5), pytest.raises(deadline.NoTimeLeft):
        client.get_item(TableName="AppointmentsTable", Key={"pk": {"S": "a"}, "sk": {"S": "b"}})
    assert len(fake_dynamodb.seen) == 1  # the first was sent; its retry would not have fitted


def test_a_refused_aws_call_is_storage_unavailable() -> None:
    with pytest.raises(StorageUnavailable), translated_errors():
        raise deadline.NoTimeLeft()

    def write() -> None:
        raise deadline.NoTimeLeft()

    with pytest.raises(StorageUnavailable):
        conditional(write)
