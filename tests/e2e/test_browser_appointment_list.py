"""The staff appointment list in Debian chromium against the local stack (issue 11, item 4): search as
you type (part of a name, a phone), upcoming first, "Load more" through the API's cursor, the CSV
download with the list's filters (formula cells defused), payment details on the row, and "resend
card request" on an awaiting-card row (the patient gets it: outbox).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.axe import axe_violations
from tests.e2e.conftest_browser_helpers import DESKTOP, PHONE, Clinic, no_horizontal_scroll, outbox, unique_email, wait_for
from tests.e2e.test_browser_cards import connect_stripe

pytest_plugins = ["tests.e2e.conftest_browser"]
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PAGE = 25  # rows per page in web/staff.js (APPTS_PAGE)


def sign_in(page: Any, clinic: Clinic) -> None:
    page.goto(f"{clinic.base_url}/staff")
    page.locator("#signin-clinic").fill(clinic.clinic_id)
    page.locator("#signin-key").fill(clinic.staff_key)
    page.locator("#signin-form button[type=submit]").click()
    expect(page.locator("#app")).to_be_visible()


def rows(page: Any) -> Any:
    return page.locator("#appts-list tbody tr")


@pytest.fixture
def clinic(clinic_factory: Any) -> Clinic:
    made: Clinic = clinic_factory(name="Clínica Ñuñoa")
    made.put_service("control", "Control", 12000, online=False)
    return made


def test_search_as_you_type_load_more_and_the_csv(clinic: Clinic, open_page: Any, shots: Any) -> None:
    # Given more appointments than one page, among them José Álvarez and a patient whose name is a formula
    jose = clinic.book({"id": "p-jose", "name": "José Álvarez", "phone": "+56987654321"}, "control", days=1)
    formula = clinic.book({"id": "p-formula", "name": "=HYPERLINK(\"http://evil.example\",\"x\")",
                           "phone": "+56911112222"}, "control", days=2)
    for n in range(PAGE + 2):
        clinic.book({"id": f"p-{n}", "name": f"Paciente {n:02d}", "email": unique_email(f"p{n}")}, "control", days=3 + n)
    total = PAGE + 4

    # When staff open the list
    page = open_page(size=DESKTOP)
    sign_in(page, clinic)

    # Then one page shows, soonest first, with "Cargar más"
    expect(rows(page)).to_have_count(PAGE)
    expect(rows(page).first).to_have_attribute("data-appointment", jose["appointment_id"])
    more = page.get_by_role("button", name="Cargar más")
    expect(more).to_be_visible()
    assert axe_violations(page) == []

    # When they load more, the rest follows (no row twice) and the button goes
    more.click()
    expect(rows(page)).to_have_count(total)
    expect(more).to_be_hidden()
    shown = [rows(page).nth(i).get_attribute("data-appointment") for i in range(total)]
    assert len(set(shown)) == total

    # When they type part of a name, without its accent, the list narrows as they type
    search = page.get_by_label("Buscar por nombre, correo o teléfono")
    search.press_sequentially("alvar", delay=30)
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("José Álvarez")
    # and part of a phone number, spaced as people write it
    search.fill("8765 43")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-appointment", jose["appointment_id"])
    search.fill("nadie-con-este-nombre")
    expect(page.locator("#appts-list")).to_contain_text("No hay")

    # When they search the formula patient and download the CSV, it holds that row, defused
    search.fill("hyperlink")
    expect(rows(page)).to_have_count(1)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Descargar CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith(f"appointments-{clinic.clinic_id}-")
    text = open(download.path(), encoding="utf-8").read()
    assert text.startswith("\ufeff")
    table = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [r["appointment_id"] for r in table] == [formula["appointment_id"]]
    assert table[0]["patient_name"] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    assert table[0]["patient_phone"] == "'+56911112222"
    assert (table[0]["price"], table[0]["currency"], table[0]["time_zone"]) == ("12000", "CLP", clinic.timezone)

    # Cleared, the whole first page is back; at 390 px nothing scrolls sideways
    search.fill("")
    expect(rows(page)).to_have_count(PAGE)
    shots(page, "staff-appointments-search-desktop")
    page.set_viewport_size(PHONE)
    assert no_horizontal_scroll(page)


def test_awaiting_card_row_resends_the_card_request(clinic_factory: Any, open_page: Any) -> None:
    # Given a card-required booking made online that still waits for the patient's card
    clinic: Clinic = clinic_factory(name="Clinique Laval", country="CA", currency="CAD", timezone="America/Toronto",
                                    locale="fr")
    connect_stripe(clinic)
    clinic.admin().patch(clinic.path("/settings"), json={"card_required_for_online_booking": True}, expect=200)
    clinic.put_service("implant", "Implant dentaire", 50000, online=False, card=True, no_show_fee=10000)
    email = unique_email("julie")
    booked = clinic.staff().post(clinic.path("/appointments"), expect=201, json={
        "patient": {"id": "p-julie", "name": "Julie Tremblay", "email": email, "locale": "fr"},
        "service_id": "implant", "starts_at": clinic.starts_at(4), "booked_by": "online"}).json()
    assert booked["status"] == "awaiting_card"
    before = len(outbox(clinic.base_url, email))

    # When staff press "Renvoyer la demande de carte" on its row
    page = open_page(size=DESKTOP, locale="fr-CA")
    sign_in(page, clinic)
    row = page.locator(f"tr[data-appointment='{booked['appointment_id']}']")
    expect(row).to_contain_text("En attente de carte")
    row.get_by_role("button", name="Renvoyer la demande de carte").click()

    # Then the row says where it went, and the patient has it
    expect(row.get_by_role("status")).to_have_text(re.compile("Demande de carte envoyée à Julie Tremblay par e-mail"))
    mail = wait_for(lambda: (m := outbox(clinic.base_url, email)) and len(m) > before and m, message="the card request")
    assert "/cards/setup/" in mail[-1]["body"]
    assert axe_violations(page, include="#appts-list") == []


def test_cancel_asks_first_then_cancels(clinic: Clinic, open_page: Any, shots: Any) -> None:
    # Given an appointment
    booked = clinic.book({"id": "p-rosa", "name": "Rosa Díaz", "email": unique_email("rosa")}, "control", days=2)
    page = open_page(size=DESKTOP)
    sign_in(page, clinic)
    row = page.locator(f"tr[data-appointment='{booked['appointment_id']}']")

    # When staff press "Cancelar cita", they are asked first, naming the patient; "No, mantener" changes nothing
    row.get_by_role("button", name="Cancelar cita").click()
    question = row.get_by_role("group", name="Cancelar cita")
    expect(question).to_contain_text(re.compile(r"¿Cancelar la cita de Rosa Díaz del .+\?"))
    expect(question).to_contain_text("No se avisa al paciente.")
    question.get_by_role("button", name="No, mantener").click()
    expect(question).to_have_count(0)
    assert clinic.appointment(booked["appointment_id"])["status"] == "confirmed"

    # When they confirm
    row.get_by_role("button", name="Cancelar cita").click()
    shots(page, "staff-appointment-cancel-confirm-desktop")
    row.get_by_role("group", name="Cancelar cita").get_by_role("button", name="Sí, cancelar").click()

    # Then the row says so and shows it cancelled, with no way to cancel it again
    expect(row.get_by_role("status")).to_have_text("La cita de Rosa Díaz quedó cancelada.")
    expect(row.locator("[data-booking-status=cancelled]")).to_have_text("Cancelada")
    expect(row.get_by_role("button", name="Cancelar cita")).to_have_count(0)
    assert clinic.appointment(booked["appointment_id"])["status"] == "cancelled"
    # and choosing "Confirmada" as the booking filter leaves it out
    page.get_by_label("Reserva", exact=True).select_option("confirmed")
    expect(row).to_have_count(0)
    assert axe_violations(page, include="#appts-list") == []
