"""The daily `unfiscalized-check` and the frequent `fiscal-retry` sweep.

Both read only the AwaitingFiscalization index (payments still without a receipt), never the
payment history; scheduled, each invocation reads one shard of it (`shard`, clinicpay.fanout). The
daily check tries everything regardless of backoff and reports, per clinic, what is still without a
receipt: a log line and one metric (`emit`). The retry sweep only tries what is due, so a register
that is down is asked again on a bounded backoff, not every minute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clinicpay.observability import logger
from clinicpay.usecases.fiscalization import ChecksFactory, Clock, RegisterFactory, fiscalize_waiting

if TYPE_CHECKING:
    from clinicpay.ports.qr import QrStore

MetricSink = Callable[[str, int], None]


def unfiscalized_check(store: QrStore, registers: RegisterFactory, *, clock: Clock, emit: MetricSink,
                       deadline: float | None = None, shard: int | None = None,
                       checks: ChecksFactory | None = None) -> dict[str, Any]:
    report = fiscalize_waiting(store, registers, clock=clock, shard=shard, respect_backoff=False, deadline=deadline,
                               checks=checks)
    for clinic_id, sweep in sorted(report.clinics.items()):
        extra = {"clinic_id": clinic_id, **sweep.view()}
        if sweep.remaining:
            logger.warning("QR payments still without a fiscal receipt", extra=extra)
        else:
            logger.info("all waiting QR payments fiscalized", extra=extra)
        # Zero too, so an alarm on a clinic clears once its backlog is gone.
        emit(clinic_id, sweep.remaining)
    view = report.view()
    logger.info("unfiscalized check done", extra={"shard": shard, **{k: view[k] for k in ("items_read", "fiscalized",
                                                                                         "remaining")}})
    return {"job": "unfiscalized-check", **view}


def retry_due(store: QrStore, registers: RegisterFactory, *, clock: Clock, deadline: float | None = None,
              shard: int | None = None, checks: ChecksFactory | None = None) -> dict[str, Any]:
    report = fiscalize_waiting(store, registers, clock=clock, shard=shard, respect_backoff=True, deadline=deadline,
                               checks=checks)
    view = report.view()
    logger.info("fiscal retry sweep done", extra={"shard": shard, **{k: view[k] for k in ("items_read", "fiscalized",
                                                                                          "remaining")}})
    return {"job": "fiscal-retry", **view}
