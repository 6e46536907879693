"""QR payments through monobank, fiscalized through Checkbox: the handlers in-process against moto
and both sandboxes (issue 4)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.clinics import add_service
from tests.support.env import TestStack
from tests.support.qr import (
    QrClinic,
    create_qr_clinic,
    wait_for,
)


@pytest.fixture
def clinic(stack: TestStack) -> QrClinic:
    return create_qr_clinic(stack.sandbox_url("monobank"), stack.sandbox_url("checkbox"))


def book(clinic: QrClinic, amount: int = 85000) -> str:
    add_service(clinic.keys, "consult", amount, "UAH", online=False)
    starts = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
    created = clinic.staff().post(clinic.path("/appointments"), json={
        "patient": {"id": "pat_1", "name": "Олена Коваль", "email": "olena@example.ua"}, "service_id": "consult",
        "starts_at": starts, "booked_by": "staff"})
    assert created.status == 201, created.body
    return str(created.json()["appointment_id"])


def fiscalized_row(clinic: QrClinic, payment_id: str) -> dict:
    return next(r for r in clinic.report() if r["payment_id"] == payment_id and r["fiscal_status"] == "fiscalized")


def test_staff_sync_the_clinics_registers_and_see_them(clinic: QrClinic) -> None:
    # When
    synced = clinic.sync()
    listed = clinic.staff().get(clinic.path("/qr-registers"))
    # Then
    assert len(synced) == 3 and {r["amount_type"] for r in synced} == {"merchant", "client"}
    assert all(r["page_url"].startswith("http") and r["active"] for r in synced)
    assert listed.status == 200 and sorted(r["qr_id"] for r in listed.json()["registers"]) == sorted(
        r["qr_id"] for r in synced)


def test_another_clinics_key_sees_nothing(clinic: QrClinic, stack: TestStack) -> None:
    other = create_qr_clinic(stack.sandbox_url("monobank"), stack.sandbox_url("checkbox"))
    answer = other.staff().get(clinic.path("/qr-registers"))
    assert answer.status == 404 and answer.json()["error"]["code"] == "not_found"


def test_a_scanned_and_paid_amount_is_fiscalized_at_once_with_the_card_details(clinic: QrClinic) -> None:
    # Given an open shift and an appointment's amount on a register
    appointment_id = book(clinic)
    qr_id = clinic.merchant_register()
    clinic.open_shift()
    put = clinic.put_amount(qr_id, 85000, appointment_id=appointment_id, description="Консультація терапевта")
    details = clinic.monobank.api("GET", "/api/merchant/qr/details", params={"qrId": qr_id}).json()
    assert details["amount"] == 85000 and details["ccy"] == 980 and details["invoiceId"] == put["invoice_id"]
    # When the patient pays (the sandbox sends processing, then success)
    clinic.monobank.pay(put["invoice_id"])
    # Then
    row = fiscalized_row(clinic, f"qrp_{put['invoice_id']}")
    assert row["amount"] == {"amount": 85000, "currency": "UAH"} and row["qr_id"] == qr_id
    assert row["appointment_id"] == appointment_id and row["masked_pan"].startswith("444403")
    assert row["receipt"]["fiscal_code"] and row["receipt"]["url"].startswith("http")
    [receipt] = clinic.checkbox.receipts()
    assert receipt["id"] == row["receipt"]["id"] and receipt["status"] == "DONE"
    assert [(g["good"]["price"], g["quantity"], g["good"]["name"]) for g in receipt["goods"]] == [
        (85000, 1000, "Консультація терапевта")]
    [payment] = receipt["payments"]
    assert payment["type"] == "CASHLESS" and payment["value"] == 85000 and payment["card_mask"] == row["masked_pan"]
    assert payment["rrn"] and payment["auth_code"]
    # And the register is free again, and a second fiscalize is refused
    register = next(r for r in clinic.staff().get(clinic.path("/qr-registers")).json()["registers"] if r["qr_id"] == qr_id)
    assert register["current_amount"] is None
    again = clinic.fiscalize(row["payment_id"])
    assert again.status == 409 and again.json()["error"]["code"] == "already_fiscalized"
    assert len(clinic.checkbox.receipts()) == 1


def test_monobank_tried_each_change_once_and_got_200(clinic: QrClinic) -> None:
    qr_id = clinic.merchant_register()
    clinic.open_shift()
    invoice_id = clinic.put_amount(qr_id, 1000)["invoice_id"]
    clinic.monobank.pay(invoice_id)
    deliveries = wait_for(lambda: len(clinic.monobank.deliveries(invoice_id)) == 2 and clinic.monobank.deliveries(invoice_id))
    assert [(d["status"], d["status_code"]) for d in deliveries] == [("processing", 200), ("success", 200)]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"amount": {"amount": 25000, "currency": "CLP"}}, 422, "currency_not_supported"),
    ({"amount": {"amount": 850.5, "currency": "UAH"}}, 422, "validation_error"),
    ({"amount": {"amount": -5, "currency": "UAH"}}, 422, "validation_error"),
    ({"amount": {"amount": 100, "currency": "UAH"}, "appointment_id": "ap_ghost"}, 404, "not_found"),
])
def test_bad_amounts_are_refused_and_nothing_reaches_monobank(clinic: QrClinic, body: dict, status: int,
                                                             code: str) -> None:
    qr_id = clinic.merchant_register()
    answer = clinic.staff().post(clinic.path(f"/qr-registers/{qr_id}/amount"), json=body)
    assert answer.status == status and answer.json()["error"]["code"] == code, answer.body
    details = clinic.monobank.api("GET", "/api/merchant/qr/details", params={"qrId": qr_id}).json()
    assert "invoiceId" not in details


def test_a_client_register_and_an_unknown_one_take_no_amount(clinic: QrClinic) -> None:
    client_qr = next(r["qr_id"] for r in clinic.sync() if r["amount_type"] == "client")
    body = {"amount": {"amount": 100, "currency": "UAH"}}
    refused = clinic.staff().post(clinic.path(f"/qr-registers/{client_qr}/amount"), json=body)
    unknown = clinic.staff().post(clinic.path("/qr-registers/nope/amount"), json=body)
    assert refused.status == 409 and refused.json()["error"]["code"] == "qr_amount_not_settable"
    assert unknown.status == 404


def test_staff_can_clear_an_amount(clinic: QrClinic) -> None:
    qr_id = clinic.merchant_register()
    clinic.put_amount(qr_id, 5000)
    cleared = clinic.staff().delete(clinic.path(f"/qr-registers/{qr_id}/amount"))
    assert cleared.status == 200 and cleared.json()["current_amount"] is None
    assert "invoiceId" not in clinic.monobank.api("GET", "/api/merchant/qr/details", params={"qrId": qr_id}).json()


def test_the_report_filters_by_register_status_amount_and_period_and_speaks_csv(clinic: QrClinic) -> None:
    # Given three paid amounts on two registers; the third paid while the shift is closed
    registers = [r["qr_id"] for r in clinic.sync() if r["amount_type"] == "merchant"]
    clinic.open_shift()
    ids = []
    for qr_id, amount in ((registers[0], 10000), (registers[1], 50000)):
        invoice_id = clinic.put_amount(qr_id, amount)["invoice_id"]
        clinic.monobank.pay(invoice_id)
        ids.append(fiscalized_row(clinic, f"qrp_{invoice_id}")["payment_id"])
    assert clinic.staff().post(clinic.path("/fiscal/shift/close")).status == 200
    invoice_id = clinic.put_amount(registers[0], 90000)["invoice_id"]
    clinic.monobank.pay(invoice_id)
    pending_id = f"qrp_{invoice_id}"
    # When / Then
    assert [r["payment_id"] for r in clinic.report(qr_id=registers[1])] == [ids[1]]
    assert {r["payment_id"] for r in clinic.report(fiscal_status="fiscalized")} == set(ids)
    assert [r["payment_id"] for r in clinic.report(fiscal_status="pending")] == [pending_id]
    assert {r["payment_id"] for r in clinic.report(min_amount="20000", max_amount="60000")} == {ids[1]}
    today = datetime.now(UTC).date()
    assert len(clinic.report(**{"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))})) == 3
    assert clinic.report(**{"to": str(today - timedelta(days=2))}) == []
    bad = clinic.staff().get(clinic.path("/reports/qr-payments"), query={"fiscal_status": "lost"})
    assert bad.status == 422
    as_csv = clinic.staff().get(clinic.path("/reports/qr-payments"), headers={"Accept": "text/csv"},
                                query={"fiscal_status": "fiscalized"})
    assert as_csv.status == 200 and as_csv.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.body.decode())))
    assert {r["payment_id"] for r in rows} == set(ids) and all(r["fiscal_code"] for r in rows)
    assert {r["amount"] for r in rows} == {"10000", "50000"} and {r["currency"] for r in rows} == {"UAH"}
    # In pages: every payment once, oldest first, as the whole report
    walked, cursor = [], None
    while True:
        query = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = clinic.staff().get(clinic.path("/reports/qr-payments"), query=query)
        assert page.status == 200, page.body
        walked += [r["payment_id"] for r in page.json()["rows"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert walked == [r["payment_id"] for r in clinic.report()] and len(walked) == 3
    # a cursor under other filters, or edited, is a 400 that shows nothing
    first = clinic.staff().get(clinic.path("/reports/qr-payments"), query={"limit": "1"}).json()["next_cursor"]
    for query in ({"limit": "1", "cursor": first, "qr_id": registers[0]}, {"cursor": first[:-2] + "zz"},
                  {"cursor": "%%%"}):
        refused = clinic.staff().get(clinic.path("/reports/qr-payments"), query=query)
        assert refused.status == 400 and refused.json()["error"]["code"] == "invalid_cursor", (query, refused.body)
    assert clinic.staff().get(clinic.path("/reports/qr-payments"), query={"limit": "0"}).status == 422


def test_without_monobank_credentials_sync_says_so(stack: TestStack) -> None:
    from tests.support.clinics import create_clinic

    keys = create_clinic(country="UA", currency="UAH", timezone="Europe/Kyiv", locale="uk")
    answer = keys.staff().post(keys.path("/qr-registers/sync"))
    assert answer.status == 409 and answer.json()["error"]["code"] == "gateway_not_configured"


def test_an_unknown_payment_is_a_404(clinic: QrClinic) -> None:
    assert clinic.staff().get(clinic.path("/qr-payments/qrp_nope")).status == 404
    assert clinic.fiscalize("qrp_nope").status == 404


def test_an_amount_sent_twice_with_the_same_idempotency_key_makes_one_invoice(clinic: QrClinic) -> None:
    # Given
    qr_id = clinic.merchant_register()
    body = {"amount": {"amount": 7000, "currency": "UAH"}}
    headers = {"Idempotency-Key": "put-7000-once"}
    # When
    first = clinic.staff().post(clinic.path(f"/qr-registers/{qr_id}/amount"), json=body, headers=headers)
    second = clinic.staff().post(clinic.path(f"/qr-registers/{qr_id}/amount"), json=body, headers=headers)
    # Then
    assert first.status == second.status == 201
    assert first.json()["invoice_id"] == second.json()["invoice_id"]
    details = clinic.monobank.api("GET", "/api/merchant/qr/details", params={"qrId": qr_id}).json()
    assert details["invoiceId"] == first.json()["invoice_id"]


def test_an_unknown_scheduled_job_fails_loudly(stack: TestStack) -> None:
    from local import apigw

    handler = apigw.handler_for("FiscalizeFunction")
    with pytest.raises(ValueError):
        handler({"job": "no-such-job"}, apigw.LambdaContext(function_name="FiscalizeFunction"))
