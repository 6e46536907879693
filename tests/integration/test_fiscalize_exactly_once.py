"""Exactly one receipt per payment, ever (issue 4, "Bad input and faults")."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import requests

from clinicpay.providers.registry import fiscal_register
from clinicpay.repositories.qr import QrRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import fiscal_check, fiscalization, monobank_webhook
from clinicpay.usecases.fiscalization import Outcome
from local import apigw
from tests.support.env import TestStack
from tests.support.qr import (
    QrClinic,
    create_qr_clinic,
    wait_for,
)


@pytest.fixture
def clinic(stack: TestStack) -> QrClinic:
    clinic = create_qr_clinic(stack.sandbox_url("monobank"), stack.sandbox_url("checkbox"))
    clinic.open_shift()
    return clinic


def test_twenty_identical_paid_webhooks_the_daily_check_and_a_manual_fiscalize_at_once_make_one_receipt(
        clinic: QrClinic, stack: TestStack) -> None:
    # Given a paid invoice whose webhooks the sandbox keeps for us, and a Checkbox that takes a
    # second to answer, so every actor arrives while the first one is still talking to it
    invoice_id = clinic.put_amount(clinic.merchant_register(), 85000)["invoice_id"]
    clinic.monobank.pay(invoice_id, deliver=False)
    success = clinic.monobank.event(invoice_id, "success")
    clinic.checkbox.fail_next("timeout", 1, path="/receipts/sell", seconds=1.0)
    payment_id = f"qrp_{invoice_id}"
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    start = threading.Barrier(22)

    def webhook(_: int) -> int:
        start.wait()
        return requests.post(f"{stack.base_url}/webhooks/monobank/{clinic.clinic_id}", data=success["body"].encode(),
                             headers={"X-Sign": success["x_sign"], "Content-Type": "application/json"},
                             timeout=30).status_code

    def payment_exists() -> bool:
        return "Item" in table.get_item(Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"QRPAY#{payment_id}"})

    def daily_check() -> Any:
        start.wait()
        wait_for(payment_exists, interval=0.02)  # then its receipt is being made, slowly
        return apigw.invoke_job("unfiscalized-check")

    def manual() -> int:
        start.wait()
        wait_for(payment_exists, interval=0.02)
        return clinic.fiscalize(payment_id).status

    # When
    with ThreadPoolExecutor(max_workers=22) as pool:
        hooks = [pool.submit(webhook, n) for n in range(20)]
        job, person = pool.submit(daily_check), pool.submit(manual)
        statuses = [h.result() for h in hooks]
        job_result, manual_status = job.result(), person.result()
    # Then
    assert statuses == [200] * 20
    assert manual_status in (200, 409), manual_status
    assert job_result["job"] == "unfiscalized-check"
    row = clinic.wait_fiscalized(payment_id)
    receipts = clinic.checkbox.receipts()
    assert len(receipts) == 1 and receipts[0]["id"] == row["receipt"]["id"] and receipts[0]["status"] == "DONE"
    assert len(clinic.report()) == 1


def test_a_sell_that_timed_out_but_landed_is_not_made_twice(clinic: QrClinic) -> None:
    # Given Checkbox makes the receipt but answers after our timeout (3 s in tests)
    clinic.checkbox.fail_next("timeout", 1, path="/receipts/sell", seconds=4.0)
    invoice_id = clinic.put_amount(clinic.merchant_register(), 12000)["invoice_id"]
    # When the payment arrives and is fiscalized (the retry reuses the receipt id)
    clinic.monobank.pay(invoice_id)
    # Then
    row = clinic.wait_fiscalized(f"qrp_{invoice_id}", timeout=30)
    assert [r["id"] for r in clinic.checkbox.receipts()] == [row["receipt"]["id"]]


def test_a_webhook_delivered_again_later_changes_nothing(clinic: QrClinic) -> None:
    invoice_id = clinic.put_amount(clinic.merchant_register(), 3000)["invoice_id"]
    clinic.monobank.pay(invoice_id)
    row = clinic.wait_fiscalized(f"qrp_{invoice_id}")
    success = clinic.monobank.event(invoice_id, "success")
    again = clinic.send_webhook(success["body"], success["x_sign"])
    assert again.status == 200 and again.json()["fiscal_status"] == "fiscalized"
    assert clinic.payment(row["payment_id"]) == row and len(clinic.checkbox.receipts()) == 1


def test_truly_in_parallel_at_the_use_case_level_one_receipt_still(clinic: QrClinic) -> None:
    """The same race without the local HTTP layer (which runs handlers one at a time): the webhook
    use case twenty times in parallel threads, the daily check and a person's fiscalize, against moto
    and the Checkbox sandbox."""
    # Given
    invoice_id = clinic.put_amount(clinic.merchant_register(), 64000)["invoice_id"]
    clinic.monobank.pay(invoice_id, deliver=False)
    success = clinic.monobank.event(invoice_id, "success")
    clinic.checkbox.fail_next("timeout", 1, path="/receipts/sell", seconds=1.0)
    payment_id = f"qrp_{invoice_id}"
    store = QrRepository(get_settings().app_table)
    start = threading.Barrier(22)

    def webhook(_: int) -> dict[str, Any]:
        start.wait()
        return monobank_webhook.handle(clinic.clinic_id, success["body"].encode(), {"X-Sign": success["x_sign"]})

    def after_the_payment_exists(action: Any) -> Any:
        start.wait()
        wait_for(lambda: store.get_payment(clinic.clinic_id, payment_id), interval=0.02)
        return action()

    # When
    with ThreadPoolExecutor(max_workers=22) as pool:
        hooks = [pool.submit(webhook, n) for n in range(20)]
        job = pool.submit(after_the_payment_exists, lambda: fiscal_check.unfiscalized_check(
            store, fiscal_register, clock=lambda: datetime.now(UTC), emit=lambda *_: None))
        person = pool.submit(after_the_payment_exists, lambda: fiscalization.fiscalize_payment(
            store, fiscal_register, clinic.clinic_id, payment_id, clock=lambda: datetime.now(UTC),
            allow_failed=True, respect_backoff=False))
        answers = [h.result() for h in hooks]
        job.result()
        outcome = person.result().outcome
    # Then
    assert all(a["payment_id"] == payment_id for a in answers)
    assert outcome in (Outcome.FISCALIZED, Outcome.IN_PROGRESS, Outcome.ALREADY_FISCALIZED)
    row = clinic.wait_fiscalized(payment_id)
    assert [r["id"] for r in clinic.checkbox.receipts()] == [row["receipt"]["id"]]
