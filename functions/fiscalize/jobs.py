"""fiscalize's scheduled jobs: `unfiscalized-check` (daily), `fiscal-retry`, `shift-schedule` and
`qr-reconcile`. The dispatcher sends one message per shard (AwaitingFiscalization, DueByShard); each
shard is one invocation (clinicpay.fanout). Loaded by app.py's job branch only: an HTTP request never
pays for it."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from clinicpay import deadline, fanout
from clinicpay.api.route_groups import function_module
from clinicpay.providers.registry import qr_acquirer
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import fiscal_check, fiscal_shift_schedule, qr_reconcile
from clinicpay.usecases.monobank_webhook import fiscal_mode_of

dependencies = function_module(__file__, "dependencies")

JOB_MARGIN_SECONDS = 20  # stop starting new receipts this long before the function's timeout


def _emit_unfiscalized(clinic_id: str, count: int) -> None:
    # One metric per clinic (dimension clinic_id), so an alarm can name the clinic.
    with single_metric(name="UnfiscalizedQrPayments", unit=MetricUnit.Count, value=count) as metric:
        metric.add_dimension(name="clinic_id", value=clinic_id)


def _job_deadline() -> float:
    """When this invocation stops starting receipts (time.monotonic)."""
    current = deadline.current()
    remaining = current.remaining() if current is not None else 60.0
    return time.monotonic() + max(remaining - JOB_MARGIN_SECONDS, 1)


def run_unfiscalized_check(shard: int) -> dict[str, Any]:
    result = fiscal_check.unfiscalized_check(dependencies.qr_store(), dependencies.register, clock=dependencies.now,
                                             emit=_emit_unfiscalized, deadline=_job_deadline(), shard=shard,
                                             checks=dependencies.checks)
    # Shifts open past 23 hours, of this shard's clinics (the SHIFTOPEN kind of DueByShard).
    result["long_open_shifts"] = fiscal_shift_schedule.shifts_open_too_long(
        dependencies.shifts(), dependencies.register, dependencies.now, shard=shard, now=dependencies.now())
    return result


def run_fiscal_retry(shard: int) -> dict[str, Any]:
    return fiscal_check.retry_due(dependencies.qr_store(), dependencies.register, clock=dependencies.now,
                                  deadline=_job_deadline(), shard=shard, checks=dependencies.checks)


def run_shift_schedule(shard: int) -> dict[str, Any]:
    deps = fiscal_shift_schedule.ShiftScheduleDeps(clinics=ClinicRepository(get_settings().app_table),
                                                   shifts=dependencies.shifts(), store=dependencies.qr_store(),
                                                   registers=dependencies.register, clock=dependencies.now,
                                                   deadline=_job_deadline())
    return fiscal_shift_schedule.run_shift_schedule(deps, shard, dependencies.now())


def run_qr_reconcile(shard: int) -> dict[str, Any]:
    deps = qr_reconcile.ReconcileDeps(store=dependencies.qr_store(), acquirers=qr_acquirer,
                                      registers=dependencies.register, fiscal_mode=fiscal_mode_of, clock=dependencies.now)
    return qr_reconcile.reconcile_qr_invoices(deps, shard=shard, now=dependencies.now(), deadline=_job_deadline())


jobs = fanout.Jobs({"unfiscalized-check": run_unfiscalized_check, "fiscal-retry": run_fiscal_retry,
                    "shift-schedule": run_shift_schedule, "qr-reconcile": run_qr_reconcile},
                   queue_url=lambda: get_settings().fiscalize_jobs_queue_url)
