"""fiscalize: monobank QR registers and amounts, Checkbox receipts and shifts, the QR payments report,
manual fiscalization, QR refunds, and the scheduled `unfiscalized-check` (daily), `fiscal-retry`,
`shift-schedule` and `qr-reconcile` jobs.

Routes parse, authenticate (staff) and call one use case; a job event (`{"job": ...}` from the
schedule, or the job queue's batch of shards: clinicpay.fanout) runs the job instead of the resolver.
"""

from __future__ import annotations

from clinicpay import coldstart  # first: the garbage collector waits while this module loads

# isort: split
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from clinicpay import deadline, fanout
from clinicpay.api.auth import Access
from clinicpay.api.idempotency import idempotent_http
from clinicpay.api.resolver import header, make_resolver
from clinicpay.deadline import lambda_deadline
from clinicpay.domain.errors import ClinicpayError, Conflict, GatewayNotConfigured, NotFound, ProviderUnavailable
from clinicpay.domain.fiscal import AlreadyFiscalized, FiscalizationInProgress, FiscalRejected, ShiftClosed
from clinicpay.domain.qr import ID_PATTERN, PutAmountRequest, QrRefundRequest
from clinicpay.observability import logger, metrics, tracer
from clinicpay.providers.checkbox.adapter import CheckboxFiscalRegister
from clinicpay.providers.registry import fiscal_register, qr_acquirer
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.repositories.fiscal import ShiftRepository
from clinicpay.repositories.qr import QrRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import (
    fiscal_check,
    fiscal_shift,
    fiscal_shift_schedule,
    fiscalization,
    qr_reconcile,
    qr_refunds,
    qr_registers,
    qr_report,
)
from clinicpay.usecases.fiscalization import Outcome
from clinicpay.usecases.monobank_webhook import fiscal_mode_of

app = make_resolver()

JOB_MARGIN_SECONDS = 20  # stop starting new receipts this long before the function's timeout


def _now() -> datetime:
    return datetime.now(UTC)


def _qr() -> QrRepository:
    return QrRepository(get_settings().app_table)


def _register(clinic_id: str) -> CheckboxFiscalRegister:
    # Short, single tries (see registry.fiscal_register): a person waits on the HTTP routes, and a job must
    # stop starting receipts in time (JOB_MARGIN_SECONDS > one attempt). What does not finish stays
    # pending for the next sweep.
    return fiscal_register(clinic_id, quick=True)


def _checks(clinic_id: str) -> Any:
    # monobank's own receipts for an invoice (fiscal-checks): a sale monobank fiscalized gets none of ours.
    return qr_acquirer(clinic_id)


# ------------------------------------------------------------------ QR registers
@app.post("/v1/clinics/<clinic_id>/qr-registers/sync", access=Access.STAFF)
def sync_registers(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    registers = qr_registers.sync_registers(_qr(), qr_acquirer(clinic_id), clinic_id, _now())
    return {"registers": [r.view() for r in registers]}


@app.get("/v1/clinics/<clinic_id>/qr-registers", access=Access.STAFF)
def list_registers(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return {"registers": [r.view() for r in _qr().list_registers(clinic_id)]}


@app.post("/v1/clinics/<clinic_id>/qr-registers/<qr_id>/amount", access=Access.STAFF, status_code=201)
def put_amount(clinic_id: Annotated[str, Path()], qr_id: Annotated[str, Path(pattern=ID_PATTERN)],
               body: Annotated[PutAmountRequest, Body()]) -> dict[str, Any]:
    store = _qr()
    settings = get_settings()
    result = qr_registers.put_amount(
        store, qr_acquirer(clinic_id), clinic_id, qr_id, body.amount, appointment_id=body.appointment_id,
        description=body.description, webhook_url=f"{settings.public_base_url.rstrip('/')}/webhooks/monobank/{clinic_id}",
        now=_now(), appointment_exists=lambda appointment_id: store.appointment_exists(clinic_id, appointment_id))
    return result


@app.delete("/v1/clinics/<clinic_id>/qr-registers/<qr_id>/amount", access=Access.STAFF)
def reset_amount(clinic_id: Annotated[str, Path()], qr_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> dict[str, Any]:
    return qr_registers.reset_amount(_qr(), qr_acquirer(clinic_id), clinic_id, qr_id).view()


# ------------------------------------------------------------------ fiscal shift
@app.get("/v1/clinics/<clinic_id>/fiscal/shift", access=Access.STAFF)
def get_shift(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return fiscal_shift.shift_status(ShiftRepository(get_settings().app_table), _qr(), _register, clinic_id, _now)


@app.post("/v1/clinics/<clinic_id>/fiscal/shift/open", access=Access.STAFF)
def open_shift(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return fiscal_shift.open_shift(ShiftRepository(get_settings().app_table), _qr(), _register, clinic_id, _now)


@app.post("/v1/clinics/<clinic_id>/fiscal/shift/close", access=Access.STAFF)
def close_shift(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return fiscal_shift.close_shift(ShiftRepository(get_settings().app_table), _register, clinic_id, _now)


# ------------------------------------------------------------------ report and payments
def _wants_csv() -> bool:
    accept = (app.current_event.headers.get("accept") or app.current_event.headers.get("Accept") or "").lower()
    return "text/csv" in accept


_REPORT_RESPONSES = {200: {"description": "The rows as JSON, or as CSV with `Accept: text/csv`", "content": {
    "application/json": {"schema": {"type": "object", "required": ["rows", "count"], "properties": {
        "rows": {"type": "array", "items": {"type": "object"}}, "count": {"type": "integer"},
        "next_cursor": {"type": ["string", "null"]}}}},
    "text/csv": {"schema": {"type": "string"}}}},
    400: {"description": "invalid_cursor: a cursor of another clinic, of other filters, or edited"}}
_MOMENT = "RFC 3339, or YYYY-MM-DD (that day in the clinic's time zone)"
DateOrTime = Annotated[str | None, Query(description=_MOMENT)]
AmountFilter = Annotated[str | None, Query(pattern=r"^[0-9]{1,13}$", description="minor units")]


@app.get("/v1/clinics/<clinic_id>/reports/qr-payments", access=Access.STAFF, responses=_REPORT_RESPONSES)
def qr_payments_report(clinic_id: Annotated[str, Path()],
                       from_: Annotated[str | None, Query(alias="from", description=_MOMENT)] = None,
                       to: DateOrTime = None, qr_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                       fiscal_status: Annotated[Literal["pending", "fiscalized", "failed"] | None, Query()] = None,
                       min_amount: AmountFilter = None, max_amount: AmountFilter = None,
                       limit: Annotated[int | None, Query(ge=1, le=qr_report.MAX_PAGE, description=(
                           "Rows per page (JSON only); without it, every row, as before"))] = None,
                       cursor: Annotated[str | None, Query(max_length=512, description=(
                           "`next_cursor` of the previous page, with the same filters"))] = None) -> Response[Any]:
    try:
        timezone = ClinicRepository(get_settings().app_table).get(clinic_id).timezone
    except NotFound:
        timezone = "UTC"
    given = {"from": from_, "to": to, "qr_id": qr_id, "fiscal_status": fiscal_status, "min_amount": min_amount,
             "max_amount": max_amount}
    filters = qr_report.parse_filters({name: value for name, value in given.items() if value is not None}, timezone)
    if _wants_csv():
        rows = qr_report.report_rows(_qr(), clinic_id, filters, with_refunds=True)
        return Response(200, "text/csv; charset=utf-8", qr_report.to_csv(rows),
                        headers={"Content-Disposition": f'attachment; filename="qr-payments-{clinic_id}.csv"'})
    if limit is None and cursor is None:
        rows = qr_report.report_rows(_qr(), clinic_id, filters, with_refunds=True)
        return Response(200, "application/json", json.dumps({"rows": rows, "count": len(rows), "next_cursor": None}))
    rows, next_cursor = qr_report.report_page(_qr(), clinic_id, filters, limit=limit or qr_report.MAX_PAGE,
                                              cursor=cursor)
    return Response(200, "application/json", json.dumps({"rows": rows, "count": len(rows), "next_cursor": next_cursor}))


@app.get("/v1/clinics/<clinic_id>/qr-payments/<payment_id>", access=Access.STAFF)
def get_payment(clinic_id: Annotated[str, Path()], payment_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> dict[str, Any]:
    store = _qr()
    payment = store.get_payment(clinic_id, payment_id)
    if payment is None:
        raise NotFound("No such QR payment.")
    return {"payment": qr_report.payment_detail(payment, store.refunds(clinic_id, payment_id), _checks)}


@app.post("/v1/clinics/<clinic_id>/qr-payments/<payment_id>/refunds", access=Access.STAFF, status_code=201,
          responses={201: {"description": "monobank gave the money back: the refund and the payment"},
                     202: {"description": "monobank is still deciding: the refund (pending) and the payment"}})
def refund_payment(clinic_id: Annotated[str, Path()], payment_id: Annotated[str, Path(pattern=ID_PATTERN)],
                   body: Annotated[QrRefundRequest, Body()]) -> Response[Any]:
    """Give back part or all of a QR payment through monobank; its return receipt follows."""
    store = _qr()
    key = header(app, "idempotency-key")
    outcome = qr_refunds.refund_payment(
        store, lambda: qr_acquirer(clinic_id), clinic_id, payment_id,
        refund_id=qr_refunds.refund_id_for(clinic_id, payment_id, key), amount=body.amount, reason=body.reason,
        now=_now())
    refund, payment = outcome.refund, outcome.payment
    if refund.status == "succeeded" and refund.fiscal_status.value == "pending":
        fiscalization.fiscalize_returns(store, _register, payment, clock=_now, checks=_checks)
        refund = store.get_refund(clinic_id, payment_id, refund.refund_id) or refund
        payment = store.get_payment(clinic_id, payment_id) or payment
    answer = {"refund": refund.view(), "payment": payment.row()}
    # 201 once monobank gave the money back, 202 while it is still deciding (webhook or our asking).
    return Response(201 if refund.status == "succeeded" else 202, "application/json", json.dumps(answer))


_MANUAL_ERRORS: dict[Outcome, type[ClinicpayError]] = {
    Outcome.ALREADY_FISCALIZED: AlreadyFiscalized,
    Outcome.IN_PROGRESS: FiscalizationInProgress,
    Outcome.SHIFT_CLOSED: ShiftClosed,
    Outcome.NOT_CONFIGURED: GatewayNotConfigured,
    Outcome.NOT_DUE: Conflict,
    Outcome.NOT_REQUIRED: AlreadyFiscalized,
    Outcome.WAITING_FOR_SALE: Conflict,
}


@app.post("/v1/clinics/<clinic_id>/qr-payments/<payment_id>/fiscalize", access=Access.STAFF,
          responses={200: {"description": "Fiscalized (or monobank made the receipt): the payment; with "
                                          "`returns` when return receipts were made"},
                     202: {"description": "The register accepted it; the receipt is on its way"}})
def fiscalize(clinic_id: Annotated[str, Path()], payment_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> Response[Any]:
    """A person asks for the receipts now: a pending or failed sale receipt, and the payment's return
    receipts still waiting or refused. Nothing left to make is a 409."""
    store = _qr()
    result = fiscalization.fiscalize_payment(store, _register, clinic_id, payment_id, clock=_now,
                                             allow_failed=True, respect_backoff=False, checks=_checks)
    if result.outcome is Outcome.ALREADY_FISCALIZED and result.payment is not None:
        result.returns = fiscalization.fiscalize_returns(store, _register, result.payment, clock=_now, checks=_checks,
                                                         allow_failed=True)
        if result.returns:
            after = (store.get_payment(clinic_id, payment_id) or result.payment).row()
            return Response(200, "application/json", json.dumps({"payment": after, "returns": [
                r.outcome.value for r in result.returns]}))
    row = result.payment.row() if result.payment else None
    details = [{"payment": row}] if row else []
    if result.outcome in (Outcome.FISCALIZED, Outcome.EXTERNAL):
        return Response(200, "application/json", json.dumps({"payment": row}))
    if result.outcome is Outcome.PROCESSING:
        return Response(202, "application/json", json.dumps({"payment": row}))
    if result.outcome is Outcome.UNAVAILABLE:
        raise ProviderUnavailable("The fiscal register is not answering; the payment stays pending.", retry_after=60,
                                  details=details)
    if result.outcome is Outcome.FAILED:
        message = result.error.message if result.error else None
        raise FiscalRejected(message, details=details)
    raise _MANUAL_ERRORS[result.outcome](details=details)


# ------------------------------------------------------------------ scheduled jobs
def _emit_unfiscalized(clinic_id: str, count: int) -> None:
    # One metric per clinic (dimension clinic_id), so an alarm can name the clinic.
    with single_metric(name="UnfiscalizedQrPayments", unit=MetricUnit.Count, value=count) as metric:
        metric.add_dimension(name="clinic_id", value=clinic_id)


def _job_deadline() -> float:
    """When this invocation stops starting receipts (time.monotonic)."""
    current = deadline.current()
    remaining = current.remaining() if current is not None else 60.0
    return time.monotonic() + max(remaining - JOB_MARGIN_SECONDS, 1)


def _shifts() -> ShiftRepository:
    return ShiftRepository(get_settings().app_table)


def run_unfiscalized_check(shard: int) -> dict[str, Any]:
    result = fiscal_check.unfiscalized_check(_qr(), _register, clock=_now, emit=_emit_unfiscalized,
                                             deadline=_job_deadline(), shard=shard, checks=_checks)
    # Shifts open past 23 hours, of this shard's clinics (the SHIFTOPEN kind of DueByShard).
    result["long_open_shifts"] = fiscal_shift_schedule.shifts_open_too_long(_shifts(), _register, _now, shard=shard,
                                                                            now=_now())
    return result


def run_fiscal_retry(shard: int) -> dict[str, Any]:
    return fiscal_check.retry_due(_qr(), _register, clock=_now, deadline=_job_deadline(), shard=shard, checks=_checks)


def run_shift_schedule(shard: int) -> dict[str, Any]:
    deps = fiscal_shift_schedule.ShiftScheduleDeps(clinics=ClinicRepository(get_settings().app_table),
                                                   shifts=_shifts(), store=_qr(), registers=_register, clock=_now,
                                                   deadline=_job_deadline())
    return fiscal_shift_schedule.run_shift_schedule(deps, shard, _now())


def run_qr_reconcile(shard: int) -> dict[str, Any]:
    deps = qr_reconcile.ReconcileDeps(store=_qr(), acquirers=qr_acquirer, registers=_register,
                                      fiscal_mode=fiscal_mode_of, clock=_now)
    return qr_reconcile.reconcile_qr_invoices(deps, shard=shard, now=_now(), deadline=_job_deadline())


# Scheduled: the dispatcher sends one message per shard (AwaitingFiscalization, DueByShard); each
# shard is one invocation (clinicpay.fanout).
jobs = fanout.Jobs({"unfiscalized-check": run_unfiscalized_check, "fiscal-retry": run_fiscal_retry,
                    "shift-schedule": run_shift_schedule, "qr-reconcile": run_qr_reconcile},
                   queue_url=lambda: get_settings().fiscalize_jobs_queue_url)


_http = idempotent_http(app.resolve)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
@lambda_deadline
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if fanout.is_job_event(event):
        return jobs.handle(event, context)
    return _http(event, context)


coldstart.loaded()
