"""Route group: the QR payments report, as JSON pages or CSV (staff)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.errors import NotFound
from clinicpay.domain.qr import ID_PATTERN
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import qr_report

app = loading_routes()
dependencies = function_module(__file__, "dependencies")


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
        rows = qr_report.report_rows(dependencies.qr_store(), clinic_id, filters, with_refunds=True)
        return Response(200, "text/csv; charset=utf-8", qr_report.to_csv(rows),
                        headers={"Content-Disposition": f'attachment; filename="qr-payments-{clinic_id}.csv"'})
    if limit is None and cursor is None:
        rows = qr_report.report_rows(dependencies.qr_store(), clinic_id, filters, with_refunds=True)
        return Response(200, "application/json", json.dumps({"rows": rows, "count": len(rows), "next_cursor": None}))
    rows, next_cursor = qr_report.report_page(dependencies.qr_store(), clinic_id, filters,
                                              limit=limit or qr_report.MAX_PAGE, cursor=cursor)
    return Response(200, "application/json", json.dumps({"rows": rows, "count": len(rows), "next_cursor": next_cursor}))
