"""Reconciliation of QR invoices whose webhooks never came, and scheduled fiscal shifts (issue 9
items 3, 7), against moto and the monobank and Checkbox sandboxes."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from clinicpay.providers.registry import qr_acquirer
from clinicpay.repositories.qr import QrRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import qr_reconcile
from clinicpay.usecases.monobank_webhook import fiscal_mode_of
from local import apigw
from tests.support.env import TestStack
from tests.support.qr import QrClinic, create_qr_clinic, wait_for


@pytest.fixture
def clinic(stack: TestStack) -> QrClinic:
    return create_qr_clinic(stack.sandbox_url("monobank"), stack.sandbox_url("checkbox"))


def _register(clinic_id: str) -> Any:
    from clinicpay.providers.registry import fiscal_register

    return fiscal_register(clinic_id, quick=True)


def reconcile(clinic: QrClinic, *, minutes_later: int = 10) -> dict[str, Any]:
    """The job's use case with the function's own wiring, run as if `minutes_later` had passed."""
    now = datetime.now(UTC) + timedelta(minutes=minutes_later)
    deps = qr_reconcile.ReconcileDeps(store=QrRepository(get_settings().app_table), acquirers=qr_acquirer,
                                      registers=_register, fiscal_mode=fiscal_mode_of, clock=lambda: now)
    return qr_reconcile.reconcile_qr_invoices(deps, clinic_id=clinic.clinic_id, now=now)


def test_fifty_mixed_payments_whose_webhooks_were_all_dropped_end_in_their_true_state(clinic: QrClinic) -> None:
    # Given monobank delivers no webhook at all, and fifty amounts put on the two registers, each
    # paid, failed, paid then reversed, paid then partly refunded, or left unpaid
    clinic.open_shift()
    clinic.monobank.hold()
    registers = [r["qr_id"] for r in clinic.sync() if r["amount_type"] == "merchant"]
    truth: dict[str, str] = {}
    for n in range(50):
        amount = 10000 + 100 * n
        invoice_id = clinic.put_amount(registers[n % 2], amount)["invoice_id"]
        kind = ["paid"] * 6 + ["failed", "reversed", "partly_refunded", "unpaid"]
        truth[invoice_id] = kind[n % 10]
        if truth[invoice_id] == "failed":
            clinic.monobank.pay(invoice_id, deliver=False, action="fail")
        elif truth[invoice_id] != "unpaid":
            clinic.monobank.pay(invoice_id, deliver=False)
        if truth[invoice_id] == "reversed":
            clinic.monobank.cabinet_refund(invoice_id)
        if truth[invoice_id] == "partly_refunded":
            clinic.monobank.cabinet_refund(invoice_id, amount=amount // 4)
    assert clinic.report() == [] and clinic.monobank.deliveries("") == []  # nothing reached us
    # When reconciliation runs (the webhooks are still held: it learns only by asking)
    result = reconcile(clinic)
    # Then every invoice is in its true state, fiscalized where due, each refund with its return
    rows = {row["invoice_id"]: row for row in clinic.report()}
    expected_paid = {i for i, k in truth.items() if k in ("paid", "reversed", "partly_refunded")}
    assert set(rows) == expected_paid and len(rows) == 40
    assert all(row["fiscal_status"] == "fiscalized" for row in rows.values())
    assert Counter(rows[i]["refund_status"] for i in expected_paid) == {"none": 30, "refunded": 5,
                                                                          "partially_refunded": 5}
    receipts = Counter(r["type"] for r in clinic.checkbox.receipts() if r["status"] == "DONE")
    assert receipts == {"SELL": 40, "RETURN": 10}
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    states = {i: table.get_item(Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"QRINV#{i}"})["Item"]["status"]
              for i, k in truth.items() if k in ("failed", "unpaid")}
    # an unpaid amount expired when the next one was put on its register; the last still waits
    assert Counter(states.values()) == {"failure": 5, "expired": 4, "created": 1}
    assert result["asked"] == 50
    # And asking again asks only about the one still waiting for its patient; the held webhooks
    # arriving late change nothing
    assert reconcile(clinic, minutes_later=20)["asked"] == 1
    clinic.monobank.hold(False)
    for invoice_id in list(truth)[:10]:
        for event in clinic.monobank.events(invoice_id):
            assert clinic.send_webhook(event["body"], event["x_sign"]).status == 200
    assert Counter(r["type"] for r in clinic.checkbox.receipts() if r["status"] == "DONE") == {"SELL": 40, "RETURN": 10}


def test_a_refund_whose_webhook_was_dropped_is_settled_by_reconciliation(clinic: QrClinic) -> None:
    clinic.open_shift()
    invoice_id = clinic.put_amount(clinic.merchant_register(), 40000)["invoice_id"]
    clinic.monobank.pay(invoice_id)
    payment_id = clinic.wait_fiscalized(f"qrp_{invoice_id}")["payment_id"]
    clinic.monobank.hold()
    assert clinic.refund(payment_id, 15000).status == 202
    assert clinic.payment(payment_id)["refund_pending"]["amount"] == 15000
    # monobank completes the refund; its webhook never comes
    wait_for(lambda: clinic.monobank.status(invoice_id)["cancelList"][0]["status"] == "success")
    reconcile(clinic)
    row = clinic.payment(payment_id)
    assert row["refund_status"] == "partially_refunded" and row["refund_pending"]["amount"] == 0
    assert Counter(r["type"] for r in clinic.checkbox.receipts()) == {"SELL": 1, "RETURN": 1}


def test_the_reconcile_job_runs_under_the_functions_role(clinic: QrClinic) -> None:
    clinic.put_amount(clinic.merchant_register(), 1000)
    result = apigw.invoke_job("qr-reconcile")
    # Nothing is old enough yet to be worth asking about; the role allowed every call it made.
    assert result["job"] == "qr-reconcile" and result["asked"] == 0 and result["undecided"] == 0


# --- scheduled shifts -------------------------------------------------------------------------------

def _hhmm(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("Europe/Kyiv")).strftime("%H:%M")


def test_the_shift_schedule_opens_and_closes_the_clinics_shift(clinic: QrClinic) -> None:
    now = datetime.now(UTC)
    # Given a schedule whose window is open right now, in the clinic's zone (Kyiv)
    settings = clinic.settings(fiscal_shift_schedule={"open": _hhmm(now - timedelta(hours=1)),
                                                      "close": _hhmm(now + timedelta(hours=2))})
    assert settings["fiscal_shift_schedule"]["open"] == _hhmm(now - timedelta(hours=1))
    # When the job runs, twice
    first = apigw.invoke_job("shift-schedule")
    second = apigw.invoke_job("shift-schedule")
    # Then the shift opened once
    assert first["clinics"] == {clinic.clinic_id: "opened"} and second["clinics"] == {clinic.clinic_id: "none"}
    assert clinic.staff().get(clinic.path("/fiscal/shift")).json()["shift"]["status"] == "OPENED"
    # When the window has passed
    clinic.settings(fiscal_shift_schedule={"open": _hhmm(now - timedelta(hours=3)),
                                           "close": _hhmm(now - timedelta(hours=1))})
    closed = apigw.invoke_job("shift-schedule")
    assert closed["clinics"] == {clinic.clinic_id: "closed"}
    assert clinic.staff().get(clinic.path("/fiscal/shift")).json()["shift"]["status"] in ("CLOSED", "NONE")
    # And without a schedule the clinic is no longer the job's
    clinic.settings(fiscal_shift_schedule=None)
    assert apigw.invoke_job("shift-schedule")["clinics"] == {}


def test_settings_say_who_fiscalizes_and_refuse_what_is_not_a_schedule(clinic: QrClinic) -> None:
    assert clinic.settings(fiscalization="none")["fiscalization"] == "none"
    for bad in ({"fiscalization": "tax_office"}, {"fiscal_shift_schedule": {"open": "8:00", "close": "20:00"}},
                {"fiscal_shift_schedule": {"open": "20:00", "close": "20:00"}},
                {"fiscal_shift_schedule": {"open": "08:00"}}):
        answer = clinic.keys.admin().patch(clinic.path("/settings"), json=bad)
        assert answer.status == 422, (bad, answer.body)
    staff_view = clinic.staff().get(clinic.path("/settings"))
    assert staff_view.status == 200 and staff_view.json()["fiscalization"] == "none"


def test_the_daily_check_reports_shifts_left_open_past_23_hours(clinic: QrClinic) -> None:
    clinic.open_shift()
    # Given our record says the shift opened 23.5 hours ago (as Checkbox would, for a long one)
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    opened = (datetime.now(UTC) - timedelta(hours=23, minutes=30)).isoformat()
    table.update_item(Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": "SHIFT"},
                      UpdateExpression="SET opened_at = :o", ExpressionAttributeValues={":o": opened})
    _checkbox_opened_at(clinic, opened)
    # When
    report = apigw.invoke_job("unfiscalized-check")
    # Then
    [row] = report["long_open_shifts"]
    assert row["clinic_id"] == clinic.clinic_id and row["open_hours"] == 23


def _checkbox_opened_at(clinic: QrClinic, opened: str) -> None:
    from local.sandboxes import checkbox

    with checkbox.STATE.lock:
        shift = checkbox.STATE.registers[clinic.checkbox.license_key].shift
        assert shift is not None
        shift["opened_at"] = opened
