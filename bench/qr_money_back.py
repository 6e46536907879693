"""Money back from QR payments, counted: refunds tried concurrently, return receipts per reversal,
and a run whose monobank webhooks were all dropped, then reconciled.

    .venv/bin/python bench/qr_money_back.py [--trials 5] [--clicks 20] [--payments 50]

Runs against the local stack in-process (moto server, the monobank and Checkbox sandboxes, the real
handlers and use cases; tests/support/env.py), as the integration tests do:
1. refunds tried concurrently: per trial, a paid payment and `clicks` threads each asking to refund
   all of it with its own Idempotency-Key (use case + DynamoDB + the monobank sandbox); counts the
   refunds that went through and monobank's cancelList entries;
2. return receipts per reversal: per trial, a fiscalized payment refunded in monobank's cabinet and
   its `reversed` webhook delivered `clicks` times at once, with the daily check and a person's
   retry; counts the RETURN receipts Checkbox made;
3. the dropped-webhook run: `payments` amounts paid, failed, reversed, partly refunded or left
   unpaid with every webhook held back, then one reconciliation; prints each invoice's state
   against the truth.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "shared" / "python"), str(ROOT)]
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # the figures, not the metric lines

from tests.support.env import start_test_stack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--payments", type=int, default=50)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the figures, not the request log
    warnings.simplefilter("ignore")
    stack = start_test_stack()
    try:
        concurrent_refunds(stack, args.trials, args.clicks)
        duplicate_reversals(stack, args.trials, args.clicks)
        dropped_webhooks(stack, args.payments)
    finally:
        stack.server.stop()
        stack.moto.stop()


def _clinic(stack: Any, *, open_shift: bool = True) -> Any:
    from tests.support.qr import create_qr_clinic

    stack.reset()
    clinic = create_qr_clinic(stack.sandbox_url("monobank"), stack.sandbox_url("checkbox"))
    if open_shift:
        clinic.open_shift()
    return clinic


def _paid(clinic: Any, amount: int = 85000) -> tuple[str, str]:
    invoice_id = clinic.put_amount(clinic.merchant_register(), amount)["invoice_id"]
    clinic.monobank.pay(invoice_id)
    return invoice_id, clinic.wait_fiscalized(f"qrp_{invoice_id}")["payment_id"]


def concurrent_refunds(stack: Any, trials: int, clicks: int) -> None:
    print(f"== refunds tried concurrently: {trials} trials x {clicks} clicks, each its own Idempotency-Key")
    for trial in range(trials):
        print(f"trial {trial + 1}: {_refund_trial(stack, clicks)}")


def _refund_trial(stack: Any, clicks: int) -> str:
    from clinicpay.domain.errors import ClinicpayError
    from clinicpay.providers.registry import qr_acquirer
    from clinicpay.repositories.qr import QrRepository
    from clinicpay.settings import get_settings
    from clinicpay.usecases import qr_refunds
    from tests.support.qr import wait_for

    clinic = _clinic(stack)
    invoice_id, payment_id = _paid(clinic)
    store = QrRepository(get_settings().app_table)
    start = threading.Barrier(clicks)

    def click(n: int) -> str:
        start.wait()
        try:
            return qr_refunds.refund_payment(
                store, lambda: qr_acquirer(clinic.clinic_id), clinic.clinic_id, payment_id,
                refund_id=qr_refunds.refund_id_for(clinic.clinic_id, payment_id, f"k{n}"), amount=None,
                reason=None, now=datetime.now(UTC)).refund.status
        except ClinicpayError as refused:
            return refused.code

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clicks) as pool:
        outcomes = Counter(pool.map(click, range(clicks)))
    took = time.perf_counter() - began
    wait_for(lambda: clinic.payment(payment_id)["refund_status"] == "refunded", timeout=20)
    cancels = len(clinic.monobank.status(invoice_id).get("cancelList", []))
    row = clinic.payment(payment_id)
    return (f"outcomes {dict(outcomes)}; monobank cancels {cancels}; refunded {row['amount_refunded']['amount']} "
            f"of {row['amount']['amount']}; {took:.2f} s")


def duplicate_reversals(stack: Any, trials: int, copies: int) -> None:
    print(f"== return receipts per reversal: {trials} trials x ({copies} identical reversed webhooks "
          "+ daily check + manual)")
    for trial in range(trials):
        print(f"trial {trial + 1}: {_reversal_trial(stack, copies)}")


def _reversal_trial(stack: Any, copies: int) -> str:
    from clinicpay.providers.registry import fiscal_register
    from clinicpay.repositories.qr import QrRepository
    from clinicpay.settings import get_settings
    from clinicpay.usecases import fiscalization, monobank_webhook
    from local import apigw
    from tests.support.qr import wait_for

    clinic = _clinic(stack)
    invoice_id, payment_id = _paid(clinic)
    clinic.monobank.cabinet_refund(invoice_id, deliver=False)
    event = clinic.monobank.event(invoice_id, "reversed")
    store = QrRepository(get_settings().app_table)
    start = threading.Barrier(copies + 2)

    def webhook(_: int) -> Any:
        start.wait()
        return monobank_webhook.handle(clinic.clinic_id, event["body"].encode(), {"X-Sign": event["x_sign"]})

    def later(action: Any) -> Any:
        start.wait()
        wait_for(lambda: store.refunds(clinic.clinic_id, payment_id), interval=0.02)
        return action()

    def manual() -> Any:
        return fiscalization.fiscalize_returns(store, fiscal_register, store.get_payment(clinic.clinic_id, payment_id),  # type: ignore[arg-type]
                                               clock=lambda: datetime.now(UTC))

    with ThreadPoolExecutor(max_workers=copies + 2) as pool:
        futures = [pool.submit(webhook, n) for n in range(copies)]
        futures.append(pool.submit(later, lambda: apigw.invoke_job("unfiscalized-check")))
        futures.append(pool.submit(later, manual))
        for future in futures:
            future.result()
    wait_for(lambda: any(r["type"] == "RETURN" for r in clinic.checkbox.receipts()), timeout=20)
    kinds = Counter(r["type"] for r in clinic.checkbox.receipts() if r["status"] == "DONE")
    return f"refunds recorded {len(clinic.payment(payment_id)['refunds'])}; Checkbox receipts {dict(kinds)}"


def dropped_webhooks(stack: Any, payments: int) -> None:
    import boto3

    from clinicpay.providers.registry import fiscal_register, qr_acquirer
    from clinicpay.repositories.qr import QrRepository
    from clinicpay.settings import get_settings
    from clinicpay.usecases import qr_reconcile
    from clinicpay.usecases.monobank_webhook import fiscal_mode_of

    print(f"== dropped-webhook run: {payments} QR amounts, every monobank webhook held back, then reconciliation")
    clinic = _clinic(stack)
    clinic.monobank.hold()
    registers = [r["qr_id"] for r in clinic.sync() if r["amount_type"] == "merchant"]
    kinds = ["paid"] * 6 + ["failed", "reversed", "partly_refunded", "unpaid"]
    truth: dict[str, str] = {}
    for n in range(payments):
        amount = 10000 + 100 * n
        invoice_id = clinic.put_amount(registers[n % 2], amount)["invoice_id"]
        truth[invoice_id] = kinds[n % len(kinds)]
        if truth[invoice_id] == "failed":
            clinic.monobank.pay(invoice_id, deliver=False, action="fail")
        elif truth[invoice_id] != "unpaid":
            clinic.monobank.pay(invoice_id, deliver=False)
        if truth[invoice_id] == "reversed":
            clinic.monobank.cabinet_refund(invoice_id)
        if truth[invoice_id] == "partly_refunded":
            clinic.monobank.cabinet_refund(invoice_id, amount=amount // 4)
    print(f"before: QR payments we know of {len(clinic.report())}; webhooks delivered "
          f"{len(clinic.monobank.deliveries(''))}; truth {dict(Counter(truth.values()))}")
    now = datetime.now(UTC) + timedelta(minutes=10)
    deps = qr_reconcile.ReconcileDeps(store=QrRepository(get_settings().app_table), acquirers=qr_acquirer,
                                      registers=lambda cid: fiscal_register(cid, quick=True),
                                      fiscal_mode=fiscal_mode_of, clock=lambda: now)
    began = time.perf_counter()
    result = qr_reconcile.reconcile_qr_invoices(deps, clinic_id=clinic.clinic_id, now=now)
    took = time.perf_counter() - began
    rows = {row["invoice_id"]: row for row in clinic.report()}
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    right = 0
    for invoice_id, kind in truth.items():
        row = rows.get(invoice_id)
        status = table.get_item(Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"QRINV#{invoice_id}"})["Item"]["status"]
        expected = {"paid": ("none", "fiscalized"), "reversed": ("refunded", "fiscalized"),
                    "partly_refunded": ("partially_refunded", "fiscalized")}.get(kind)
        if expected is None:
            right += row is None and status in ("failure", "expired", "created")
        else:
            right += row is not None and (row["refund_status"], row["fiscal_status"]) == expected and all(
                d["fiscal_status"] == "fiscalized" for d in row["fiscal_documents"])
    receipts = Counter(r["type"] for r in clinic.checkbox.receipts() if r["status"] == "DONE")
    print(f"after one reconciliation ({took:.1f} s, asked {result['asked']}): in their true state "
          f"{right}/{payments}; payments {len(rows)}; Checkbox receipts {dict(receipts)}; "
          f"invoice outcomes {result['outcomes']}")


if __name__ == "__main__":
    main()
