"""The staff pages in Debian chromium against the local stack (issue 5): appointments and the "Pay"
button that re-sends the link (Reservo's flow), API errors shown plainly, the language picker, and
the settings an admin changes (settings, gateways shown masked, services, message templates).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest_browser_helpers import DESKTOP, PHONE, Clinic, no_horizontal_scroll, outbox, unique_email, wait_for

pytest_plugins = ["tests.e2e.conftest_browser"]
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

WEB = Path(__file__).resolve().parents[2] / "web"


@pytest.fixture
def clinic(clinic_factory: Any) -> Clinic:
    made: Clinic = clinic_factory(name="Clínica Providencia")
    made.connect_fintoc()
    made.put_service("consulta", "Consulta general", 25000)
    made.put_service("control", "Control (sin costo)", 0, online=False)
    return made


def sign_in(page: Any, clinic: Clinic, key: str) -> None:
    page.goto(f"{clinic.base_url}/staff")
    page.locator("#signin-clinic").fill(clinic.clinic_id)
    page.locator("#signin-key").fill(key)
    page.locator("#signin-form button[type=submit]").click()
    expect(page.locator("#app")).to_be_visible()


def pay_at_sandbox(clinic: Clinic, appointment: dict[str, Any]) -> None:
    """What a patient's browser does: our link -> the Fintoc sandbox page -> "Pagar"."""
    opened = requests.get(appointment["payment_link"]["url"], allow_redirects=False, timeout=10)
    assert opened.status_code == 303, opened.text
    paid = requests.post(f"{opened.headers['Location']}/pay", allow_redirects=False, timeout=10)
    assert paid.status_code in (302, 303), paid.text
    wait_for(lambda: clinic.appointment(appointment["appointment_id"])["payment_status"] == "paid", message="paid")


def row(page: Any, appointment: dict[str, Any]) -> Any:
    return page.locator(f"tr[data-appointment='{appointment['appointment_id']}']")


def test_staff_resend_a_payment_link_with_pay_and_the_patient_gets_it(clinic: Clinic, open_page: Any, shots: Any) -> None:
    # Given three appointments: one paid, one free, one waiting for its payment
    paid = clinic.book({"id": "p-ana", "name": "Ana Pérez", "email": unique_email("ana")}, "consulta", days=2)
    pay_at_sandbox(clinic, paid)
    clinic.book({"id": "p-marta", "name": "Marta Rojas", "email": unique_email("marta")}, "control", days=3)
    email = unique_email("luis")
    unpaid = clinic.book({"id": "p-luis", "name": "Luis Soto", "email": email, "locale": "es"}, "consulta", days=4)
    assert len(outbox(clinic.base_url, email)) == 1  # the booking email

    # When a staff member signs in (the page speaks the clinic's language)
    page = open_page(size=DESKTOP)
    page.goto(f"{clinic.base_url}/staff")
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
    shots(page, "staff-signin-desktop")
    page.set_viewport_size(PHONE)
    shots(page, "staff-signin-phone")
    page.set_viewport_size(DESKTOP)
    page.get_by_label("ID de la clínica").fill(clinic.clinic_id)
    page.get_by_label("Clave de personal o de administrador").fill(clinic.staff_key)
    page.get_by_role("button", name="Entrar").click()

    # Then the appointments show with their payment status, and "Enviar enlace de pago" only where money is due
    expect(page.locator("#role")).to_have_text("Personal")
    expect(row(page, paid).locator("[data-payment-status]")).to_have_text("Pagado")
    expect(row(page, unpaid).locator("[data-payment-status]")).to_have_text("Pendiente de pago")
    expect(page.locator("tr", has_text="Marta Rojas").locator("[data-payment-status]")).to_have_text("Sin pago")
    expect(row(page, paid).get_by_role("button", name=re.compile("^Enviar enlace de pago"))).to_have_count(0)
    # and the paid one shows how it was paid: provider, reference and when (issue 11)
    expect(row(page, paid).locator("[data-payment-details]")).to_contain_text(re.compile(r"^Fintoc · \S+ · .*pagado el "))
    expect(row(page, unpaid).locator("td").nth(3)).to_have_text(re.compile(r"25\.000\sCLP"))
    shots(page, "staff-appointments-desktop")

    # When they press "Enviar enlace de pago" (it re-sends the link: no longer called "Pagar") on the unpaid one
    row(page, unpaid).get_by_role("button", name=re.compile("^Enviar enlace de pago")).click()

    # Then the page says where the link went, and the patient has it in the outbox
    expect(row(page, unpaid).get_by_role("status")).to_have_text("Enlace de pago enviado a Luis Soto por correo.")
    mail = wait_for(lambda: (m := outbox(clinic.base_url, email)) and len(m) == 2 and m, message="the re-sent link")
    assert mail[1]["subject"].startswith("Paga tu hora en Clínica Providencia")
    assert unpaid["payment_link"]["url"] in mail[1]["body"]

    page.set_viewport_size(PHONE)
    assert no_horizontal_scroll(page)
    shots(page, "staff-appointments-phone")


def test_api_errors_are_shown_plainly_and_the_language_can_change(clinic: Clinic, open_page: Any) -> None:
    # Given an unpaid appointment for a patient without email or phone
    nobody = clinic.book({"id": "p-sin-contacto", "name": "Pedro Sin Contacto"}, "consulta")
    page = open_page(size=DESKTOP)
    sign_in(page, clinic, clinic.staff_key)

    # When staff press "Enviar enlace de pago", the API's 409 no_contact is explained, with what the API said
    row(page, nobody).get_by_role("button", name=re.compile("^Enviar enlace de pago")).click()
    status = row(page, nobody).get_by_role("status")
    expect(status).to_contain_text("El paciente no tiene correo ni teléfono para enviarlo.")
    expect(status).to_contain_text("El servidor dijo: The patient has no email or phone to send the link to. (no_contact)")

    # When they switch to Ukrainian, everything follows, and the choice survives a reload
    page.get_by_role("banner").get_by_label("Idioma", exact=True).select_option("uk")
    expect(page.get_by_role("link", name="Записи")).to_have_attribute("aria-current", "page")
    expect(row(page, nobody).locator("[data-payment-status]")).to_have_text("Не оплачено")
    expect(page.locator("html")).to_have_attribute("lang", "uk")
    page.reload()
    expect(page.get_by_role("heading", name="Записи", exact=True)).to_be_visible()

    # and a staff key sees the settings but may not change them
    page.get_by_role("link", name="Налаштування").click()
    expect(page.get_by_text("Змінювати ці налаштування може лише адміністратор клініки.")).to_be_visible()
    expect(page.get_by_role("button", name="Зберегти налаштування")).to_be_disabled()

    # Staff book an appointment with the form: it shows the payment link and joins the list
    page.get_by_role("link", name="Записи").click()
    form = page.get_by_role("region", name="Новий запис")
    form.get_by_label("Імʼя пацієнта").fill("Олена Коваль")
    expect(form.get_by_label("ID пацієнта")).to_have_value(re.compile(r"^p-[0-9a-f]{6}$"))
    form.get_by_label("Електронна пошта").fill(unique_email("olena"))
    form.get_by_label("Мова пацієнта").select_option("uk")
    form.get_by_label("Послуга").select_option("consulta")
    form.get_by_role("button", name="Створити запис").click()
    created = page.locator("#new-appt-status")
    expect(created).to_contain_text("Запис створено. Пацієнт: Олена Коваль.")
    link = created.get_by_role("link")
    expect(link).to_have_attribute("href", re.compile(r"/pay/[A-Za-z0-9_\-]+$"))
    olena = next(a for a in clinic.appointments() if a["patient"]["name"] == "Олена Коваль")
    assert olena["booked_by"] == "staff" and olena["patient"]["locale"] == "uk"
    assert olena["payment_link"]["url"] == link.get_attribute("href")
    expect(row(page, olena).locator("[data-payment-status]")).to_have_text("Не оплачено")

    # and a validation error from the API is said on its field, in words (422 details: path and kind)
    form.get_by_label("Імʼя пацієнта").fill("Олена Коваль")
    form.get_by_label("ID пацієнта").fill("p-olena")
    page.evaluate("document.getElementById('na-service').innerHTML = '<option value=\"no such service\">x</option>'")
    form.get_by_role("button", name="Створити запис").click()
    expect(created).to_have_text("Виправте позначені поля (1).")
    expect(page.locator("#na-service")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#na-service-error")).to_have_text("Лише латинські літери, цифри, - та _, без пробілів (до 64).")


def test_admin_changes_settings_gateways_services_and_templates(clinic_factory: Any, open_page: Any, shots: Any) -> None:
    clinic: Clinic = clinic_factory(name="Maple Clinic", country="CA", currency="CAD", timezone="America/Toronto",
                                    locale="en")
    clinic.put_service("checkup", "Check-up", 12000)
    page = open_page(size=DESKTOP, locale="en-CA")
    sign_in(page, clinic, clinic.admin_key)
    expect(page.locator("#role")).to_have_text("Admin")
    page.get_by_role("link", name="Settings").click()

    # Settings: card required for online booking, reminders 24 h and 2 h before
    page.get_by_label("Card on file required for online booking").check()
    page.get_by_label("Reminders, hours before the appointment").fill("24, 2")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
    settings = clinic.admin().get(clinic.path("/settings"), expect=200).json()
    assert settings["card_required_for_online_booking"] is True
    assert settings["reminder_hours_before"] == [24, 2]

    # A gateway: credentials typed once, then only shown masked
    fintoc = page.locator(".gateway[data-provider=fintoc]")
    expect(fintoc.locator(".badge")).to_have_text("Not connected")
    secret = "sk_test_browser_9f3a7c21"
    fintoc.get_by_label("Secret key").fill(secret)
    fintoc.get_by_label("Public key").fill("pk_test_browser_public")
    fintoc.get_by_label("Webhook secret").fill("whsec_browser_5e6f7a8b")
    fintoc.get_by_role("button", name="Save credentials").click()
    expect(fintoc.get_by_role("status")).to_have_text("Fintoc credentials saved.")
    expect(fintoc.locator(".badge")).to_have_text(re.compile("^(Verified|Saved, not verified)$"))
    masked = clinic.admin().get(clinic.path("/gateways"), expect=200).json()["gateways"][0]["masked"]["secret_key"]
    expect(fintoc.locator(".masked").first).to_have_text(masked)
    assert secret not in page.content() and masked != secret

    # A service with its flags and a no-show fee, typed in dollars
    page.get_by_label("Service id").fill("physio")
    page.get_by_label("Name", exact=True).fill("Physiotherapy")
    page.get_by_label("Price (CAD)").fill("85.50")
    page.get_by_label("No-show fee (CAD)").fill("25")
    page.get_by_label("Paid online").check()
    page.get_by_label("Card on file required", exact=True).check()
    page.get_by_role("button", name="Save service").click()
    expect(page.locator("#service-status")).to_have_text("Service physio saved.")
    expect(page.locator("tr[data-service=physio]")).to_contain_text("$85.50")
    services = {s["service_id"]: s for s in clinic.admin().get(clinic.path("/services"), expect=200).json()["services"]}
    assert services["physio"]["price"] == {"amount": 8550, "currency": "CAD"}
    assert services["physio"]["no_show_fee"] == {"amount": 2500, "currency": "CAD"}
    assert services["physio"]["requires_online_payment"] and services["physio"]["requires_card_on_file"]

    # A clinic template overrides the built-in text
    page.get_by_label("Message", exact=True).select_option("payment_link")
    page.get_by_label("Channel").select_option("email")
    page.locator("#tpl-locale").select_option("en")
    page.get_by_role("button", name="Open").click()
    expect(page.locator("#tpl-source")).to_have_text("Now in use: the built-in text")
    page.get_by_label("Text", exact=True).fill("Hi $patient_name, pay $amount here: $payment_link\n$clinic_name")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("#tpl-status")).to_have_text("Template saved.")
    stored = clinic.admin().get(clinic.path("/message-templates/payment_link/email/en"), expect=200).json()
    assert stored["source"] == "clinic" and stored["body"].startswith("Hi $patient_name")

    page.evaluate("window.scrollTo(0, 0)")
    shots(page, "staff-settings-desktop")
    page.set_viewport_size(PHONE)
    assert no_horizontal_scroll(page)
    shots(page, "staff-settings-phone")


def test_every_staff_text_exists_in_every_language(open_page: Any) -> None:
    page = open_page()
    page.goto("about:blank")
    page.add_script_tag(path=str(WEB / "staff-i18n.js"))
    missing = page.evaluate("""() => { const T = window.CLINICPAY_STAFF_TEXT, out = [];
        for (const l of window.CLINICPAY_LOCALES) for (const k of Object.keys(T.en)) if (!T[l][k]) out.push(l + ':' + k);
        return out; }""")
    assert missing == []
    # keys written out in full (a key built at run time, like "ps_" + status, is checked by the flows)
    used = set(re.findall(r'\bt\("(\w+)"(?!\s*\+)', (WEB / "staff.js").read_text()))
    used |= set(re.findall(r'data-i18n(?:-label)?="(\w+)"', (WEB / "staff.html").read_text()))
    known = set(page.evaluate("() => Object.keys(window.CLINICPAY_STAFF_TEXT.en)"))
    assert used - known == set()
