"""Reconciliation of QR payments: a webhook monobank never delivered (it tries 3 times) is not a lost
payment, nor a lost refund.

Every QR invoice we put on a register stays in the undecided index until monobank reports a final
status for it, and every refund of ours until monobank says how it went (repositories/qr.py,
DueByShard). `reconcile_qr_invoices` asks monobank's invoice/status about each one older than a few
minutes, with the clinic's own token, and applies the answer through exactly the code a webhook
goes through (usecases/monobank_webhook.apply_qr_update): ownership, the payment once, each refund
once, and the receipts now due. An invoice that expired (monobank sends no webhook for that) leaves
the index the same way. A refund of ours that monobank still does not list long after we asked
never reached it: it fails and its reservation is released.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from clinicpay.domain.errors import ClinicpayError, GatewayNotConfigured
from clinicpay.domain.fiscal import FiscalizedBy
from clinicpay.domain.qr import Undecided, iso
from clinicpay.observability import logger
from clinicpay.usecases import qr_refunds
from clinicpay.usecases.fiscalization import Clock, RegisterFactory
from clinicpay.usecases.monobank_webhook import apply_qr_update

if TYPE_CHECKING:
    from clinicpay.ports.qr import QrAcquirer, QrStore

# Younger than this, a webhook is most likely on its way: not worth asking yet.
MIN_AGE = timedelta(minutes=3)


@dataclass
class ReconcileDeps:
    store: QrStore
    acquirers: Callable[[str], QrAcquirer]  # the clinic's monobank merchant (GatewayNotConfigured: none)
    registers: RegisterFactory
    fiscal_mode: Callable[[str], FiscalizedBy]
    clock: Clock


def reconcile_qr_invoices(deps: ReconcileDeps, *, shard: int | None = None, clinic_id: str | None = None,
                          now: datetime, deadline: float | None = None) -> dict[str, Any]:
    """Ask monobank about every undecided QR invoice and refund of one shard (a job's invocation),
    of one clinic, or (neither) of all; apply each answer as its webhook would have been."""
    items = deps.store.undecided(clinic_id, shard=shard, older_than=iso(now - MIN_AGE))
    by_clinic: dict[str, dict[str, list[Undecided]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        by_clinic[item.clinic_id][item.invoice_id].append(item)
    outcomes: Counter[str] = Counter()
    asked = 0
    for cid, invoices in sorted(by_clinic.items()):
        try:
            acquirer = deps.acquirers(cid)
        except GatewayNotConfigured:
            outcomes["not_configured"] += len(invoices)
            continue
        for invoice_id, undecided in invoices.items():
            if deadline is not None and time.monotonic() > deadline:
                outcomes["not_reached"] += 1
                continue
            asked += 1
            outcomes[_reconcile_one(deps, acquirer, cid, invoice_id, undecided, now)] += 1
    result = {"job": "qr-reconcile", "shard": shard, "undecided": len(items), "asked": asked,
              "outcomes": dict(outcomes)}
    logger.info("qr reconciliation done", extra={k: v for k, v in result.items() if k != "job"})
    return result


def _reconcile_one(deps: ReconcileDeps, acquirer: QrAcquirer, clinic_id: str, invoice_id: str,
                   undecided: list[Undecided], now: datetime) -> str:
    log = {"clinic_id": clinic_id, "invoice_id": invoice_id}
    try:
        update = acquirer.invoice_status(invoice_id)
    except ClinicpayError as error:
        # Unreachable, or refused: it stays undecided and the next run asks again.
        logger.info("monobank not answering about an undecided invoice", extra={**log, "error_code": error.code})
        return "unavailable"
    answer = apply_qr_update(deps.store, acquirer, clinic_id, update, deps.clock(), registers=deps.registers,
                             fiscal_mode=lambda: deps.fiscal_mode(clinic_id), clock=deps.clock)
    for item in undecided:
        if item.kind == "refund" and item.refund_key:
            payment_id, _, refund_id = item.refund_key.removeprefix("QRREF#").partition("#")
            refund = deps.store.get_refund(clinic_id, payment_id, refund_id)
            if refund is not None and qr_refunds.settle_unseen(deps.store, refund, update, now, asked_at=item.since):
                logger.warning("qr refund never reached monobank: failed, reservation released", extra={
                    **log, "refund_id": refund_id})
    outcome = (answer or {}).get("outcome", "link")
    logger.info("undecided qr invoice reconciled", extra={**log, "status": update.status.value, "outcome": outcome})
    return f"{update.status.value}:{outcome}"
