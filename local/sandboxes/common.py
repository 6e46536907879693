"""Machinery every provider sandbox needs and none of the providers defines: state that a test can
reset, injected faults, background webhook delivery with retries and its log, held deliveries that
a test sends one receiver at a time (in the order it chooses), a count of API calls, the shared
`/_control/...` routes, and JSON and id helpers.

What a provider does define stays in its own module: paths, fields, error shapes, signatures,
payloads and hosted pages. So nothing here builds a provider-facing answer by itself: the routes
registered here answer through the sandbox's own `respond` (Stripe's, for one, adds headers), a
refused call is shaped by the sandbox's `refuse`, and a webhook attempt (sign, post, log) is the
sandbox's `Send`; this module only decides when they run.
"""

from __future__ import annotations

import functools
import json
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Generic, Protocol, TypeGuard, TypeVar

from flask import Flask, Response, request

# How long a `timeout` fault holds the answer back when /_control/fail-next names no `seconds`.
DEFAULT_FAULT_DELAY_SECONDS = 5.0
# How long a `hang` fault holds a call when it names no `seconds`: for a client, never. A reset of
# the sandbox lets every held call go at once.
DEFAULT_HANG_SECONDS = 600.0
HANG_POLL_SECONDS = 0.05

ALPHANUMERIC = string.ascii_letters + string.digits


# --- JSON and ids ------------------------------------------------------------------------------

def json_response(body: Any, status: int = 200) -> Response:
    """A JSON answer; non-ASCII stays readable (the Ukrainian and Spanish texts are part of the contracts)."""
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")


class Responder(Protocol):
    """How a sandbox answers in JSON: `json_response`, or a provider's own that adds its headers."""

    def __call__(self, body: Any, status: int = 200) -> Response: ...


def request_json() -> dict[str, Any]:
    """The body of a /_control call: lenient on purpose (tests post `json={}` or nothing at all)."""
    return request.get_json(silent=True) or {}


def is_int(value: Any) -> TypeGuard[int]:
    """A JSON integer: Python's bool is an int, JSON's true is not."""
    return isinstance(value, int) and not isinstance(value, bool)


def random_string(length: int, alphabet: str = ALPHANUMERIC) -> str:
    # secrets, not random: the same helper makes the webhook signing secrets.
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_id(prefix: str, length: int) -> str:
    """`cs_` + 16 alphanumerics and the like: the shape of the providers' own object ids."""
    return prefix + random_string(length)


@dataclass
class StoredResponse:
    """The first answer to an Idempotency-Key, replayed for later requests that carry the same key."""

    fingerprint: str
    status: int
    body: bytes


# --- state -------------------------------------------------------------------------------------

@dataclass
class Fault:
    kind: str  # an HTTP status such as "503", "timeout" or "hang"
    remaining: int
    seconds: float
    path: str = ""  # only calls whose path contains this ("" = any)


class SandboxState:
    """A sandbox's whole world, in memory, behind one re-entrant lock.

    Subclasses add their objects in `clear()` (calling this one first). `generation` goes up on every
    reset: a background delivery remembers the generation it started in and stops, logging nothing,
    once it has moved on, so a test that resets gets a clean slate even while retries are sleeping.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.generation = 0
        self.clear()

    def clear(self) -> None:
        self.faults: list[Fault] = []
        self.deliveries: list[dict[str, Any]] = []
        # While held, events are made and stored but not sent: a test sends them with
        # /_control/deliver, to one receiver at a time, in the order it wants.
        self.held = False
        self.calls: list[tuple[str, str, str]] = []  # (method, path, digest of the caller's credential)

    def reset(self) -> None:
        with self.lock:
            self.generation += 1
            self.clear()

    def log_delivery(self, generation: int, row: dict[str, Any]) -> None:
        """Add a row to the delivery log, unless the sandbox was reset while the attempt was on its way."""
        with self.lock:
            if self.generation == generation:
                self.deliveries.append(row)


# --- faults (/_control/fail-next: the next n API calls fail) -------------------------------------

@dataclass
class FaultInjector:
    """The next n calls under `api_prefix` are refused, answered `seconds` late, or held.

    A refused call is turned away before the endpoint runs, so nothing happens and nothing is stored
    under its Idempotency-Key. A `timeout` is the dangerous kind: the call IS processed and only the
    answer comes too late, which is what a client that retries blindly gets wrong. A `hang` is a
    provider that never answers: the call is held before the endpoint runs (nothing happens) for
    `seconds` (DEFAULT_HANG_SECONDS) or until the sandbox is reset, whichever comes first; whatever
    it answers then, the client has long gone.
    """

    state: SandboxState
    _: KW_ONLY
    api_prefix: str
    kinds: tuple[str, ...]  # what /_control/fail-next takes as `status`, "timeout" and "hang" among them
    default_kind: str
    usage: str  # its error text for anything else
    refuse: Callable[[Fault], Response]  # the provider's own error answer for a refused call
    respond: Responder
    by_path: bool = False  # a fault may name the calls it hits (`path`, shown back in the pending list)
    # monobank's stricter reading of `count: true`; the other sandboxes have always taken it as 1.
    refuse_bool_count: bool = False
    # Kinds the sandbox's own endpoint code acts on (the Fault is left in request.environ[FAULT_KEY]):
    # faults that depend on the provider's idempotency layer, such as Stripe's stored 500s.
    passed_on: tuple[str, ...] = ()

    DELAY_KEY = "sandbox.delay_seconds"  # set on the request's environ by a timeout fault
    FAULT_KEY = "sandbox.fault"  # a `passed_on` fault taken by this request

    def install(self, app: Flask) -> None:
        """Hook into every request of `app`, and serve POST /_control/fail-next on it."""
        app.before_request(self._inject)
        app.after_request(self._delay)
        app.add_url_rule("/_control/fail-next", "control_fail_next", self._control_fail_next, methods=["POST"])

    def clear(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self.state.lock:
            if self.by_path:
                return [{"status": f.kind, "remaining": f.remaining, "path": f.path} for f in self.state.faults]
            return [{"status": f.kind, "remaining": f.remaining} for f in self.state.faults]

    def _take(self, path: str) -> Fault | None:
        with self.state.lock:
            fault = next((f for f in self.state.faults if f.remaining > 0 and f.path in path), None)
            if fault is None:
                return None
            fault.remaining -= 1
            if fault.remaining == 0:
                self.state.faults.remove(fault)
            return fault

    def _inject(self) -> Response | None:
        if not request.path.startswith(self.api_prefix):
            return None
        fault = self._take(request.path)
        if fault is None:
            return None
        if fault.kind in self.passed_on:
            request.environ[self.FAULT_KEY] = fault
            return None
        if fault.kind == "hang":
            self._hold(fault.seconds)
            return self.respond({"error": "held by a sandbox hang fault; nothing was done"}, 503)
        if fault.kind != "timeout":
            return self.refuse(fault)
        request.environ[self.DELAY_KEY] = fault.seconds
        return None

    def _hold(self, seconds: float) -> None:
        generation = self.state.generation
        until = time.monotonic() + seconds
        while time.monotonic() < until and self.state.generation == generation:
            time.sleep(HANG_POLL_SECONDS)

    def _delay(self, response: Response) -> Response:
        delay = request.environ.get(self.DELAY_KEY)
        if delay:
            time.sleep(float(delay))
        return response

    def _control_fail_next(self) -> Response:
        body = request_json()
        kind = str(body.get("status", self.default_kind))
        count = body.get("count", 1)
        valid_count = is_int(count) if self.refuse_bool_count else isinstance(count, int)
        if kind not in self.kinds or not valid_count or count < 1:
            return self.respond({"error": self.usage}, 400)
        default_seconds = DEFAULT_HANG_SECONDS if kind == "hang" else DEFAULT_FAULT_DELAY_SECONDS
        fault = Fault(kind, count, float(body.get("seconds", default_seconds)))
        if self.by_path:
            fault.path = str(body.get("path", ""))
        with self.state.lock:
            self.state.faults.append(fault)
            return self.respond({"pending": self.pending()})


# --- webhook delivery --------------------------------------------------------------------------

@dataclass(frozen=True)
class PostResult:
    """What one webhook POST came to: the receiver's status, or the failure that left us without one."""

    status: int | None
    failure: OSError | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def reason(self) -> object:
        # urllib wraps connect-time failures in URLError(reason=...); a read timeout arrives bare.
        return getattr(self.failure, "reason", self.failure)

    @property
    def error(self) -> str | None:
        """The failure as Fintoc's and Stripe's delivery logs put it: "timeout" or "connection_error"."""
        if self.failure is None:
            return None
        return "timeout" if isinstance(self.reason, TimeoutError) else "connection_error"


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> PostResult:
    """POST exactly these bytes (they are what was signed); an HTTP error status is an answer, not a failure."""
    outgoing = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout) as answer:
            return PostResult(answer.status)
    except urllib.error.HTTPError as refused:
        return PostResult(refused.code)
    except OSError as failed:  # URLError, timeouts and refused connections are all OSErrors
        return PostResult(None, failed)


# One delivery attempt of one event to one receiver, made by the provider's module: it signs (at
# send time, so a late retry is not refused as stale), posts, logs under the generation it is given
# and says whether the receiver took it.
Send = Callable[[int, int], bool]  # (attempt number from 1, generation) -> delivered


class WebhookDeliverer:
    """Sends webhooks from background threads and retries a failed one after each of `retry_delays`.

    The real providers retry for hours; the delays here are compressed so tests stay fast. A reset
    of the sandbox (a new generation) stops every delivery that started before it. `in_flight`
    counts the delivery threads still running, so tests can wait until every webhook has landed.
    """

    def __init__(self, state: SandboxState, name: str, retry_delays: Sequence[float]):
        self.state = state
        self.name = name
        self.retry_delays = tuple(retry_delays)
        self.in_flight = 0

    def per_receiver(self, queues: Iterable[Sequence[Send]]) -> None:
        """Fintoc and Stripe: one thread per receiver sends its events' first attempts in order; a
        failed event is retried on a thread of its own, so it does not hold back the ones after it."""
        generation = self.state.generation
        for queue in queues:
            self._start(self._first_attempts, list(queue), generation)

    def one_by_one(self, sends: Sequence[Send]) -> None:
        """monobank: one thread, in order; each change is tried (retries included) before the next."""
        generation = self.state.generation
        if sends:
            self._start(self._each_until_delivered, list(sends), generation)

    def once(self, send: Send) -> None:
        """Checkbox: a single attempt, never retried."""
        self._start(send, 1, self.state.generation)

    def _start(self, target: Callable[..., Any], *args: Any) -> None:
        with self.state.lock:
            self.in_flight += 1  # counted before the thread runs, so a retry never looks idle in between
        threading.Thread(target=self._counted, args=(target, *args), daemon=True,
                         name=f"{self.name}-sandbox-delivery").start()

    def _counted(self, target: Callable[..., Any], *args: Any) -> None:
        try:
            target(*args)
        finally:
            with self.state.lock:
                self.in_flight -= 1

    def _first_attempts(self, sends: list[Send], generation: int) -> None:
        for send in sends:
            if self.state.generation != generation:
                return  # reset since: nothing left to deliver to
            if not send(1, generation):
                self._start(self._retry, send, generation, self.retry_delays, 2)

    def _each_until_delivered(self, sends: list[Send], generation: int) -> None:
        for send in sends:
            self._retry(send, generation, (0.0, *self.retry_delays), 1)

    def _retry(self, send: Send, generation: int, delays: Sequence[float], first_attempt: int) -> None:
        for attempt, delay in enumerate(delays, start=first_attempt):
            time.sleep(delay)
            if self.state.generation != generation or send(attempt, generation):
                return


Endpoint = dict[str, Any]  # a webhook endpoint as the API shows it: "id", "url", "enabled_events", "secret"...


class WebhookAccount(Protocol):
    """An API account (one per secret key) with the webhook endpoints it registered, by id."""

    webhook_endpoints: dict[str, Endpoint]


class AccountEvent(Protocol):
    """A stored event of one API account (its key), as Fintoc and Stripe keep them."""

    @property
    def account_key(self) -> str: ...

    @property
    def event_type(self) -> str: ...


EventT = TypeVar("EventT", bound=AccountEvent)


def subscribed(endpoints: Iterable[Endpoint], event_type: str) -> list[Endpoint]:
    """Copies of the webhook endpoints that take this event type (`enabled_events`, "*" for all)."""
    return [dict(e) for e in endpoints if event_type in e["enabled_events"] or "*" in e["enabled_events"]]


@dataclass
class EndpointWebhooks(Generic[EventT]):
    """Fintoc's and Stripe's model: an account registers webhook endpoints, and each of its events
    goes to every endpoint subscribed to that event's type. Also serves /_control/redeliver.

    Copies of the endpoints are sent to, so deleting one while a retry sleeps does not change where
    that retry goes.
    """

    state: SandboxState
    deliverer: WebhookDeliverer
    _: KW_ONLY
    # The state's accounts by API key and its stored events by id; functions, because a reset
    # replaces those dicts.
    accounts: Callable[[], Mapping[str, WebhookAccount]]
    events: Callable[[], Mapping[str, EventT]]
    send: Callable[[Endpoint, EventT, int, int], bool]  # one attempt: sign, post, log (see `Send`)
    # Told how many endpoints each event goes to (Stripe shows it as the event's `pending_webhooks`).
    fanned_out: Callable[[EventT, int], None] | None = None

    def subscribers(self, key: str, event_type: str) -> list[Endpoint]:
        with self.state.lock:
            account = self.accounts().get(key)
            return subscribed(account.webhook_endpoints.values(), event_type) if account else []

    def dispatch(self, key: str, events: Iterable[EventT]) -> None:
        """Deliver in the background: first attempts in event order per endpoint, retries on their own.
        While deliveries are held, the events stay stored for /_control/deliver instead."""
        targets: dict[str, tuple[Endpoint, list[EventT]]] = {}
        for event in events:
            receivers = self.subscribers(key, event.event_type)
            if self.fanned_out is not None:
                self.fanned_out(event, len(receivers))
            for endpoint in receivers:
                targets.setdefault(endpoint["id"], (endpoint, []))[1].append(event)
        if self.state.held:
            return
        self.deliverer.per_receiver([functools.partial(self.send, endpoint, event) for event in queue]
                                    for endpoint, queue in targets.values())

    def deliver_now(self, event_id: str, endpoint_id: str) -> dict[str, Any] | None:
        """One attempt of a stored event to one of its account's endpoints, now, answered when the
        receiver has answered (None: unknown event or endpoint)."""
        with self.state.lock:
            event = self.events().get(event_id)
            account = self.accounts().get(event.account_key) if event is not None else None
            endpoint = dict(account.webhook_endpoints[endpoint_id]) if account and endpoint_id in \
                account.webhook_endpoints else None
            generation = self.state.generation
        if event is None or endpoint is None:
            return None
        delivered = self.send(endpoint, event, 1, generation)
        return {"endpoint_id": endpoint_id, "delivered": delivered,
                "status_code": last_status(self.state, event_id=event_id, endpoint_id=endpoint_id)}

    def redeliver(self, event_id: str) -> dict[str, Any] | None:
        """Send a stored event again, now, to the endpoints subscribed to it today (None: unknown event)."""
        with self.state.lock:
            event = self.events().get(event_id)
        if event is None:
            return None
        endpoints = self.subscribers(event.account_key, event.event_type)
        self.dispatch(event.account_key, [event])
        return {"endpoints": len(endpoints)}


def last_status(state: SandboxState, **match: str) -> int | None:
    """The receiver's answer in the newest delivery-log row matching `match` (None: no answer)."""
    with state.lock:
        row = next((d for d in reversed(state.deliveries) if all(d.get(k) == v for k, v in match.items())), None)
    return row.get("status_code") if row else None


# --- API call counting (/_control/calls) ---------------------------------------------------------

def count_calls(app: Flask, state: SandboxState, respond: Responder, *, api_prefix: str,
                credential: Callable[[], str]) -> None:
    """Count every API call (method, path, a digest of the caller's credential), so tests can see how
    often we call out. GET /_control/calls?path=&method=&credential= -> {"count", "calls"}; the
    credential filter takes the same digest (`credential_digest`)."""

    def record() -> None:
        if request.path.startswith(api_prefix):
            with state.lock:
                state.calls.append((request.method, request.path, credential_digest(credential())))

    def control_calls() -> Response:
        wanted = {"method": request.args.get("method"), "path": request.args.get("path"),
                  "credential": request.args.get("credential")}
        with state.lock:
            rows = [{"method": m, "path": p, "credential": c} for m, p, c in state.calls]
        rows = [r for r in rows if all(not v or r[k] == v for k, v in wanted.items())]
        return respond({"count": len(rows), "calls": rows})

    app.before_request(record)
    app.add_url_rule("/_control/calls", "control_calls", control_calls, methods=["GET"])


def credential_digest(value: str) -> str:
    """How the call log names a credential without keeping it."""
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()[:16]


# --- the shared /_control routes -------------------------------------------------------------------

def add_hold_route(app: Flask, state: SandboxState, respond: Responder) -> None:
    """POST /_control/hold {"hold": true|false}: while held, webhooks are stored, not sent."""

    def control_hold() -> Response:
        hold = request_json().get("hold", True)
        if not isinstance(hold, bool):
            return respond({"error": "expected {hold: true | false}"}, 400)
        with state.lock:
            state.held = hold
        return respond({"held": hold})

    app.add_url_rule("/_control/hold", "control_hold", control_hold, methods=["POST"])


def add_deliver_route(app: Flask, respond: Responder, deliver: Callable[[str, dict[str, Any]], dict[str, Any] | None],
                      *, slashes_in_ids: bool = False) -> None:
    """POST /_control/deliver/<event_id> {receiver}: one attempt of a stored event to the receiver
    named in the body (an endpoint id, or a URL for monobank), now; 200 with what `deliver` tells
    once the receiver answered, 404 for an unknown event or receiver."""

    def control_deliver(event_id: str) -> Response:
        told = deliver(event_id, request_json())
        if told is None:
            return respond({"error": "unknown event or receiver"}, 404)
        return respond({"event_id": event_id, **told})

    rule = "/_control/deliver/<path:event_id>" if slashes_in_ids else "/_control/deliver/<event_id>"
    app.add_url_rule(rule, "control_deliver", control_deliver, methods=["POST"])


def add_reset_route(app: Flask, reset: Callable[[], None], respond: Responder) -> None:
    """POST /_control/reset -> {"reset": true}, after the sandbox's own reset()."""

    def control_reset() -> Response:
        reset()
        return respond({"reset": True})

    app.add_url_rule("/_control/reset", "control_reset", control_reset, methods=["POST"])


def add_deliveries_route(app: Flask, state: SandboxState, respond: Responder, filters: Mapping[str, str]) -> None:
    """GET /_control/deliveries -> {"deliveries": [...]}, the delivery log, oldest first.

    `filters` maps a query parameter to the log field it must equal; an empty parameter matches all.
    """

    def control_deliveries() -> Response:
        wanted = {field: request.args.get(param) for param, field in filters.items()}
        with state.lock:
            rows = [d for d in state.deliveries if all(not value or d[field] == value for field, value in wanted.items())]
        return respond({"deliveries": rows})

    app.add_url_rule("/_control/deliveries", "control_deliveries", control_deliveries, methods=["GET"])


def add_redeliver_route(app: Flask, respond: Responder, redeliver: Callable[[str], dict[str, Any] | None], *,
                        slashes_in_ids: bool = False) -> None:
    """POST /_control/redeliver/<event_id> -> 202 {"event_id", ...what `redeliver` tells}.

    `redeliver` sends the stored event again, now, and returns the rest of the answer, or None for an
    unknown event (404). monobank's route has always taken a whole path as the id, so
    `slashes_in_ids` keeps that.
    """

    def control_redeliver(event_id: str) -> Response:
        told = redeliver(event_id)
        if told is None:
            return respond({"error": "unknown event"}, 404)
        return respond({"event_id": event_id, **told}, 202)

    rule = "/_control/redeliver/<path:event_id>" if slashes_in_ids else "/_control/redeliver/<event_id>"
    app.add_url_rule(rule, "control_redeliver", control_redeliver, methods=["POST"])
