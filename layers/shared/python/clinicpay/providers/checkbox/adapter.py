"""CheckboxFiscalRegister: the FiscalRegister port over Checkbox's cashier, shift and receipt API.

One receipt per payment, ever: the receipt id is ours, made before the first attempt, and goes out
on every retry. When Checkbox refuses a repeat (or a timeout hid whether the first try landed), the
receipt is read back by that id instead of being made again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from clinicpay import deadline
from clinicpay.domain.errors import BadRequest, GatewayNotConfigured, ProviderUnavailable
from clinicpay.domain.fiscal import (
    FiscalRejected,
    ReceiptRequest,
    ReceiptResult,
    ReceiptState,
    ShiftNotOpen,
    ShiftState,
)
from clinicpay.observability import logger
from clinicpay.providers.checkbox import schemas
from clinicpay.providers.checkbox.client import CheckboxApiError, CheckboxClient
from clinicpay.providers.checkbox.signature import SIGNATURE_HEADER, verify_signature
from clinicpay.settings import Settings

PROVIDER = "checkbox"

# Checkbox receipt status -> what it means for us. CANCELLED receipts are not fiscal documents
# either, so like ERROR they let a new receipt be made.
RECEIPT_STATES: dict[str, ReceiptState] = {
    "DONE": "DONE",
    "ERROR": "ERROR",
    "CANCELLATION": "ERROR",
    "CANCELLED": "ERROR",
}
_SHIFT_STATUSES = {"CREATED", "OPENING", "OPENED", "CLOSING", "CLOSED"}


def _shift_state(shift: schemas.Shift | None) -> ShiftState:
    if shift is None or shift.status not in _SHIFT_STATUSES:
        return ShiftState(status="NONE")
    return ShiftState(status=shift.status, shift_id=shift.id, serial=shift.serial,  # type: ignore[arg-type]
                      opened_at=shift.opened_at, closed_at=shift.closed_at)


def _result(receipt: schemas.Receipt) -> ReceiptResult:
    state: ReceiptState = RECEIPT_STATES.get(receipt.status, "PROCESSING")
    error = None
    if state == "ERROR" and receipt.transaction is not None:
        error = (receipt.transaction.response_error_message or receipt.transaction.response_status or "")[:200] or None
    return ReceiptResult(receipt_id=receipt.id, state=state, fiscal_code=receipt.fiscal_code, tax_url=receipt.tax_url,
                         serial=receipt.serial, error=error or (f"receipt {receipt.status}" if state == "ERROR" else None))


def sell_body(request: ReceiptRequest) -> dict[str, Any]:
    """The `POST /api/v1/receipts/sell` payload: kopecks, thousandths, one CASHLESS payment. The same
    endpoint makes return receipts: every line `is_return: true`, and `related_receipt_id` the sale
    receipt it returns (Checkbox's ReceiptSellPayload / GoodItemPayload)."""
    payment = request.payment
    cashless = {"type": "CASHLESS", "value": payment.value, "label": "Картка", "card_mask": payment.card_mask,
                "auth_code": payment.auth_code, "rrn": payment.rrn, "payment_system": payment.payment_system,
                "bank_name": payment.bank_name, "terminal": payment.terminal}
    body: dict[str, Any] = {
        "id": request.receipt_id,
        "goods": [{"good": {"code": g.code, "name": g.name, "price": g.price}, "quantity": g.quantity,
                   "is_return": request.is_return} for g in request.goods],
        "payments": [{k: v for k, v in cashless.items() if v is not None}],
    }
    if request.related_receipt_id:
        body["related_receipt_id"] = request.related_receipt_id
    return body


class CheckboxFiscalRegister:
    """One clinic's Checkbox cash register and cashier. Credentials: {license_key, pin_code}."""

    name = PROVIDER

    def __init__(self, credentials: Mapping[str, Any], settings: Settings, *, poll_seconds: float = 8.0,
                 poll_interval: float = 0.3, sleep: Callable[[float], None] = time.sleep, attempts: int = 3,
                 timeout: float | None = None):
        license_key, pin_code = credentials.get("license_key"), credentials.get("pin_code")
        if not license_key or not pin_code:
            raise GatewayNotConfigured("The clinic's Checkbox credentials need license_key and pin_code.")
        self.client = CheckboxClient(str(license_key), str(pin_code), base_url=settings.checkbox_api_base,
                                     timeout=timeout or settings.provider_timeout_seconds, attempts=attempts)
        self._webhook_secret = str(credentials.get("webhook_secret") or "")
        self._poll_seconds = poll_seconds
        self._poll_interval = poll_interval
        self._sleep = sleep

    def __repr__(self) -> str:
        return "CheckboxFiscalRegister()"

    # --- shifts -------------------------------------------------------------------------------
    def current_shift(self) -> ShiftState:
        return _shift_state(self.client.current_shift())

    def open_shift(self) -> ShiftState:
        current = self.current_shift()
        if current.status not in ("OPENED", "CREATED", "OPENING", "CLOSING"):
            self.client.open_shift()
        # CREATED until the cashier's key signs it and DPS accepts it, usually within seconds.
        return self._wait_shift(lambda s: s.status not in ("CREATED", "OPENING"))

    def close_shift(self) -> ShiftState:
        current = self.current_shift()
        if current.status != "OPENED":
            raise ShiftNotOpen()
        self.client.close_shift()
        return self._wait_shift(lambda s: s.status != "CLOSING")

    def _wait_shift(self, settled: Callable[[ShiftState], bool]) -> ShiftState:
        until = self._poll_until()
        state = self.current_shift()
        while not settled(state) and time.monotonic() < until:
            self._sleep(self._poll_interval)
            state = self.current_shift()
        return state

    # --- receipts -----------------------------------------------------------------------------
    def sell(self, receipt: ReceiptRequest) -> ReceiptResult:
        try:
            created = self.client.sell(sell_body(receipt))
        except CheckboxApiError as refused:
            # A repeat of our id, or a first try that landed before a timeout: read it back.
            created = self._existing(receipt.receipt_id, refused)
        except ProviderUnavailable:
            found = self._lookup(receipt.receipt_id)
            if found is None:
                raise
            created = found
        logger.info("checkbox receipt accepted", extra={"provider": PROVIDER, "receipt_id": created.id,
                                                        "status": created.status})
        return self._wait_receipt(created)

    def _lookup(self, receipt_id: str) -> schemas.Receipt | None:
        try:
            return self.client.get_receipt(receipt_id)
        except ProviderUnavailable:
            return None

    def _existing(self, receipt_id: str, refused: CheckboxApiError) -> schemas.Receipt:
        if refused.http_status in (401, 403):
            raise refused
        found = self.client.get_receipt(receipt_id)
        if found is None:
            # Nothing was made under our id: the register refused the receipt itself.
            raise FiscalRejected(f"Checkbox refused the receipt (HTTP {refused.http_status}).",
                                 details=[{"provider": PROVIDER, "http_status": refused.http_status,
                                           "provider_message": refused.provider_message}])
        logger.info("checkbox receipt already existed", extra={"provider": PROVIDER, "receipt_id": receipt_id})
        return found

    def _wait_receipt(self, receipt: schemas.Receipt) -> ReceiptResult:
        until = self._poll_until()
        result = _result(receipt)
        interval = self._poll_interval
        while result.state == "PROCESSING" and time.monotonic() < until:
            self._sleep(interval)
            interval = min(interval * 1.5, 2.0)
            found = self._lookup(receipt.id)
            if found is not None:
                result = _result(found)
        return result

    def _poll_until(self) -> float:
        # Polling stops with the invocation's provider budget: what is still processing then is
        # read back later (webhook, sweep), never waited on past the function's timeout.
        return time.monotonic() + min(self._poll_seconds, deadline.provider_seconds_left())

    def get_receipt(self, receipt_id: str) -> ReceiptResult | None:
        found = self.client.get_receipt(receipt_id)
        return _result(found) if found is not None else None

    # --- webhooks -----------------------------------------------------------------------------
    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> ReceiptResult | None:
        """Verify `x-request-signature`, then read the receipt the event is about (None: not a receipt)."""
        header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
        verify_signature(raw_body, header, self._webhook_secret)
        return parse_receipt_event(raw_body)


def parse_receipt_event(raw_body: bytes) -> ReceiptResult | None:
    """The receipt inside a Checkbox event. The envelope's shape is not documented in what we read
    (UNCONFIRMED), so the receipt is looked for at the top level and under the usual keys."""
    try:
        body = json.loads(raw_body)
    except ValueError:
        raise BadRequest("The Checkbox event is not JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The Checkbox event is not an object.")
    for candidate in (body, body.get("payload"), body.get("data"), body.get("receipt")):
        if isinstance(candidate, dict) and "id" in candidate and "status" in candidate and (
                "fiscal_code" in candidate or "receipt" in str(body.get("action", "")).lower()
                or candidate.get("type") in ("SELL", "RETURN")):
            try:
                return _result(schemas.Receipt.model_validate(candidate))
            except ValidationError:
                return None
    return None


# Inside a request (webhook, API) the caller waits: one try per call, short timeouts and a short wait
# for DONE keep an attempt well inside API Gateway's 30 s. What does not finish stays pending and the
# scheduled sweeps, with the function's whole minute, finish it.
QUICK_TIMEOUT_SECONDS = 4.0
QUICK_POLL_SECONDS = 3.0
