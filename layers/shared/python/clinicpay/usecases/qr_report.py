"""The QR payments report: filters from the query string, rows as JSON or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from clinicpay.domain.errors import ClinicpayError, ValidationFailed
from clinicpay.domain.fiscal import public_fiscal_status
from clinicpay.domain.qr import QrPayment, QrRefund, QrReportFilters, iso
from clinicpay.usecases import list_cursor

if TYPE_CHECKING:
    from clinicpay.ports.qr import QrStore

CSV_COLUMNS = ("payment_id", "paid_at", "amount", "currency", "qr_id", "appointment_id", "masked_pan",
               "fiscal_status", "receipt_id", "fiscal_code", "receipt_url", "invoice_id", "last_error",
               "amount_refunded", "refund_status", "return_receipts")


def _moment(field: str, value: str, zone: ZoneInfo, *, end: bool) -> str:
    """RFC 3339 as given, or a bare date as that day in the clinic's zone (`to` includes the day)."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value) + (timedelta(days=1) if end else timedelta())
            return iso(datetime.combine(day, time.min, tzinfo=zone))
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValidationFailed(details=[{"field": field, "message": "a time needs an offset (RFC 3339)"}])
        return iso(moment)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved to UTC leaves the calendar
        raise ValidationFailed(details=[{"field": field, "message": "expected RFC 3339 or YYYY-MM-DD"}]) from None


def _amount(field: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    # ASCII digits only ("²".isdigit() is True) and no longer than any amount we store (10**12).
    if not (value.isascii() and value.isdigit() and len(value) <= 13):
        raise ValidationFailed(details=[{"field": field, "message": "an integer amount in minor units, 0 to 10^12"}])
    return int(value)


def parse_filters(query: dict[str, str], timezone: str = "UTC") -> QrReportFilters:
    zone = ZoneInfo(timezone)
    values: dict[str, Any] = {
        "paid_from": _moment("from", query["from"], zone, end=False) if query.get("from") else None,
        "paid_to": _moment("to", query["to"], zone, end=True) if query.get("to") else None,
        "qr_id": query.get("qr_id") or None,
        "fiscal_status": query.get("fiscal_status") or None,
        "min_amount": _amount("min_amount", query.get("min_amount")),
        "max_amount": _amount("max_amount", query.get("max_amount")),
    }
    try:
        return QrReportFilters.model_validate(values)
    except ValidationError as error:
        raise ValidationFailed(details=[{"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                                        for e in error.errors()]) from None


def report_rows(store: QrStore, clinic_id: str, filters: QrReportFilters, *,
                with_refunds: bool = False) -> list[dict[str, Any]]:
    return _rows(store, clinic_id, store.payments(clinic_id, filters), with_refunds=with_refunds)


MAX_PAGE = 500


def report_page(store: QrStore, clinic_id: str, filters: QrReportFilters, *, limit: int,
                cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the report (oldest first, as the whole report), after `cursor`; and the cursor of
    the next page (None: this was the last). The cursor holds the last row's (paid_at, payment_id)
    for this clinic and these filters (usecases/list_cursor.py)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(details=[{"field": "limit", "message": f"between 1 and {MAX_PAGE}"}])
    made_for = list_cursor.fingerprint(filters.model_dump(mode="json"))
    payments = store.payments(clinic_id, filters)
    if cursor:
        position = list_cursor.decode(clinic_id, made_for, cursor)
        # paid_at is fixed-width UTC text (domain/qr.py `iso`): its order is time order.
        if len(position) != 2 or not all(isinstance(v, str) and len(v) <= 128 for v in position):
            raise list_cursor.invalid()
        after = (position[0], position[1])
        payments = [p for p in payments if (p.paid_at, p.payment_id) > after]
    shown = payments[:limit]
    next_cursor = list_cursor.encode(clinic_id, made_for, [shown[-1].paid_at, shown[-1].payment_id]) \
        if len(payments) > limit else None
    return _rows(store, clinic_id, shown, with_refunds=True), next_cursor


def _rows(store: QrStore, clinic_id: str, payments: list[QrPayment], *, with_refunds: bool) -> list[dict[str, Any]]:
    if not with_refunds:
        return [payment.row() for payment in payments]
    refunds: dict[str, list[QrRefund]] = {}
    if any(p.refunded for p in payments):
        for refund in sorted(store.clinic_refunds(clinic_id), key=lambda r: (r.created_at, r.refund_id)):
            refunds.setdefault(refund.payment_id, []).append(refund)
    return [_with_documents(payment.row(), payment, refunds.get(payment.payment_id, [])) for payment in payments]


def _with_documents(row: dict[str, Any], payment: QrPayment, refunds: list[QrRefund]) -> dict[str, Any]:
    row["refunds"] = [r.view() for r in refunds]
    row["fiscal_documents"] = fiscal_documents(payment, refunds)
    return row


def fiscal_documents(payment: QrPayment, refunds: list[QrRefund]) -> list[dict[str, Any]]:
    """The payment's fiscal documents as they stand: its sale receipt, then one return receipt per
    succeeded refund (ours, monobank's, or none, by who fiscalizes)."""
    def document(kind: str, amount: Any, doc: QrPayment | QrRefund, refund_id: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": kind, "amount": amount.model_dump(),
                                 "fiscal_status": public_fiscal_status(doc.fiscal_status),
                                 "receipt": None, "last_error": doc.last_error}
        if doc.receipt is not None:
            entry["receipt"] = {"id": doc.receipt.id, "fiscal_code": doc.receipt.fiscal_code, "url": doc.receipt.url}
        if refund_id:
            entry["refund_id"] = refund_id
        return entry

    documents = [document("sale", payment.amount, payment)]
    documents += [document("return", r.amount, r, r.refund_id) for r in refunds if r.status == "succeeded"]
    return documents


def payment_detail(payment: QrPayment, refunds: list[QrRefund],
                   checks: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """One payment with its refunds and fiscal documents; for a payment monobank fiscalizes, the
    receipts monobank made (its fiscal-checks), asked now, best effort."""
    row = _with_documents(payment.row(), payment, refunds)
    if checks is not None and payment.fiscalized_by == "monobank":
        try:
            row["provider_checks"] = [c.model_dump() for c in checks(payment.clinic_id).fiscal_checks(payment.invoice_id)]
        except ClinicpayError as error:
            row["provider_checks_error"] = error.code
    return row


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # Spreadsheets run cells that start like a formula; none of ours should, so defuse any that do.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        receipt = row.get("receipt") or {}
        writer.writerow([_cell(v) for v in (
            row["payment_id"], row["paid_at"], row["amount"]["amount"], row["amount"]["currency"], row.get("qr_id"),
            row.get("appointment_id"), row.get("masked_pan"), row["fiscal_status"], receipt.get("id"),
            receipt.get("fiscal_code"), receipt.get("url"), row.get("invoice_id"), row["fiscal"]["last_error"],
            (row.get("amount_refunded") or {}).get("amount", 0), row.get("refund_status", "none"),
            " ".join(d["receipt"]["id"] for d in row.get("fiscal_documents", [])
                     if d["type"] == "return" and d["receipt"]))])
    return out.getvalue()
