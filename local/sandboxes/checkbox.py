"""Checkbox sandbox: cashier sign-in, shifts, sell receipts, a public receipt page and webhooks.

Mounted by local/server.py at /_sandbox/checkbox, so `CHECKBOX_API_BASE=<base>/_sandbox/checkbox`
points our client at it. It follows Checkbox's contract (reference/providers.md section 3), not our
client: paths under /api/v1/, `X-Client-Name` (required) and `X-Client-Version` headers,
`X-License-Key` for sign-in and shifts, bearer JWTs with `exp`, money in kopecks and quantities in
thousandths, the shift and receipt statuses, and errors as Checkbox shapes them: 400/401/403/404
`{"message": "..."}` (Ukrainian), 422 `{"detail": [{loc, msg, type}]}`.

    /api/v1/...        one cash register per licence key (any non-empty key); any non-empty PIN
                       signs its cashier in
    /check/<code>      the public page a receipt's `tax_url` points at
    /_control/...      test controls, not Checkbox's: receipt counts per licence, faults
                       (5xx, timeouts), a receipt that ends in ERROR, token lifetime

Behaviour, where Checkbox documents it: a shift opens as CREATED and is OPENED on the next read
(or after `OPEN_DELAY_SECONDS`); close moves it to CLOSING, then CLOSED on the next read; a sell
without an OPENED shift is 400 "Зміну не відкрито"; a receipt is CREATED and DONE at the next read
(with fiscal_code and tax_url). Where it does not (a repeated receipt `id` is UNCONFIRMED), the
sandbox picks the stricter reading: a repeated `id` is refused with 400 and creates nothing, so a
client that retries must read the first receipt back by its id. The sum of goods
(price * quantity / 1000) must equal the sum of payments.

Return receipts are sells whose goods are all `is_return: true` (a receipt mixing sold and returned
lines is refused). With `related_receipt_id` the sale must exist on this register and be DONE, and
what its returns give back, all together and per good code, may not exceed what it sold: otherwise
400, as Checkbox refuses (the wording of those refusals is ours: UNCONFIRMED against Checkbox's).
A return receipt's `type` is RETURN.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import html
import json
import secrets
import string
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request

from local.sandboxes.common import (
    Fault,
    FaultInjector,
    SandboxState,
    WebhookDeliverer,
    add_reset_route,
    is_int,
    post,
    random_string,
    request_json,
)
from local.sandboxes.common import json_response as _json

app = Flask(__name__)

OPEN_DELAY_SECONDS = 0.5
TOKEN_TTL_SECONDS = 8 * 3600
DELIVERY_TIMEOUT_SECONDS = 10.0
SHIFT_NOT_OPENED = "Зміну не відкрито"
SHIFT_ALREADY_OPENED = "Касир вже працює з даною касою"
RECEIPT_ID_TAKEN = "Чек з таким ідентифікатором вже існує"
RELATED_NOT_FOUND = "Чек продажу для повернення не знайдено"
RETURN_ABOVE_SALE = "Сума повернення перевищує суму чека продажу"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


# --- state -------------------------------------------------------------------------------------

@dataclass
class Register:
    license_key: str
    register_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    fiscal_number: str = field(default_factory=lambda: "40000" + random_string(5, string.digits))
    shift: dict[str, Any] | None = None
    shift_opened_mono: float = 0.0
    shift_serial: int = 0
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    receipt_serial: int = 0
    webhook: dict[str, str] | None = None


class _State(SandboxState):
    def clear(self) -> None:
        super().clear()  # pending faults and the delivery log
        self.registers: dict[str, Register] = {}
        self.tokens: dict[str, tuple[str, float]] = {}  # access token -> (licence key, exp)
        self.error_next = 0
        self.token_ttl: float = TOKEN_TTL_SECONDS


STATE = _State()
DELIVERER = WebhookDeliverer(STATE, "checkbox", retry_delays=())  # Checkbox's webhooks are sent once


def reset() -> None:
    """Forget every register, shift, receipt, token and fault."""
    STATE.reset()


# --- errors -------------------------------------------------------------------------------------

class CheckboxError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Unprocessable(Exception):
    def __init__(self, loc: list[Any], msg: str, kind: str = "value_error"):
        super().__init__(msg)
        self.detail = [{"loc": loc, "msg": msg, "type": kind}]


@app.errorhandler(CheckboxError)
def _on_error(error: CheckboxError) -> Response:
    return _json({"message": error.message}, error.status)


@app.errorhandler(Unprocessable)
def _on_unprocessable(error: Unprocessable) -> Response:
    return _json({"detail": error.detail}, 422)


@app.errorhandler(404)
def _on_not_found(_error: Exception) -> Response:
    return _json({"message": "Not Found"}, 404)


@app.errorhandler(405)
def _on_bad_method(_error: Exception) -> Response:
    return _json({"message": "Method Not Allowed"}, 405)


def _server_error(fault: Fault) -> Response:
    return _json({"message": "Internal Server Error (sandbox fault)"}, int(fault.kind))


# The next n API calls (or those whose path contains `path`) fail: /_control/fail-next; a timeout
# is processed, but answered too late.
FAULTS = FaultInjector(STATE, api_prefix="/api/", kinds=("500", "502", "503", "timeout", "hang"),
                       default_kind="503",
                       usage="expected {status: 500|502|503|'timeout'|'hang', count: n >= 1, seconds?, path?}",
                       refuse=_server_error, respond=_json, by_path=True)
FAULTS.install(app)


# --- headers and auth ---------------------------------------------------------------------------

def _client_headers() -> None:
    if not request.headers.get("X-Client-Name", "").strip():
        raise Unprocessable(["header", "X-Client-Name"], "field required", "value_error.missing")


def _license() -> Register:
    key = request.headers.get("X-License-Key", "").strip()
    if not key:
        raise CheckboxError(403, "Не вказано ключ ліцензії каси")
    with STATE.lock:
        return STATE.registers.setdefault(key, Register(license_key=key))


def _cashier() -> Register:
    """The register of the signed-in cashier (Authorization: Bearer <JWT>)."""
    _client_headers()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    with STATE.lock:
        found = STATE.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if found is None or found[1] < time.time():
            raise CheckboxError(401, "Невірний токен доступу")
        return STATE.registers[found[0]]


def _jwt(license_key: str) -> tuple[str, float]:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    exp = time.time() + STATE.token_ttl
    claims = {"sub": hashlib.sha256(license_key.encode()).hexdigest()[:16], "jti": uuid.uuid4().hex, "exp": int(exp)}
    # Unsigned on purpose: only Checkbox reads its own tokens; clients only look at `exp`.
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{secrets.token_urlsafe(16)}", exp


def _body() -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError:
        raise Unprocessable(["body"], "Expecting value", "value_error.jsondecode") from None
    if not isinstance(body, dict):
        raise Unprocessable(["body"], "value is not a valid dict", "type_error.dict")
    return body


# --- cashier ------------------------------------------------------------------------------------

@app.post("/api/v1/cashier/signinPinCode")
def signin_pin_code() -> Response:
    _client_headers()
    register = _license()
    pin = _body().get("pin_code")
    if not isinstance(pin, str) or not pin.strip():
        raise Unprocessable(["body", "pin_code"], "field required", "value_error.missing")
    token, exp = _jwt(register.license_key)
    with STATE.lock:
        STATE.tokens[token] = (register.license_key, exp)
    return _json({"type": "bearer", "token_type": "bearer", "access_token": token})


@app.get("/api/v1/cashier/me")
def cashier_me() -> Response:
    register = _cashier()
    return _json({"id": hashlib.sha256(register.license_key.encode()).hexdigest()[:16], "full_name": "Касир Пісочниці"})


# --- shifts -------------------------------------------------------------------------------------

def _advance_shift(register: Register, *, reading: bool) -> dict[str, Any] | None:
    """CREATED -> OPENED on a read or after a moment; CLOSING -> CLOSED on a read."""
    shift = register.shift
    if shift is None:
        return None
    if shift["status"] == "CREATED" and (reading or time.monotonic() - register.shift_opened_mono >= OPEN_DELAY_SECONDS):
        shift["status"] = "OPENED"
        shift["opened_at"] = _iso(_now())
        shift["initial_transaction"]["status"] = "DONE"
    elif shift["status"] == "CLOSING" and reading:
        shift["status"] = "CLOSED"
        shift["closed_at"] = _iso(_now())
        shift["closing_transaction"]["status"] = "DONE"
    return shift


def _transaction(kind: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": kind, "status": "PENDING", "response_status": None,
            "response_error_message": None, "created_at": _iso(_now())}


@app.post("/api/v1/shifts")
def open_shift() -> Response:
    _cashier()
    register = _license()
    with STATE.lock:
        current = _advance_shift(register, reading=False)
        if current is not None and current["status"] != "CLOSED":
            raise CheckboxError(400, SHIFT_ALREADY_OPENED)
        register.shift_serial += 1
        register.shift = {"id": str(uuid.uuid4()), "serial": register.shift_serial, "status": "CREATED",
                          "z_report": None, "opened_at": None, "closed_at": None,
                          "initial_transaction": _transaction("OPENING"), "closing_transaction": None,
                          "created_at": _iso(_now()), "balance": {"initial": 0, "balance": 0},
                          "cash_register": {"id": register.register_id, "fiscal_number": register.fiscal_number}}
        register.shift_opened_mono = time.monotonic()
        return _json(register.shift, 202)


@app.get("/api/v1/cashier/shift")
def cashier_shift() -> Response:
    register = _cashier()
    with STATE.lock:
        shift = _advance_shift(register, reading=True)
        if shift is None or shift["status"] == "CLOSED":
            return _json(None)
        return _json(shift)


@app.get("/api/v1/shifts/<shift_id>")
def get_shift(shift_id: str) -> Response:
    register = _cashier()
    with STATE.lock:
        shift = _advance_shift(register, reading=True)
        if shift is None or shift["id"] != shift_id:
            raise CheckboxError(404, "Зміну не знайдено")
        return _json(shift)


@app.post("/api/v1/shifts/close")
def close_shift() -> Response:
    register = _cashier()
    with STATE.lock:
        shift = _advance_shift(register, reading=False)
        if shift is None or shift["status"] != "OPENED":
            raise CheckboxError(400, SHIFT_NOT_OPENED)
        shift["status"] = "CLOSING"
        shift["closing_transaction"] = _transaction("CLOSING")
        return _json(shift, 202)


# --- receipts -----------------------------------------------------------------------------------

def _int_field(value: Any, loc: list[Any], *, minimum: int) -> int:
    if not is_int(value):
        raise Unprocessable(loc, "value is not a valid integer", "type_error.integer")
    if value < minimum:
        raise Unprocessable(loc, f"ensure this value is greater than or equal to {minimum}", "value_error")
    return value


def _goods_total(goods: Any) -> int:
    if not isinstance(goods, list) or not goods:
        raise Unprocessable(["body", "goods"], "field required", "value_error.missing")
    total = 0
    for index, item in enumerate(goods):
        loc = ["body", "goods", index]
        good = item.get("good") if isinstance(item, dict) else None
        if not isinstance(good, dict):
            raise Unprocessable([*loc, "good"], "field required", "value_error.missing")
        for name in ("code", "name"):
            if not isinstance(good.get(name), str) or not good[name].strip():
                raise Unprocessable([*loc, "good", name], "field required", "value_error.missing")
        price = _int_field(good.get("price"), [*loc, "good", "price"], minimum=0)
        quantity = _int_field(item.get("quantity"), [*loc, "quantity"], minimum=1)
        if price * quantity % 1000:
            raise Unprocessable([*loc, "quantity"], "price * quantity / 1000 is not a whole number of kopecks")
        total += price * quantity // 1000
    return total


def _payments_total(payments: Any) -> int:
    if not isinstance(payments, list) or not payments:
        raise Unprocessable(["body", "payments"], "field required", "value_error.missing")
    paid = 0
    for index, payment in enumerate(payments):
        loc = ["body", "payments", index]
        if not isinstance(payment, dict) or payment.get("type") not in ("CASH", "CASHLESS"):
            raise Unprocessable([*loc, "type"], "unexpected value; permitted: 'CASH', 'CASHLESS'", "value_error.const")
        paid += _int_field(payment.get("value"), [*loc, "value"], minimum=1)
    return paid


def _validate_sell(body: dict[str, Any]) -> int:
    receipt_id = body.get("id")
    if receipt_id is not None:
        try:
            uuid.UUID(str(receipt_id))
        except ValueError:
            raise Unprocessable(["body", "id"], "value is not a valid uuid", "type_error.uuid") from None
    total = _goods_total(body.get("goods"))
    if _payments_total(body.get("payments")) != total:
        raise CheckboxError(400, "Сума оплат не відповідає сумі чека")
    returns = {bool(item.get("is_return")) for item in body["goods"]}
    if len(returns) > 1:
        raise CheckboxError(400, "Чек не може містити одночасно продаж і повернення")
    related = body.get("related_receipt_id")
    if related is not None:
        try:
            uuid.UUID(str(related))
        except ValueError:
            raise Unprocessable(["body", "related_receipt_id"], "value is not a valid uuid", "type_error.uuid") from None
    return total


def _by_code(goods: list[dict[str, Any]]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for item in goods:
        code = item["good"]["code"]
        sums[code] = sums.get(code, 0) + item["good"]["price"] * item["quantity"] // 1000
    return sums


def _check_return(register: Register, body: dict[str, Any], total: int) -> None:
    """A return of a sale: the sale is on this register and DONE, and never more comes back than it sold."""
    related = body.get("related_receipt_id")
    if related is None:
        return
    sale = register.receipts.get(str(related))
    if sale is None or sale["type"] != "SELL":
        raise CheckboxError(400, RELATED_NOT_FOUND)
    _advance_receipt(register, sale)
    if sale["status"] != "DONE":
        raise CheckboxError(400, RELATED_NOT_FOUND)
    earlier = [r for r in register.receipts.values() if r.get("related_receipt_id") == sale["id"]
               and r["type"] == "RETURN" and r["status"] not in ("ERROR", "CANCELLED")]
    if sum(r["total_sum"] for r in earlier) + total > sale["total_sum"]:
        raise CheckboxError(400, RETURN_ABOVE_SALE)
    sold = _by_code(sale["goods"])
    returned = _by_code([g for r in earlier for g in r["goods"]])
    for code, amount in _by_code(body["goods"]).items():
        if returned.get(code, 0) + amount > sold.get(code, 0):
            raise CheckboxError(400, RETURN_ABOVE_SALE)


@app.post("/api/v1/receipts/sell")
def sell() -> Response:
    register = _cashier()
    body = _body()
    total = _validate_sell(body)
    with STATE.lock:
        shift = _advance_shift(register, reading=False)
        if shift is None or shift["status"] != "OPENED":
            raise CheckboxError(400, SHIFT_NOT_OPENED)
        receipt_id = str(body.get("id") or uuid.uuid4())
        if receipt_id in register.receipts:
            raise CheckboxError(400, RECEIPT_ID_TAKEN)
        is_return = bool(body["goods"][0].get("is_return"))
        if is_return:
            _check_return(register, body, total)
        fail = STATE.error_next > 0
        if fail:
            STATE.error_next -= 1
        register.receipt_serial += 1
        receipt = {
            "id": receipt_id, "type": "RETURN" if is_return else "SELL", "status": "CREATED",
            "serial": register.receipt_serial, "related_receipt_id": body.get("related_receipt_id"),
            "goods": body["goods"], "payments": body["payments"], "total_sum": total, "total_payment": total,
            "total_rest": 0, "round_sum": 0, "fiscal_code": None, "fiscal_date": None, "tax_url": None,
            "transaction": _transaction("RECEIPT"), "shift": {"id": shift["id"], "serial": shift["serial"]},
            "is_created_offline": False, "is_sent_dps": False, "created_at": _iso(_now()),
            "_fail": fail, "_root": request.url_root,
        }
        register.receipts[receipt_id] = receipt
        return _json(_public(receipt), 201)


def _public(receipt: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in receipt.items() if not k.startswith("_")}


def _advance_receipt(register: Register, receipt: dict[str, Any]) -> None:
    if receipt["status"] != "CREATED":
        return
    transaction = receipt["transaction"]
    if receipt["_fail"]:
        receipt["status"] = "ERROR"
        transaction.update({"status": "ERROR", "response_status": "ERROR",
                            "response_error_message": "ДПС відхилила документ (sandbox)"})
    else:
        code = "TEST" + random_string(10, string.digits)
        receipt.update({"status": "DONE", "fiscal_code": code, "fiscal_date": _iso(_now()), "is_sent_dps": True,
                        "tax_url": f"{receipt['_root']}check/{code}"})
        transaction.update({"status": "DONE", "response_status": "OK"})
    _notify(register, receipt)


@app.get("/api/v1/receipts/<receipt_id>")
def get_receipt(receipt_id: str) -> Response:
    register = _cashier()
    with STATE.lock:
        receipt = register.receipts.get(receipt_id)
        if receipt is None:
            raise CheckboxError(404, "Чек не знайдено")
        _advance_receipt(register, receipt)
        return _json(_public(receipt))


@app.get("/check/<fiscal_code>")
def check_page(fiscal_code: str) -> Response:
    with STATE.lock:
        found = next((r for reg in STATE.registers.values() for r in reg.receipts.values()
                      if r.get("fiscal_code") == fiscal_code), None)
    if found is None:
        return Response("<h1>Чек не знайдено</h1>", status=404, mimetype="text/html")
    lines = "".join(f"<tr><td>{html.escape(g['good']['name'])}</td><td>{g['quantity'] / 1000:g}</td>"
                    f"<td>{g['good']['price'] / 100:.2f}</td></tr>" for g in found["goods"])
    page = (f'<!doctype html><html lang="uk"><meta charset="utf-8"><title>Чек {html.escape(fiscal_code)}</title>'
            f'<body style="font-family:monospace;max-width:28rem;margin:2rem auto"><h1 id="kind">'
            f'{"Видатковий чек (повернення)" if found["type"] == "RETURN" else "Фіскальний чек"}</h1>'
            f'<p>ФН чека: <b id="fiscal-code">{html.escape(fiscal_code)}</b> (Checkbox sandbox)</p>'
            f"<table>{lines}</table><p>Сума: {found['total_sum'] / 100:.2f} грн, безготівкова</p></body></html>")
    return Response(page, mimetype="text/html")


# --- webhooks (receipt events, signed with the register's secret) -----------------------------------

@app.post("/api/v1/webhook")
def set_webhook() -> Response:
    _cashier()
    register = _license()
    url = _body().get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise Unprocessable(["body", "url"], "invalid or missing URL", "value_error.url")
    with STATE.lock:
        register.webhook = {"url": url, "secret_key": secrets.token_urlsafe(32)}
        return _json(dict(register.webhook))


@app.get("/api/v1/webhook")
def get_webhook() -> Response:
    _cashier()
    register = _license()
    with STATE.lock:
        if register.webhook is None:
            raise CheckboxError(404, "Вебхук не налаштовано")
        return _json({"url": register.webhook["url"]})


@app.delete("/api/v1/webhook")
def delete_webhook() -> Response:
    _cashier()
    register = _license()
    with STATE.lock:
        register.webhook = None
    return _json({"ok": True})


def _notify(register: Register, receipt: dict[str, Any]) -> None:
    if register.webhook is None:
        return
    body = json.dumps({"request_id": str(uuid.uuid4()), "action": "RECEIPT_STATUS", "payload": _public(receipt)},
                      ensure_ascii=False).encode("utf-8")
    signature = base64.b64encode(hmac.new(register.webhook["secret_key"].encode(), body, hashlib.sha256).digest())
    DELIVERER.once(functools.partial(_deliver, register.webhook["url"], body, signature.decode()))


def _deliver(url: str, body: bytes, signature: str, _attempt: int, generation: int) -> bool:
    sent = post(url, body, {"Content-Type": "application/json", "x-request-signature": signature},
                DELIVERY_TIMEOUT_SECONDS)
    STATE.log_delivery(generation, {"url": url, "status_code": sent.status})
    return sent.ok


# --- test controls (not Checkbox's) ---------------------------------------------------------------

@app.get("/_control/licenses/<license_key>/receipts")
def control_receipts(license_key: str) -> Response:
    """How many receipts this register made (what the exactly-once tests count)."""
    with STATE.lock:
        register = STATE.registers.get(license_key)
        receipts = [_public(r) for r in register.receipts.values()] if register else []
    return _json({"count": len(receipts), "receipts": receipts})


@app.get("/_control/licenses/<license_key>")
def control_register(license_key: str) -> Response:
    with STATE.lock:
        register = STATE.registers.get(license_key)
        if register is None:
            return _json({"error": "unknown licence"}, 404)
        return _json({"shift": register.shift, "receipt_count": len(register.receipts),
                      "webhook": register.webhook})


# /_control/fail-next is FAULTS's (above).

@app.post("/_control/clear-faults")
def control_clear_faults() -> Response:
    FAULTS.clear()
    return _json({"pending": []})


@app.post("/_control/receipt-error-next")
def control_receipt_error_next() -> Response:
    """The next n receipts end in ERROR (the tax service refused them) instead of DONE."""
    count = request_json().get("count", 1)
    with STATE.lock:
        STATE.error_next += int(count)
        return _json({"error_next": STATE.error_next})


@app.post("/_control/token-ttl")
def control_token_ttl() -> Response:
    seconds = request_json().get("seconds", TOKEN_TTL_SECONDS)
    with STATE.lock:
        STATE.token_ttl = float(seconds)
        return _json({"token_ttl": STATE.token_ttl})


add_reset_route(app, reset, _json)
