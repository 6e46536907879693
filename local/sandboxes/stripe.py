"""Stripe sandbox: customers, SetupIntents, PaymentMethods, off-session PaymentIntents, Checkout
(setup and payment mode) with hosted pages, webhook endpoints and signed event deliveries.

Mounted by local/server.py at /_sandbox/stripe, so `STRIPE_API_BASE=<base>/_sandbox/stripe` points our
client at it. It follows Stripe's contract (reference/providers.md section 4), not our client:
form-encoded bodies with bracket notation (`metadata[appointment_id]=...`), JSON answers, amounts in
the smallest unit, lower-case currencies, the ids `cus_ seti_ pm_ pi_ cs_ evt_ we_`, the error shape
`{"error": {"type", "code", "decline_code", "message", "param", "payment_intent"}}` (402 for card
errors), Idempotency-Key replay and the `Stripe-Signature` scheme. Signing is written here on its
own, on purpose: sharing our verifier's code would let one bug pass both sides.

    /v1/...                 Stripe's API; `Authorization: Bearer sk_test_...` (one account per key)
    /checkout/<cs_id>       the hosted Checkout page where a person types a test card
    /authenticate/<id>      the hosted 3-D Secure page for a PaymentIntent/SetupIntent in requires_action
    /_control/...           test controls, not Stripe's: faults, delivery log, redelivery, forced expiry,
                            holding deliveries and sending one event to one endpoint (/_control/hold,
                            /_control/deliver): an account's every endpoint gets every event, as at
                            Stripe, so two clinics sharing an account each receive the other's events;
                            refunds started in the Dashboard, refunds left pending and settled later
                            (or failing after they succeeded), disputes opened, updated and closed

Failure modes (/_control/fail-next {status, count, seconds?, path?}; `path` picks the calls it hits):
    503        refused before the endpoint runs: nothing happens, nothing is stored under the key
    timeout    the call runs and its answer is stored, but comes `seconds` late
    hang       held `seconds` (or until reset) and then refused: nothing happens
    hold       the call is in flight for `seconds` (or until POST /_control/release), then runs; meanwhile
               another request with the same Idempotency-Key is answered 409 `idempotency_key_in_use`
               (not stored), as Stripe does while a request holds the key
    500        the endpoint runs (the charge is made) and answers 500; the 500 is stored under the
               Idempotency-Key and replayed for it, with `Stripe-Should-Retry: false`, as Stripe does
    500_unapplied  the endpoint starts and fails before applying anything; the 500 is stored all the same

Test cards (typed on the hosted page only) and test PaymentMethods (`pm_card_*`, for API calls):
    4242424242424242  pm_card_visa                        succeeds
    5555555555554444  pm_card_mastercard                  succeeds
    4000003800000446                                       already set up; off-session charges succeed
    4000002500003155                                       needs authentication until set up, then succeeds
    4000002760003184  pm_card_authenticationRequired      every off-session charge: authentication_required
    4000008260003178                                       authenticates, then declined: insufficient_funds
    4000000000009995  pm_card_visa_chargeDeclinedInsufficientFunds   declined: insufficient_funds
    4000000000000002  pm_card_chargeDeclined              declined: generic_decline

Refunds (`POST /v1/refunds`): full or partial, never above what is left (`amount_too_large`,
`charge_already_refunded`), not while disputed (`charge_disputed`). The account's API version is
2024-06-20, whose card refunds send `charge.refunded` (the Charge, `amount_refunded` counting pending
refunds too, no `refunds` list since 2022-11-15) when a refund is made and `charge.refund.updated`
(the Refund) when it changes; `refund.created/updated/failed` for card refunds came with
2024-10-28.acacia and are not sent here. Disputes send `charge.dispute.created/updated/closed`.

Where Stripe's behaviour is not pinned down here the sandbox picks the stricter reading (unknown
parameters are refused; upper-case currencies are refused), so it can only produce false failures.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import html
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, has_request_context, redirect, request, url_for
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
    json_response,
    new_id,
    post,
    request_json,
)

app = Flask(__name__)

DEFAULT_API_VERSION = "2024-06-20"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
SESSION_TTL_SECONDS = 24 * 3600
MAX_AMOUNT = 99_999_999  # eight digits
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                          "vuv", "xaf", "xof", "xpf"})
CURRENCIES = frozenset({"usd", "eur", "cad", "nok", "uah", "gbp", "sek", "dkk", "chf", "mxn"}) | ZERO_DECIMAL
MINIMUM_AMOUNT = {"usd": 50, "eur": 50, "cad": 50, "gbp": 30, "nok": 300, "sek": 300, "dkk": 250, "chf": 50}

# Stripe retries in test mode 3 times over a few hours; compressed here so tests stay fast.
RETRY_DELAYS: tuple[float, ...] = (0.3, 0.6, 1.2)
DELIVERY_TIMEOUT_SECONDS = 3.0

EVENT_TYPES = frozenset({
    "checkout.session.completed", "checkout.session.expired", "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed", "customer.created", "payment_method.attached",
    "payment_method.detached", "setup_intent.created", "setup_intent.succeeded", "setup_intent.setup_failed",
    "setup_intent.requires_action", "payment_intent.created", "payment_intent.succeeded",
    "payment_intent.payment_failed", "payment_intent.requires_action", "payment_intent.canceled", "charge.succeeded",
    "charge.failed", "charge.refunded", "charge.refund.updated", "refund.created", "refund.updated", "refund.failed",
    "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
})
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
CANCELLATION_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer", "abandoned"})
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action")
DISPUTE_REASONS = frozenset({"bank_cannot_process", "credit_not_processed", "customer_initiated", "debit_not_authorized",
                             "duplicate", "fraudulent", "general", "incorrect_account_details", "insufficient_funds",
                             "product_not_received", "product_unacceptable", "subscription_canceled", "unrecognized"})
DISPUTE_STATUSES = frozenset({"warning_needs_response", "warning_under_review", "warning_closed", "needs_response",
                              "under_review", "won", "lost"})


@dataclass(frozen=True)
class TestCard:
    number: str
    brand: str
    behaviour: str  # succeeds | authenticate_until_setup | authentication_always | insufficient_after_auth
    #                 | insufficient_funds | generic_decline
    funding: str = "credit"
    country: str = "US"


TEST_CARDS = {card.number: card for card in (
    TestCard("4242424242424242", "visa", "succeeds"),
    TestCard("5555555555554444", "mastercard", "succeeds"),
    TestCard("4000003800000446", "visa", "succeeds"),
    TestCard("4000002500003155", "visa", "authenticate_until_setup"),
    TestCard("4000002760003184", "visa", "authentication_always"),
    TestCard("4000008260003178", "visa", "insufficient_after_auth"),
    TestCard("4000000000009995", "visa", "insufficient_funds"),
    TestCard("4000000000000002", "visa", "generic_decline"),
)}
TEST_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_authenticationRequiredSetupForOffSession": "4000002500003155",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclined": "4000000000000002",
}


def _new_id(prefix: str, length: int = 24) -> str:
    return new_id(prefix, length)  # Stripe's ids: a prefix and (mostly) 24 alphanumerics


def _now() -> int:
    return int(time.time())


# --- state -------------------------------------------------------------------------------------

@dataclass
class Account:
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    setup_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhook_endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, StoredResponse] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)  # Idempotency-Keys of requests still running
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What Stripe knows about a card but never returns: the test card behind each PaymentMethod.
    cards: dict[str, TestCard] = field(default_factory=dict)
    set_up: set[str] = field(default_factory=set)  # PaymentMethods authenticated for later off-session use


@dataclass
class StoredEvent:
    account_key: str
    event_id: str
    event_type: str
    envelope: dict[str, Any]


class _State(SandboxState):
    def clear(self) -> None:
        super().clear()  # pending faults and the delivery log
        self.accounts: dict[str, Account] = {}
        self.owners: dict[str, str] = {}  # cs_/pi_/seti_/re_/dp_ id -> account key, for the hosted pages and controls
        self.events: dict[str, StoredEvent] = {}
        self.next_refunds: list[str] = []  # how the next refunds start: "pending" (else "succeeded")
        self.releases = 0  # POST /_control/release lets every held ("hold") request go


STATE = _State()
# Its in_flight count (/_control/idle) is not zeroed by a reset: delivery threads from before
# still finish (and stop at the generation check).
DELIVERER = WebhookDeliverer(STATE, "stripe", RETRY_DELAYS)


def reset() -> None:
    """Forget every account, object, event, delivery and pending fault."""
    STATE.reset()  # delivery threads from before the reset see it and stop


# --- errors ------------------------------------------------------------------------------------

class StripeError(Exception):
    def __init__(self, status: int, error_type: str, message: str, *, code: str | None = None,
                 param: str | None = None, decline_code: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": error_type, "message": message}
        for name, value in (("code", code), ("param", param), ("decline_code", decline_code)):
            if value is not None:
                self.body[name] = value
        if code:
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        self.body.update(extra or {})

    def response(self) -> Response:
        return _json({"error": self.body}, self.status)


def _invalid(message: str, param: str | None = None, code: str | None = "parameter_invalid") -> StripeError:
    return StripeError(400, "invalid_request_error", message, code=code, param=param)


def _missing(kind: str, object_id: str, param: str = "id") -> StripeError:
    return StripeError(404, "invalid_request_error", f"No such {kind}: '{object_id}'", code="resource_missing",
                       param=param)


@app.errorhandler(StripeError)
def _on_api_error(error: StripeError) -> Response:
    return error.response()


@app.errorhandler(404)
@app.errorhandler(405)
def _on_unknown_route(_error: Exception) -> Response:
    return StripeError(404, "invalid_request_error",
                       f"Unrecognized request URL ({request.method}: {request.path}).").response()


def _json(body: Any, status: int = 200) -> Response:
    response = json_response(body, status)  # with Stripe's headers, on every answer, /_control's too
    response.headers["Request-Id"] = request.environ.setdefault("sandbox.request_id", _new_id("req_", 14))
    response.headers["Stripe-Version"] = request.headers.get("Stripe-Version") or DEFAULT_API_VERSION
    return response


# --- faults (the next n API calls fail; /_control/fail-next) -------------------------------------

def _unavailable(_fault: Fault) -> Response:
    # Refused before the endpoint runs, so nothing is stored under the Idempotency-Key.
    return StripeError(503, "api_error", "Stripe is temporarily unavailable (sandbox fault).").response()


# Faults the idempotency layer below acts on: they need the request's Idempotency-Key.
KEY_FAULTS = ("hold", "500", "500_unapplied")
FAULTS = FaultInjector(STATE, api_prefix="/v1/", kinds=("503", "timeout", "hang", *KEY_FAULTS), default_kind="503",
                       usage="expected {status: 503 | 'timeout' | 'hang' | 'hold' | 500 | '500_unapplied', "
                             "count: n >= 1, seconds?, path?}",
                       refuse=_unavailable, respond=_json, by_path=True, passed_on=KEY_FAULTS)
FAULTS.install(app)


def _server_error() -> Response:
    # Stripe's 500: its idempotency layer replays it for the key, so it advises against retrying.
    response = StripeError(500, "api_error", "An unknown error occurred (sandbox fault).").response()
    response.headers["Stripe-Should-Retry"] = "false"
    return response


def _hold(seconds: float) -> bool:
    """Keep this request in flight until released, reset or `seconds` pass; False after a reset."""
    with STATE.lock:
        generation, releases = STATE.generation, STATE.releases
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        with STATE.lock:
            if STATE.generation != generation:
                return False
            if STATE.releases != releases:
                return True
        time.sleep(0.02)
    return True


# --- form decoding (bracket notation) ---------------------------------------------------------

_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][c]=1&l[]=x&l[]=y&o[0][k]=v` -> {"a": {"b": {"c": "1"}}, "l": ["x", "y"], "o": [{"k": "v"}]}."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        path = [head] + (_SEGMENT.findall("[" + rest) if rest else [])
        node: Any = root
        for index, part in enumerate(path):
            last = index == len(path) - 1
            following = None if last else path[index + 1]
            if isinstance(node, list):  # only reached through `[]`
                if last:
                    node.append(value)
                else:
                    node.append([] if following == "" else {})
                    node = node[-1]
                continue
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, [] if following == "" else {})
    return _lists(root)


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        converted = {k: _lists(v) for k, v in value.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    if isinstance(value, list):
        return [_lists(v) for v in value]
    return value


def _params() -> dict[str, Any]:
    if request.method == "GET":
        return decode_form(list(request.args.items(multi=True)))
    if request.mimetype not in ("", "application/x-www-form-urlencoded"):
        raise _invalid("Stripe takes application/x-www-form-urlencoded request bodies.", code=None)
    return decode_form(list(request.form.items(multi=True)))


def _allow(params: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
    for name in params:
        if name not in allowed and name != "expand":
            raise _invalid(f"Received unknown parameter: {name}", name, code="parameter_unknown")


def _require(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value in (None, ""):
        raise _invalid(f"Missing required param: {name}.", name, code="parameter_missing")
    return value


def _int(params: dict[str, Any], name: str) -> int:
    raw = _require(params, name)
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
        raise _invalid(f"Invalid integer: {raw}", name, code="parameter_invalid_integer")
    return int(raw)


def _bool(params: dict[str, Any], name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise _invalid(f"Invalid boolean: {raw}", name)
    return raw == "true"


def _metadata(params: dict[str, Any], name: str = "metadata", current: dict[str, str] | None = None) -> dict[str, str]:
    raw = params.get(name)
    result = dict(current or {})
    if raw is None:
        return result
    if not isinstance(raw, dict):
        raise _invalid("Invalid object", name)
    for key, value in raw.items():
        if not isinstance(value, str) or len(key) > 40 or len(value) > 500:
            raise _invalid("Metadata keys are at most 40 characters and values at most 500.", f"{name}[{key}]")
        if value == "":
            result.pop(key, None)
        else:
            result[key] = value
    if len(result) > 50:
        raise _invalid("Metadata takes at most 50 keys.", name)
    return result


def _currency(params: dict[str, Any], name: str = "currency") -> str:
    value = _require(params, name)
    if value != str(value).lower():
        raise _invalid(f"Invalid currency: {value}. Stripe currencies are three-letter ISO codes in lower case.",
                       name)
    if value not in CURRENCIES:
        raise _invalid(f"Invalid currency: {value}.", name)
    return str(value)


def _url(params: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = params.get(name)
    if value is None and not required:
        return None
    value = _require(params, name)
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise _invalid(f"Not a valid URL: {name}", name, code="url_invalid")
    return value


# --- auth and idempotency ---------------------------------------------------------------------

def _authenticate() -> tuple[str, Account]:
    header = request.headers.get("Authorization", "")
    key = ""
    if header.startswith("Bearer "):
        key = header[len("Bearer "):].strip()
    elif request.authorization and request.authorization.type == "basic":
        key = request.authorization.username or ""
    if not key:
        raise StripeError(401, "invalid_request_error",
                          "You did not provide an API key. Provide it as 'Authorization: Bearer YOUR_SECRET_KEY'.")
    if not re.fullmatch(r"sk_test_[A-Za-z0-9_]{8,}", key):
        # Live keys never reach a sandbox; masked like Stripe does.
        raise StripeError(401, "invalid_request_error", f"Invalid API Key provided: {key[:8]}****{key[-4:]}",
                          code="api_key_invalid" if key.startswith("sk_") else None)
    with STATE.lock:
        account = STATE.accounts.setdefault(key, Account())
    return key, account


Handler = Callable[..., Response]


def api(handler: Handler) -> Handler:
    """Authenticate, then for POSTs with an Idempotency-Key store the first answer and replay it.

    Like Stripe: a result is kept once the endpoint ran (successes, card errors and 500s);
    parameter validation failures are not kept; the same key with other parameters is an
    idempotency_error; a request while another with the same key is still running is answered 409
    `idempotency_key_in_use` and not kept (Stripe-Should-Retry: true).
    """

    @wraps(handler)
    def wrapper(**kwargs: Any) -> Response:
        key, account = _authenticate()
        fault: Fault | None = request.environ.get(FaultInjector.FAULT_KEY)
        idempotency_key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if idempotency_key is None:
            return _run(handler, key, account, fault, kwargs)
        with STATE.lock:
            if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
                raise _invalid("Idempotency-Key must be 1 to 255 characters.", code=None)
            form = sorted(request.form.items(multi=True)) if request.method == "POST" else []
            fingerprint = hashlib.sha256(f"{request.method} {request.path}\n{urlencode(form)}".encode()).hexdigest()
            stored = account.idempotency.get(idempotency_key)
            if stored is not None:
                return _replay(stored, fingerprint, idempotency_key)
            if idempotency_key in account.in_flight:
                busy = StripeError(409, "invalid_request_error",
                                   "There is currently another in-progress request using this Stripe API Key and "
                                   "Idempotency Key. Please try again later.", code="idempotency_key_in_use").response()
                busy.headers["Stripe-Should-Retry"] = "true"
                return busy
            account.in_flight.add(idempotency_key)
        try:
            response = _run(handler, key, account, fault, kwargs)
            with STATE.lock:
                if response.status_code < 400 or response.status_code == 402 or response.status_code >= 500:
                    account.idempotency[idempotency_key] = StoredResponse(fingerprint, response.status_code,
                                                                          response.get_data())
        finally:
            with STATE.lock:
                account.in_flight.discard(idempotency_key)
        response.headers["Idempotency-Key"] = idempotency_key
        return response

    return wrapper


def _replay(stored: StoredResponse, fingerprint: str, idempotency_key: str) -> Response:
    if stored.fingerprint != fingerprint:
        raise StripeError(400, "idempotency_error",
                          "Keys for idempotent requests can only be used with the same parameters they were first "
                          f"used with. Try using a key other than '{idempotency_key}' if you meant to execute a "
                          "different request.")
    replay = Response(stored.body, status=stored.status, mimetype="application/json")
    replay.headers["Idempotent-Replayed"] = "true"
    replay.headers["Idempotency-Key"] = idempotency_key
    if stored.status >= 500:
        replay.headers["Stripe-Should-Retry"] = "false"
    return replay


def _run(handler: Handler, key: str, account: Account, fault: Fault | None, kwargs: dict[str, Any]) -> Response:
    """The endpoint, as the fault this request took lets it run."""
    if fault is not None and fault.kind == "hold" and not _hold(fault.seconds):
        return _json({"error": {"type": "api_error", "message": "The sandbox was reset while this request was held; "
                                                                "nothing was done."}}, 503)
    if fault is not None and fault.kind == "500_unapplied":
        return _server_error()
    with STATE.lock:  # serialises requests: concurrent requests cannot interleave inside an endpoint
        try:
            response = handler(key, account, **kwargs)
        except StripeError as error:
            response = error.response()
    if fault is not None and fault.kind == "500":
        return _server_error()  # the endpoint ran: what it did stands, its answer is lost
    return response


def _owner_of(object_id: str) -> tuple[str, Account] | None:
    with STATE.lock:
        key = STATE.owners.get(object_id)
        account = STATE.accounts.get(key) if key else None
        return (key, account) if key and account else None


# --- customers ---------------------------------------------------------------------------------

@app.post("/v1/customers")
@api
def create_customer(key: str, account: Account) -> Response:
    params = _params()
    _allow(params, {"email", "name", "phone", "description", "metadata", "payment_method"})
    customer: dict[str, Any] = {"id": _new_id("cus_", 14), "object": "customer", "created": _now(), "description":
                params.get("description"), "email": params.get("email"), "name": params.get("name"),
                "phone": params.get("phone"), "metadata": _metadata(params), "livemode": False,
                "invoice_settings": {"default_payment_method": None}}
    account.customers[customer["id"]] = customer
    events = [_new_event(key, "customer.created", customer)]
    if params.get("payment_method"):
        method = _payment_method(account, str(params["payment_method"]), "payment_method")
        events += _attach(key, account, method, customer["id"])
    _dispatch(key, events)
    return _json(customer)


@app.get("/v1/customers")
@api
def list_customers(_key: str, account: Account) -> Response:
    params = _params()
    _allow(params, {"limit", "email", "starting_after", "ending_before"})
    data = sorted(account.customers.values(), key=lambda c: c["created"], reverse=True)
    return _json(_list(data, "/v1/customers", params))


@app.get("/v1/customers/<customer_id>")
@api
def get_customer(_key: str, account: Account, customer_id: str) -> Response:
    return _json(_customer(account, customer_id))


def _customer(account: Account, customer_id: str, param: str = "id") -> dict[str, Any]:
    customer = account.customers.get(customer_id)
    if customer is None:
        raise _missing("customer", customer_id, param)
    return customer


def _list(data: list[dict[str, Any]], url: str, params: dict[str, Any]) -> dict[str, Any]:
    limit = int(params.get("limit") or 10)
    if not 1 <= limit <= 100:
        raise _invalid("limit must be between 1 and 100.", "limit")
    return {"object": "list", "url": url, "has_more": len(data) > limit, "data": data[:limit]}


# --- payment methods ---------------------------------------------------------------------------

def _luhn(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mint_payment_method(account: Account, card: TestCard, exp_month: int, exp_year: int,
                         name: str | None = None) -> dict[str, Any]:
    method: dict[str, Any] = {
        "id": _new_id("pm_"), "object": "payment_method", "type": "card", "created": _now(), "customer": None,
        "livemode": False, "metadata": {},
        "billing_details": {"name": name, "email": None, "phone": None, "address": None},
        "card": {"brand": card.brand, "display_brand": card.brand, "last4": card.number[-4:],
                 "exp_month": exp_month, "exp_year": exp_year, "funding": card.funding, "country": card.country,
                 "fingerprint": hashlib.sha256(card.number.encode()).hexdigest()[:16],
                 "checks": {"cvc_check": "pass", "address_line1_check": None, "address_postal_code_check": None},
                 "networks": {"available": [card.brand], "preferred": None}},
    }
    account.payment_methods[method["id"]] = method
    account.cards[method["id"]] = card
    if card.number == "4000003800000446":
        account.set_up.add(method["id"])  # "already set up" for off-session use
    return method


def _payment_method(account: Account, method_id: str, param: str) -> dict[str, Any]:
    """An account's PaymentMethod, or a fresh one from a `pm_card_*` test method (as Stripe does)."""
    if method_id in TEST_PAYMENT_METHODS:
        return _mint_payment_method(account, TEST_CARDS[TEST_PAYMENT_METHODS[method_id]], 12, date.today().year + 3)
    method = account.payment_methods.get(method_id)
    if method is None:
        raise _missing("PaymentMethod", method_id, param)
    return method


def _attach(key: str, account: Account, method: dict[str, Any], customer_id: str) -> list[StoredEvent]:
    _customer(account, customer_id, "customer")
    if method.get("_detached"):
        raise _invalid("This PaymentMethod was previously used without being attached to a Customer or was "
                       "detached from a Customer, and may not be used again.", "payment_method")
    if method["customer"] == customer_id:
        return []
    if method["customer"] is not None:
        raise _invalid("The payment method you provided has already been attached to a customer.",
                       "payment_method", code=None)
    method["customer"] = customer_id
    return [_new_event(key, "payment_method.attached", method)]


def _public(method: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in method.items() if not k.startswith("_")}


@app.get("/v1/payment_methods/<method_id>")
@api
def get_payment_method(key: str, account: Account, method_id: str) -> Response:
    return _json(_public(_payment_method(account, method_id, "id")))


@app.get("/v1/payment_methods")
@api
def list_payment_methods(_key: str, account: Account) -> Response:
    params = _params()
    _allow(params, {"customer", "type", "limit", "starting_after", "ending_before"})
    customer = params.get("customer")
    if customer:
        _customer(account, str(customer), "customer")
    return _json(_list(_methods_of(account, customer, params.get("type")), "/v1/payment_methods", params))


@app.get("/v1/customers/<customer_id>/payment_methods")
@api
def list_customer_payment_methods(_key: str, account: Account, customer_id: str) -> Response:
    params = _params()
    _allow(params, {"type", "limit", "starting_after", "ending_before"})
    _customer(account, customer_id)
    return _json(_list(_methods_of(account, customer_id, params.get("type")),
                       f"/v1/customers/{customer_id}/payment_methods", params))


def _methods_of(account: Account, customer: Any, method_type: Any) -> list[dict[str, Any]]:
    found = [_public(m) for m in account.payment_methods.values()
             if (customer is None or m["customer"] == customer) and (method_type in (None, m["type"]))
             and not m.get("_detached")]
    return sorted(found, key=lambda m: m["created"], reverse=True)


@app.post("/v1/payment_methods/<method_id>/attach")
@api
def attach_payment_method(key: str, account: Account, method_id: str) -> Response:
    params = _params()
    _allow(params, {"customer"})
    method = _payment_method(account, method_id, "payment_method")
    events = _attach(key, account, method, str(_require(params, "customer")))
    _dispatch(key, events)
    return _json(_public(method))


@app.post("/v1/payment_methods/<method_id>/detach")
@api
def detach_payment_method(key: str, account: Account, method_id: str) -> Response:
    _allow(_params(), set())
    method = _payment_method(account, method_id, "payment_method")
    if method["customer"] is None:
        raise _invalid("The payment method you provided is not attached to a customer so detachment is impossible.",
                       "payment_method", code=None)
    previous = {"customer": method["customer"]}
    method["customer"] = None
    method["_detached"] = True
    _dispatch(key, [_new_event(key, "payment_method.detached", _public(method), previous=previous)])
    return _json(_public(method))


# --- charging decisions -----------------------------------------------------------------------

def _card_error(code: str, message: str, *, decline_code: str | None = None,
                intent: dict[str, Any] | None = None, kind: str = "payment_intent") -> StripeError:
    extra: dict[str, Any] = {}
    if intent is not None:
        extra[kind] = _public(intent)
        extra["payment_method"] = {"id": intent.get("payment_method"), "object": "payment_method"}
    return StripeError(402, "card_error", message, code=code, decline_code=decline_code, extra=extra)


def _outcome(account: Account, method_id: str, *, off_session: bool, setting_up: bool = False) -> str:
    """What happens when this card is confirmed now: succeeds | authenticate | a decline code."""
    card = account.cards.get(method_id)
    behaviour = card.behaviour if card else "succeeds"
    if behaviour == "authentication_always" or (behaviour == "authenticate_until_setup" and method_id not in
                                                account.set_up):
        return "authenticate"
    if behaviour == "insufficient_after_auth":
        return "authenticate" if setting_up or not off_session else "insufficient_funds"
    if behaviour in ("insufficient_funds", "generic_decline") and not setting_up:
        return behaviour
    return "succeeds"


_DECLINE_MESSAGES = {"insufficient_funds": "Your card has insufficient funds.",
                     "generic_decline": "Your card was declined."}


# --- setup intents -----------------------------------------------------------------------------

SETUP_INTENT_PARAMS = frozenset({"customer", "payment_method", "payment_method_types", "usage", "confirm",
                                 "metadata", "description", "return_url", "automatic_payment_methods",
                                 "payment_method_options"})


def _new_setup_intent(key: str, account: Account, params: dict[str, Any]) -> dict[str, Any]:
    customer = params.get("customer")
    if customer:
        _customer(account, str(customer), "customer")
    usage = params.get("usage", "off_session")
    if usage not in ("off_session", "on_session"):
        raise _invalid("Invalid usage: must be one of off_session, on_session", "usage")
    intent_id = _new_id("seti_")
    intent = {"id": intent_id, "object": "setup_intent", "created": _now(), "customer": customer,
              "description": params.get("description"), "livemode": False, "metadata": _metadata(params),
              "payment_method": None, "payment_method_types": params.get("payment_method_types") or ["card"],
              "status": "requires_payment_method", "usage": usage, "last_setup_error": None, "next_action": None,
              "client_secret": f"{intent_id}_secret_{_new_id('', 24)}", "latest_attempt": None}
    if params.get("payment_method"):
        method = _payment_method(account, str(params["payment_method"]), "payment_method")
        intent["payment_method"] = method["id"]
        intent["status"] = "requires_confirmation"
    account.setup_intents[intent_id] = intent
    with STATE.lock:
        STATE.owners[intent_id] = key
    return intent


def _confirm_setup(key: str, account: Account, intent: dict[str, Any], return_url: str | None) -> list[StoredEvent]:
    if intent["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise _invalid(f"You cannot confirm this SetupIntent because it has a status of {intent['status']}.",
                       code="setup_intent_unexpected_state")
    if not intent["payment_method"]:
        raise _invalid("You must provide a payment_method to confirm this SetupIntent.", "payment_method",
                       code="parameter_missing")
    outcome = _outcome(account, intent["payment_method"], off_session=False, setting_up=True)
    if outcome == "authenticate":
        intent["status"] = "requires_action"
        intent["next_action"] = _next_action(intent, return_url)
        return [_new_event(key, "setup_intent.requires_action", intent)]
    if outcome != "succeeds":
        intent["status"] = "requires_payment_method"
        intent["last_setup_error"] = {"type": "card_error", "code": "card_declined", "decline_code": outcome,
                                      "message": _DECLINE_MESSAGES.get(outcome, "Your card was declined.")}
        _dispatch(key, [_new_event(key, "setup_intent.setup_failed", intent)])
        raise _card_error("card_declined", intent["last_setup_error"]["message"], decline_code=outcome,
                          intent=intent, kind="setup_intent")
    return _setup_succeeded(key, account, intent)


def _setup_succeeded(key: str, account: Account, intent: dict[str, Any]) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    method = account.payment_methods[intent["payment_method"]]
    if intent.get("customer"):
        events += _attach(key, account, method, intent["customer"])
    account.set_up.add(method["id"])
    intent.update(status="succeeded", next_action=None, last_setup_error=None)
    events.append(_new_event(key, "setup_intent.succeeded", intent))
    return events


def _next_action(intent: dict[str, Any], return_url: str | None) -> dict[str, Any]:
    if return_url:
        url = url_for("authenticate_page", intent_id=intent["id"], _external=True)
        intent["_return_url"] = return_url
        return {"type": "redirect_to_url", "redirect_to_url": {"url": url, "return_url": return_url}}
    return {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": ""}}


@app.post("/v1/setup_intents")
@api
def create_setup_intent(key: str, account: Account) -> Response:
    params = _params()
    _allow(params, SETUP_INTENT_PARAMS)
    intent = _new_setup_intent(key, account, params)
    events = [_new_event(key, "setup_intent.created", intent)]
    if _bool(params, "confirm"):
        events += _confirm_setup(key, account, intent, _url(params, "return_url", required=False))
    _dispatch(key, events)
    return _json(_public(intent))


@app.get("/v1/setup_intents/<intent_id>")
@api
def get_setup_intent(_key: str, account: Account, intent_id: str) -> Response:
    intent = account.setup_intents.get(intent_id)
    if intent is None:
        raise _missing("setupintent", intent_id, "intent")
    return _json(_public(intent))


@app.post("/v1/setup_intents/<intent_id>/confirm")
@api
def confirm_setup_intent(key: str, account: Account, intent_id: str) -> Response:
    params = _params()
    _allow(params, {"payment_method", "return_url", "payment_method_options"})
    intent = account.setup_intents.get(intent_id)
    if intent is None:
        raise _missing("setupintent", intent_id, "intent")
    if params.get("payment_method"):
        intent["payment_method"] = _payment_method(account, str(params["payment_method"]), "payment_method")["id"]
    _dispatch(key, _confirm_setup(key, account, intent, _url(params, "return_url", required=False)))
    return _json(_public(intent))


# --- payment intents ---------------------------------------------------------------------------

PAYMENT_INTENT_PARAMS = frozenset({"amount", "currency", "customer", "payment_method", "payment_method_types",
                                   "off_session", "confirm", "description", "metadata", "return_url",
                                   "error_on_requires_action", "setup_future_usage", "receipt_email",
                                   "statement_descriptor_suffix", "capture_method", "automatic_payment_methods",
                                   "payment_method_options"})


def _amount(params: dict[str, Any], currency: str, name: str = "amount") -> int:
    amount = _int(params, name)
    minimum = MINIMUM_AMOUNT.get(currency, 1)
    if amount < minimum:
        raise _invalid(f"Amount must be at least {minimum} in {currency}.", name, code="amount_too_small")
    if amount > MAX_AMOUNT:
        raise _invalid("Amount must be no more than 99999999.", name, code="amount_too_large")
    return amount


def _new_payment_intent(key: str, account: Account, *, amount: int, currency: str, customer: str | None,
                        metadata: dict[str, str], description: str | None, method_id: str | None) -> dict[str, Any]:
    intent_id = _new_id("pi_")
    intent = {"id": intent_id, "object": "payment_intent", "amount": amount, "amount_received": 0,
              "currency": currency, "customer": customer, "created": _now(), "description": description,
              "livemode": False, "metadata": metadata, "payment_method": method_id,
              "payment_method_types": ["card"], "status": "requires_payment_method" if method_id is None
              else "requires_confirmation", "capture_method": "automatic", "confirmation_method": "automatic",
              "last_payment_error": None, "next_action": None, "latest_charge": None,
              "client_secret": f"{intent_id}_secret_{_new_id('', 24)}"}
    account.payment_intents[intent_id] = intent
    with STATE.lock:
        STATE.owners[intent_id] = key
    return intent


def _confirm_payment(key: str, account: Account, intent: dict[str, Any], *, off_session: bool,
                     return_url: str | None, error_on_requires_action: bool) -> list[StoredEvent]:
    if intent["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise _invalid(f"This PaymentIntent's status is {intent['status']}; it cannot be confirmed.",
                       code="payment_intent_unexpected_state")
    method_id = intent["payment_method"]
    if not method_id:
        raise _invalid("You must provide a payment_method to confirm this PaymentIntent.", "payment_method",
                       code="parameter_missing")
    method = account.payment_methods[method_id]
    if method.get("_detached"):
        raise _invalid("The provided PaymentMethod was detached from its Customer and may not be used again.",
                       "payment_method", code="payment_method_unexpected_state")
    if intent.get("customer") and method["customer"] != intent["customer"]:
        raise _invalid(f"The provided PaymentMethod {method_id} does not belong to the Customer "
                       f"{intent['customer']}.", "payment_method")
    outcome = _outcome(account, method_id, off_session=off_session)
    if outcome == "authenticate" and not off_session and not error_on_requires_action:
        intent.update(status="requires_action", next_action=_next_action(intent, return_url), last_payment_error=None)
        return [_new_event(key, "payment_intent.requires_action", intent)]
    if outcome == "authenticate":
        return _payment_declined(key, intent, "authentication_required", "authentication_required",
                                 "Your card was declined. This transaction requires authentication.")
    if outcome != "succeeds":
        return _payment_declined(key, intent, "card_declined", outcome,
                                 _DECLINE_MESSAGES.get(outcome, "Your card was declined."))
    return _payment_succeeded(key, intent)


def _payment_declined(key: str, intent: dict[str, Any], code: str, decline_code: str, message: str) -> list[StoredEvent]:
    intent.update(status="requires_payment_method", next_action=None, last_payment_error={
        "type": "card_error", "code": code, "decline_code": decline_code, "message": message,
        "payment_method": {"id": intent["payment_method"], "object": "payment_method"}})
    _dispatch(key, [_new_event(key, "payment_intent.payment_failed", intent)])
    raise _card_error(code, message, decline_code=decline_code, intent=intent)


def _payment_succeeded(key: str, intent: dict[str, Any]) -> list[StoredEvent]:
    charge_id = _new_id("ch_")
    intent.update(status="succeeded", amount_received=intent["amount"], latest_charge=charge_id, next_action=None,
                  last_payment_error=None)
    # The PaymentIntent's metadata is copied onto its Charge, as at Stripe.
    charge = {"id": charge_id, "object": "charge", "amount": intent["amount"], "amount_captured": intent["amount"],
              "amount_refunded": 0, "refunded": False, "captured": True, "disputed": False,
              "currency": intent["currency"], "customer": intent.get("customer"), "paid": True,
              "payment_intent": intent["id"], "payment_method": intent["payment_method"], "status": "succeeded",
              "created": _now(), "metadata": dict(intent["metadata"]), "livemode": False, "failure_code": None}
    with STATE.lock:
        account = STATE.accounts[key]
        account.charges[charge_id] = charge
        STATE.owners[charge_id] = key
    return [_new_event(key, "payment_intent.succeeded", intent), _new_event(key, "charge.succeeded", charge)]


@app.post("/v1/payment_intents")
@api
def create_payment_intent(key: str, account: Account) -> Response:
    params = _params()
    _allow(params, PAYMENT_INTENT_PARAMS)
    currency = _currency(params)
    amount = _amount(params, currency)
    customer = params.get("customer")
    if customer:
        _customer(account, str(customer), "customer")
    off_session_raw = params.get("off_session")
    off_session = off_session_raw in ("true", "one_off", "recurring")
    if off_session_raw not in (None, "true", "false", "one_off", "recurring"):
        raise _invalid(f"Invalid off_session: {off_session_raw}", "off_session")
    confirm = _bool(params, "confirm")
    if off_session and not confirm:
        raise _invalid("off_session can only be used when confirm=true.", "off_session")
    if params.get("capture_method") not in (None, "automatic"):
        raise _invalid("This sandbox only captures automatically.", "capture_method")
    method_id = None
    if params.get("payment_method"):
        method_id = _payment_method(account, str(params["payment_method"]), "payment_method")["id"]
    intent = _new_payment_intent(key, account, amount=amount, currency=currency,
                                 customer=str(customer) if customer else None, metadata=_metadata(params),
                                 description=params.get("description"), method_id=method_id)
    events = [_new_event(key, "payment_intent.created", intent)]
    if confirm:
        _dispatch(key, events)
        events = _confirm_payment(key, account, intent, off_session=off_session,
                                  return_url=_url(params, "return_url", required=False),
                                  error_on_requires_action=_bool(params, "error_on_requires_action"))
    _dispatch(key, events)
    return _json(_public(intent))


@app.get("/v1/payment_intents/<intent_id>")
@api
def get_payment_intent(_key: str, account: Account, intent_id: str) -> Response:
    intent = account.payment_intents.get(intent_id)
    if intent is None:
        raise _missing("payment_intent", intent_id, "intent")
    return _json(_public(intent))


@app.get("/v1/payment_intents")
@api
def list_payment_intents(_key: str, account: Account) -> Response:
    params = _params()
    _allow(params, {"customer", "created", "limit", "starting_after", "ending_before"})
    customer = params.get("customer")
    data = [_public(i) for i in account.payment_intents.values()
            if (customer is None or i.get("customer") == customer) and _created_matches(i["created"], params)]
    return _json(_list_page(list(reversed(data)), "/v1/payment_intents", params))


def _created_matches(created: int, params: dict[str, Any]) -> bool:
    wanted = params.get("created")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return created == _int(params, "created")
    if not isinstance(wanted, dict):
        raise _invalid("Invalid created filter", "created")
    checks = {"gt": created.__gt__, "gte": created.__ge__, "lt": created.__lt__, "lte": created.__le__}
    for name in wanted:
        if name not in checks:
            raise _invalid(f"Received unknown parameter: created[{name}]", f"created[{name}]", code="parameter_unknown")
        if not checks[name](_int(wanted, name)):
            return False
    return True


def _list_page(data: list[dict[str, Any]], url: str, params: dict[str, Any]) -> dict[str, Any]:
    """A list page, newest first, after `starting_after` when given."""
    after = params.get("starting_after")
    if after:
        ids = [item["id"] for item in data]
        if after not in ids:
            raise _invalid(f"No such object: '{after}'", "starting_after", code="resource_missing")
        data = data[ids.index(after) + 1:]
    return _list(data, url, params)


@app.post("/v1/payment_intents/<intent_id>/cancel")
@api
def cancel_payment_intent(key: str, account: Account, intent_id: str) -> Response:
    """Stripe serialises this with the customer's authentication: one of them finds the other done."""
    params = _params()
    _allow(params, {"cancellation_reason"})
    reason = params.get("cancellation_reason")
    if reason is not None and reason not in CANCELLATION_REASONS:
        raise _invalid(f"Invalid cancellation_reason: {reason}", "cancellation_reason")
    intent = account.payment_intents.get(intent_id)
    if intent is None:
        raise _missing("payment_intent", intent_id, "intent")
    if intent["status"] not in CANCELABLE:
        raise StripeError(400, "invalid_request_error",
                          f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a "
                          "PaymentIntent with one of the following statuses may be canceled: "
                          f"{', '.join(CANCELABLE)}.", code="payment_intent_unexpected_state",
                          extra={"payment_intent": _public(intent)})
    intent.update(status="canceled", canceled_at=_now(), cancellation_reason=reason, next_action=None)
    _dispatch(key, [_new_event(key, "payment_intent.canceled", intent)])
    return _json(_public(intent))


@app.post("/v1/payment_intents/<intent_id>/confirm")
@api
def confirm_payment_intent(key: str, account: Account, intent_id: str) -> Response:
    params = _params()
    _allow(params, {"payment_method", "return_url", "off_session", "error_on_requires_action",
                    "payment_method_options"})
    intent = account.payment_intents.get(intent_id)
    if intent is None:
        raise _missing("payment_intent", intent_id, "intent")
    if params.get("payment_method"):
        intent["payment_method"] = _payment_method(account, str(params["payment_method"]), "payment_method")["id"]
    events = _confirm_payment(key, account, intent, off_session=params.get("off_session") in ("true", "one_off",
                                                                                                "recurring"),
                              return_url=_url(params, "return_url", required=False),
                              error_on_requires_action=_bool(params, "error_on_requires_action"))
    _dispatch(key, events)
    return _json(_public(intent))


# --- refunds -----------------------------------------------------------------------------------

REFUND_PARAMS = frozenset({"payment_intent", "charge", "amount", "reason", "metadata", "refund_application_fee",
                           "reverse_transfer", "instructions_email"})


@app.post("/v1/refunds")
@api
def create_refund(key: str, account: Account) -> Response:
    params = _params()
    _allow(params, REFUND_PARAMS)
    charge = _refundable_charge(account, params)
    remaining = charge["amount"] - charge["amount_refunded"]
    amount = _int(params, "amount") if params.get("amount") is not None else remaining
    reason = params.get("reason")
    if reason is not None and reason not in REFUND_REASONS:
        raise _invalid(f"Invalid reason: must be one of {', '.join(sorted(REFUND_REASONS))}", "reason")
    if remaining <= 0:
        raise _invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
    if amount < 1:
        raise _invalid("Amount must be at least 1.", "amount", code="amount_too_small")
    if amount > remaining:
        raise _invalid(f"Refund amount ({_format_amount(amount, charge['currency'])}) is greater than unrefunded amount "
                       f"on charge ({_format_amount(remaining, charge['currency'])})", "amount", code="amount_too_large")
    refund = _make_refund(key, account, charge, amount, reason=reason, metadata=_metadata(params))
    return _json(_public(refund))


def _refundable_charge(account: Account, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("charge"):
        charge = account.charges.get(str(params["charge"]))
        if charge is None:
            raise _missing("charge", str(params["charge"]), "charge")
    elif params.get("payment_intent"):
        intent = account.payment_intents.get(str(params["payment_intent"]))
        if intent is None:
            raise _missing("payment_intent", str(params["payment_intent"]), "payment_intent")
        if intent["status"] != "succeeded" or not intent.get("latest_charge"):
            raise _invalid(f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                           "payment_intent", code="charge_not_refundable")
        charge = account.charges[intent["latest_charge"]]
    else:
        raise _invalid("One of the following params should be provided for this request: payment_intent or charge.",
                       code="parameter_missing")
    if any(d["charge"] == charge["id"] and d["status"] not in ("won", "lost", "warning_closed")
           for d in account.disputes.values()):
        raise _invalid(f"Charge {charge['id']} has been charged back; cannot issue a refund.", code="charge_disputed")
    return charge


def _make_refund(key: str, account: Account, charge: dict[str, Any], amount: int, *, reason: str | None,
                 metadata: dict[str, str]) -> dict[str, Any]:
    with STATE.lock:
        start = STATE.next_refunds.pop(0) if STATE.next_refunds else "succeeded"
        refund: dict[str, Any] = {
            "id": _new_id("re_"), "object": "refund", "amount": amount, "balance_transaction": None,
            "charge": charge["id"], "created": _now(), "currency": charge["currency"], "metadata": metadata,
            "payment_intent": charge["payment_intent"], "reason": reason, "receipt_number": None,
            "source_transfer_reversal": None, "status": start, "transfer_reversal": None,
            "destination_details": {"type": "card", "card": {"type": "refund"}}}
        account.refunds[refund["id"]] = refund
        STATE.owners[refund["id"]] = key
        charge["amount_refunded"] += amount  # pending refunds count too, as at Stripe
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    _dispatch(key, [_new_event(key, "charge.refunded", charge)])
    return refund


def _settle_refund(key: str, account: Account, refund: dict[str, Any], status: str, failure_reason: str | None) -> None:
    """pending -> succeeded | failed, or succeeded -> failed (a card refund that fails later)."""
    previous = {"status": refund["status"]}
    refund["status"] = status
    if status == "failed":
        refund["failure_reason"] = failure_reason or "expired_or_canceled_card"
        refund["failure_balance_transaction"] = None
        previous["failure_reason"] = None
        charge = account.charges[refund["charge"]]
        charge["amount_refunded"] -= refund["amount"]  # the money went back to the merchant's balance
        charge["refunded"] = False
    _dispatch(key, [_new_event(key, "charge.refund.updated", refund, previous=previous)])


@app.get("/v1/refunds")
@api
def list_refunds(_key: str, account: Account) -> Response:
    params = _params()
    _allow(params, {"payment_intent", "charge", "created", "limit", "starting_after", "ending_before"})
    data = [_public(r) for r in account.refunds.values()
            if params.get("payment_intent") in (None, r["payment_intent"]) and params.get("charge") in (None, r["charge"])
            and _created_matches(r["created"], params)]
    return _json(_list_page(list(reversed(data)), "/v1/refunds", params))


@app.get("/v1/refunds/<refund_id>")
@api
def get_refund(_key: str, account: Account, refund_id: str) -> Response:
    refund = account.refunds.get(refund_id)
    if refund is None:
        raise _missing("refund", refund_id)
    return _json(_public(refund))


@app.get("/v1/charges/<charge_id>")
@api
def get_charge(_key: str, account: Account, charge_id: str) -> Response:
    charge = account.charges.get(charge_id)
    if charge is None:
        raise _missing("charge", charge_id)
    return _json(_public(charge))


@app.get("/v1/disputes/<dispute_id>")
@api
def get_dispute(_key: str, account: Account, dispute_id: str) -> Response:
    dispute = account.disputes.get(dispute_id)
    if dispute is None:
        raise _missing("dispute", dispute_id)
    return _json(_public(dispute))


# --- checkout sessions -------------------------------------------------------------------------

SESSION_PARAMS = frozenset({"mode", "customer", "customer_email", "currency", "payment_method_types", "success_url",
                            "cancel_url", "line_items", "metadata", "setup_intent_data", "payment_intent_data",
                            "locale", "client_reference_id", "expires_at", "ui_mode"})
CHECKOUT_LOCALES = frozenset({"auto", "bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fil", "fr", "hr",
                              "hu", "id", "it", "ja", "ko", "lt", "lv", "ms", "mt", "nb", "nl", "pl", "pt", "ro",
                              "ru", "sk", "sl", "sv", "th", "tr", "vi", "zh"})


def _line_items(params: dict[str, Any]) -> tuple[list[dict[str, Any]], str, int]:
    items = params.get("line_items")
    if not isinstance(items, list) or not items:
        raise _invalid("You must provide line_items in payment mode.", "line_items", code="parameter_missing")
    currencies: set[str] = set()
    total = 0
    normalised = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("price_data"), dict):
            raise _invalid("Each line item needs price_data.", f"line_items[{index}][price_data]")
        price = item["price_data"]
        currency = _currency(price, "currency")
        unit_amount = _int(price, "unit_amount")
        quantity = _int(item, "quantity")
        product = price.get("product_data")
        if not isinstance(product, dict) or not product.get("name"):
            raise _invalid("Missing required param: line_items[][price_data][product_data][name].",
                           f"line_items[{index}][price_data][product_data][name]", code="parameter_missing")
        if unit_amount < 0 or quantity < 1:
            raise _invalid("unit_amount must be at least 0 and quantity at least 1.", f"line_items[{index}]")
        currencies.add(currency)
        total += unit_amount * quantity
        normalised.append({"description": product["name"], "quantity": quantity, "currency": currency,
                           "amount_total": unit_amount * quantity, "price": {"unit_amount": unit_amount}})
    if len(currencies) != 1:
        raise _invalid("All line items must share one currency.", "line_items")
    currency = currencies.pop()
    if total < MINIMUM_AMOUNT.get(currency, 1) or total > MAX_AMOUNT:
        raise _invalid("The Checkout Session's total amount is out of range.", "line_items", code="amount_too_small")
    return normalised, currency, total


@app.post("/v1/checkout/sessions")
@api
def create_checkout_session(key: str, account: Account) -> Response:
    params = _params()
    _allow(params, SESSION_PARAMS)
    mode = _require(params, "mode")
    if mode not in ("payment", "setup"):
        raise _invalid("Invalid mode: this sandbox supports payment and setup.", "mode")
    if params.get("ui_mode") not in (None, "hosted"):
        raise _invalid("This sandbox serves hosted Checkout only.", "ui_mode")
    success_url = _url(params, "success_url", required=True)
    cancel_url = _url(params, "cancel_url", required=False)
    customer = params.get("customer")
    if customer:
        _customer(account, str(customer), "customer")
    locale = params.get("locale", "auto")
    if locale not in CHECKOUT_LOCALES:
        raise _invalid(f"Invalid locale: {locale}", "locale")
    now = _now()
    expires_at = _int(params, "expires_at") if params.get("expires_at") else now + SESSION_TTL_SECONDS
    if not now + 1800 <= expires_at <= now + SESSION_TTL_SECONDS:
        raise _invalid("expires_at must be 30 minutes to 24 hours from now.", "expires_at")
    session_id = _new_id("cs_test_", 58)
    session: dict[str, Any] = {
        "id": session_id, "object": "checkout.session", "mode": mode, "status": "open", "created": now,
        "expires_at": expires_at, "livemode": False, "locale": locale, "customer": customer,
        "customer_email": params.get("customer_email"), "client_reference_id": params.get("client_reference_id"),
        "success_url": success_url, "cancel_url": cancel_url, "metadata": _metadata(params),
        "payment_method_types": params.get("payment_method_types") or ["card"], "payment_intent": None,
        "setup_intent": None, "amount_subtotal": None, "amount_total": None, "currency": None,
        "payment_status": "unpaid", "url": url_for("checkout_page", session_id=session_id, _external=True)}
    if mode == "setup":
        if not params.get("currency") and not params.get("payment_method_types"):
            raise _invalid("currency is required in setup mode when payment_method_types is not passed.",
                           "currency", code="parameter_missing")
        setup_data = params.get("setup_intent_data") or {}
        if not isinstance(setup_data, dict):
            raise _invalid("Invalid object", "setup_intent_data")
        _allow(setup_data, {"metadata", "description", "on_behalf_of"})
        intent = _new_setup_intent(key, account, {"customer": customer, "metadata": setup_data.get("metadata"),
                                                  "description": setup_data.get("description"),
                                                  "payment_method_types": ["card"]})
        session.update(setup_intent=intent["id"], payment_status="no_payment_required",
                       currency=_currency(params) if params.get("currency") else None)
    else:
        items, currency, total = _line_items(params)
        payment_data = params.get("payment_intent_data") or {}
        if not isinstance(payment_data, dict):
            raise _invalid("Invalid object", "payment_intent_data")
        _allow(payment_data, {"metadata", "description", "setup_future_usage", "receipt_email"})
        session.update(currency=currency, amount_subtotal=total, amount_total=total, _line_items=items,
                       _payment_metadata=_metadata(payment_data),
                       _payment_description=payment_data.get("description"))
    account.sessions[session_id] = session
    with STATE.lock:
        STATE.owners[session_id] = key
    return _json(_public(session))


@app.get("/v1/checkout/sessions/<session_id>")
@api
def get_checkout_session(key: str, account: Account, session_id: str) -> Response:
    return _json(_public(_session(key, account, session_id)))


@app.post("/v1/checkout/sessions/<session_id>/expire")
@api
def expire_checkout_session(key: str, account: Account, session_id: str) -> Response:
    _allow(_params(), set())
    session = _session(key, account, session_id)
    if session["status"] != "open":
        raise _invalid(f"Only Checkout Sessions with a status in [\"open\"] can be expired. This one is "
                       f"{session['status']}.", code=None)
    _expire(key, session)
    return _json(_public(session))


def _session(key: str, account: Account, session_id: str) -> dict[str, Any]:
    session = account.sessions.get(session_id)
    if session is None:
        raise _missing("checkout.session", session_id, "session")
    if session["status"] == "open" and session["expires_at"] <= _now():
        _expire(key, session)
    return session


def _expire(key: str, session: dict[str, Any]) -> None:
    session["status"] = "expired"
    session["url"] = None
    _dispatch(key, [_new_event(key, "checkout.session.expired", _public(session))])


# --- webhook endpoints -------------------------------------------------------------------------

def _endpoint_view(endpoint: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in endpoint.items() if k != "secret"}


@app.post("/v1/webhook_endpoints")
@api
def create_webhook_endpoint(_key: str, account: Account) -> Response:
    params = _params()
    _allow(params, {"url", "enabled_events", "description", "api_version", "metadata", "connect"})
    url = _url(params, "url", required=True)
    enabled = params.get("enabled_events")
    if not isinstance(enabled, list) or not enabled:
        raise _invalid("Missing required param: enabled_events.", "enabled_events", code="parameter_missing")
    for name in enabled:
        if name != "*" and name not in EVENT_TYPES:
            raise _invalid(f"Invalid enabled_events: {name}", "enabled_events")
    endpoint: dict[str, Any] = {"id": _new_id("we_"), "object": "webhook_endpoint", "url": url, "enabled_events": enabled,
                "description": params.get("description"), "api_version": params.get("api_version"),
                "status": "enabled", "created": _now(), "livemode": False, "metadata": _metadata(params),
                "secret": "whsec_" + _new_id("", 32)}
    account.webhook_endpoints[endpoint["id"]] = endpoint
    return _json(endpoint)  # the only answer that carries the secret


@app.get("/v1/webhook_endpoints")
@api
def list_webhook_endpoints(_key: str, account: Account) -> Response:
    params = _params()
    _allow(params, {"limit", "starting_after", "ending_before"})
    data = [_endpoint_view(e) for e in sorted(account.webhook_endpoints.values(), key=lambda e: e["created"])]
    return _json(_list(data, "/v1/webhook_endpoints", params))


@app.get("/v1/webhook_endpoints/<endpoint_id>")
@api
def get_webhook_endpoint(_key: str, account: Account, endpoint_id: str) -> Response:
    endpoint = account.webhook_endpoints.get(endpoint_id)
    if endpoint is None:
        raise _missing("webhook_endpoint", endpoint_id)
    return _json(_endpoint_view(endpoint))


@app.delete("/v1/webhook_endpoints/<endpoint_id>")
@api
def delete_webhook_endpoint(_key: str, account: Account, endpoint_id: str) -> Response:
    if account.webhook_endpoints.pop(endpoint_id, None) is None:
        raise _missing("webhook_endpoint", endpoint_id)
    return _json({"id": endpoint_id, "object": "webhook_endpoint", "deleted": True})


@app.get("/v1/events/<event_id>")
@api
def get_event(key: str, _account: Account, event_id: str) -> Response:
    with STATE.lock:
        event = STATE.events.get(event_id)
    if event is None or event.account_key != key:
        raise _missing("event", event_id)
    return _json(event.envelope)


@app.get("/v1/events")
@api
def list_events(key: str, _account: Account) -> Response:
    params = _params()
    _allow(params, {"limit", "type", "starting_after", "ending_before"})
    with STATE.lock:
        data = [e.envelope for e in STATE.events.values()
                if e.account_key == key and params.get("type") in (None, e.event_type)]
    return _json(_list(list(reversed(data)), "/v1/events", params))


@app.get("/v1/balance")
@api
def balance(_key: str, _account: Account) -> Response:
    return _json({"object": "balance", "available": [{"amount": 0, "currency": "usd"}],
                  "pending": [{"amount": 0, "currency": "usd"}], "livemode": False})


# --- events and delivery ----------------------------------------------------------------------

def _new_event(key: str, event_type: str, data: dict[str, Any], *,
               previous: dict[str, Any] | None = None) -> StoredEvent:
    envelope: dict[str, Any] = {
        "id": _new_id("evt_"), "object": "event", "api_version": DEFAULT_API_VERSION, "created": _now(),
        "data": {"object": copy.deepcopy(_public(data))}, "livemode": False, "pending_webhooks": 0,
        "request": {"id": request.environ.get("sandbox.request_id") if has_request_context() else None,
                    "idempotency_key": request.headers.get("Idempotency-Key") if has_request_context() else None},
        "type": event_type}
    if previous:
        envelope["data"]["previous_attributes"] = previous
    event = StoredEvent(key, envelope["id"], event_type, envelope)
    with STATE.lock:
        STATE.events[event.event_id] = event
    return event


def _dispatch(key: str, events: list[StoredEvent]) -> None:
    """Deliver in the background: first attempts in event order per endpoint, retries on their own."""
    WEBHOOKS.dispatch(key, events)


def _count_pending(event: StoredEvent, endpoints: int) -> None:
    event.envelope["pending_webhooks"] = endpoints


def _payload(endpoint: dict[str, Any], event: StoredEvent) -> bytes:
    envelope = dict(event.envelope)
    envelope["api_version"] = endpoint.get("api_version") or DEFAULT_API_VERSION
    # Stripe sends pretty-printed JSON; the bytes are signed exactly as sent.
    return json.dumps(envelope, indent=2, ensure_ascii=False).encode("utf-8")


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode("utf-8"), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _attempt(endpoint: dict[str, Any], event: StoredEvent, attempt: int, generation: int) -> bool:
    body = _payload(endpoint, event)
    # Each attempt is signed at send time, so a late retry is not refused as stale.
    signature = sign(endpoint["secret"], body, _now())
    started = time.time()
    sent = post(endpoint["url"], body, {
        "Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": signature}, DELIVERY_TIMEOUT_SECONDS)
    STATE.log_delivery(generation, {
        "event_id": event.event_id, "event_type": event.event_type, "endpoint_id": endpoint["id"],
        "url": endpoint["url"], "attempt": attempt, "status_code": sent.status, "error": sent.error,
        "delivered": sent.ok, "sent_at": round(started, 3), "stripe_signature": signature, "body": body.decode("utf-8")})
    return sent.ok


WEBHOOKS = EndpointWebhooks(STATE, DELIVERER, accounts=lambda: STATE.accounts, events=lambda: STATE.events,
                            send=_attempt, fanned_out=_count_pending)


# --- hosted pages -----------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f6f9fc;margin:0;display:flex;justify-content:center}}
main{{background:#fff;margin:3rem 1rem;padding:2rem;border-radius:10px;box-shadow:0 2px 12px #0002;
max-width:26rem;width:100%}}
label{{display:block;margin:.8rem 0 .3rem;font-weight:600}} input{{width:100%;box-sizing:border-box;font-size:1rem;
padding:.6rem;border:1px solid #aab;border-radius:6px}} .row{{display:flex;gap:.8rem}} .row>div{{flex:1}}
button{{margin-top:1.2rem;width:100%;font-size:1rem;padding:.8rem;border-radius:6px;border:0;background:#635bff;
color:#fff;cursor:pointer}} .secondary{{background:#eee;color:#333}} .muted{{color:#667;font-size:.85rem}}
.error{{color:#a40e26;font-weight:600}} .amount{{font-size:1.8rem;font-weight:700}}
</style></head><body><main>
<p class="muted">Stripe sandbox &middot; test mode</p>
{content}
</main></body></html>"""


def _page(title: str, content: str, status: int = 200) -> Response:
    page = _PAGE.format(lang="en", title=html.escape(title), content=content)
    response = Response(page, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _format_amount(amount: int, currency: str) -> str:
    if currency in ZERO_DECIMAL:
        return f"{amount:,} {currency.upper()}"
    major, minor = divmod(amount, 100)
    return f"{major:,}.{minor:02d} {currency.upper()}"


def _hosted_session(session_id: str) -> tuple[str, Account, dict[str, Any]] | None:
    found = _owner_of(session_id)
    if found is None:
        return None
    key, account = found
    session = account.sessions.get(session_id)
    if session is None:
        return None
    if session["status"] == "open" and session["expires_at"] <= _now():
        _expire(key, session)
    return key, account, session


def _checkout_form(session: dict[str, Any], error: str | None = None) -> str:
    action = html.escape(url_for("checkout_submit", session_id=session["id"]))
    if session["mode"] == "payment":
        heading = (f'<h1>Pay</h1><p class="amount" id="amount">'
                   f'{html.escape(_format_amount(session["amount_total"], session["currency"]))}</p>')
        button = "Pay"
    else:
        heading = "<h1>Save a card</h1><p>Your card is saved for future payments to this business.</p>"
        button = "Save card"
    alert = f'<p class="error" role="alert" id="error">{html.escape(error)}</p>' if error else ""
    cancel = ""
    if session.get("cancel_url"):
        cancel = (f'<form method="post" action="{html.escape(url_for("checkout_cancel", session_id=session["id"]))}">'
                  '<button class="secondary" id="cancel" type="submit">Cancel</button></form>')
    return (f'{heading}{alert}<form method="post" action="{action}" autocomplete="off">'
            '<label for="cardnumber">Card number</label>'
            '<input id="cardnumber" name="cardnumber" inputmode="numeric" autocomplete="cc-number" required '
            'placeholder="4242 4242 4242 4242">'
            '<div class="row"><div><label for="exp">Expiry (MM / YY)</label>'
            '<input id="exp" name="exp" autocomplete="cc-exp" required placeholder="12 / 34"></div>'
            '<div><label for="cvc">CVC</label><input id="cvc" name="cvc" inputmode="numeric" autocomplete="cc-csc" '
            'required placeholder="123"></div></div>'
            '<label for="name">Name on card</label><input id="name" name="name" autocomplete="cc-name">'
            f'<button id="submit" type="submit">{button}</button></form>{cancel}'
            f'<p class="muted">Session {html.escape(session["id"][:24])}&hellip;</p>')


def _closed(session: dict[str, Any]) -> Response | None:
    if session["status"] == "expired":
        return _page("Session expired", "<h1>This page has expired</h1><p>Nothing was charged or saved. "
                     "Ask the business for a new link.</p>", 410)
    if session["status"] == "complete":
        return _page("Already done", "<h1>Already completed</h1><p>This session is already complete.</p>", 409)
    return None


@app.get("/checkout/<session_id>")
def checkout_page(session_id: str) -> Response:
    with STATE.lock:
        found = _hosted_session(session_id)
        if found is None:
            return _page("Not found", "<h1>Unknown session</h1>", 404)
        _key, _account, session = found
        return _closed(session) or _page("Stripe Checkout", _checkout_form(session))


def _read_card(form: Any) -> tuple[TestCard, int, int] | str:
    number = re.sub(r"[\s-]", "", str(form.get("cardnumber", "")))
    if not number.isdigit() or not 12 <= len(number) <= 19 or not _luhn(number):
        return "Your card number is invalid."
    card = TEST_CARDS.get(number)
    if card is None:
        return ("Your card was declined. Your request was in test mode, but used a non test card. "
                "For a list of valid test cards, visit: https://stripe.com/docs/testing.")
    found = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", str(form.get("exp", "")))
    if not found or not 1 <= int(found.group(1)) <= 12:
        return "Your card's expiration date is incomplete."
    month, year = int(found.group(1)), int(found.group(2))
    year = year + 2000 if year < 100 else year
    today = date.today()
    if (year, month) < (today.year, today.month):
        return "Your card's expiration year is in the past."
    if not re.fullmatch(r"\d{3,4}", str(form.get("cvc", "")).strip()):
        return "Your card's security code is incomplete."
    return card, month, year


@app.post("/checkout/<session_id>")
def checkout_submit(session_id: str) -> BaseResponse:
    with STATE.lock:
        found = _hosted_session(session_id)
        if found is None:
            return _page("Not found", "<h1>Unknown session</h1>", 404)
        key, account, session = found
        closed = _closed(session)
        if closed is not None:
            return closed
        read = _read_card(request.form)
        if isinstance(read, str):
            return _page("Stripe Checkout", _checkout_form(session, read), 402)
        card, month, year = read
        method = _mint_payment_method(account, card, month, year, request.form.get("name") or None)
        if session["mode"] == "setup":
            events = _complete_setup(key, account, session, method)
        else:
            # The person is on this page, so any authentication the bank wants happens here and
            # passes; what is left is what an authenticated charge would meet (off-session rules).
            outcome = _outcome(account, method["id"], off_session=True)
            if outcome not in ("succeeds", "authenticate"):
                return _page("Stripe Checkout", _checkout_form(session, _DECLINE_MESSAGES.get(
                    outcome, "Your card was declined.")), 402)
            events = _complete_payment(key, account, session, method)
        target = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
    _dispatch(key, events)
    return redirect(target, code=303)


def _complete_setup(key: str, account: Account, session: dict[str, Any], method: dict[str, Any]) -> list[StoredEvent]:
    intent = account.setup_intents[session["setup_intent"]]
    intent["payment_method"] = method["id"]
    events = _setup_succeeded(key, account, intent)  # any authentication is done on this page
    session["status"] = "complete"
    session["url"] = None
    return events + [_new_event(key, "checkout.session.completed", session)]


def _complete_payment(key: str, account: Account, session: dict[str, Any], method: dict[str, Any]) -> list[StoredEvent]:
    if session.get("customer"):
        _attach(key, account, method, session["customer"])
    intent = _new_payment_intent(key, account, amount=session["amount_total"], currency=session["currency"],
                                 customer=session.get("customer"), metadata=dict(session["_payment_metadata"]),
                                 description=session.get("_payment_description"), method_id=method["id"])
    events = _payment_succeeded(key, intent)
    session.update(status="complete", payment_status="paid", payment_intent=intent["id"], url=None)
    return events + [_new_event(key, "checkout.session.completed", session)]


@app.post("/checkout/<session_id>/cancel")
def checkout_cancel(session_id: str) -> BaseResponse:
    with STATE.lock:
        found = _hosted_session(session_id)
        if found is None:
            return _page("Not found", "<h1>Unknown session</h1>", 404)
        session = found[2]
        if session["status"] != "open" or not session.get("cancel_url"):
            return _closed(session) or _page("Cancelled", "<h1>Cancelled</h1>")
        target = str(session["cancel_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
    return redirect(target, code=303)


@app.get("/authenticate/<intent_id>")
def authenticate_page(intent_id: str) -> Response:
    with STATE.lock:
        intent = _intent_for_page(intent_id)
        if intent is None:
            return _page("Not found", "<h1>Unknown payment</h1>", 404)
        if intent["status"] != "requires_action":
            return _page("Nothing to do", "<h1>No authentication pending</h1>"
                         f"<p>Status: {html.escape(intent['status'])}</p>", 409)
        action = html.escape(url_for("authenticate_submit", intent_id=intent_id))
        what = (f'<p class="amount">{html.escape(_format_amount(intent["amount"], intent["currency"]))}</p>'
                if intent["object"] == "payment_intent" else "<p>Saving a card for later payments.</p>")
    content = ("<h1>3D Secure test page</h1>" + what +
               "<p>This is where the bank would ask the cardholder to confirm.</p>"
               f'<form method="post" action="{action}"><input type="hidden" name="result" value="complete">'
               '<button id="complete" type="submit">Complete authentication</button></form>'
               f'<form method="post" action="{action}"><input type="hidden" name="result" value="fail">'
               '<button class="secondary" id="fail" type="submit">Fail authentication</button></form>')
    return _page("Authenticate", content)


def _intent_for_page(intent_id: str) -> dict[str, Any] | None:
    found = _owner_of(intent_id)
    if found is None:
        return None
    account = found[1]
    return account.payment_intents.get(intent_id) or account.setup_intents.get(intent_id)


@app.post("/authenticate/<intent_id>")
def authenticate_submit(intent_id: str) -> BaseResponse:
    completed = request.form.get("result") == "complete"
    with STATE.lock:
        found = _owner_of(intent_id)
        intent = _intent_for_page(intent_id)
        if found is None or intent is None:
            return _page("Not found", "<h1>Unknown payment</h1>", 404)
        if intent["status"] != "requires_action":
            return _page("Nothing to do", "<h1>No authentication pending</h1>", 409)
        key, account = found
        events = _authenticated(key, account, intent, completed)
        return_url = intent.get("_return_url")
        status = intent["status"]
    _dispatch(key, events)
    if not return_url:
        return _page("Done", f"<h1>Authentication {'completed' if completed else 'failed'}</h1>")
    prefix = "setup_intent" if intent["object"] == "setup_intent" else "payment_intent"
    query = urlencode({prefix: intent_id, f"{prefix}_client_secret": intent["client_secret"],
                       "redirect_status": "succeeded" if status == "succeeded" else "failed"})
    return redirect(f"{return_url}{'&' if '?' in return_url else '?'}{query}", code=303)


def _authenticated(key: str, account: Account, intent: dict[str, Any], completed: bool) -> list[StoredEvent]:
    is_payment = intent["object"] == "payment_intent"
    if not completed:
        error = {"type": "invalid_request_error", "code": f"{'payment_intent' if is_payment else 'setup_intent'}"
                 "_authentication_failure", "message": "The provided payment method failed authentication."}
        intent.update(status="requires_payment_method", next_action=None)
        intent["last_payment_error" if is_payment else "last_setup_error"] = error
        return [_new_event(key, "payment_intent.payment_failed" if is_payment else "setup_intent.setup_failed",
                           intent)]
    if not is_payment:
        return _setup_succeeded(key, account, intent)
    card = account.cards.get(intent["payment_method"])
    if card and card.behaviour == "insufficient_after_auth":
        intent.update(status="requires_payment_method", next_action=None, last_payment_error={
            "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
            "message": _DECLINE_MESSAGES["insufficient_funds"]})
        return [_new_event(key, "payment_intent.payment_failed", intent)]
    return _payment_succeeded(key, intent)


# --- test controls (not Stripe's; /_control/fail-next is FAULTS's, above) ------------------------

@app.post("/_control/checkout/sessions/<session_id>/expire-now")
def control_expire_now(session_id: str) -> Response:
    with STATE.lock:
        found = _hosted_session(session_id)
        if found is None:
            return _json({"error": "unknown session"}, 404)
        key, _account, session = found
        if session["status"] == "open":
            session["expires_at"] = _now()
            _expire(key, session)
        return _json(_public(session))


add_deliveries_route(app, STATE, _json, {"event_id": "event_id", "type": "event_type"})


@app.get("/_control/idle")
def control_idle() -> Response:
    """`{"idle": true}` once no delivery (first attempt or retry) is under way."""
    with STATE.lock:
        return _json({"idle": DELIVERER.in_flight == 0, "in_flight": DELIVERER.in_flight})


@app.get("/_control/events")
def control_events() -> Response:
    wanted_type = request.args.get("type")
    with STATE.lock:
        rows = [e.envelope for e in STATE.events.values() if not wanted_type or e.event_type == wanted_type]
    return _json({"events": rows})


@app.post("/_control/release")
def control_release() -> Response:
    """Let every request held by a `hold` fault run now."""
    with STATE.lock:
        STATE.releases += 1
        return _json({"released": True})


@app.post("/_control/refunds/next")
def control_next_refund() -> Response:
    """{"status": "pending"}: the next refund starts pending (until /_control/refunds/<id>/settle)."""
    status = request_json().get("status", "pending")
    if status not in ("pending", "succeeded"):
        return _json({"error": "expected {status: pending | succeeded}"}, 400)
    with STATE.lock:
        STATE.next_refunds.append(status)
        return _json({"next_refunds": list(STATE.next_refunds)})


@app.post("/_control/refunds/<refund_id>/settle")
def control_settle_refund(refund_id: str) -> Response:
    """{"status": "succeeded" | "failed", "failure_reason"?}: a pending refund settles, or one that
    succeeded fails afterwards (the card was closed), with the events Stripe sends for each."""
    body = request_json()
    status, reason = body.get("status"), body.get("failure_reason")
    with STATE.lock:
        found = _owner_of(refund_id)
        refund = found[1].refunds.get(refund_id) if found else None
        if found is None or refund is None:
            return _json({"error": "unknown refund"}, 404)
        allowed = {"pending": ("succeeded", "failed"), "succeeded": ("failed",)}.get(refund["status"], ())
        if status not in allowed:
            return _json({"error": f"a {refund['status']} refund cannot become {status}"}, 409)
        _settle_refund(found[0], found[1], refund, str(status), reason if isinstance(reason, str) else None)
        return _json(_public(refund))


@app.post("/_control/dashboard/refunds")
def control_dashboard_refund() -> Response:
    """{"payment_intent", "amount"?, "reason"?}: a refund made by hand in the Stripe Dashboard: no
    Idempotency-Key and none of our metadata; its events are the same as an API refund's."""
    body = request_json()
    intent_id = str(body.get("payment_intent", ""))
    with STATE.lock:
        found = _owner_of(intent_id)
        if found is None:
            return _json({"error": "unknown payment_intent"}, 404)
        key, account = found
        params = {"payment_intent": intent_id}
        try:
            charge = _refundable_charge(account, params)
            remaining = charge["amount"] - charge["amount_refunded"]
            amount = body.get("amount", remaining)
            if not is_int(amount) or not 1 <= amount <= remaining:
                raise _invalid("Refund amount is greater than unrefunded amount on charge", "amount",
                               code="amount_too_large")
            refund = _make_refund(key, account, charge, amount, reason=body.get("reason") or "requested_by_customer",
                                  metadata={})
        except StripeError as error:
            return error.response()
        return _json(_public(refund))


@app.post("/_control/disputes")
def control_open_dispute() -> Response:
    """{"payment_intent", "reason"?, "amount"?, "status"?}: the cardholder's bank opens a dispute."""
    body = request_json()
    intent_id = str(body.get("payment_intent", ""))
    reason, status = body.get("reason", "fraudulent"), body.get("status", "needs_response")
    if reason not in DISPUTE_REASONS or status not in ("needs_response", "warning_needs_response"):
        return _json({"error": "unknown reason or status"}, 400)
    with STATE.lock:
        found = _owner_of(intent_id)
        intent = found[1].payment_intents.get(intent_id) if found else None
        if found is None or intent is None or not intent.get("latest_charge"):
            return _json({"error": "no successful charge for that payment_intent"}, 404)
        key, account = found
        charge = account.charges[intent["latest_charge"]]
        amount = body.get("amount", charge["amount"])
        if not is_int(amount) or not 1 <= amount <= charge["amount"]:
            return _json({"error": "amount out of range"}, 400)
        dispute: dict[str, Any] = {
            "id": _new_id("dp_"), "object": "dispute", "amount": amount, "balance_transactions": [],
            "charge": charge["id"], "created": _now(), "currency": charge["currency"], "evidence": {},
            "evidence_details": {"due_by": _now() + 7 * 86400, "has_evidence": False, "past_due": False,
                                 "submission_count": 0},
            "is_charge_refundable": False, "livemode": False, "metadata": {}, "payment_intent": intent_id,
            "reason": reason, "status": status}
        account.disputes[dispute["id"]] = dispute
        STATE.owners[dispute["id"]] = key
        charge["disputed"] = True
        events = [_new_event(key, "charge.dispute.created", dispute)]
    _dispatch(key, events)
    return _json(_public(dispute))


@app.post("/_control/disputes/<dispute_id>/<action>")
def control_change_dispute(dispute_id: str, action: str) -> Response:
    """update {"status": "under_review" | ...}, or close {"status": "won" | "lost"}."""
    status = request_json().get("status")
    closing = action == "close"
    if action not in ("update", "close") or status not in DISPUTE_STATUSES or closing != (status in ("won", "lost")):
        return _json({"error": "expected update {status: not won/lost} or close {status: won | lost}"}, 400)
    with STATE.lock:
        found = _owner_of(dispute_id)
        dispute = found[1].disputes.get(dispute_id) if found else None
        if found is None or dispute is None:
            return _json({"error": "unknown dispute"}, 404)
        if dispute["status"] in ("won", "lost", "warning_closed"):
            return _json({"error": "the dispute is closed"}, 409)
        previous = {"status": dispute["status"]}
        dispute["status"] = status
        event = _new_event(found[0], "charge.dispute.closed" if closing else "charge.dispute.updated", dispute,
                           previous=previous)
    _dispatch(found[0], [event])
    return _json(_public(dispute))


add_redeliver_route(app, _json, WEBHOOKS.redeliver)
# One account may register several endpoints (e.g. two clinics of one owner): each gets every event.
# Held, a test sends an event to one endpoint at a time, in the order it wants.
add_hold_route(app, STATE, _json)
add_deliver_route(app, _json, lambda event_id, body: WEBHOOKS.deliver_now(event_id, str(body.get("endpoint_id", ""))))
add_reset_route(app, reset, _json)
