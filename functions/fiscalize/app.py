"""fiscalize: monobank QR registers and amounts, Checkbox receipts and shifts, the QR payments report,
manual fiscalization, QR refunds, and the scheduled `unfiscalized-check` (daily), `fiscal-retry`,
`shift-schedule` and `qr-reconcile` jobs.

Routes parse, authenticate (staff) and call one use case; they live in route groups next to this file
(api/route_groups.py), each loaded by the first request to one of its paths. A job event (`{"job": ...}`
from the schedule, or the job queue's batch of shards: clinicpay.fanout) runs the job instead of the
resolver; its code (jobs.py) loads with the first one.
"""

from __future__ import annotations

from clinicpay import coldstart  # first: the garbage collector waits while this module loads

# isort: split
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from clinicpay.api.resolver import make_resolver
from clinicpay.api.route_groups import function_module
from clinicpay.deadline import lambda_deadline
from clinicpay.job_events import is_job_event
from clinicpay.observability import logger, metrics, tracer
from clinicpay.snapstart import before_snapshot

app = make_resolver()
app.route_groups(__file__, {
    "qr_registers": ("/v1/clinics/<clinic_id>/qr-registers/sync", "/v1/clinics/<clinic_id>/qr-registers",
                     "/v1/clinics/<clinic_id>/qr-registers/<qr_id>/amount"),
    "fiscal_shift": ("/v1/clinics/<clinic_id>/fiscal/shift", "/v1/clinics/<clinic_id>/fiscal/shift/open",
                     "/v1/clinics/<clinic_id>/fiscal/shift/close"),
    "qr_report": ("/v1/clinics/<clinic_id>/reports/qr-payments",),
    "qr_payments": ("/v1/clinics/<clinic_id>/qr-payments/<payment_id>",
                    "/v1/clinics/<clinic_id>/qr-payments/<payment_id>/refunds",
                    "/v1/clinics/<clinic_id>/qr-payments/<payment_id>/fiscalize"),
})
before_snapshot(lambda: function_module(__file__, "jobs"))  # a restored job container finds its code loaded too


@lru_cache(maxsize=1)
def _http() -> Any:
    # Idempotency-Key handling (api/idempotency.py) loads with the first HTTP request (with SnapStart, before
    # the snapshot): job invocations never need it.
    from clinicpay.api.idempotency import idempotent_http

    return idempotent_http(app.resolve)


before_snapshot(_http)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
@lambda_deadline
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_job_event(event):
        jobs = function_module(__file__, "jobs").jobs
        return jobs.handle(event, context)
    return _http()(event, context)


coldstart.loaded()
