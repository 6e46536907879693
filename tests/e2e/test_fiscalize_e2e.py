"""The QR story over HTTP against the running local stack (`python -m local.stack`), the way a
person runs it by hand: admin stores credentials, staff sync registers and open the shift, put an
amount on a register, the patient opens the register's page and presses Pay, the receipt appears in
the report; with the shift closed the payment waits until staff open it (issue 4)."""

from __future__ import annotations

import csv
import html
import io
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from local import template
from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

TIMEOUT = 20
ROUTES = ("POST /v1/clinics", "PUT /v1/clinics/{clinic_id}/gateways/{provider}",
          "POST /v1/clinics/{clinic_id}/qr-registers/sync", "POST /webhooks/monobank/{clinic_id}")


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


class Staff:
    def __init__(self, base_url: str, clinic_id: str, key: str):
        self.base_url, self.clinic_id = base_url, clinic_id
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def call(self, method: str, rest: str, expect: int = 200, **kwargs: Any) -> requests.Response:
        answer = self.session.request(method, f"{self.base_url}/v1/clinics/{self.clinic_id}{rest}", timeout=TIMEOUT,
                                      **kwargs)
        assert answer.status_code == expect, f"{method} {rest}: {answer.status_code} {answer.text[:400]}"
        return answer


@pytest.fixture
def staff(local_stack: LocalStack) -> Staff:
    routes = {route.route_key for route in template.routes()}
    missing = [r for r in ROUTES if r not in routes]
    if missing:
        pytest.skip(f"not in template.yaml yet: {missing}")
    base = local_stack.base_url
    created = requests.post(f"{base}/v1/clinics", timeout=TIMEOUT, json={
        "name": "Клініка на Подолі", "country": "UA", "currency": "UAH", "timezone": "Europe/Kyiv", "locale": "uk"},
        headers={"Authorization": f"Bearer {local_stack.operator_key}"})
    assert created.status_code == 201, created.text
    clinic_id, admin_key = created.json()["clinic"]["clinic_id"], created.json()["admin_key"]
    admin = Staff(base, clinic_id, admin_key)
    admin.call("PUT", "/gateways/monobank", json={"token": f"mono_{clinic_id}"})
    admin.call("PUT", "/gateways/checkbox", json={"license_key": f"lic_{clinic_id}", "pin_code": "1234"})
    staff_key = admin.call("POST", "/staff-keys", expect=201).json()["key"]
    return Staff(base, clinic_id, staff_key)


def patient_scans_and_pays(staff: Staff, page_url: str) -> str:
    """Open the register's page like a browser, press the button with id `pay` (its form's action)."""
    page = requests.get(page_url, timeout=TIMEOUT)
    assert page.status_code == 200 and 'id="pay"' in page.text
    forms = re.findall(r'<form method="post" action="([^"]+)"><button id="(\w+)"', page.text)
    action = html.unescape(next(url for url, button in forms if button == "pay"))
    invoice_id = re.search(r'id="invoice-id">([^<]+)<', page.text).group(1)  # type: ignore[union-attr]
    paid = requests.post(f"{staff.base_url}{action}", timeout=TIMEOUT)
    assert paid.status_code == 200 and "Оплачено" in paid.text

    def answered() -> bool:
        deliveries = requests.get(f"{staff.base_url}/_sandbox/monobank/_control/deliveries",
                                  params={"invoice_id": invoice_id}, timeout=TIMEOUT).json()["deliveries"]
        return any(d["status"] == "success" and d["status_code"] == 200 for d in deliveries)

    wait_for(answered)
    return f"qrp_{invoice_id}"


def test_a_patient_pays_a_qr_register_and_the_receipt_is_in_the_report(staff: Staff) -> None:
    # Given registers synced and the shift open
    registers = staff.call("POST", "/qr-registers/sync").json()["registers"]
    register = next(r for r in registers if r["amount_type"] == "merchant")
    assert staff.call("POST", "/fiscal/shift/open").json()["shift"]["status"] == "OPENED"
    # When staff put 850.00 UAH on it and the patient pays on the register's page
    staff.call("POST", f"/qr-registers/{register['qr_id']}/amount", expect=201,
               json={"amount": {"amount": 85000, "currency": "UAH"}, "description": "Консультація"})
    assert "850.00" in requests.get(register["page_url"], timeout=TIMEOUT).text
    payment_id = patient_scans_and_pays(staff, register["page_url"])
    # Then the report shows it fiscalized, with a receipt page that exists
    [row] = staff.call("GET", "/reports/qr-payments").json()["rows"]
    assert row["payment_id"] == payment_id and row["fiscal_status"] == "fiscalized"
    assert row["amount"] == {"amount": 85000, "currency": "UAH"} and row["masked_pan"]
    receipt_page = requests.get(row["receipt"]["url"], timeout=TIMEOUT)
    assert receipt_page.status_code == 200 and row["receipt"]["fiscal_code"] in receipt_page.text
    as_csv = staff.call("GET", "/reports/qr-payments", headers={"Accept": "text/csv"})
    [line] = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert (line["payment_id"], line["amount"], line["fiscal_code"]) == (payment_id, "85000",
                                                                          row["receipt"]["fiscal_code"])
    # And exactly one receipt exists at Checkbox; asking again is a 409
    receipts = requests.get(f"{staff.base_url}/_sandbox/checkbox/_control/licenses/lic_{staff.clinic_id}/receipts",
                            timeout=TIMEOUT).json()
    assert receipts["count"] == 1
    refused = staff.call("POST", f"/qr-payments/{payment_id}/fiscalize", expect=409)
    assert refused.json()["error"]["code"] == "already_fiscalized"


def test_with_the_shift_closed_the_payment_waits_and_the_daily_check_reports_it_until_the_shift_opens(
        staff: Staff) -> None:
    # Given no open shift
    register = next(r for r in staff.call("POST", "/qr-registers/sync").json()["registers"]
                    if r["amount_type"] == "merchant")
    staff.call("POST", f"/qr-registers/{register['qr_id']}/amount", expect=201,
               json={"amount": {"amount": 42000, "currency": "UAH"}})
    # When the patient pays
    payment_id = patient_scans_and_pays(staff, register["page_url"])
    # Then the payment waits, visibly
    row = staff.call("GET", f"/qr-payments/{payment_id}").json()["payment"]
    assert row["fiscal_status"] == "pending" and row["fiscal"]["last_error"] == "fiscal_shift_closed"
    # And the daily check (run now, as EventBridge would) reports it for this clinic
    job = requests.post(f"{staff.base_url}/_local/jobs/unfiscalized-check", timeout=60)
    assert job.status_code == 200, job.text
    assert job.json()["clinics"][staff.clinic_id]["remaining"] == 1
    # When staff open the shift
    opened = staff.call("POST", "/fiscal/shift/open").json()
    # Then it is fiscalized
    assert opened["fiscalized"] == 1
    assert staff.call("GET", f"/qr-payments/{payment_id}").json()["payment"]["fiscal_status"] == "fiscalized"
