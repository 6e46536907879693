"""The one HTTP client every provider adapter uses: pooled connections, deadlines, bounded retries,
and three kinds of failure kept apart.

- ProviderHttpError (a ProviderError): the provider answered and refused (a 4xx). Only its error
  code is kept, never its body (it may echo what we sent).
- ProviderUnavailable: nothing was applied. We could not connect, the provider was busy (429, or a
  5xx to a read), or the invocation had no time left to send anything.
- ProviderOutcomeUnknown (a ProviderUnavailable): a request that changes something (POST, DELETE)
  may have been applied, and no answer says whether: a timeout or a cut connection after sending,
  a 5xx after our retries, or a status the caller names as undecided (Stripe's 409 for a key in
  flight). Once one attempt of a call is undecided the call stays undecided unless a later attempt
  gets an answer.

Connections are pooled per container (one urllib3 PoolManager, created on the first call, keyed by
scheme, host and port), so a warm Lambda does not pay a TCP and TLS handshake on every call; urllib3
is already loaded by botocore, so it costs nothing at import (bench/import_time.py, bench/http_pool.py).
TLS is verified against the system's CA store, as urllib did; proxies come from the environment
(`https_proxy`, `no_proxy`, ...) as urllib's did. Redirects are not followed: no provider API
redirects, and following one would carry our credentials to wherever it points.

Every attempt's timeout is the caller's, cut to what the invocation has left for provider calls
(clinicpay.deadline); no retry or backoff starts without MIN_ATTEMPT_SECONDS left after it.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from pydantic import BaseModel, ValidationError

from clinicpay import deadline
from clinicpay.domain.errors import ProviderError, ProviderOutcomeUnknown, ProviderUnavailable
from clinicpay.observability import logger, tracer

# An attempt shorter than this would mostly time out after sending, turning "not now" into
# "undecided"; better not to start it.
MIN_ATTEMPT_SECONDS = 1.0
# Methods that change nothing at the provider: a lost answer to them is only "unavailable".
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Connections kept per host: a container handles one request at a time, but Checkbox polls and
# webhooks may overlap a call of the same function in the local stack's threads.
CONNECTIONS_PER_HOST = 4

# Failures urllib3 raises before a byte of the request has left: connection refused, DNS, connect
# timeout (NewConnectionError and NameResolutionError are ConnectTimeoutErrors), an unreachable proxy.
_NOT_SENT = (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ProxyError,
             urllib3.exceptions.EmptyPoolError, urllib3.exceptions.ClosedPoolError)


@dataclass
class HttpResponse:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class ProviderHttpError(ProviderError):
    def __init__(self, provider: str, status: int, payload: Any):
        self.http_status = status
        self.payload = payload
        super().__init__(f"{provider} refused the request (HTTP {status}).")


_sleep = time.sleep  # tests replace it with a clock of their own


# --- the pool --------------------------------------------------------------------------------------

_pools: dict[str, urllib3.PoolManager] = {}
_pools_lock = threading.Lock()


def _manager(proxy: str | None) -> urllib3.PoolManager:
    """The container's pool manager (or one per proxy URL), created on first use."""
    key = proxy or ""
    manager = _pools.get(key)
    if manager is None:
        with _pools_lock:
            manager = _pools.get(key)
            if manager is None:
                # The same trust store urllib used: the system's, with hostname checks.
                context = ssl.create_default_context()
                if proxy:
                    manager = urllib3.ProxyManager(proxy, maxsize=CONNECTIONS_PER_HOST, ssl_context=context)
                else:
                    manager = urllib3.PoolManager(maxsize=CONNECTIONS_PER_HOST, ssl_context=context)
                _pools[key] = manager
    return manager


def _proxy_for(url: str) -> str | None:
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    # host[:port], as urllib's ProxyHandler asks: `no_proxy` entries may name a port.
    if not proxy or urllib.request.proxy_bypass(parts.netloc.rpartition("@")[2]):
        return None
    return proxy


def close_pools() -> None:
    """Drop every pooled connection (tests; a container never needs to)."""
    with _pools_lock:
        for manager in _pools.values():
            manager.clear()
        _pools.clear()


# --- one call --------------------------------------------------------------------------------------

class Outcome(Enum):
    """What one attempt came to, when it was not an answer we can return."""

    BUSY = "busy"  # nothing was applied (could not connect, 429, a 5xx to a read)
    UNDECIDED = "undecided"  # it may have been applied
    REFUSED = "refused"  # a 4xx: the provider decided


@dataclass
class _Attempt:
    outcome: Outcome
    error: Exception
    retry_advice: bool | None = None  # the provider's own say (Stripe-Should-Retry), when it gave one


def request(provider: str, method: str, url: str, *, headers: dict[str, str] | None = None,
            json_body: Any = None, form: dict[str, Any] | list[tuple[str, Any]] | None = None,
            timeout: float = 8.0, attempts: int = 3, retry_post: bool = False,
            undecided_statuses: Collection[int] = (), retry_advice_header: str | None = None) -> HttpResponse:
    """Send one request. POSTs are retried only when the caller says the provider dedupes them
    (an Idempotency-Key or a client-chosen id), so a retry can never make a second payment.

    `undecided_statuses`: answers that mean "still in flight" for this provider (Stripe: 409).
    `retry_advice_header`: a response header carrying the provider's advice, `true` or `false`,
    which overrides ours on whether to retry (Stripe: Stripe-Should-Retry).
    """
    body, all_headers = _encode(headers, json_body, form)
    may_retry = method in ("GET", "DELETE") or retry_post
    tries = attempts if may_retry else 1
    budget = deadline.current()
    # A caller that chose an even shorter timeout gets attempts as short as its own.
    shortest = min(timeout, MIN_ATTEMPT_SECONDS)
    undecided = False
    last: _Attempt | None = None
    for attempt in range(tries):
        if attempt:
            if last is not None and last.retry_advice is False:
                break
            pause = min(0.2 * 2**attempt, 2.0)
            if budget is not None and budget.for_providers() - pause < shortest:
                logger.warning("provider retry skipped: no time left", extra={"provider": provider})
                break
            _sleep(pause)
        if budget is not None and budget.for_providers() < shortest:
            break
        attempt_timeout = timeout if budget is None else min(timeout, budget.for_providers())
        try:
            return _attempt(provider, method, url, body, all_headers, attempt_timeout)
        except _Failed as failed:
            last = _classify(provider, method, failed, set(undecided_statuses), retry_advice_header)
        undecided = undecided or last.outcome is Outcome.UNDECIDED
        if last.outcome is Outcome.REFUSED and last.retry_advice is not True:
            raise last.error
    raise _give_up(provider, last, undecided)


def _encode(headers: dict[str, str] | None, json_body: Any,
            form: dict[str, Any] | list[tuple[str, Any]] | None) -> tuple[bytes | None, dict[str, str]]:
    all_headers = {"Accept": "application/json", **(headers or {})}
    if json_body is not None:
        all_headers["Content-Type"] = "application/json"
        return json.dumps(json_body).encode(), all_headers
    if form is not None:
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        return urlencode(form).encode(), all_headers
    return None, all_headers


class _Failed(Exception):
    """One attempt that brought no answer we can return: a response that is not 2xx, or an error."""

    def __init__(self, response: urllib3.BaseHTTPResponse | None = None, error: Exception | None = None):
        self.response = response
        self.error = error


def _attempt(provider: str, method: str, url: str, body: bytes | None, headers: dict[str, str],
             timeout: float) -> HttpResponse:
    """One attempt, as a remote subsegment named by the provider's host: the trace shows where a
    request's time went (botocore's calls are subsegments too: observability.py)."""
    with tracer.provider.in_subsegment(name=urlsplit(url).hostname or provider, namespace="remote") as traced:
        traced.put_annotation(key="provider", value=provider)
        traced.put_annotation(key="method", value=method)
        try:
            answered = _send(method, url, body, headers, timeout)
        except _Failed as failed:
            outcome = str(failed.response.status) if failed.response is not None else type(failed.error).__name__
            traced.put_annotation(key="status", value=outcome)
            raise
        traced.put_annotation(key="status", value=str(answered.status))
        return answered


def _send(method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float) -> HttpResponse:
    try:
        response = _manager(_proxy_for(url)).request(
            method, url, body=body, headers=headers, timeout=urllib3.Timeout(total=timeout),
            retries=False, redirect=False, preload_content=True)
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise _Failed(error=error) from None
    if not 200 <= response.status < 300:
        raise _Failed(response=response)
    return HttpResponse(response.status, response.data, dict(response.headers.items()))


def _classify(provider: str, method: str, failed: _Failed, undecided_statuses: set[int],
              advice_header: str | None) -> _Attempt:
    changes_something = method not in SAFE_METHODS
    response = failed.response
    if response is None:
        error = failed.error or RuntimeError("no answer")
        outcome = Outcome.UNDECIDED if changes_something and not _never_sent(error) else Outcome.BUSY
        logger.warning("provider unreachable", extra={"provider": provider, "error_class": type(error).__name__,
                                                      "outcome": outcome.value})
        return _Attempt(outcome, error)
    status = response.status
    advice = _advice(response, advice_header)
    error = ProviderHttpError(provider, status, _payload(response.data))
    if status >= 500 or status in undecided_statuses:
        outcome = Outcome.UNDECIDED if changes_something else Outcome.BUSY
    elif status == 429:
        outcome = Outcome.BUSY
    else:
        return _Attempt(Outcome.REFUSED, error, advice)
    logger.warning("provider unavailable", extra={"provider": provider, "http_status": status,
                                                  "outcome": outcome.value, "retry_advice": advice})
    return _Attempt(outcome, error, advice)


def _never_sent(error: Exception) -> bool:
    if isinstance(error, _NOT_SENT):
        return True
    # A certificate we do not trust stops the handshake, before the request. Any other TLS error
    # may come mid-exchange, so it stays undecided.
    return isinstance(error, urllib3.exceptions.SSLError) and bool(error.args) and \
        isinstance(error.args[0], ssl.SSLCertVerificationError)


def _advice(response: urllib3.BaseHTTPResponse, header: str | None) -> bool | None:
    # Exactly "true" or "false", as stripe-python reads Stripe-Should-Retry; anything else is no advice.
    value = response.headers.get(header) if header else None
    return {"true": True, "false": False}.get(value) if value is not None else None


def _payload(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def _give_up(provider: str, last: _Attempt | None, undecided: bool) -> Exception:
    if last is None:
        logger.warning("provider call not sent: no time left", extra={"provider": provider})
        return ProviderUnavailable(f"{provider} could not be asked in time; try again shortly.")
    if last.outcome is Outcome.REFUSED:
        return last.error  # the provider advised a retry that there was no time or attempt left for
    if undecided:
        logger.warning("provider outcome unknown", extra={"provider": provider})
        unknown = ProviderOutcomeUnknown(f"{provider} has not confirmed the request; it may still be applied.")
        unknown.__cause__ = last.error
        return unknown
    unavailable = ProviderUnavailable(f"{provider} is not answering; try again shortly.")
    unavailable.__cause__ = last.error
    return unavailable


Model = TypeVar("Model", bound=BaseModel)


def parse_as(provider: str, model: type[Model], payload: Any) -> Model:
    """A provider answer as its wire model; an unexpected shape is a ProviderError."""
    try:
        return model.model_validate(payload)
    except ValidationError:
        # The validation error would echo the payload; keep it out of messages and logs.
        raise ProviderError(f"{provider} answered with an unexpected shape.") from None


def path_segment(value: str) -> str:
    # Ids come from the provider or from our tables; quoting keeps a crafted one inside its segment.
    return quote(value, safe="")
