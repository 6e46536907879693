"""The fiscal shift and Checkbox faults: nothing lost, pending visibly, fiscalized once possible."""

from __future__ import annotations

import pytest

from local import apigw
from tests.support.env import TestStack
from tests.support.qr import (
    QrClinic,
    create_qr_clinic,
    wait_for,
)


@pytest.fixture
def clinic(stack: TestStack) -> QrClinic:
    return create_qr_clinic(stack.sandbox_url("monobank"), stack.sandbox_url("checkbox"))


def pay(clinic: QrClinic, amount: int = 85000) -> str:
    invoice_id = clinic.put_amount(clinic.merchant_register(), amount)["invoice_id"]
    clinic.monobank.pay(invoice_id)
    payment_id = f"qrp_{invoice_id}"
    # The webhook answers once the payment is recorded and its first fiscal attempt is over.
    wait_for(lambda: any(d["status"] == "success" and d["status_code"] == 200
                         for d in clinic.monobank.deliveries(invoice_id)))
    return payment_id


def test_staff_open_see_and_close_the_shift(clinic: QrClinic) -> None:
    # Given no shift
    assert clinic.staff().get(clinic.path("/fiscal/shift")).json()["shift"]["status"] == "NONE"
    # When
    opened = clinic.open_shift()
    seen = clinic.staff().get(clinic.path("/fiscal/shift")).json()
    closed = clinic.staff().post(clinic.path("/fiscal/shift/close"))
    again = clinic.staff().post(clinic.path("/fiscal/shift/close"))
    # Then
    assert opened["shift"]["status"] == "OPENED" and opened["shift"]["shift_id"]
    assert seen["shift"]["shift_id"] == opened["shift"]["shift_id"]
    assert closed.status == 200 and closed.json()["shift"]["status"] in ("NONE", "CLOSED")
    assert again.status == 409 and again.json()["error"]["code"] == "shift_not_open"


def test_with_the_shift_closed_a_payment_waits_visibly_until_staff_open_it(clinic: QrClinic) -> None:
    # Given no open shift, a paid QR payment
    payment_id = pay(clinic)
    # Then it is pending, and says why
    row = clinic.payment(payment_id)
    assert row["fiscal_status"] == "pending" and row["fiscal"]["last_error"] == "fiscal_shift_closed"
    assert clinic.checkbox.receipts() == []
    # And a person asking now is told the same, and it stays pending
    asked = clinic.fiscalize(payment_id)
    assert asked.status == 409 and asked.json()["error"]["code"] == "fiscal_shift_closed"
    # And the daily check reports it
    report = apigw.invoke_job("unfiscalized-check")
    assert report["clinics"][clinic.clinic_id]["remaining"] == 1
    assert report["clinics"][clinic.clinic_id]["reasons"] == {"shift_closed": 1}
    # When staff open the shift
    opened = clinic.open_shift()
    # Then the waiting payment goes out with it
    assert opened["fiscalized"] == 1 and opened["still_pending"] == 0
    assert clinic.payment(payment_id)["fiscal_status"] == "fiscalized"
    assert len(clinic.checkbox.receipts()) == 1


def test_with_checkbox_down_the_payment_waits_with_attempts_and_backoff_then_the_daily_check_fiscalizes_it(
        clinic: QrClinic) -> None:
    # Given an open shift and a Checkbox that then answers 503 to every receipt
    clinic.open_shift()
    clinic.checkbox.fail_next(503, 100, path="/receipts")
    # When a payment arrives
    payment_id = pay(clinic)
    # Then nothing is lost: pending, with what went wrong and when it is tried again
    row = clinic.payment(payment_id)
    assert row["fiscal_status"] == "pending" and row["fiscal"]["attempts"] == 1
    assert row["fiscal"]["last_error"] == "provider_unavailable" and row["fiscal"]["next_attempt_at"]
    # And the frequent retry respects the backoff (not due yet)
    assert apigw.invoke_job("fiscal-retry")["clinics"][clinic.clinic_id]["reasons"] == {"not_due": 1}
    # When Checkbox is back and the daily check runs
    clinic.checkbox.clear_faults()
    report = apigw.invoke_job("unfiscalized-check")
    # Then
    assert report["fiscalized"] == 1 and report["clinics"][clinic.clinic_id]["remaining"] == 0
    assert clinic.payment(payment_id)["fiscal_status"] == "fiscalized"
    assert len(clinic.checkbox.receipts()) == 1


def test_a_receipt_the_tax_service_refuses_fails_and_a_person_gets_it_fiscalized(clinic: QrClinic) -> None:
    # Given an open shift and a first receipt that ends in ERROR
    clinic.open_shift()
    clinic.checkbox.error_next(1)
    payment_id = pay(clinic)
    failed = clinic.payment(payment_id)
    assert failed["fiscal_status"] == "failed" and failed["fiscal"]["last_error"].startswith("receipt_error")
    # When a person fiscalizes it by hand
    answer = clinic.fiscalize(payment_id)
    # Then it gets its receipt under a new id; the ERROR one is no fiscal document
    assert answer.status == 200, answer.body
    row = answer.json()["payment"]
    assert row["fiscal_status"] == "fiscalized"
    receipts = clinic.checkbox.receipts()
    assert sorted(r["status"] for r in receipts) == ["DONE", "ERROR"]
    assert next(r for r in receipts if r["status"] == "DONE")["id"] == row["receipt"]["id"]
    assert clinic.fiscalize(payment_id).status == 409


def test_without_checkbox_credentials_the_payment_waits_and_says_so(stack: TestStack) -> None:
    from tests.support.clinics import create_clinic
    from tests.support.qr import Checkbox, Monobank, QrClinic

    keys = create_clinic(country="UA", currency="UAH", timezone="Europe/Kyiv", locale="uk")
    assert keys.admin().put(keys.path("/gateways/monobank"), json={"token": f"mono_{keys.clinic_id}"}).status == 200
    clinic = QrClinic(keys, Monobank(stack.sandbox_url("monobank"), f"mono_{keys.clinic_id}"),
                      Checkbox(stack.sandbox_url("checkbox"), "none"))
    payment_id = pay(clinic)
    row = clinic.payment(payment_id)
    assert row["fiscal_status"] == "pending" and row["fiscal"]["last_error"] == "fiscal_register_not_configured"
