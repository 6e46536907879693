"""Fintoc sandbox: checkout sessions, a hosted payment page, webhook endpoints and signed deliveries.

Mounted by local/server.py at /_sandbox/fintoc, so `FINTOC_API_BASE=<base>/_sandbox/fintoc` points
our client at it. It follows Fintoc's contract (reference/providers.md section 1), not our client:
same paths, field names, integer amounts in the currency's smallest unit, statuses, error shape
`{"error": {"type", "code", "message", "param", "doc_url"}}`, Idempotency-Key semantics and the
`Fintoc-Signature` scheme. Signing is implemented here on its own, on purpose: sharing the verifier's
code would let one bug pass both sides.

    /v1/...          Fintoc's API, authenticated by `Authorization: sk_test_...` (one account per key)
    /sandbox/<id>    the hosted page a patient is redirected to (Fintoc: pay.fintoc.com/sandbox/<id>)
    /_control/...    test controls, not Fintoc's: faults, forced expiry, delivery log, redelivery,
                     holding deliveries and sending one event to one endpoint (/_control/hold, /deliver),
                     refunds (mode, refuse-next, error-next, settle, a dashboard refund with its events)

Where Fintoc's behaviour is not documented the sandbox picks the stricter reading, so it can only
produce false failures, never false passes: unknown create parameters are refused; a session stays
payable after a failed attempt; a payment intent made from a session carries the session's metadata
plus `checkout_session_id` (the id is a sandbox addition: real Fintoc does not document it).
A session past its expires_at is expired (and `checkout_session.expired` sent) when it is next read
or opened; /_control/sessions/<id>/expire-now does it at once.

Like Fintoc, an account (a secret key) may register several webhook endpoints, and every event goes
to every endpoint subscribed to its type: two clinics of one owner sharing an account each receive
the other's events, which is what the shared-account tests reproduce.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import html
import json
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

from flask import Flask, Response, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from local.sandboxes.common import (
    EndpointWebhooks,
    Fault,
    FaultInjector,
    SandboxState,
    StoredResponse,
    WebhookDeliverer,
    add_deliver_route,
    add_deliveries_route,
    add_hold_route,
    add_redeliver_route,
    add_reset_route,
    is_int,
    new_id,
    post,
    random_string,
    request_json,
)
from local.sandboxes.common import json_response as _json

app = Flask(__name__)

SESSION_TTL = timedelta(days=1)  # the docs' example expires one day after creation
CURRENCIES = {"CLP": 0, "MXN": 2}
MAX_IDEMPOTENCY_KEY_LENGTH = 255
CREATE_REQUIRED = ("amount", "currency", "success_url", "cancel_url")
CREATE_OPTIONAL = frozenset({"customer_email", "metadata", "business_profile", "payment_method_types",
                             "payment_method_options", "customer", "line_items", "flow"})
DOC_URL = "https://docs.fintoc.com/reference/errors"

# Fintoc retries for hours (up to 17 times from about 3 s); compressed here so tests stay fast.
# The first attempt is immediate, then one retry after each delay: 5 attempts in all.
RETRY_DELAYS: tuple[float, ...] = (0.2, 0.4, 0.8, 1.6)
DELIVERY_TIMEOUT_SECONDS = 2.0


def _new_id(prefix: str, length: int = 16) -> str:
    return new_id(prefix, length)  # Fintoc's ids: a prefix and 16 alphanumerics


def _iso(moment: datetime, *, millis: bool = False) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(UTC)


# --- state -------------------------------------------------------------------------------------

@dataclass
class Account:
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhook_endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, StoredResponse] = field(default_factory=dict)


@dataclass
class StoredEvent:
    account_key: str
    event_id: str
    event_type: str
    body: bytes  # the exact bytes every delivery of this event carries


class _State(SandboxState):
    def clear(self) -> None:
        super().clear()  # pending faults and the delivery log
        self.accounts: dict[str, Account] = {}
        self.session_owner: dict[str, str] = {}
        self.events: dict[str, StoredEvent] = {}
        # What a new refund does (/_control/refunds/mode): "manual" (pending until settled by
        # /_control/refunds/<id>/settle, like Fintoc's daily payout batch), "succeed" or "fail" at once.
        self.refund_mode = "manual"
        # The next refund creations answered with an error (/_control/refunds/refuse-next, error-next).
        self.refund_faults: list[dict[str, Any]] = []


STATE = _State()
DELIVERER = WebhookDeliverer(STATE, "fintoc", RETRY_DELAYS)


def reset() -> None:
    """Forget every account, object, event, delivery and pending fault."""
    # Delivery threads still retrying from before the reset see the new generation and stop.
    STATE.reset()


# --- errors ------------------------------------------------------------------------------------

class FintocApiError(Exception):
    def __init__(self, status: int, error_type: str, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.error_type, self.code, self.message, self.param = status, error_type, code, message, param

    def response(self) -> Response:
        body = {"error": {"type": self.error_type, "code": self.code, "message": self.message,
                          "param": self.param, "doc_url": DOC_URL}}
        return _json(body, self.status)


def _invalid(code: str, message: str, param: str | None = None) -> FintocApiError:
    return FintocApiError(400, "invalid_request_error", code, message, param)


def _missing(kind: str, object_id: str) -> FintocApiError:
    return FintocApiError(404, "invalid_request_error", "missing_resource", f"No such {kind}: {object_id}")


@app.errorhandler(FintocApiError)
def _on_api_error(error: FintocApiError) -> Response:
    return error.response()


@app.errorhandler(404)
def _on_not_found(_error: Exception) -> Response:
    return _invalid("unrecognized_request", f"Unrecognized request URL ({request.method}: {request.path}).").response()


@app.errorhandler(405)
def _on_bad_method(_error: Exception) -> Response:
    return _invalid("unrecognized_request", f"Unrecognized request URL ({request.method}: {request.path}).").response()


# --- faults (the next n API calls fail; /_control/fail-next) -------------------------------------

def _unavailable(_fault: Fault) -> Response:
    # Refused before the application runs, so nothing is stored under the Idempotency-Key.
    return FintocApiError(503, "api_error", "service_unavailable",
                          "Fintoc is temporarily unavailable (sandbox fault).").response()


FAULTS = FaultInjector(STATE, api_prefix="/v1/", kinds=("503", "timeout", "hang"), default_kind="503",
                       usage="expected {status: 503 | 'timeout' | 'hang', count: n >= 1, seconds?}",
                       refuse=_unavailable, respond=_json)
FAULTS.install(app)


# --- auth and idempotency ---------------------------------------------------------------------

def _authenticate() -> tuple[str, Account]:
    key = request.headers.get("Authorization", "")
    # Fintoc takes the key as-is: "Bearer sk_test_..." is not a key. Live keys never reach a sandbox.
    if not key.startswith("sk_test_") or len(key) <= len("sk_test_") or key != key.strip():
        raise FintocApiError(401, "authentication_error", "invalid_api_key",
                             "Invalid API Key provided. Send your secret key (sk_test_...) as the Authorization header.")
    with STATE.lock:
        account = STATE.accounts.setdefault(key, Account())
    return key, account


def _body() -> dict[str, Any]:
    raw = request.get_data()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _invalid("invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _invalid("invalid_json", "The request body must be a JSON object.")
    return body


Handler = Callable[..., Response]


def api(handler: Handler) -> Handler:
    """Authenticate, then (for POSTs with an Idempotency-Key) store the first answer and replay it.

    Like Fintoc, 4xx answers are stored too, authentication failures are not, and the same key with
    other parameters is an error rather than a silent replay.
    """

    @wraps(handler)
    def wrapper(**kwargs: Any) -> Response:
        key, account = _authenticate()
        idempotency_key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if idempotency_key is None:
            return handler(key, account, **kwargs)
        if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise _invalid("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters.")
        fingerprint = hashlib.sha256(
            f"{request.method} {request.path}\n".encode() + _canonical(request.get_data())).hexdigest()
        with STATE.lock:  # also serialises concurrent requests that share a key
            stored = account.idempotency.get(idempotency_key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    raise _invalid("idempotency_key_reused",
                                   "This Idempotency-Key was already used with different parameters.")
                return Response(stored.body, status=stored.status, mimetype="application/json")
            try:
                response = handler(key, account, **kwargs)
            except FintocApiError as error:
                response = error.response()
            account.idempotency[idempotency_key] = StoredResponse(fingerprint, response.status_code,
                                                                  response.get_data())
            return response

    return wrapper


def _canonical(raw: bytes) -> bytes:
    try:
        return json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        return raw


# --- checkout sessions ------------------------------------------------------------------------

def _validate_create(body: dict[str, Any]) -> None:
    for name in CREATE_REQUIRED:
        if name not in body or body[name] is None:
            raise _invalid("missing_parameter", f"Missing required param: {name}", name)
    unknown = sorted(set(body) - set(CREATE_REQUIRED) - CREATE_OPTIONAL)
    if unknown:
        raise _invalid("invalid_parameter", f"Received unknown parameter: {unknown[0]}", unknown[0])
    amount = body["amount"]
    if not is_int(amount) or amount <= 0:
        raise _invalid("invalid_amount", "amount must be a positive integer in the currency's smallest unit.",
                       "amount")
    currency = body["currency"]
    if not isinstance(currency, str) or currency.upper() not in CURRENCIES:
        raise _invalid("invalid_currency", "currency must be CLP or MXN.", "currency")
    for name in ("success_url", "cancel_url"):
        value = body[name]
        if not isinstance(value, str) or not value.strip():
            raise _invalid("empty_string", f"{name} must be a non-empty URL.", name)
        if not value.startswith(("http://", "https://")):
            raise _invalid("invalid_url", f"{name} must be an http(s) URL.", name)
    email = body.get("customer_email")
    if email is not None and (not isinstance(email, str) or "@" not in email):
        raise _invalid("invalid_email", "customer_email must be an email address.", "customer_email")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _invalid("invalid_metadata", "metadata must be an object of key-value pairs.", "metadata")


@app.post("/v1/checkout_sessions")
@api
def create_checkout_session(key: str, account: Account) -> Response:
    body = _body()
    _validate_create(body)
    created = _now()
    session_id = _new_id("cs_")
    session = {
        "id": session_id,
        "object": "checkout_session",
        "amount": body["amount"],
        "business_profile": body.get("business_profile"),
        "cancel_url": body["cancel_url"],
        "created_at": _iso(created),
        "currency": body["currency"].upper(),
        "customer": body.get("customer"),
        "customer_email": body.get("customer_email"),
        "expires_at": _iso(created + SESSION_TTL),
        "flow": "payment",
        "line_items": body.get("line_items"),
        "metadata": dict(body.get("metadata") or {}),
        "mode": "test",
        "payment_method": None,
        "payment_method_options": body.get("payment_method_options") or {},
        "payment_method_types": body.get("payment_method_types") or ["bank_transfer"],
        "payment_resource": None,
        # url_root carries the mount point (SCRIPT_NAME), so the link works on whatever port serves us.
        "redirect_url": f"{request.url_root}sandbox/{session_id}",
        "status": "created",
        "success_url": body["success_url"],
    }
    with STATE.lock:
        account.sessions[session_id] = session
        STATE.session_owner[session_id] = key
    return _json(session, 201)


@app.get("/v1/checkout_sessions/<session_id>")
@api
def get_checkout_session(key: str, account: Account, session_id: str) -> Response:
    return _json(_session(key, account, session_id))


@app.post("/v1/checkout_sessions/<session_id>/expire")
@api
def expire_checkout_session(key: str, account: Account, session_id: str) -> Response:
    session = _session(key, account, session_id)
    if session["status"] == "expired":
        return _json(session)
    if session["status"] == "finished":
        raise _invalid("invalid_status", "A finished checkout session cannot be expired.")
    return _json(_expire(key, session))


@app.get("/v1/payment_intents/<payment_intent_id>")
@api
def get_payment_intent(_key: str, account: Account, payment_intent_id: str) -> Response:
    with STATE.lock:
        payment = account.payment_intents.get(payment_intent_id)
    if payment is None:
        raise _missing("payment_intent", payment_intent_id)
    return _json(payment)


def _session(key: str, account: Account, session_id: str) -> dict[str, Any]:
    with STATE.lock:
        session = account.sessions.get(session_id)
        if session is None:
            # Another account's session is as unknown as one that never existed.
            raise _missing("checkout_session", session_id)
        _expire_if_due(key, session)
        return session


def _expire_if_due(key: str, session: dict[str, Any]) -> None:
    if session["status"] in ("created", "in_progress") and _now() >= _parse_time(session["expires_at"]):
        _expire(key, session)


def _expire(key: str, session: dict[str, Any]) -> dict[str, Any]:
    with STATE.lock:
        session["status"] = "expired"
        events = [_new_event(key, "checkout_session.expired", session)]
    _dispatch(key, events)
    return session


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- webhook endpoints ------------------------------------------------------------------------

def _public_endpoint(endpoint: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in endpoint.items() if name != "secret"}


@app.post("/v1/webhook_endpoints")
@api
def create_webhook_endpoint(_key: str, account: Account) -> Response:
    body = _body()
    url = body.get("url")
    if not url:
        raise _invalid("missing_parameter", "Missing required param: url", "url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _invalid("invalid_url", "url must be an http(s) URL.", "url")
    events = body.get("enabled_events")
    if not events:
        raise _invalid("missing_parameter", "Missing required param: enabled_events", "enabled_events")
    if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
        raise _invalid("invalid_array", "enabled_events must be a list of event types.", "enabled_events")
    endpoint: dict[str, Any] = {
        "id": _new_id("we_"),
        "object": "webhook_endpoint",
        "created_at": _iso(_now()),
        "description": body.get("description"),
        "enabled_events": list(events),
        "mode": "test",
        "status": "enabled",
        "url": url,
        "secret": _new_id("whsec_", 32),
    }
    with STATE.lock:
        account.webhook_endpoints[endpoint["id"]] = endpoint
    # The only answer that ever shows the secret.
    return _json(endpoint, 201)


@app.get("/v1/webhook_endpoints")
@api
def list_webhook_endpoints(_key: str, account: Account) -> Response:
    with STATE.lock:
        return _json([_public_endpoint(e) for e in account.webhook_endpoints.values()])


@app.get("/v1/webhook_endpoints/<endpoint_id>")
@api
def get_webhook_endpoint(_key: str, account: Account, endpoint_id: str) -> Response:
    with STATE.lock:
        endpoint = account.webhook_endpoints.get(endpoint_id)
    if endpoint is None:
        raise _missing("webhook_endpoint", endpoint_id)
    return _json(_public_endpoint(endpoint))


@app.delete("/v1/webhook_endpoints/<endpoint_id>")
@api
def delete_webhook_endpoint(_key: str, account: Account, endpoint_id: str) -> Response:
    with STATE.lock:
        endpoint = account.webhook_endpoints.pop(endpoint_id, None)
    if endpoint is None:
        raise _missing("webhook_endpoint", endpoint_id)
    return _json(_public_endpoint(endpoint))


# --- events and delivery ----------------------------------------------------------------------

def _new_event(key: str, event_type: str, data: dict[str, Any]) -> StoredEvent:
    event_id = _new_id("evt_")
    envelope = {"id": event_id, "type": event_type, "mode": "test",
                "created_at": _iso(_now(), millis=True), "data": copy.deepcopy(data), "object": "event"}
    # Compact UTF-8 JSON, as in Fintoc's published signature vector; never re-serialised afterwards.
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    event = StoredEvent(key, event_id, event_type, body)
    with STATE.lock:
        STATE.events[event.event_id] = event
    return event


def _dispatch(key: str, events: list[StoredEvent]) -> None:
    """Deliver in the background: first attempts in event order per endpoint, retries on their own."""
    WEBHOOKS.dispatch(key, events)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode("utf-8"), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _attempt(endpoint: dict[str, Any], event: StoredEvent, attempt: int, generation: int) -> bool:
    # Each attempt is signed at send time, so a late retry is not refused as stale.
    signature = sign(endpoint["secret"], event.body, int(time.time()))
    started = _now()
    sent = post(endpoint["url"], event.body, {
        "Content-Type": "application/json", "User-Agent": "Fintoc-Sandbox/1.0", "Fintoc-Signature": signature},
        DELIVERY_TIMEOUT_SECONDS)
    STATE.log_delivery(generation, {
        "event_id": event.event_id, "event_type": event.event_type, "endpoint_id": endpoint["id"],
        "url": endpoint["url"], "attempt": attempt, "status_code": sent.status, "error": sent.error,
        "delivered": sent.ok, "sent_at": _iso(started, millis=True), "fintoc_signature": signature,
        "body": event.body.decode("utf-8")})
    return sent.ok


WEBHOOKS = EndpointWebhooks(STATE, DELIVERER, accounts=lambda: STATE.accounts, events=lambda: STATE.events,
                            send=_attempt)


# --- hosted page ------------------------------------------------------------------------------

def _format_amount(amount: int, currency: str) -> str:
    if currency == "CLP":
        return "$" + f"{amount:,}".replace(",", ".") + " CLP"
    major, minor = divmod(amount, 10 ** CURRENCIES.get(currency, 2))
    return f"${major:,}.{minor:02d} {currency}"


_PAGE = """<!doctype html>
<html lang="es"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;display:flex;justify-content:center}}
main{{background:#fff;margin-top:4rem;padding:2rem 2.5rem;border-radius:12px;box-shadow:0 2px 12px #0002;
max-width:26rem;width:100%}}
.amount{{font-size:2rem;font-weight:700;margin:.5rem 0 1.5rem}} .muted{{color:#666;font-size:.85rem}}
form{{display:inline}} button{{font-size:1rem;padding:.7rem 1.4rem;border-radius:8px;border:0;cursor:pointer}}
#pay{{background:#1f6feb;color:#fff}} #fail{{background:#eee;color:#a40e26;margin-left:.5rem}}
</style></head><body><main>
<p class="muted">Fintoc sandbox &middot; test mode</p>
{content}
</main></body></html>"""


def _page(title: str, content: str, status: int = 200) -> Response:
    return Response(_PAGE.format(title=html.escape(title), content=content), status=status, mimetype="text/html")


def _hosted(session_id: str) -> tuple[str, dict[str, Any]] | None:
    with STATE.lock:
        key = STATE.session_owner.get(session_id)
        account = STATE.accounts.get(key) if key else None
        session = account.sessions.get(session_id) if account else None
        if key is None or session is None:
            return None
        _expire_if_due(key, session)
        return key, session


def _closed_page(session: dict[str, Any]) -> Response | None:
    if session["status"] == "expired":
        return _page("Sesión expirada", "<h1>Sesión expirada</h1><p>This payment session has expired; "
                     "no payment was made. Ask the clinic for a new link.</p>", 410)
    if session["status"] == "finished":
        return _page("Pago realizado", "<h1>Pago realizado</h1><p>This session is already paid.</p>", 409)
    return None


@app.get("/sandbox/<session_id>")
def hosted_page(session_id: str) -> Response:
    found = _hosted(session_id)
    if found is None:
        return _page("No encontrado", "<h1>Sesión no encontrada</h1><p>Unknown checkout session.</p>", 404)
    _key, session = found
    closed = _closed_page(session)
    if closed is not None:
        return closed
    amount = html.escape(_format_amount(session["amount"], session["currency"]))
    content = (
        f'<h1>Pagar</h1><p class="amount" id="amount">{amount}</p>'
        f'<form method="post" action="{html.escape(url_for("pay", session_id=session_id))}">'
        '<button id="pay" type="submit">Pagar</button></form>'
        f'<form method="post" action="{html.escape(url_for("fail", session_id=session_id))}">'
        '<button id="fail" type="submit">Fail</button></form>'
        f'<p class="muted">Session {html.escape(session_id)}</p>')
    return _page("Pagar con Fintoc", content)


def _new_payment(session: dict[str, Any], status: str, error_reason: str | None) -> dict[str, Any]:
    now = _iso(_now(), millis=True)
    return {
        "id": _new_id("pi_"),
        "object": "payment_intent",
        "amount": session["amount"],
        "business_profile": session.get("business_profile"),
        "created_at": now,
        "currency": session["currency"],
        "customer": session.get("customer"),
        "customer_email": session.get("customer_email"),
        "error_reason": error_reason,
        "expires_at": None,
        "metadata": {**session["metadata"], "checkout_session_id": session["id"]},
        "mode": "test",
        "next_action": None,
        "payment_method": None,
        "payment_type": "bank_transfer",
        "payment_type_options": {},
        "recipient_account": {"holder_id": "771433855", "institution_id": "cl_banco_de_chile",
                              "number": "123456789", "type": "checking_account"},
        "reference_id": random_string(8, string.digits),
        "sender_account": {"holder_id": "416148503", "institution_id": "cl_banco_estado",
                           "number": "987654321", "type": "checking_account"},
        "status": status,
        "subscription": None,
        "transaction_date": now if status == "succeeded" else None,
        "widget_token": None,
    }


@app.post("/sandbox/<session_id>/pay")
def pay(session_id: str) -> BaseResponse:
    return _complete(session_id, succeeded=True)


@app.post("/sandbox/<session_id>/fail")
def fail(session_id: str) -> BaseResponse:
    return _complete(session_id, succeeded=False)


def _complete(session_id: str, *, succeeded: bool) -> BaseResponse:
    with STATE.lock:
        found = _hosted(session_id)
        if found is None:
            return _page("No encontrado", "<h1>Sesión no encontrada</h1>", 404)
        key, session = found
        closed = _closed_page(session)
        if closed is not None:
            return closed
        account = STATE.accounts[key]
        if succeeded:
            payment = _new_payment(session, "succeeded", None)
            session["status"] = "finished"
            session["payment_resource"] = {"payment_intent": payment}
            events = [_new_event(key, "payment_intent.succeeded", payment),
                      _new_event(key, "checkout_session.finished", session)]
            target = session["success_url"]
        else:
            payment = _new_payment(session, "failed", "insufficient_funds")
            # The patient may try again from the same page until the session expires.
            session["status"] = "in_progress"
            events = [_new_event(key, "payment_intent.failed", payment)]
            target = session["cancel_url"]
        account.payment_intents[payment["id"]] = payment
    _dispatch(key, events)
    return redirect(target, code=303)


# --- refunds ----------------------------------------------------------------------------------
# Fintoc's Refunds API (docs: "Create a refund", "The Refund object"; fintoc-python `refunds`):
# POST /v1/refunds {resource_type: "payment_intent", resource_id, amount?, metadata?} refunds a
# succeeded payment intent in full (no amount) or in part; the sum of its refunds never exceeds the
# payment. A refund starts `pending` (the create page; the object page says `created`), moves to
# `in_progress` when Fintoc's daily batch picks it up, then `succeeded`, `failed` (failure_code
# fraud_risk | insufficient_funds) or, while still pending, `canceled` (POST /v1/refunds/{id}/cancel).
# Events: refund.in_progress, refund.succeeded, refund.failed, each carrying the refund object
# (with the metadata it was created with). Like every POST here the answer is stored under the
# Idempotency-Key and replayed, errors included. Fintoc documents no 409 for a key still in
# flight: requests that share a key are served one after the other, the later ones replayed.
# Error codes for refusals are not documented; the sandbox's are its own.

REFUND_CREATE_FIELDS = frozenset({"resource_type", "resource_id", "amount", "metadata", "recipient_account"})
REFUND_SPENT = ("pending", "in_progress", "succeeded")  # statuses that count against the payment


def _refunded_so_far(account: Account, payment_intent_id: str) -> int:
    return sum(r["amount"] for r in account.refunds.values()
               if r["resource_id"] == payment_intent_id and r["status"] in REFUND_SPENT)


def _new_refund(payment: dict[str, Any], amount: int, metadata: dict[str, Any]) -> dict[str, Any]:
    now = _iso(_now(), millis=True)
    sender = payment.get("sender_account") or {}
    return {"id": _new_id("ref_"), "object": "refund", "amount": amount, "created_at": now,
            "currency": payment["currency"], "failure_code": None, "metadata": metadata, "mode": "test",
            "recipient_account": {**sender, "holder_name": "Test Customer 1"} if sender else None,
            "resource_id": payment["id"], "resource_type": "payment_intent", "status": "pending",
            "updated_at": now}


def _move_refund(key: str, refund: dict[str, Any], status: str, failure_code: str | None = None) -> list[StoredEvent]:
    """pending -> in_progress -> succeeded | failed, one event per step it takes."""
    events = []
    with STATE.lock:
        if refund["status"] == "pending":
            refund.update(status="in_progress", updated_at=_iso(_now(), millis=True))
            events.append(_new_event(key, "refund.in_progress", refund))
        if status in ("succeeded", "failed") and refund["status"] == "in_progress":
            refund.update(status=status, updated_at=_iso(_now(), millis=True),
                          failure_code=(failure_code or "insufficient_funds") if status == "failed" else None)
            events.append(_new_event(key, f"refund.{status}", refund))
    return events


def _validate_refund(body: dict[str, Any]) -> dict[str, Any]:
    """The create parameters as Fintoc checks them; returns the metadata."""
    unknown = sorted(set(body) - REFUND_CREATE_FIELDS)
    if unknown:
        raise _invalid("invalid_parameter", f"Received unknown parameter: {unknown[0]}", unknown[0])
    for name in ("resource_type", "resource_id"):
        if not body.get(name):
            raise _invalid("missing_parameter", f"Missing required param: {name}", name)
    if body["resource_type"] != "payment_intent":
        raise _invalid("invalid_resource_type", "resource_type must be payment_intent.", "resource_type")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _invalid("invalid_metadata", "metadata must be an object of key-value pairs.", "metadata")
    return metadata


@app.post("/v1/refunds")
@api
def create_refund(key: str, account: Account) -> Response:
    body = _body()
    metadata = _validate_refund(body)
    with STATE.lock:
        payment = account.payment_intents.get(str(body["resource_id"]))
        if payment is None:
            raise _missing("payment_intent", str(body["resource_id"]))
        if payment["status"] != "succeeded":
            raise _invalid("invalid_status", "Only a succeeded payment intent can be refunded.", "resource_id")
        left = payment["amount"] - _refunded_so_far(account, payment["id"])
        amount = body.get("amount", left)
        if not is_int(amount) or amount <= 0:
            raise _invalid("invalid_amount", "amount must be a positive integer in the currency's smallest unit.",
                           "amount")
        if amount > left:
            raise _invalid("invalid_amount", f"amount exceeds what is left to refund on {payment['id']} ({left}).",
                           "amount")
        fault = STATE.refund_faults.pop(0) if STATE.refund_faults else None
        if fault and fault["kind"] == "refuse":
            raise FintocApiError(int(fault["status"]), "invalid_request_error", str(fault["code"]),
                                 "The refund was refused (sandbox control).")
        refund = None
        if not fault or fault.get("applied"):
            refund = _new_refund(payment, amount, dict(metadata))
            account.refunds[refund["id"]] = refund
        mode = STATE.refund_mode
    events: list[StoredEvent] = []
    answer = copy.deepcopy(refund)  # as created: Fintoc answers `pending`, its batch moves it later
    if refund is not None and mode in ("succeed", "fail"):
        events = _move_refund(key, refund, "succeeded" if mode == "succeed" else "failed")
    _dispatch(key, events)
    if fault:  # an internal error, stored under the key and replayed like any answer
        return FintocApiError(500, "api_error", "internal_server_error",
                              "Something went wrong on Fintoc's end (sandbox control).").response()
    return _json(answer, 201)


@app.get("/v1/refunds/<refund_id>")
@api
def get_refund(_key: str, account: Account, refund_id: str) -> Response:
    with STATE.lock:
        refund = account.refunds.get(refund_id)
        if refund is None:
            raise _missing("refund", refund_id)
        return _json(refund)


@app.get("/v1/refunds")
@api
def list_refunds(_key: str, account: Account) -> Response:
    with STATE.lock:
        return _json(sorted(account.refunds.values(), key=lambda r: r["created_at"], reverse=True))


@app.post("/v1/refunds/<refund_id>/cancel")
@api
def cancel_refund(_key: str, account: Account, refund_id: str) -> Response:
    # Fintoc names no event for a canceled refund: none is sent (our ledger then keeps it pending).
    with STATE.lock:
        refund = account.refunds.get(refund_id)
        if refund is None:
            raise _missing("refund", refund_id)
        if refund["status"] != "pending":
            raise _invalid("invalid_status", "Only a pending refund can be canceled.")
        refund.update(status="canceled", updated_at=_iso(_now(), millis=True))
        return _json(refund)


# --- test controls (not Fintoc's; /_control/fail-next is FAULTS's, above) ------------------------

@app.post("/_control/sessions/<session_id>/expire-now")
def control_expire_now(session_id: str) -> Response:
    with STATE.lock:
        found = _hosted(session_id)
        if found is None:
            return _json({"error": "unknown session"}, 404)
        key, session = found
        if session["status"] in ("created", "in_progress"):
            session["expires_at"] = _iso(_now())
            _expire(key, session)
        return _json(session)


@app.post("/_control/refunds/mode")
def control_refund_mode() -> Response:
    mode = str(request_json().get("mode", "manual"))
    if mode not in ("manual", "succeed", "fail"):
        return _json({"error": "expected {mode: manual | succeed | fail}"}, 400)
    with STATE.lock:
        STATE.refund_mode = mode
    return _json({"mode": mode})


@app.post("/_control/refunds/refuse-next")
def control_refuse_next_refund() -> Response:
    """The next refund creation is refused with this 4xx (stored under its key, as Fintoc does)."""
    body = request_json()
    status = body.get("status", 400)
    if not is_int(status) or not 400 <= status < 500:
        return _json({"error": "expected {status: 4xx, code}"}, 400)
    with STATE.lock:
        STATE.refund_faults.append({"kind": "refuse", "status": status, "code": str(body.get("code", "refund_not_allowed"))})
    return _json({"pending": len(STATE.refund_faults)})


@app.post("/_control/refunds/error-next")
def control_error_next_refund() -> Response:
    """The next refund creation answers 500, stored and replayed under its key; `applied: true`
    makes the refund anyway (the answer is lost, the refund is not)."""
    body = request_json()
    with STATE.lock:
        STATE.refund_faults.append({"kind": "error", "applied": bool(body.get("applied", False))})
    return _json({"pending": len(STATE.refund_faults)})


@app.post("/_control/refunds/<refund_id>/settle")
def control_settle_refund(refund_id: str) -> Response:
    """Fintoc's batch runs: the refund goes in_progress, then succeeded or failed, with its events."""
    body = request_json()
    status = str(body.get("status", "succeeded"))
    if status not in ("succeeded", "failed", "in_progress"):
        return _json({"error": "expected {status: succeeded | failed | in_progress, failure_code?}"}, 400)
    with STATE.lock:
        found = [(key, account.refunds[refund_id]) for key, account in STATE.accounts.items()
                 if refund_id in account.refunds]
    if not found:
        return _json({"error": "unknown refund"}, 404)
    key, refund = found[0]
    _dispatch(key, _move_refund(key, refund, status, body.get("failure_code")))
    return _json(refund)


@app.post("/_control/payment_intents/<payment_intent_id>/dashboard-refund")
def control_dashboard_refund(payment_intent_id: str) -> Response:
    """A refund made in Fintoc's dashboard: no metadata of ours. `status` succeeded (default) or
    pending (it stays so until settled)."""
    body = request_json()
    with STATE.lock:
        found = [(key, account) for key, account in STATE.accounts.items()
                 if payment_intent_id in account.payment_intents]
        if not found:
            return _json({"error": "unknown payment intent"}, 404)
        key, account = found[0]
        payment = account.payment_intents[payment_intent_id]
        left = payment["amount"] - _refunded_so_far(account, payment_intent_id)
        amount = body.get("amount", left)
        if payment["status"] != "succeeded" or not is_int(amount) or not 0 < amount <= left:
            return _json({"error": f"nothing to refund for that amount ({left} left)"}, 400)
        refund = _new_refund(payment, amount, {})
        account.refunds[refund["id"]] = refund
    status = str(body.get("status", "succeeded"))
    events = _move_refund(key, refund, status) if status in ("succeeded", "failed") else []
    _dispatch(key, events)
    return _json(refund, 201)


add_deliveries_route(app, STATE, _json, {"event_id": "event_id", "type": "event_type"})


@app.get("/_control/events")
def control_events() -> Response:
    with STATE.lock:
        rows = [{"id": e.event_id, "type": e.event_type, "body": e.body.decode("utf-8")} for e in STATE.events.values()]
    return _json({"events": rows})


add_redeliver_route(app, _json, WEBHOOKS.redeliver)
# One account may register several endpoints (e.g. two clinics of one owner): each gets every event.
# Held, a test sends an event to one endpoint at a time, in the order it wants.
add_hold_route(app, STATE, _json)
add_deliver_route(app, _json, lambda event_id, body: WEBHOOKS.deliver_now(event_id, str(body.get("endpoint_id", ""))))
add_reset_route(app, reset, _json)
