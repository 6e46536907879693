"""monobank acquiring behind two ports: `MonobankGateway` (PaymentGateway, for `/pay/{token}` links)
and `MonobankQrAcquirer` (QrAcquirer, amounts on QR cash registers). Both verify `X-Sign` the same
way, with one cached public key per merchant token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from clinicpay.domain.errors import BadRequest, GatewayNotConfigured, ValidationFailed
from clinicpay.domain.money import CURRENCY_NUMERIC, Money
from clinicpay.domain.qr import (
    UAH,
    CancelEntry,
    CardPayment,
    InvoiceStatus,
    InvoiceUpdate,
    QrAmountRequest,
    QrRegisterInfo,
)
from clinicpay.observability import logger
from clinicpay.ports.payments import CheckoutRequest, CheckoutSession, PaymentEvent, PaymentEventKind, SessionAnswer
from clinicpay.ports.qr import ProviderFiscalCheck
from clinicpay.ports.refunds import RefundRequest, RefundResult
from clinicpay.providers.monobank import schemas
from clinicpay.providers.monobank.client import MonobankApiError, MonobankClient
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


# An invoice in one of these states changes no more for a link payment (a later refund of a paid one
# is the ledger's business, not the link's).
FINAL_INVOICE_STATUSES = frozenset({"success", "failure", "reversed", "expired"})


# invoice/cancel's answer -> our refund's state. Anything else is still being decided.
CANCEL_STATUSES: dict[str, Literal["pending", "succeeded", "failed"]] = {
    "processing": "pending", "success": "succeeded", "failure": "failed"}


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

    # --- RefundingGateway (links and QR alike: both are monobank invoices) ------------------------
    def refund(self, request: RefundRequest) -> RefundResult:
        """`invoice/cancel` for `amount` of the invoice, under our refund id as `extRef`, with `items`
        when monobank fiscalizes (it makes the return receipt from them). Raises
        ProviderOutcomeUnknown when the answer was lost: the refund is then undecided, and the
        webhook's cancelList, or our asking invoice/status, says what became of it."""
        _require_uah(request.amount)
        body: dict[str, Any] = {"invoiceId": request.payment_reference, "extRef": request.refund_id,
                                "amount": request.amount.amount}
        if request.fiscal_items:
            body["items"] = request.fiscal_items
        try:
            answer = self.client.cancel_invoice(body)
        except MonobankApiError as refused:
            logger.warning("monobank refused the refund", extra={
                "provider": PROVIDER, "clinic_id": request.clinic_id, "refund_id": request.refund_id,
                "http_status": refused.http_status, "provider_code": refused.err_code})
            return RefundResult(status="failed", failure_code=str(refused.err_code or f"http_{refused.http_status}"))
        status = CANCEL_STATUSES.get(answer.status, "pending")
        logger.info("monobank refund asked", extra={"provider": PROVIDER, "clinic_id": request.clinic_id,
                                                   "refund_id": request.refund_id, "status": answer.status})
        return RefundResult(provider_refund_id=request.refund_id, status=status,
                            failure_code="cancel_failure" if status == "failed" else None)

    # monobank documents no deduplication of extRef: a refund it never received is never sent again
    # by the reconciliation job (usecases/refunds.py), only released once it is surely not coming.
    refund_resend_safe = False

    def find_refund(self, request: RefundRequest, provider_refund_id: str | None) -> RefundResult | None:
        """What became of a refund whose answer or webhook never came: the invoice's cancelList entry
        whose extRef is our refund id (invoice/status), or None when monobank lists none."""
        body = self.client.invoice_status(request.payment_reference)
        entry = next((c for item in body.cancel_list if (c := _cancel(item, body.ccy)) is not None
                      and c.ext_ref == request.refund_id), None)
        if entry is None:
            return None
        status = CANCEL_STATUSES[entry.status]
        return RefundResult(provider_refund_id=request.refund_id, status=status,
                            failure_code="cancel_failure" if status == "failed" else None)

    def fiscal_checks(self, invoice_id: str) -> list[ProviderFiscalCheck]:
        """The receipts monobank made itself for the invoice (its Checkbox link or monopay PRRO)."""
        return [ProviderFiscalCheck(id=c.id, type=c.type, status=c.status, source=c.fiscalization_source,  # type: ignore[arg-type]
                                    tax_url=c.tax_url, status_description=(c.status_description or None))
                for c in self.client.fiscal_checks(invoice_id)
                if c.type in ("sale", "return") and c.fiscalization_source in ("checkbox", "monopay")]


def _money(amount: int | None, ccy: int | None) -> Money | None:
    alpha = _ALPHA_BY_NUMERIC.get(ccy if ccy is not None else UAH_NUMERIC)
    if amount is None or alpha is None or amount < 0:
        return None
    return Money(amount=amount, currency=alpha)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest("The monobank webhook has an unreadable date.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# What a body that names no date at all is ordered by: before anything dated (its status still ranks it).
_UNDATED = datetime(1970, 1, 1, tzinfo=UTC)


def _order_moment(body: schemas.InvoiceStatusBody) -> datetime:
    """modifiedDate; without it (monobank's spec does not require it), the latest date the body does
    carry: its refunds' dates, else createdDate."""
    if body.modified_date:
        return _moment(body.modified_date)
    dates = [_moment(text) for c in body.cancel_list for text in (c.modified_date, c.created_date) if text]
    if body.created_date:
        dates.append(_moment(body.created_date))
    return max(dates, default=_UNDATED)


def _cancel(item: schemas.CancelListItem, ccy: int | None) -> CancelEntry | None:
    if item.status not in ("processing", "success", "failure"):
        return None  # a state monobank may add later: nothing we can act on
    return CancelEntry(status=item.status, amount=_money(item.amount, item.ccy if item.ccy is not None else ccy),  # type: ignore[arg-type]
                       created_raw=item.created_date, modified_raw=item.modified_date, ext_ref=item.ext_ref or None,
                       approval_code=item.approval_code, rrn=item.rrn)


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
    paid = _money(body.amount, body.ccy)
    return InvoiceUpdate(
        invoice_id=body.invoice_id,
        status=status,
        modified_at=_order_moment(body),
        modified_raw=body.modified_date or None,
        created_raw=body.created_date,
        # What the patient paid is `amount`: `finalAmount` shrinks with every refund, and a late
        # first `success` must not record what was left after one.
        amount=paid,
        invoice_amount=paid,
        final_amount=_money(body.final_amount, body.ccy),
        reference=body.reference,
        destination=body.destination,
        failure_reason=body.failure_reason,
        card=card,
        cancels=[entry for item in body.cancel_list if (entry := _cancel(item, body.ccy)) is not None],
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
        return [_link_event(self.verified_body(raw_body, headers))]

    def session_status(self, session_id: str) -> SessionAnswer:
        """GET invoice/status: the same body a webhook carries, so the same event (and event id: a
        webhook that arrives after our asking is a repeat). `created` waits for the patient and
        `processing`/`hold` for the card; `success`, `failure`, `reversed` and `expired` are final
        (monobank sends no webhook for `expired` at all: asking is the only way to learn it)."""
        body = self.client.invoice_status(session_id)
        event = _link_event(body)
        return SessionAnswer(event=event, settled=body.status in FINAL_INVOICE_STATUSES)


def _link_event(body: schemas.InvoiceStatusBody) -> PaymentEvent:
    """The link payment event an invoice status body says (webhook and invoice/status alike)."""
    kind: PaymentEventKind = LINK_EVENT_KINDS.get(body.status, "ignored")
    try:
        update = to_update(body)
    except UnsupportedInvoiceStatus:
        update = None
    occurred = update.modified_at if update else _order_moment(body)
    info = body.payment_info
    details: dict[str, Any] = {"monobank_status": body.status, "failure_reason": body.failure_reason,
                               "masked_pan": info.masked_pan if info else None}
    if update is not None and update.cancels:
        # Refunds of the invoice (partial ones leave the status `success`), for the ledger: each
        # named by its cancel key (`ext:<our refund id>` for ours), decided or not.
        details["refunds"] = [{"key": c.key, "ext_ref": c.ext_ref, "status": c.status,
                               "amount": c.amount.model_dump() if c.amount else None,
                               "created_at": c.created_raw} for c in update.cancels]
    event = PaymentEvent(
        provider=PROVIDER,
        # monobank signs nothing time-related and sends no event id: invoice, status and
        # modifiedDate name one change (without modifiedDate: what the body says, InvoiceUpdate).
        event_id=update.event_id if update else f"{body.invoice_id}:{body.status}:{body.modified_date}",
        kind=kind,
        occurred_at=occurred,
        session_id=body.invoice_id,
        payment_reference=body.invoice_id,
        appointment_id=body.reference or None,
        amount=_money(body.amount, body.ccy),
        fee=_money(info.fee, body.ccy) if info and info.fee is not None and kind == "succeeded" else None,
        details={k: v for k, v in details.items() if v is not None},
    )
    logger.info("monobank link event read", extra={"provider": PROVIDER, "event_id": event.event_id,
                                                   "kind": kind, "session_id": body.invoice_id})
    return event


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
