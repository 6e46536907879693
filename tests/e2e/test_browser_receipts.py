"""The patient's receipt in Debian chromium (issue 11): the paid link shows what was paid, for what,
when (the clinic's time, its zone named), the references, where the receipt went, a calendar file and
the way back to the clinic's site; at 390 px and 1280 px, with no axe-core violation."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.axe import axe_violations
from tests.e2e.conftest_browser_helpers import (
    DESKTOP,
    PHONE,
    TIMEOUT,
    Clinic,
    no_horizontal_scroll,
    require_routes,
    unique_email,
    wait_for,
)
from tests.support.ical import parse_calendar

pytest_plugins = ["tests.e2e.conftest_browser"]
pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def clinic(clinic_factory: Any) -> Clinic:
    require_routes("GET /pay/{token}/calendar.ics")
    made: Clinic = clinic_factory(name="Clínica Los Andes")
    made.connect_fintoc()
    made.admin().patch(made.path("/settings"), json={"website": "https://losandes.example.cl"}, expect=200)
    made.put_service("consulta", "Consulta general", 25000)
    return made


def paid_link(clinic: Clinic, email: str, locale: str | None = None) -> tuple[dict[str, Any], str]:
    patient: dict[str, Any] = {"id": "p-ana", "name": "Ana Pérez", "email": email}
    if locale:
        patient["locale"] = locale
    booked = clinic.book(patient, "consulta")
    link = booked["payment_link"]["url"]
    checkout = requests.get(link, allow_redirects=False, timeout=TIMEOUT).headers["Location"]
    assert requests.post(f"{checkout}/pay", allow_redirects=False, timeout=TIMEOUT).status_code in (302, 303)
    wait_for(lambda: clinic.appointment(booked["appointment_id"])["payment_status"] == "paid", message="paid")
    return booked, link


@pytest.mark.parametrize(("size", "name"), [(PHONE, "phone"), (DESKTOP, "desktop")])
def test_the_paid_link_is_a_receipt_with_a_calendar_file_and_a_way_back(clinic: Clinic, open_page: Any, shots: Any,
                                                                       size: dict[str, int], name: str) -> None:
    # Given a paid appointment
    email = unique_email("ana")
    booked, link = paid_link(clinic, email)
    stored = clinic.appointment(booked["appointment_id"])
    # When the patient opens their link again
    page = open_page(link, size=size)
    # Then it is a receipt, readable and usable at this size
    expect(page.get_by_role("heading", level=1)).to_have_text("Pagado. ¡Gracias!")
    expect(page.locator("#amount")).to_have_text("25.000 CLP")
    expect(page.locator("#starts-at")).to_contain_text("(hora de Chile)")  # the weekday, date, time and zone
    expect(page.locator("#reference")).to_have_text(booked["appointment_id"])
    expect(page.locator("#provider-reference")).to_have_text(stored["payment"]["reference"])
    expect(page.locator("#receipt-sent")).to_have_text(f"Enviamos el comprobante a a***@{email.split('@')[1]}.")
    expect(page.get_by_role("link", name="Volver al sitio de la clínica")).to_have_attribute(
        "href", "https://losandes.example.cl")
    assert no_horizontal_scroll(page)
    assert axe_violations(page) == []
    shots(page, f"pay-receipt-{name}")
    # and the calendar link downloads a calendar file for this appointment
    with page.expect_download() as download:
        page.get_by_role("link", name="Agregar al calendario").click()
    event = parse_calendar(open(download.value.path(), "rb").read())
    assert event["SUMMARY"] == "Consulta general — Clínica Los Andes"
    assert booked["appointment_id"] in event["UID"]


def test_the_receipt_in_ukrainian(clinic: Clinic, open_page: Any) -> None:
    _, link = paid_link(clinic, unique_email("olena"), locale="uk")
    page = open_page(link, size=PHONE, locale="uk-UA")
    expect(page.get_by_role("heading", level=1)).to_have_text("Оплачено — дякуємо!")
    expect(page.locator("html")).to_have_attribute("lang", "uk")
    expect(page.locator("#amount")).to_have_text(re.compile(r"^25\s000 CLP$"))
    expect(page.get_by_role("link", name="Повернутися на сайт клініки")).to_be_visible()
    assert axe_violations(page) == []
