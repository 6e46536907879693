"""monobank acquiring sandbox: invoices, QR cash registers, a hosted page and X-Sign signed webhooks.

Mounted by local/server.py at /_sandbox/monobank, so `MONOBANK_API_BASE=<base>/_sandbox/monobank`
points our client at it. It follows monobank's contract (reference/providers.md section 2), not our
client: paths under /api/merchant/, `X-Token` auth, int64 kopecks, `ccy` as the ISO 4217 numeric
code (980), the invoice statuses, `{"errCode", "errText"}` errors, and webhooks signed with its own
EC P-256 key: `X-Sign` = base64 of a DER ECDSA-SHA256 signature over the exact body bytes, the key
published at /api/merchant/pubkey as base64 of a PEM. Signing is implemented here on its own, on
purpose: sharing the verifier's code would let one bug pass both sides.

    /api/merchant/...   monobank's API, one merchant per X-Token (any non-empty token; tokens
                        starting with "invalid" are refused with 403, like a revoked one)
    /pay/<invoiceId>    the hosted page of an invoice (`pageUrl`), with Pay and Fail buttons
    /qr/<qrId>          a QR register's page (its `pageUrl`): the amount currently on it, and the
                        same buttons; it refreshes itself while no amount is set
    /_control/...       test controls, not monobank's: faults, deliveries, events, redelivery of an
                        old event (out-of-order tests), key rotation, paying without a browser, API
                        call counts, the /pubkey rate limit, extra webhook receivers per merchant,
                        held deliveries sent one receiver at a time, registers whose amount is set
                        in monobank's app (`fix`) or by the payer (`client`) and payments on them

Where monobank's behaviour is not documented the sandbox takes the stricter reading: unknown
create fields are refused; a basket that does not add up to the amount is refused; a paid or
failed invoice is final. A payment goes `processing` then `success` (or `failure`), each change a
webhook with a later `modifiedDate` (whole seconds, like monobank's, so each one is at least a
second after the one before); each is tried up to 3 times until the receiver answers 200.
`expired` is not sent (the 2026 docs say so): it shows in invoice/status only, once the invoice's
validity has run out (`/_control/invoices/<id>/expire` runs it out now).

One key signs every merchant's webhooks, as at monobank: a webhook of another merchant's invoice
verifies just as well, which is what the foreign-invoice tests replay. Invoices belong to the token
that created them: invoice/status with another token answers 404 NOT_FOUND, as for an invoice that
does not exist. `/api/merchant/pubkey` is rate-limited per token (429 {"errCode": "TMR"}), by
default PUBKEY_LIMIT calls per PUBKEY_WINDOW_SECONDS; /_control/pubkey-limit changes it.

Refunds (`POST /api/merchant/invoice/cancel {invoiceId, extRef?, amount?, items?}`): only a paid
invoice, never more than is left of it (`finalAmount` minus refunds still processing); `items` are
required (and must add up to the amount) while the merchant's fiscalization (PRRO link) is on, as
monobank's spec says; an `extRef` already used on the invoice is refused (monobank documents no
deduplication: the stricter reading). The answer is `processing` and the refund completes a moment
later (`success`: `finalAmount` shrinks; the whole amount back: status `reversed`), each change a
webhook whose body lists it in `cancelList`. /_control/cancel-next makes the next ones fail, answer
`success` at once, or stay processing; /_control/invoices/<id>/cancel is a refund started in
monobank's cabinet. A merchant whose fiscalization is on (/_control/fiscalization) gets monobank's
own receipts in `GET /api/merchant/invoice/fiscal-checks` (a sale per payment, a return per
refund), and must send `basketOrder` when creating invoices. /_control/omit-modified-date makes
status bodies and webhooks leave `modifiedDate` out (monobank's spec does not require it).

A merchant's webhooks may also go to more receivers (/_control/also-notify): how a test reproduces
one merchant serving two clinics, each endpoint receiving every event (not a monobank feature: its
webhooks go to the invoice's webHookUrl). A payment on a `fix` or `client` register makes an invoice
monobank creates itself (no reference of ours) and posts to the URL the merchant set for the
register in monobank's app (here: given to /_control/registers or /_control/qr/<qrId>/pay).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from local.sandboxes.common import (
    Fault,
    FaultInjector,
    SandboxState,
    WebhookDeliverer,
    add_deliver_route,
    add_deliveries_route,
    add_hold_route,
    add_redeliver_route,
    add_reset_route,
    count_calls,
    is_int,
    last_status,
    post,
    random_string,
    request_json,
)
from local.sandboxes.common import json_response as _json

app = Flask(__name__)

CURRENCIES = {980: ("UAH", "₴"), 840: ("USD", "$"), 978: ("EUR", "€")}
DEFAULT_VALIDITY = 24 * 3600
CREATE_FIELDS = frozenset({"amount", "ccy", "merchantPaymInfo", "redirectUrl", "successUrl", "failUrl", "webHookUrl",
                           "validity", "paymentType", "qrId", "code", "saveCardData", "agentFeePercent",
                           "tipsEmployeeId", "displayType"})
# Registers every new merchant token gets: two the merchant puts sums on, one where the payer types it.
REGISTER_TYPES = ("merchant", "merchant", "client")
# monobank tries each change up to 3 times; compressed here so tests stay fast.
RETRY_DELAYS: tuple[float, ...] = (0.3, 0.6)
DELIVERY_TIMEOUT_SECONDS = 10.0
FEE_PER_MILLE = 13  # 1.3 %, monobank's published QR acquiring fee, for `paymentInfo.fee`
# /api/merchant/pubkey is rate-limited (429 TMR). monobank publishes no figure; this one is lenient
# enough for a container's first fetch plus a re-fetch after a rotation, and tests tighten it.
PUBKEY_LIMIT = 5
PUBKEY_WINDOW_SECONDS = 60.0
CANCEL_FIELDS = frozenset({"invoiceId", "extRef", "amount", "items"})
CANCEL_DELAY_SECONDS = 0.2  # a refund answers `processing`, then succeeds this much later

def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# --- state -------------------------------------------------------------------------------------

@dataclass
class Account:
    registers: dict[str, dict[str, Any]] = field(default_factory=dict)  # qrId -> register
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class StoredEvent:
    token: str
    event_id: str
    invoice_id: str
    status: str
    url: str | None
    body: bytes  # every delivery of this change carries exactly these bytes


class _State(SandboxState):
    def clear(self) -> None:
        super().clear()  # pending faults and the delivery log
        self.accounts: dict[str, Account] = {}
        self.invoice_owner: dict[str, str] = {}
        self.qr_owner: dict[str, str] = {}
        self.events: dict[str, StoredEvent] = {}
        self.also_notify: dict[str, list[str]] = {}  # token -> more URLs that get every webhook
        self.pubkey_limit = (PUBKEY_LIMIT, PUBKEY_WINDOW_SECONDS)
        self.pubkey_calls: dict[str, list[float]] = {}  # token -> monotonic times of recent calls
        self.fiscalization: dict[str, str] = {}  # token -> "checkbox" | "monopay": monobank fiscalizes itself
        self.cancel_next: list[dict[str, Any]] = []  # how the next refunds go (/_control/cancel-next)
        self.omit_modified_date = False
        self.rotate_key()

    def rotate_key(self) -> str:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        pem = self.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_key_b64 = base64.b64encode(pem).decode()
        return self.public_key_b64


STATE = _State()
DELIVERER = WebhookDeliverer(STATE, "monobank", RETRY_DELAYS)


def reset() -> None:
    """Forget every merchant, invoice, event, delivery and fault; make a new signing key."""
    STATE.reset()  # delivery threads from before the reset stop


def sign(body: bytes) -> str:
    """X-Sign: base64 of the DER ECDSA-SHA256 signature with the sandbox's current key."""
    with STATE.lock:
        key = STATE.private_key
    return base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


# --- errors and helpers ------------------------------------------------------------------------

class MonoError(Exception):
    def __init__(self, status: int, code: str, text: str):
        super().__init__(text)
        self.status, self.code, self.text = status, code, text


@app.errorhandler(MonoError)
def _on_error(error: MonoError) -> Response:
    return _json({"errCode": error.code, "errText": error.text}, error.status)


@app.errorhandler(404)
def _on_not_found(_error: Exception) -> Response:
    return _json({"errCode": "NOT_FOUND", "errText": "invalid path"}, 404)


@app.errorhandler(405)
def _on_bad_method(_error: Exception) -> Response:
    return _json({"errCode": "METHOD_NOT_ALLOWED", "errText": "method not allowed"}, 405)


def _bad(text: str) -> MonoError:
    return MonoError(400, "BAD_REQUEST", text)


def _internal_error(_fault: Fault) -> Response:
    return _json({"errCode": "INTERNAL_ERROR", "errText": "internal error (sandbox fault)"}, 500)


# The next n API calls fail (/_control/fail-next); a timeout is processed, but answered too late.
FAULTS = FaultInjector(STATE, api_prefix="/api/", kinds=("500", "timeout", "hang"), default_kind="500",
                       usage="expected {status: 500 | 'timeout' | 'hang', count: n >= 1, seconds?}",
                       refuse=_internal_error, respond=_json, refuse_bool_count=True)
FAULTS.install(app)


def _account() -> tuple[str, Account]:
    token = request.headers.get("X-Token", "")
    if not token.strip() or token.startswith("invalid"):
        raise MonoError(403, "FORBIDDEN", "forbidden")
    with STATE.lock:
        account = STATE.accounts.get(token)
        if account is None:
            account = STATE.accounts[token] = Account()
            for amount_type in REGISTER_TYPES:
                qr_id = random_string(12)
                account.registers[qr_id] = {"shortQrId": random_string(4, string.ascii_uppercase), "qrId": qr_id,
                                            "amountType": amount_type, "invoiceId": None}
                STATE.qr_owner[qr_id] = token
    return token, account


def _body() -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError:
        raise _bad("invalid json") from None
    if not isinstance(body, dict):
        raise _bad("invalid json")
    return body


def _root() -> str:
    return request.url_root  # carries the mount point, so links work on whatever port serves us


# --- merchant -----------------------------------------------------------------------------------

count_calls(app, STATE, _json, api_prefix="/api/", credential=lambda: request.headers.get("X-Token", ""))


@app.get("/api/merchant/pubkey")
def pubkey() -> Response:
    token, _ = _account()
    now = time.monotonic()
    with STATE.lock:
        limit, window = STATE.pubkey_limit
        recent = [t for t in STATE.pubkey_calls.get(token, []) if now - t < window]
        if len(recent) >= limit:
            STATE.pubkey_calls[token] = recent
            raise MonoError(429, "TMR", "Too many requests")
        STATE.pubkey_calls[token] = [*recent, now]
        return _json({"key": STATE.public_key_b64})


@app.get("/api/merchant/details")
def details() -> Response:
    token, _ = _account()
    return _json({"merchantId": "sandbox" + hashlib.sha256(token.encode()).hexdigest()[:10],
                  "merchantName": "Sandbox merchant", "edrpou": "12345678"})


# --- QR registers -------------------------------------------------------------------------------

def _register_view(register: dict[str, Any]) -> dict[str, Any]:
    return {"shortQrId": register["shortQrId"], "qrId": register["qrId"], "amountType": register["amountType"],
            "pageUrl": f"{_root()}qr/{register['qrId']}"}


@app.get("/api/merchant/qr/list")
def qr_list() -> Response:
    _, account = _account()
    with STATE.lock:
        return _json({"list": [_register_view(r) for r in account.registers.values()]})


def _current_invoice(account: Account, register: dict[str, Any]) -> dict[str, Any] | None:
    invoice = account.invoices.get(register["invoiceId"] or "")
    if invoice is not None:
        _expire_if_due(invoice)
        if invoice["status"] in ("created", "processing"):
            return invoice
    return None


@app.get("/api/merchant/qr/details")
def qr_details() -> Response:
    _, account = _account()
    qr_id = request.args.get("qrId", "")
    with STATE.lock:
        register = account.registers.get(qr_id)
        if register is None:
            raise MonoError(404, "NOT_FOUND", "qr not found")
        answer: dict[str, Any] = {"shortQrId": register["shortQrId"]}
        invoice = _current_invoice(account, register)
        if invoice is not None:
            answer.update({"invoiceId": invoice["invoiceId"], "amount": invoice["amount"], "ccy": invoice["ccy"]})
    return _json(answer)


@app.post("/api/merchant/qr/reset-amount")
def qr_reset_amount() -> Response:
    _, account = _account()
    qr_id = _body().get("qrId")
    with STATE.lock:
        register = account.registers.get(qr_id) if isinstance(qr_id, str) else None
        if register is None:
            raise MonoError(404, "NOT_FOUND", "qr not found")
        invoice = _current_invoice(account, register)
        if invoice is not None and invoice["status"] == "created":
            _set_status(invoice, "expired")  # invalidated: nothing can be paid on it any more
        register["invoiceId"] = None
    return Response(b"", status=200)


# --- invoices -----------------------------------------------------------------------------------

def _validate_basket(info: dict[str, Any], amount: int) -> list[dict[str, Any]]:
    basket = info.get("basketOrder")
    if basket is None:
        return []
    if not isinstance(basket, list) or not basket:
        raise _bad("merchantPaymInfo.basketOrder must be a non-empty list")
    total = 0.0
    for index, item in enumerate(basket):
        where = f"merchantPaymInfo.basketOrder[{index}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object")
        for name in ("name", "code"):
            if not isinstance(item.get(name), str) or not item[name].strip():
                raise _bad(f"{where}.{name} is required")
        qty, unit = item.get("qty"), item.get("sum")
        if isinstance(qty, bool) or not isinstance(qty, int | float) or qty <= 0:
            raise _bad(f"{where}.qty must be a number above zero")
        if not isinstance(unit, int) or isinstance(unit, bool) or unit < 0:
            raise _bad(f"{where}.sum must be an integer in kopecks")
        total += qty * unit
    if round(total) != amount:
        raise _bad("the sum of basketOrder (qty * sum) does not equal amount")
    return basket


def _validate_create(account: Account, body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise _bad(f"unknown field: {unknown[0]}")
    amount = body.get("amount")
    if not is_int(amount) or amount <= 0:
        raise _bad("amount must be a positive integer in minor units")
    ccy = body.get("ccy", 980)
    if not is_int(ccy) or ccy not in CURRENCIES:
        raise _bad("ccy must be an ISO 4217 numeric code (980)")
    info = body.get("merchantPaymInfo") or {}
    if not isinstance(info, dict):
        raise _bad("merchantPaymInfo must be an object")
    basket = _validate_basket(info, amount)
    for name in ("webHookUrl", "redirectUrl"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not value.startswith(("http://", "https://"))):
            raise _bad(f"{name} must be an http(s) URL")
    validity = body.get("validity", DEFAULT_VALIDITY)
    if not is_int(validity) or validity <= 0:
        raise _bad("validity must be a number of seconds")
    if body.get("paymentType", "debit") not in ("debit", "hold"):
        raise _bad("paymentType must be debit or hold")
    qr_id = body.get("qrId")
    if qr_id is not None:
        register = account.registers.get(qr_id) if isinstance(qr_id, str) else None
        if register is None:
            raise MonoError(404, "NOT_FOUND", "qr not found")
        if register["amountType"] != "merchant":
            raise _bad("an amount can not be set on this qr")
    return {"amount": amount, "ccy": ccy, "info": info, "basket": basket, "validity": validity}


@app.post("/api/merchant/invoice/create")
def create_invoice() -> Response:
    token, account = _account()
    body = _body()
    checked = _validate_create(account, body)
    if not checked["basket"] and token in STATE.fiscalization:
        raise _bad("merchantPaymInfo.basketOrder is required while a PRRO link is active")
    invoice_id = "p2_" + random_string(9)
    created = _now()
    info = checked["info"]
    invoice = {
        "invoiceId": invoice_id,
        "status": "created",
        "amount": checked["amount"],
        "ccy": checked["ccy"],
        "finalAmount": checked["amount"],
        "createdDate": _iso(created),
        "modifiedDate": _iso(created),
        "reference": info.get("reference"),
        "destination": info.get("destination"),
        # internal, never in status bodies:
        "_basket": checked["basket"],
        "_webhook": body.get("webHookUrl"),
        "_redirect": body.get("redirectUrl"),
        "_qr": body.get("qrId"),
        "_expires": created + timedelta(seconds=checked["validity"]),
        "_payment_type": body.get("paymentType", "debit"),
    }
    with STATE.lock:
        account.invoices[invoice_id] = invoice
        STATE.invoice_owner[invoice_id] = token
        if invoice["_qr"]:
            register = account.registers[invoice["_qr"]]
            previous = account.invoices.get(register["invoiceId"] or "")
            if previous is not None and previous["status"] == "created":
                _set_status(previous, "expired")  # the register now shows the new sum only
            register["invoiceId"] = invoice_id
    return _json({"invoiceId": invoice_id, "pageUrl": f"{_root()}pay/{invoice_id}"})


def status_body(invoice: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in invoice.items() if not k.startswith("_") and v is not None}
    if STATE.omit_modified_date:
        body.pop("modifiedDate", None)  # only invoiceId, status, amount and ccy are required
    if "cancelList" in body:
        body["cancelList"] = [dict(entry) for entry in body["cancelList"]]
    return body


@app.get("/api/merchant/invoice/status")
def invoice_status() -> Response:
    _, account = _account()
    with STATE.lock:
        invoice = account.invoices.get(request.args.get("invoiceId", ""))
        if invoice is None:
            raise MonoError(404, "NOT_FOUND", "invoice not found")
        _expire_if_due(invoice)
        return _json(status_body(invoice))


@app.post("/api/merchant/invoice/remove")
def remove_invoice() -> Response:
    _, account = _account()
    with STATE.lock:
        invoice = account.invoices.get(str(_body().get("invoiceId", "")))
        if invoice is None:
            raise MonoError(404, "NOT_FOUND", "invoice not found")
        if invoice["status"] != "created":
            raise _bad("only an unpaid invoice can be removed")
        _set_status(invoice, "expired")
    return _json({})


def _tick(invoice: dict[str, Any]) -> str:
    """A modifiedDate strictly after the invoice's last one (whole seconds, like monobank's)."""
    last = datetime.strptime(invoice["modifiedDate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return _iso(max(_now(), last + timedelta(seconds=1)))


def _set_status(invoice: dict[str, Any], status: str) -> None:
    invoice["status"] = status
    invoice["modifiedDate"] = _tick(invoice)


def _expire_if_due(invoice: dict[str, Any]) -> None:
    if invoice["status"] == "created" and _now() >= invoice["_expires"]:
        _set_status(invoice, "expired")  # no webhook for expiry (2026 docs)


# --- paying: the hosted pages' buttons, or /_control ----------------------------------------------

def _digits(length: int) -> str:
    return random_string(length, string.digits)


def _payment_info(invoice: dict[str, Any]) -> dict[str, Any]:
    return {"maskedPan": "444403******" + _digits(4), "approvalCode": _digits(6),
            "rrn": _digits(12), "tranId": _digits(12), "terminal": "MI" + _digits(6),
            "bank": "Універсал Банк", "paymentSystem": "visa", "paymentMethod": "pan",
            "fee": (invoice["amount"] * FEE_PER_MILLE + 500) // 1000, "country": "804"}


def _event(token: str, invoice: dict[str, Any]) -> StoredEvent:
    # Two-space indentation, as in monobank's published signed example; never re-serialised later.
    body = json.dumps(status_body(invoice), ensure_ascii=False, indent=2).encode("utf-8")
    event_id = f"{invoice['invoiceId']}:{invoice['status']}:{invoice['modifiedDate']}"
    event = StoredEvent(token, event_id, invoice["invoiceId"], invoice["status"], invoice["_webhook"], body)
    STATE.events[event_id] = event
    return event


def complete(invoice_id: str, *, succeeded: bool, deliver: bool = True) -> tuple[dict[str, Any], list[StoredEvent]]:
    """processing, then success (with paymentInfo) or failure: two changes, two webhooks."""
    with STATE.lock:
        token = STATE.invoice_owner.get(invoice_id)
        account = STATE.accounts.get(token or "")
        invoice = account.invoices.get(invoice_id) if account else None
        if token is None or account is None or invoice is None:
            raise MonoError(404, "NOT_FOUND", "invoice not found")
        _expire_if_due(invoice)
        if invoice["status"] != "created":
            raise _bad(f"invoice is {invoice['status']}")
        _set_status(invoice, "processing")
        events = [_event(token, invoice)]
        if succeeded:
            invoice["paymentInfo"] = _payment_info(invoice)
            _set_status(invoice, "success")
            _fiscal_check(token, invoice, "sale")
        else:
            invoice["failureReason"] = "Недостатньо коштів"
            _set_status(invoice, "failure")
        events.append(_event(token, invoice))
        if invoice["_qr"]:
            register = account.registers[invoice["_qr"]]
            if register["invoiceId"] == invoice_id:
                register["invoiceId"] = None  # the register is free for the next patient
        snapshot = status_body(invoice)
    if deliver:
        dispatch(events)
    return snapshot, events


def _receivers(event: StoredEvent) -> list[str]:
    """The invoice's webHookUrl, then the merchant's extra receivers (/_control/also-notify)."""
    with STATE.lock:
        urls = [event.url] if event.url else []
        return list(dict.fromkeys([*urls, *STATE.also_notify.get(event.token, [])]))


def dispatch(events: list[StoredEvent]) -> None:
    """In the background, in order: each change tried up to 3 times until the receiver says 200.
    While deliveries are held (/_control/hold) nothing is sent: /_control/deliver sends them."""
    if STATE.held:
        return
    DELIVERER.one_by_one([functools.partial(_attempt, e, url) for e in events for url in _receivers(e)])


def _attempt(event: StoredEvent, url: str, attempt: int, generation: int) -> bool:
    signature = sign(event.body)  # signed at send time: a rotated key signs the later attempts
    sent_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    sent = post(url, event.body, {
        "Content-Type": "application/json", "X-Sign": signature, "User-Agent": "monobank-sandbox/1.0"},
        DELIVERY_TIMEOUT_SECONDS)
    # monobank counts only a 200 as received; its log names the failure's type ("ConnectionRefusedError").
    error = type(sent.reason).__name__ if sent.failure is not None else None
    STATE.log_delivery(generation, {"event_id": event.event_id, "invoice_id": event.invoice_id,
                                    "status": event.status, "url": url, "attempt": attempt,
                                    "status_code": sent.status, "error": error, "delivered": sent.status == 200,
                                    "sent_at": sent_at})
    return sent.status == 200


# --- refunds and monobank's own receipts ----------------------------------------------------------

def _fiscal_check(token: str, invoice: dict[str, Any], kind: str) -> None:
    """monobank's own receipt (its Checkbox link or monopay PRRO), when the merchant has one on."""
    source = STATE.fiscalization.get(token)
    if source is None:
        return
    check_id = f"{random_string(8).lower()}-{random_string(4).lower()}-4{random_string(3).lower()}"
    invoice.setdefault("_checks", []).append({
        "id": check_id, "type": kind, "status": "done", "statusDescription": "",
        "taxUrl": f"https://cabinet.tax.gov.ua/cashregs/check?id={check_id}",
        "file": base64.b64encode(b"%PDF-1.4 sandbox receipt").decode(), "fiscalizationSource": source})


def _validate_items(items: Any, amount: int) -> None:
    if not isinstance(items, list) or not items:
        raise _bad("items are required while the fiscalization option is active")
    total = 0.0
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object")
        for name in ("name", "code"):
            if not isinstance(item.get(name), str) or not item[name].strip():
                raise _bad(f"{where}.{name} is required")
        qty, unit = item.get("qty"), item.get("sum")
        if isinstance(qty, bool) or not isinstance(qty, int | float) or qty <= 0 or not is_int(unit) or unit < 0:
            raise _bad(f"{where}: qty must be above zero and sum an integer in kopecks")
        total += qty * unit
    if round(total) != amount:
        raise _bad("the sum of items (qty * sum) does not equal the amount returned")


def _left(invoice: dict[str, Any]) -> int:
    """What may still be refunded: finalAmount less refunds still processing."""
    processing = sum(c["amount"] for c in invoice.get("cancelList", []) if c["status"] == "processing")
    return int(invoice["finalAmount"]) - processing


def _start_cancel(token: str, invoice: dict[str, Any], amount: int, ext_ref: str | None) -> dict[str, Any]:
    """A refund entry, processing (call with the lock held)."""
    now = _iso(_now())
    entry: dict[str, Any] = {"status": "processing", "amount": amount, "ccy": invoice["ccy"], "createdDate": now,
                             "modifiedDate": now}
    if ext_ref is not None:
        entry["extRef"] = ext_ref
    invoice.setdefault("cancelList", []).append(entry)
    return entry


def _finish_cancel(token: str, invoice: dict[str, Any], entry: dict[str, Any], outcome: str, *,
                   listed: bool = True) -> StoredEvent:
    """The refund succeeded (money back; all of it: `reversed`) or failed: one change, one webhook."""
    entry["status"] = outcome
    entry["modifiedDate"] = _tick(invoice)
    if outcome == "success":
        entry.update({"approvalCode": _digits(6), "rrn": _digits(12)})
        invoice["finalAmount"] = int(invoice["finalAmount"]) - int(entry["amount"])
        _fiscal_check(token, invoice, "return")
        if not listed:
            invoice["cancelList"].remove(entry)  # monobank reports some reversals with no cancelList
            if not invoice["cancelList"]:
                del invoice["cancelList"]
    _set_status(invoice, "reversed" if invoice["finalAmount"] <= 0 else invoice["status"])
    return _event(token, invoice)


def _complete_later(token: str, invoice_id: str, entry: dict[str, Any], outcome: str, delay: float) -> None:
    generation = STATE.generation

    def run() -> None:
        time.sleep(delay)
        with STATE.lock:
            if STATE.generation != generation or entry["status"] != "processing":
                return
            invoice = STATE.accounts[token].invoices[invoice_id]
            event = _finish_cancel(token, invoice, entry, outcome)
        dispatch([event])

    threading.Thread(target=run, daemon=True, name=f"monobank-cancel-{invoice_id}").start()


def _cancel_amount(token: str, invoice: dict[str, Any], body: dict[str, Any]) -> int:
    """What a cancel gives back, once it is allowed (call with the lock held)."""
    if invoice["status"] != "success":
        raise _bad(f"invoice is {invoice['status']}: only a paid invoice can be cancelled")
    left = _left(invoice)
    amount = body.get("amount", left)
    if not is_int(amount) or amount <= 0:
        raise _bad("amount must be a positive integer in minor units")
    if amount > left:
        raise _bad("amount exceeds what is left to cancel")
    ext_ref = body.get("extRef")
    if ext_ref is not None and any(c.get("extRef") == ext_ref for c in invoice.get("cancelList", [])):
        raise _bad("a cancel with this extRef already exists")
    if token in STATE.fiscalization:
        _validate_items(body.get("items"), amount)
    return int(amount)


@app.post("/api/merchant/invoice/cancel")
def cancel_invoice() -> Response:
    token, account = _account()
    body = _body()
    unknown = sorted(set(body) - CANCEL_FIELDS)
    if unknown:
        raise _bad(f"unknown field: {unknown[0]}")
    invoice_id, ext_ref = body.get("invoiceId"), body.get("extRef")
    if not isinstance(invoice_id, str) or not invoice_id:
        raise _bad("invoiceId is required")
    if ext_ref is not None and (not isinstance(ext_ref, str) or not ext_ref):
        raise _bad("extRef must be a string")
    events: list[StoredEvent] = []
    with STATE.lock:
        invoice = account.invoices.get(invoice_id)
        if invoice is None:
            raise MonoError(404, "NOT_FOUND", "invoice not found")
        amount = _cancel_amount(token, invoice, body)
        plan = STATE.cancel_next.pop(0) if STATE.cancel_next else {"outcome": "success", "answer": "processing"}
        entry = _start_cancel(token, invoice, amount, ext_ref)
        if plan["answer"] == "final" and plan["outcome"] in ("success", "failure"):
            events.append(_finish_cancel(token, invoice, entry, plan["outcome"]))
        answer = {"status": entry["status"], "createdDate": entry["createdDate"], "modifiedDate": entry["modifiedDate"]}
    if events:
        dispatch(events)
    elif plan["outcome"] in ("success", "failure"):
        _complete_later(token, invoice_id, entry, plan["outcome"], float(plan.get("delay", CANCEL_DELAY_SECONDS)))
    return _json(answer)


@app.get("/api/merchant/invoice/fiscal-checks")
def fiscal_checks() -> Response:
    _, account = _account()
    with STATE.lock:
        invoice = account.invoices.get(request.args.get("invoiceId", ""))
        if invoice is None:
            raise MonoError(404, "NOT_FOUND", "invoice not found")
        return _json({"checks": [dict(c) for c in invoice.get("_checks", [])]})


# --- hosted pages -------------------------------------------------------------------------------

def _money(amount: int, ccy: int) -> str:
    major, minor = divmod(amount, 100)
    return f"{major:,}".replace(",", " ") + f".{minor:02d} {CURRENCIES.get(ccy, ('', '₴'))[1]}"


_PAGE = """<!doctype html>
<html lang="uk"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
{refresh}<title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;background:#111;margin:0;display:flex;justify-content:center;color:#111}}
main{{background:#fff;margin-top:4rem;padding:2rem 2.5rem;border-radius:16px;max-width:26rem;width:100%}}
.amount{{font-size:2.2rem;font-weight:700;margin:.5rem 0 1.5rem}} .muted{{color:#666;font-size:.85rem}}
form{{display:inline}} button{{font-size:1rem;padding:.7rem 1.4rem;border-radius:10px;border:0;cursor:pointer}}
#pay{{background:#000;color:#fff}} #fail{{background:#eee;color:#a40e26;margin-left:.5rem}}
</style></head><body><main>
<p class="muted">monobank sandbox &middot; test mode</p>
{content}
</main></body></html>"""


def _page(title: str, content: str, status: int = 200, refresh: int | None = None) -> Response:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return Response(_PAGE.format(title=html.escape(title), content=content, refresh=meta), status=status,
                    mimetype="text/html")


def _buttons(invoice: dict[str, Any]) -> str:
    invoice_id = invoice["invoiceId"]
    return (f'<p class="amount" id="amount">{html.escape(_money(invoice["amount"], invoice["ccy"]))}</p>'
            f'<p id="destination">{html.escape(invoice.get("destination") or "")}</p>'
            f'<form method="post" action="{html.escape(url_for("pay_button", invoice_id=invoice_id))}">'
            '<button id="pay" type="submit">Оплатити</button></form>'
            f'<form method="post" action="{html.escape(url_for("fail_button", invoice_id=invoice_id))}">'
            '<button id="fail" type="submit">Fail</button></form>'
            f'<p class="muted">Invoice <code id="invoice-id">{html.escape(invoice_id)}</code></p>')


def _closed(invoice: dict[str, Any]) -> Response | None:
    status = invoice["status"]
    if status == "success":
        return _page("Оплачено", '<h1 id="result">Оплачено</h1><p>This invoice is paid.</p>', 409)
    if status in ("failure", "expired", "reversed"):
        return _page("Недоступно", f'<h1 id="result">Рахунок недоступний</h1><p>Status: {html.escape(status)}.</p>',
                     410)
    return None


@app.get("/pay/<invoice_id>")
def invoice_page(invoice_id: str) -> Response:
    with STATE.lock:
        token = STATE.invoice_owner.get(invoice_id)
        invoice = STATE.accounts[token].invoices.get(invoice_id) if token else None
        if invoice is None:
            return _page("Не знайдено", "<h1>Рахунок не знайдено</h1>", 404)
        _expire_if_due(invoice)
        return _closed(invoice) or _page("Оплата", f"<h1>Оплата</h1>{_buttons(invoice)}")


@app.get("/qr/<qr_id>")
def qr_page(qr_id: str) -> Response:
    with STATE.lock:
        token = STATE.qr_owner.get(qr_id)
        if token is None:
            return _page("Не знайдено", "<h1>QR-касу не знайдено</h1>", 404)
        account = STATE.accounts[token]
        register = account.registers[qr_id]
        invoice = _current_invoice(account, register)
        title = f"QR-каса {register['shortQrId']}"
        if invoice is None:
            return _page(title, f'<h1>{html.escape(title)}</h1><p id="amount">Суму ще не встановлено.</p>'
                                '<p class="muted">This page refreshes by itself.</p>', refresh=3)
        return _page(title, f"<h1>{html.escape(title)}</h1>{_buttons(invoice)}")


def _button(invoice_id: str, *, succeeded: bool) -> BaseResponse:
    try:
        snapshot, _ = complete(invoice_id, succeeded=succeeded)
    except MonoError as error:
        return _page("Недоступно", f'<h1 id="result">Недоступно</h1><p>{html.escape(error.text)}</p>', error.status)
    with STATE.lock:
        token = STATE.invoice_owner[invoice_id]
        target = STATE.accounts[token].invoices[invoice_id]["_redirect"]
    if target:
        return redirect(target, code=303)
    if succeeded:
        return _page("Оплачено", f'<h1 id="result">Оплачено</h1><p>{html.escape(_money(snapshot["amount"], snapshot["ccy"]))}'
                                 "</p>")
    return _page("Не оплачено", '<h1 id="result">Оплата не пройшла</h1><p>Недостатньо коштів.</p>')


@app.post("/pay/<invoice_id>/pay")
def pay_button(invoice_id: str) -> BaseResponse:
    return _button(invoice_id, succeeded=True)


@app.post("/pay/<invoice_id>/fail")
def fail_button(invoice_id: str) -> BaseResponse:
    return _button(invoice_id, succeeded=False)


# --- test controls (not monobank's; /_control/fail-next is FAULTS's, above) ----------------------

@app.post("/_control/invoices/<invoice_id>/<action>")
def control_pay(invoice_id: str, action: str) -> Response:
    """Pay or fail without a browser: {"deliver": false} keeps the webhooks for /_control/events.
    `expire` ends an unpaid invoice's validity now (monobank sends no webhook for that)."""
    if action == "expire":
        with STATE.lock:
            token = STATE.invoice_owner.get(invoice_id)
            invoice = STATE.accounts[token].invoices.get(invoice_id) if token else None
            if invoice is None:
                return _json({"error": "unknown invoice"}, 404)
            invoice["_expires"] = _now()
            _expire_if_due(invoice)
            return _json({"invoice": status_body(invoice), "events": []})
    if action not in ("pay", "fail"):
        return _json({"error": "pay, fail or expire"}, 404)
    deliver = bool(request_json().get("deliver", True))
    snapshot, events = complete(invoice_id, succeeded=action == "pay", deliver=deliver)
    return _json({"invoice": snapshot, "events": [e.event_id for e in events]})


def _event_view(event: StoredEvent) -> dict[str, Any]:
    return {"event_id": event.event_id, "invoice_id": event.invoice_id, "status": event.status, "url": event.url,
            "body": event.body.decode("utf-8"), "x_sign": sign(event.body)}


@app.get("/_control/events")
def control_events() -> Response:
    wanted = request.args.get("invoice_id")
    with STATE.lock:
        rows = [_event_view(e) for e in STATE.events.values() if not wanted or e.invoice_id == wanted]
    return _json({"events": rows})


add_deliveries_route(app, STATE, _json, {"invoice_id": "invoice_id"})


def _redeliver(event_id: str) -> dict[str, Any] | None:
    """Send an old change again, now: how tests make a `processing` arrive after `success`."""
    with STATE.lock:
        event = STATE.events.get(event_id)
    if event is None:
        return None
    DELIVERER.one_by_one([functools.partial(_attempt, event, url) for url in _receivers(event)])
    return {"url": event.url}


add_redeliver_route(app, _json, _redeliver, slashes_in_ids=True)


def _deliver_now(event_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """One attempt of a stored change to `url` (any receiver: monobank's signature is the same
    wherever the bytes go), now; answered once the receiver answered."""
    url = body.get("url")
    with STATE.lock:
        event = STATE.events.get(event_id)
        generation = STATE.generation
    if event is None or not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    delivered = _attempt(event, url, 1, generation)
    return {"url": url, "delivered": delivered, "status_code": last_status(STATE, event_id=event_id, url=url)}


add_hold_route(app, STATE, _json)
add_deliver_route(app, _json, _deliver_now, slashes_in_ids=True)


@app.post("/_control/also-notify")
def control_also_notify() -> Response:
    """{"token", "urls": [...]}: every webhook of that merchant also goes to these URLs, in order."""
    body = request_json()
    token, urls = body.get("token"), body.get("urls")
    if not isinstance(token, str) or not token or not isinstance(urls, list) or not all(
            isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
        return _json({"error": "expected {token, urls: [http(s) URL, ...]}"}, 400)
    with STATE.lock:
        STATE.also_notify[token] = list(urls)
    return _json({"token_receivers": len(urls)})


@app.post("/_control/pubkey-limit")
def control_pubkey_limit() -> Response:
    """{"calls": n, "per_seconds": s}: /api/merchant/pubkey answers 429 TMR past n calls per token in s."""
    body = request_json()
    calls, seconds = body.get("calls", PUBKEY_LIMIT), body.get("per_seconds", PUBKEY_WINDOW_SECONDS)
    if not is_int(calls) or calls < 1 or not isinstance(seconds, int | float) or seconds <= 0:
        return _json({"error": "expected {calls: n >= 1, per_seconds: s > 0}"}, 400)
    with STATE.lock:
        STATE.pubkey_limit = (calls, float(seconds))
        STATE.pubkey_calls.clear()
    return _json({"calls": calls, "per_seconds": seconds})


@app.post("/_control/registers")
def control_add_register() -> Response:
    """{"token", "amountType": "fix" | "client" | "merchant", "amount"? (fix), "webHookUrl"?}: a register
    made in monobank's app; `webHookUrl` is where monobank posts payments on it."""
    body = request_json()
    token, amount_type, amount = body.get("token"), body.get("amountType"), body.get("amount")
    webhook = body.get("webHookUrl")
    if not isinstance(token, str) or not token or amount_type not in ("fix", "client", "merchant"):
        return _json({"error": "expected {token, amountType: fix | client | merchant}"}, 400)
    if amount_type == "fix" and (not is_int(amount) or amount <= 0):
        return _json({"error": "a fix register needs amount (kopecks > 0)"}, 400)
    if webhook is not None and (not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))):
        return _json({"error": "webHookUrl must be an http(s) URL"}, 400)
    with STATE.lock:
        account = STATE.accounts.get(token)
        if account is None:
            return _json({"error": "unknown merchant: call the API with this token first"}, 404)
        qr_id = random_string(12)
        account.registers[qr_id] = {"shortQrId": random_string(4, string.ascii_uppercase), "qrId": qr_id,
                                    "amountType": amount_type, "invoiceId": None,
                                    "_amount": amount if amount_type == "fix" else None, "_webhook": webhook}
        STATE.qr_owner[qr_id] = token
        return _json(_register_view(account.registers[qr_id]), 201)


@app.post("/_control/qr/<qr_id>/pay")
def control_pay_register(qr_id: str) -> Response:
    """A payer pays a `fix` or `client` register: monobank makes the invoice itself (no reference
    of ours), processing then success, posted to the register's webhook URL (or `webhook_url`).
    {"amount"? (client), "webhook_url"?, "deliver"?: true}"""
    body = request_json()
    with STATE.lock:
        token = STATE.qr_owner.get(qr_id)
        account = STATE.accounts.get(token or "")
        register = account.registers.get(qr_id) if account else None
        if token is None or account is None or register is None:
            return _json({"error": "unknown register"}, 404)
        if register["amountType"] == "merchant":
            return _json({"error": "a merchant register is paid through the invoice put on it"}, 400)
        amount = register.get("_amount") if register["amountType"] == "fix" else body.get("amount")
        if not is_int(amount) or amount <= 0:
            return _json({"error": "a client register needs the amount the payer typed (kopecks > 0)"}, 400)
        url = body.get("webhook_url") or register.get("_webhook")
        created = _now()
        invoice_id = "p2_" + random_string(9)
        account.invoices[invoice_id] = {
            "invoiceId": invoice_id, "status": "created", "amount": amount, "ccy": 980, "finalAmount": amount,
            "createdDate": _iso(created), "modifiedDate": _iso(created), "reference": None,
            "destination": f"Оплата через QR-касу {register['shortQrId']}", "_basket": [], "_webhook": url,
            "_redirect": None, "_qr": None, "_expires": created + timedelta(seconds=DEFAULT_VALIDITY),
            "_payment_type": "debit"}
        STATE.invoice_owner[invoice_id] = token
    snapshot, events = complete(invoice_id, succeeded=True, deliver=bool(body.get("deliver", True)))
    return _json({"invoice": snapshot, "events": [e.event_id for e in events]})


@app.post("/_control/invoices/<invoice_id>/cancel")
def control_cancel(invoice_id: str) -> Response:
    """A refund started in monobank's cabinet: {"amount"? (all that is left), "extRef"?, "deliver"?: true,
    "listed"?: true (false: the webhook's cancelList leaves it out)}; it succeeds at once."""
    body = request_json()
    with STATE.lock:
        token = STATE.invoice_owner.get(invoice_id)
        invoice = STATE.accounts[token].invoices.get(invoice_id) if token else None
        if token is None or invoice is None or invoice["status"] != "success":
            return _json({"error": "no paid invoice with that id"}, 404)
        amount = body.get("amount", _left(invoice))
        if not is_int(amount) or not 0 < amount <= _left(invoice):
            return _json({"error": "amount must be above zero and at most what is left"}, 400)
        entry = _start_cancel(token, invoice, amount, body.get("extRef"))
        event = _finish_cancel(token, invoice, entry, "success", listed=bool(body.get("listed", True)))
        snapshot = status_body(invoice)
    if body.get("deliver", True):
        dispatch([event])
    return _json({"invoice": snapshot, "events": [event.event_id]})


@app.post("/_control/cancel-next")
def control_cancel_next() -> Response:
    """How the next refunds asked through the API go: {"outcome": "success" | "failure" | "never",
    "answer": "processing" | "final", "count"?: 1, "delay"?: seconds}. `final` answers the outcome at
    once; `never` stays processing (an undecided refund for reconciliation to settle)."""
    body = request_json()
    outcome, answer, count = body.get("outcome", "success"), body.get("answer", "processing"), body.get("count", 1)
    if outcome not in ("success", "failure", "never") or answer not in ("processing", "final") or not is_int(count):
        return _json({"error": "expected {outcome: success|failure|never, answer: processing|final, count}"}, 400)
    with STATE.lock:
        STATE.cancel_next += [{"outcome": outcome, "answer": answer, "delay": body.get("delay", CANCEL_DELAY_SECONDS)}
                              for _ in range(count)]
        return _json({"queued": len(STATE.cancel_next)})


@app.post("/_control/fiscalization")
def control_fiscalization() -> Response:
    """{"token", "source": "checkbox" | "monopay" | null}: the merchant's PRRO link in monobank's cabinet."""
    body = request_json()
    token, source = body.get("token"), body.get("source")
    if not isinstance(token, str) or not token or source not in ("checkbox", "monopay", None):
        return _json({"error": "expected {token, source: checkbox | monopay | null}"}, 400)
    with STATE.lock:
        if source is None:
            STATE.fiscalization.pop(token, None)
        else:
            STATE.fiscalization[token] = source
    return _json({"token_fiscalization": source})


@app.post("/_control/omit-modified-date")
def control_omit_modified_date() -> Response:
    """{"omit": true}: status bodies and webhooks leave `modifiedDate` out from now on."""
    with STATE.lock:
        STATE.omit_modified_date = bool(request_json().get("omit", True))
        return _json({"omit_modified_date": STATE.omit_modified_date})


@app.post("/_control/rotate-key")
def control_rotate_key() -> Response:
    with STATE.lock:
        return _json({"key": STATE.rotate_key()})


add_reset_route(app, reset, _json)
