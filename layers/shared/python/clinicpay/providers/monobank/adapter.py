"""monobank acquiring behind two ports: `MonobankGateway` (PaymentGateway, for `/pay/{token}` links)
and `MonobankQrAcquirer` (QrAcquirer, amounts on QR cash registers). Both verify `X-Sign` the same
way, with one cached public key per merchant token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from clinicpay.domain.errors import BadRequest, GatewayNotConfigured, ValidationFailed
from clinicpay.domain.money import CURRENCY_NUMERIC, Money
from clinicpay.domain.qr import UAH, CardPayment, InvoiceStatus, InvoiceUpdate, QrAmountRequest, QrRegisterInfo
from clinicpay.observability import logger
from clinicpay.ports import CheckoutRequest, CheckoutSession, PaymentEvent, PaymentEventKind
from clinicpay.providers.monobank import schemas
from clinicpay.providers.monobank.client import MonobankClient
from clinicpay.providers.monobank.signature import KEYS, SIGNATURE_HEADER, PublicKeyCache
from clinicpay.settings import Settings

PROVIDER = "monobank"
UAH_NUMERIC = CURRENCY_NUMERIC[UAH]  # 980
_ALPHA_BY_NUMERIC = {number: alpha for alpha, number in CURRENCY_NUMERIC.items()}

# monobank's default invoice validity (24 h) applies: we do not send `validity`.
INVOICE_VALIDITY = timedelta(hours=24)

# What an invoice status means for an appointment paid through a link. Anything absent is "ignored".
LINK_EVENT_KINDS: dict[str, PaymentEventKind] = {
    "success": "succeeded",
    "failure": "failed",
    "reversed": "refunded",
    "expired": "expired",
    # The card payment is under way: the appointment may show "pending", never "paid".
    "processing": "pending",
    # The amount is blocked, not captured. We only create `debit` invoices, so a hold is unexpected;
    # it is not money we have, so it is "pending" rather than "succeeded".
    "hold": "pending",
    # The invoice exists and waits for the patient: nothing has happened to the payment yet.
    "created": "ignored",
}


class UnsupportedInvoiceStatus(BadRequest):
    code, default_message = "unsupported_invoice_status", "monobank reported a status we do not know."


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _token(credentials: Mapping[str, Any]) -> str:
    token = credentials.get("token")
    if not token:
        raise GatewayNotConfigured("The clinic's monobank credentials have no token.")
    return str(token)


class _Monobank:
    """What both ports share: the client and X-Sign verification with the per-token key cache."""

    def __init__(self, credentials: Mapping[str, Any], settings: Settings, *, keys: PublicKeyCache = KEYS):
        token = _token(credentials)
        self.client = MonobankClient(token, base_url=settings.monobank_api_base,
                                     timeout=settings.provider_timeout_seconds)
        self._keys = keys
        self._cache_key = PublicKeyCache.cache_key(self.client.base_url, token)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def verified_body(self, raw_body: bytes, headers: Mapping[str, str]) -> schemas.InvoiceStatusBody:
        """Verify X-Sign over the raw bytes first; only then parse. Raises InvalidSignature."""
        self._keys.verify(self._cache_key, raw_body, _header(headers, SIGNATURE_HEADER), self.client.pubkey)
        try:
            return schemas.InvoiceStatusBody.model_validate(json.loads(raw_body))
        except (ValueError, ValidationError):
            raise BadRequest("The monobank webhook is not an invoice status.") from None


def _money(amount: int | None, ccy: int | None) -> Money | None:
    alpha = _ALPHA_BY_NUMERIC.get(ccy if ccy is not None else UAH_NUMERIC)
    if amount is None or alpha is None or amount < 0:
        return None
    return Money(amount=amount, currency=alpha)


def _modified_at(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest("The monobank webhook has an unreadable modifiedDate.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_update(body: schemas.InvoiceStatusBody) -> InvoiceUpdate:
    try:
        status = InvoiceStatus(body.status)
    except ValueError:
        raise UnsupportedInvoiceStatus() from None
    info = body.payment_info
    card = None
    if info is not None:
        card = CardPayment(masked_pan=info.masked_pan, approval_code=info.approval_code, rrn=info.rrn,
                           tran_id=info.tran_id, payment_system=info.payment_system,
                           payment_method=info.payment_method, bank=info.bank, terminal=info.terminal, fee=info.fee)
    return InvoiceUpdate(
        invoice_id=body.invoice_id,
        status=status,
        modified_at=_modified_at(body.modified_date),
        modified_raw=body.modified_date,
        amount=_money(body.final_amount if body.final_amount is not None and status is InvoiceStatus.SUCCESS
                      else body.amount, body.ccy),
        invoice_amount=_money(body.amount, body.ccy),
        reference=body.reference,
        destination=body.destination,
        failure_reason=body.failure_reason,
        card=card,
    )


def _require_uah(amount: Money) -> None:
    if amount.currency != UAH:
        raise ValidationFailed(f"monobank takes UAH here, not {amount.currency}.", code="currency_not_supported")
    if amount.amount <= 0:
        raise ValidationFailed("monobank needs an amount above zero.", code="invalid_amount")


class MonobankGateway(_Monobank):
    """One clinic's monobank merchant as a link gateway. Credentials: {token}."""

    name = PROVIDER

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        _require_uah(request.amount)
        amount = request.amount.amount
        info: dict[str, Any] = {
            "reference": request.appointment_id,
            "destination": request.description[:280],
            # Mandatory while a fiscal (PRRO) link is active at monobank; harmless otherwise.
            "basketOrder": [{"name": request.description[:128], "qty": 1, "sum": amount,
                             "code": request.appointment_id}],
        }
        if request.customer_email:
            info["customerEmails"] = [request.customer_email]
        body = {"amount": amount, "ccy": UAH_NUMERIC, "merchantPaymInfo": info,
                "redirectUrl": request.success_url, "webHookUrl": request.webhook_url}
        created = self.client.create_invoice(body)
        logger.info("monobank invoice created", extra={"provider": PROVIDER, "session_id": created.invoice_id,
                                                       "clinic_id": request.clinic_id,
                                                       "appointment_id": request.appointment_id})
        return CheckoutSession(provider=PROVIDER, session_id=created.invoice_id, url=created.page_url,
                               expires_at=datetime.now(UTC) + INVOICE_VALIDITY)

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> list[PaymentEvent]:
        body = self.verified_body(raw_body, headers)
        kind: PaymentEventKind = LINK_EVENT_KINDS.get(body.status, "ignored")
        info = body.payment_info
        details = {"monobank_status": body.status, "failure_reason": body.failure_reason,
                   "masked_pan": info.masked_pan if info else None}
        event = PaymentEvent(
            provider=PROVIDER,
            # monobank signs nothing time-related and sends no event id: these three name one change.
            event_id=f"{body.invoice_id}:{body.status}:{body.modified_date}",
            kind=kind,
            occurred_at=_modified_at(body.modified_date),
            session_id=body.invoice_id,
            payment_reference=body.invoice_id,
            appointment_id=body.reference or None,
            amount=_money(body.amount, body.ccy),
            fee=_money(info.fee, body.ccy) if info and info.fee is not None and kind == "succeeded" else None,
            details={k: v for k, v in details.items() if v is not None},
        )
        logger.info("monobank event verified", extra={"provider": PROVIDER, "event_id": event.event_id,
                                                      "kind": kind, "session_id": body.invoice_id})
        return [event]


class MonobankQrAcquirer(_Monobank):
    """One clinic's monobank merchant as the owner of QR cash registers. Credentials: {token}."""

    name = PROVIDER

    def list_registers(self) -> list[QrRegisterInfo]:
        return [QrRegisterInfo(qr_id=item.qr_id, short_qr_id=item.short_qr_id, amount_type=item.amount_type,
                               page_url=item.page_url) for item in self.client.qr_list()]

    def put_amount(self, request: QrAmountRequest) -> str:
        _require_uah(request.amount)
        basket = [{"name": line.name, "qty": line.qty, "sum": line.unit_price, "code": line.code}
                  for line in request.basket]
        if sum(line.total for line in request.basket) != request.amount.amount:
            raise ValidationFailed("The basket does not add up to the amount.", code="basket_mismatch")
        body = {
            "amount": request.amount.amount,
            "ccy": UAH_NUMERIC,
            "qrId": request.qr_id,
            "merchantPaymInfo": {"reference": request.reference, "destination": request.destination[:280],
                                 "basketOrder": basket},
            "webHookUrl": request.webhook_url,
        }
        created = self.client.create_invoice(body)
        logger.info("monobank QR amount set", extra={"provider": PROVIDER, "qr_id": request.qr_id,
                                                     "invoice_id": created.invoice_id})
        return created.invoice_id

    def reset_amount(self, qr_id: str) -> None:
        self.client.qr_reset_amount(qr_id)

    def invoice_status(self, invoice_id: str) -> InvoiceUpdate:
        return to_update(self.client.invoice_status(invoice_id))

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> InvoiceUpdate:
        return to_update(self.verified_body(raw_body, headers))
