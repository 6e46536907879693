"""QR payments and fiscal receipts on the staff pages, in Debian chromium against the local stack
with the monobank and Checkbox sandboxes (issue 5, on issue 4's API): registers, shift, the report
with its filters and fiscal status, the "Fiscalize" button on a pending payment, CSV download.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest_browser_helpers import DESKTOP, PHONE, Clinic, no_horizontal_scroll, require_routes, wait_for

pytest_plugins = ["tests.e2e.conftest_browser"]
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ROUTES = ("POST /v1/clinics/{clinic_id}/qr-registers/sync", "GET /v1/clinics/{clinic_id}/qr-registers",
          "POST /v1/clinics/{clinic_id}/qr-registers/{qr_id}/amount", "GET /v1/clinics/{clinic_id}/fiscal/shift",
          "POST /v1/clinics/{clinic_id}/fiscal/shift/open", "GET /v1/clinics/{clinic_id}/reports/qr-payments",
          "POST /v1/clinics/{clinic_id}/qr-payments/{payment_id}/fiscalize", "POST /webhooks/monobank/{clinic_id}")


@pytest.fixture
def clinic(clinic_factory: Any) -> Clinic:
    require_routes(*ROUTES)
    made: Clinic = clinic_factory(name="Клініка Поділ", country="UA", currency="UAH", timezone="Europe/Kyiv", locale="uk")
    made.admin().put(made.path("/gateways/monobank"), json={"token": f"mono_{made.clinic_id}"}, expect=200)
    made.admin().put(made.path("/gateways/checkbox"), json={"license_key": f"lic_{made.clinic_id}", "pin_code": "1234"},
                     expect=200)
    return made


def patient_pays(clinic: Clinic, qr_id: str) -> str:
    """The patient scans the register and pays in the monobank sandbox; returns our payment id once
    the webhook has been answered (the payment is recorded and its first fiscal attempt is over)."""
    register = next(r for r in clinic.staff().get(clinic.path("/qr-registers"), expect=200).json()["registers"]
                    if r["qr_id"] == qr_id)
    invoice_id = register["current_invoice_id"]
    mono = f"{clinic.base_url}/_sandbox/monobank"
    paid = requests.post(f"{mono}/_control/invoices/{invoice_id}/pay", json={"deliver": True}, timeout=15)
    assert paid.status_code == 200, paid.text

    def answered() -> bool:
        deliveries = requests.get(f"{mono}/_control/deliveries", params={"invoice_id": invoice_id}, timeout=15).json()
        return any(d["status"] == "success" and d["status_code"] == 200 for d in deliveries["deliveries"])

    wait_for(answered, timeout=20, message="monobank's success webhook answered")
    return f"qrp_{invoice_id}"


def checkbox_control(clinic: Clinic, action: str, body: dict[str, Any] | None = None) -> None:
    answer = requests.post(f"{clinic.base_url}/_sandbox/checkbox/_control/{action}", json=body or {}, timeout=15)
    assert answer.status_code == 200, answer.text


def payment(clinic: Clinic, payment_id: str) -> dict[str, Any]:
    return dict(clinic.staff().get(clinic.path(f"/qr-payments/{payment_id}"), expect=200).json()["payment"])


def test_staff_fiscalize_a_pending_qr_payment_from_the_report(clinic: Clinic, open_page: Any, shots: Any) -> None:
    page = open_page(size=DESKTOP, locale="uk-UA")
    page.goto(f"{clinic.base_url}/staff")
    page.locator("#signin-clinic").fill(clinic.clinic_id)
    page.locator("#signin-key").fill(clinic.staff_key)
    page.locator("#signin-form button[type=submit]").click()
    page.get_by_role("link", name="QR-оплати").click()

    # Staff sync the clinic's registers from monobank
    expect(page.locator("#shift-state")).to_have_text("Зміну не відкрито")
    page.get_by_role("button", name="Синхронізувати з monobank").click()
    expect(page.locator("#qr-status")).to_have_text(re.compile(r"^Синхронізовано кас: \d+\.$"))
    merchant = page.locator(".register:has(form)").first
    qr_id = merchant.get_attribute("data-qr")
    assert qr_id

    # A payment arrives while the shift is closed: it waits, and says why
    merchant.get_by_label("Сума (UAH)").fill("850,00")
    merchant.get_by_role("button", name="Виставити суму").click()
    expect(merchant.get_by_role("status")).to_have_text(re.compile(r"^850,00\sгрн виставлено на касі"))
    first = patient_pays(clinic, qr_id)
    page.get_by_role("button", name="Показати").click()
    row = page.locator(f"tr[data-payment='{first}']")
    expect(row.locator("[data-fiscal-status]")).to_have_text("Очікує на чек")
    expect(row.locator("[data-fiscal-error]")).to_contain_text("фіскальну зміну закрито")
    # "Fiscalize" now is refused by the API, and the page says why in plain words
    row.get_by_role("button", name=re.compile("^Фіскалізувати")).click()
    expect(row.get_by_role("status")).to_contain_text("Фіскальну зміну закрито. Відкрийте її")
    expect(row.get_by_role("status")).to_contain_text("(fiscal_shift_closed)")

    # Staff open the shift: the waiting payment gets its receipt
    page.get_by_role("button", name="Відкрити зміну").click()
    expect(page.locator("#shift-state")).to_have_attribute("data-shift", "OPENED")
    expect(page.locator("#shift-status")).to_have_text("Платежів в очікуванні, що отримали чеки: 1.")
    expect(row.locator("[data-fiscal-status]")).to_have_text("Чек видано")

    # Then Checkbox goes down, and the next payment stays pending after its first attempt
    checkbox_control(clinic, "fail-next", {"status": 503, "count": 100, "path": "/receipts"})
    merchant = page.locator(f".register[data-qr='{qr_id}']")
    merchant.get_by_label("Сума (UAH)").fill("1200")
    merchant.get_by_role("button", name="Виставити суму").click()
    expect(merchant.get_by_role("status")).to_have_text(re.compile(r"^1\s200,00\sгрн виставлено на касі"))
    second = patient_pays(clinic, qr_id)
    page.get_by_label("Фіскальний статус").select_option("pending")
    page.get_by_role("button", name="Показати").click()
    expect(page.locator("#report-list tbody tr")).to_have_count(1)
    row = page.locator(f"tr[data-payment='{second}']")
    expect(row.locator("[data-fiscal-status]")).to_have_text("Очікує на чек")
    expect(row.locator("[data-fiscal-error]")).to_contain_text("сервіс каси (Checkbox) не відповідає")
    expect(row).to_contain_text(re.compile(r"1\s200,00"))

    # When Checkbox is back and staff press "Fiscalize" on that row
    checkbox_control(clinic, "clear-faults")
    row.get_by_role("button", name=re.compile("^Фіскалізувати")).click()

    # Then the receipt is issued once, shown plainly with its fiscal number and link
    page.get_by_label("Фіскальний статус").select_option("")
    page.get_by_role("button", name="Показати").click()
    row = page.locator(f"tr[data-payment='{second}']")
    expect(row.locator("[data-fiscal-status]")).to_have_text("Чек видано")
    fiscalized = payment(clinic, second)
    assert fiscalized["fiscal_status"] == "fiscalized" and fiscalized["receipt"]["fiscal_code"]
    expect(row).to_contain_text(f"Фіскальний № {fiscalized['receipt']['fiscal_code']}")
    expect(row.get_by_role("link", name="Переглянути чек")).to_have_attribute("href", fiscalized["receipt"]["url"])
    expect(row.get_by_role("button", name=re.compile("^Фіскалізувати"))).to_have_count(0)
    expect(page.locator("#report-count")).to_have_text("Платежів: 2")
    shots(page, "staff-qr-desktop")

    # And the CSV the page downloads holds both payments with their fiscal codes
    with page.expect_download() as download:
        page.get_by_role("button", name="Завантажити CSV").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert {r["payment_id"]: r["fiscal_status"] for r in rows} == {first: "fiscalized", second: "fiscalized"}
    assert all(r["fiscal_code"] for r in rows)
    assert sorted(r["amount"] for r in rows) == ["120000", "85000"]

    page.set_viewport_size(PHONE)
    assert no_horizontal_scroll(page)
    shots(page, "staff-qr-phone")


def test_staff_refund_a_qr_payment_with_confirmation_and_see_its_return_receipt(
        clinic: Clinic, open_page: Any, shots: Any) -> None:
    require_routes("POST /v1/clinics/{clinic_id}/qr-payments/{payment_id}/refunds", "GET /v1/clinics/{clinic_id}/settings")
    # Given an open shift and a fiscalized 850.00 payment
    clinic.staff().post(clinic.path("/fiscal/shift/open"), json={}, expect=200)
    registers = clinic.staff().post(clinic.path("/qr-registers/sync"), json={}, expect=200).json()["registers"]
    qr_id = next(r["qr_id"] for r in registers if r["amount_type"] == "merchant")
    clinic.staff().post(clinic.path(f"/qr-registers/{qr_id}/amount"),
                        json={"amount": {"amount": 85000, "currency": "UAH"}}, expect=201)
    paid = patient_pays(clinic, qr_id)
    wait_for(lambda: payment(clinic, paid)["fiscal_status"] == "fiscalized", timeout=20, message="sale receipt")
    page = open_page(size=DESKTOP, locale="uk-UA")
    page.goto(f"{clinic.base_url}/staff")
    page.locator("#signin-clinic").fill(clinic.clinic_id)
    page.locator("#signin-key").fill(clinic.staff_key)
    page.locator("#signin-form button[type=submit]").click()
    page.get_by_role("link", name="QR-оплати").click()
    # The page says who makes the receipts
    expect(page.locator("#fiscal-by")).to_have_attribute("data-fiscalization", "clinicpay")
    expect(page.locator("#fiscal-by")).to_contain_text("через касу Checkbox клініки")
    row = page.locator(f"tr[data-payment='{paid}']")
    expect(row.locator("[data-fiscal-status]").first).to_have_text("Чек видано")

    # When staff press "Refund": nothing happens until they confirm an amount
    row.get_by_role("button", name=re.compile("^Повернути кошти")).click()
    amount = row.get_by_label("Сума до повернення (UAH)")
    expect(amount).to_have_value("850,00")
    assert payment(clinic, paid)["refund_status"] == "none"
    amount.fill("300")
    confirm = row.get_by_role("button", name=re.compile("^Підтвердити: повернути 300,00"))
    # a double click is one refund (one Idempotency-Key for this dialog)
    confirm.dblclick()

    # Then monobank gives 300.00 back, and a return receipt for it follows the sale
    wait_for(lambda: payment(clinic, paid)["refund_status"] == "partially_refunded", timeout=20, message="refund")
    page.get_by_role("button", name="Показати").click()
    row = page.locator(f"tr[data-payment='{paid}']")
    expect(row.locator("[data-refund-status]")).to_have_text(re.compile(r"^Частково повернено: 300,00\sгрн"))
    returned = row.locator("[data-document='return']")
    expect(returned).to_have_count(1)
    expect(returned).to_have_attribute("data-fiscal-status", "fiscalized")
    expect(returned).to_contain_text(re.compile(r"Чек повернення 300,00\sгрн"))
    detail = payment(clinic, paid)
    assert [r["amount"]["amount"] for r in detail["refunds"]] == [30000]
    receipts = requests.get(f"{clinic.base_url}/_sandbox/checkbox/_control/licenses/lic_{clinic.clinic_id}/receipts",
                            timeout=15).json()["receipts"]
    assert sorted((r["type"], r["total_sum"]) for r in receipts) == [("RETURN", 30000), ("SELL", 85000)]
    shots(page, "staff-qr-refund")

    # And asking for more than is left is refused on the page, before anything is asked
    row.get_by_role("button", name=re.compile("^Повернути кошти")).click()
    expect(row.get_by_label("Сума до повернення (UAH)")).to_have_value("550,00")
    row.get_by_label("Сума до повернення (UAH)").fill("600")
    row.get_by_role("button", name=re.compile("^Підтвердити")).click()
    expect(row.get_by_role("status")).to_contain_text("не більше 550,00")
    assert len(payment(clinic, paid)["refunds"]) == 1


def test_the_report_pages_with_load_more_and_filters_apply_as_staff_type(clinic: Clinic, open_page: Any) -> None:
    # Given more QR payments than one page of the report (50), receipts not made here
    clinic.admin().patch(clinic.path("/settings"), json={"fiscalization": "none"}, expect=200)
    registers = clinic.staff().post(clinic.path("/qr-registers/sync"), expect=200).json()["registers"]
    qr_id = next(r["qr_id"] for r in registers if r["amount_type"] == "merchant")
    paid = []
    for n in range(51):
        clinic.staff().post(clinic.path(f"/qr-registers/{qr_id}/amount"), expect=201,
                            json={"amount": {"amount": 10000 + 100 * n, "currency": "UAH"}})
        paid.append(patient_pays(clinic, qr_id))

    # When staff open the QR tab
    page = open_page(size=DESKTOP, locale="uk-UA")
    page.goto(f"{clinic.base_url}/staff")
    page.locator("#signin-clinic").fill(clinic.clinic_id)
    page.locator("#signin-key").fill(clinic.staff_key)
    page.locator("#signin-form button[type=submit]").click()
    page.get_by_role("link", name="QR-оплати").click()

    # Then one page shows, and "Завантажити ще" brings the rest, each payment once
    rows = page.locator("#report-list tbody tr")
    expect(rows).to_have_count(50)
    more = page.get_by_role("button", name="Завантажити ще")
    more.click()
    expect(rows).to_have_count(51)
    expect(more).to_be_hidden()
    assert sorted(rows.nth(i).get_attribute("data-payment") for i in range(51)) == sorted(paid)

    # When staff type a minimum amount, the report narrows without pressing "Показати"
    page.locator("#rf-min").fill("150")  # UAH: only the last payment (150,00 грн) is that much
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-payment", paid[-1])
