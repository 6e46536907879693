"""The booking widget in Debian chromium, on the demo page of the local stack (issue 5).

A patient books and pays through the Fintoc sandbox until the result page says paid; books a free
service in another language with the keyboard; and meets every failure in their own language.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import Route, expect

from tests.e2e.conftest_browser_helpers import (
    DESKTOP,
    PHONE,
    Clinic,
    checkout_session,
    no_horizontal_scroll,
    outbox,
    unique_email,
    unlabelled_controls,
    wait_for,
)

pytest_plugins = ["tests.e2e.conftest_browser"]
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

BOOK_ONLINE = re.compile(r"/v1/public/clinics/[^/]+/appointments$")


@pytest.fixture
def clinic(clinic_factory: Any) -> Clinic:
    made: Clinic = clinic_factory(name="Clínica Los Andes")
    made.connect_fintoc()
    made.put_service("consulta", "Consulta general", 25000)
    made.put_service("control", "Control (sin costo)", 0, online=False)
    return made


def widget_text(page: Any, selector: str) -> str:
    return str(page.locator(selector).inner_text()).replace("\xa0", " ").replace("\u202f", " ")


def test_patient_books_and_pays_through_fintoc_until_the_result_page_says_paid(clinic: Clinic, open_page: Any,
                                                                              shots: Any) -> None:
    # Given the clinic's site with the widget, on a phone
    email = unique_email("ana")
    page = open_page(clinic.demo_url(), size=PHONE)
    widget = page.locator("#clinicpay-widget")
    expect(widget).to_have_attribute("data-state", "form")
    # the price is in the clinic's currency, formatted for Spanish (CLP has no minor unit)
    assert widget_text(page, ".cpw-service:has([data-service=consulta]) .cpw-price") == "25.000 CLP"
    assert widget_text(page, ".cpw-service:has([data-service=control]) .cpw-price") == "Sin costo"

    # When the patient chooses the paid service, gives a name and an email, and books
    page.get_by_label("Consulta general").check()
    page.get_by_label("Nombre y apellido").fill("Ana Pérez")
    page.get_by_label("Correo electrónico").fill(email)
    expect(page.get_by_role("button", name="Reservar y pagar")).to_be_visible()
    shots(page, "widget-form-phone")
    page.get_by_role("button", name="Reservar y pagar").click()

    # Then the browser goes through our /pay/{token} to the Fintoc sandbox's hosted page
    page.wait_for_url(checkout_session)
    expect(page.locator("#amount")).to_contain_text("25.000")
    # and after paying there, back to our result page, which polls until the webhook has landed
    page.locator("#pay").click()
    page.wait_for_url(re.compile(r"/pay/[^/]+/result"))
    status = page.locator("#status")
    expect(status).to_have_attribute("data-status", "paid")
    expect(status).to_have_text("Pagado. ¡Gracias!")
    expect(page.locator("#amount")).to_have_text("25.000 CLP")
    shots(page, "pay-result-paid-phone")
    page.set_viewport_size(DESKTOP)
    shots(page, "pay-result-paid-desktop")

    # and the API agrees: one online booking, paid, in the patient's language
    booked = [a for a in clinic.appointments() if a["patient"].get("email") == email]
    assert len(booked) == 1
    assert booked[0]["payment_status"] == "paid"
    assert booked[0]["booked_by"] == "online"
    assert booked[0]["patient"]["locale"] == "es"
    assert booked[0]["price"] == {"amount": 25000, "currency": "CLP"}
    # for a new patient record the API made (the widget sends no patient id)
    assert booked[0]["patient"]["id"].startswith("pt_")


def test_free_booking_by_keyboard_in_french_ends_in_a_confirmation_and_an_email(clinic: Clinic, open_page: Any,
                                                                               shots: Any) -> None:
    email = unique_email("claire")
    page = open_page(clinic.demo_url(), size=DESKTOP, locale="fr-FR")
    expect(page.locator("#clinicpay-widget")).to_have_attribute("data-state", "form")
    shots(page, "widget-form-desktop")

    # When the patient switches the widget to French with the keyboard
    picker = page.get_by_label("Idioma")
    picker.focus()
    picker.select_option("fr")
    expect(page.get_by_role("heading", name="Clínica Los Andes · Prendre rendez-vous")).to_be_visible()
    expect(page.locator(".cpw-service:has([data-service=control]) .cpw-price")).to_have_text("Gratuit")
    # chooses the free service with the arrow keys (Tab enters the radio group)
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowDown")
    expect(page.get_by_label("Control (sin costo)")).to_be_checked()
    expect(page.get_by_role("button", name="Réserver", exact=True)).to_be_visible()
    # types name and email, and presses Enter
    page.get_by_label("Nom et prénom").focus()
    page.keyboard.type("Claire Dubois")
    page.get_by_label("Adresse e-mail").focus()
    page.keyboard.type(email)
    page.keyboard.press("Enter")

    # Then the widget confirms in French, with focus on the confirmation
    widget = page.locator("#clinicpay-widget")
    expect(widget).to_have_attribute("data-state", "done")
    heading = page.get_by_role("heading", name="Votre rendez-vous est réservé")
    expect(heading).to_be_focused()
    expect(widget).to_contain_text(f"Nous avons envoyé la confirmation à {email}.")
    expect(page.get_by_role("status")).to_contain_text("Votre rendez-vous est réservé")
    shots(page, "widget-confirmed-desktop")
    page.set_viewport_size(PHONE)
    assert no_horizontal_scroll(page)
    shots(page, "widget-confirmed-phone")

    # and the confirmation email went out in French, with nothing to pay
    mail = wait_for(lambda: outbox(clinic.base_url, email), message="the confirmation email")
    assert mail[0]["subject"].startswith("Votre rendez-vous chez Clínica Los Andes")
    booked = [a for a in clinic.appointments() if a["patient"].get("email") == email]
    assert [a["payment_status"] for a in booked] == ["not_required"]
    assert booked[0]["patient"]["locale"] == "fr"


def test_every_failure_is_explained_in_norwegian_and_a_retry_books_once(clinic: Clinic, open_page: Any) -> None:
    page = open_page(clinic.demo_url(locale="nb"), size={"width": 375, "height": 812}, locale="nb-NO")
    widget = page.locator("#clinicpay-widget")
    expect(widget).to_have_attribute("data-state", "form")
    # Usable at 375 px, every control labelled, one polite live region for the news
    assert no_horizontal_scroll(page)
    assert unlabelled_controls(page, "#clinicpay-widget") == []
    live = page.locator("#clinicpay-widget [role=status]")
    expect(live).to_have_attribute("aria-live", "polite")

    # An empty form: each field says what is missing, and focus goes to the first one
    page.get_by_role("button", name="Bestill").click()
    expect(live).to_have_text("Sjekk de markerte feltene.")
    expect(widget).to_contain_text("Velg en tjeneste.")
    expect(widget).to_contain_text("Fyll ut dette feltet.")
    expect(widget).to_contain_text("Oppgi e-post eller telefonnummer.")
    assert page.evaluate("document.activeElement.type") == "radio"
    assert no_horizontal_scroll(page)

    # A phone without the country code is caught before anything is sent
    page.get_by_label("Control (sin costo)").check()
    page.get_by_label("Fullt navn").fill("Ola Nordmann")
    page.get_by_label("Mobiltelefon").fill("91234567")
    page.get_by_role("button", name="Bestill").click()
    expect(widget).to_contain_text("Skriv nummeret med + og landskode.")
    expect(page.get_by_label("Mobiltelefon")).to_have_attribute("aria-invalid", "true")
    # A Norwegian mobile for a Chilean clinic: the server sends texts only to Chilean mobiles, and
    # the widget says so on the phone field, in Norwegian, naming the country
    expect(widget).to_contain_text("Et mobilnummer fra Chile, med +56")
    page.get_by_label("Mobiltelefon").fill(f"+479{secrets.randbelow(10**7):07d}")
    page.get_by_role("button", name="Bestill").click()
    expect(widget).to_contain_text("Vi sender bare SMS til mobilnumre fra Chile (+56). Bruk et slikt, eller la telefon "
                                   "stå tom og oppgi e-post.")
    expect(page.get_by_label("Mobiltelefon")).to_have_attribute("aria-invalid", "true")
    assert clinic.appointments() == []
    phone = "+56961234567"
    page.get_by_label("Mobiltelefon").fill(phone)

    # The server refuses a field (422 with details): the message lands on that field
    page.route(BOOK_ONLINE, lambda route: route.fulfill(status=422, content_type="application/json", body=json.dumps(
        {"error": {"code": "validation_error", "message": "The request did not pass validation.",
                   "details": [{"field": "patient.phone", "message": "String should match pattern", "type": "x"}]}})))
    page.get_by_role("button", name="Bestill").click()
    expect(live).to_have_text("Sjekk de markerte feltene.")
    expect(page.get_by_label("Mobiltelefon")).to_have_attribute("aria-invalid", "true")
    page.unroute(BOOK_ONLINE)

    # The network is down
    page.route(BOOK_ONLINE, lambda route: route.abort("internetdisconnected"))
    page.get_by_role("button", name="Bestill").click()
    expect(live).to_contain_text("Vi fikk ikke kontakt med bestillingstjenesten. Sjekk tilkoblingen og prøv igjen.")
    page.unroute(BOOK_ONLINE)

    # The provider is unavailable (503 with retry_after): the patient is told to retry, and when
    keys: list[str] = []

    def unavailable(route: Route) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        route.fulfill(status=503, content_type="application/json", headers={"Retry-After": "7"}, body=json.dumps(
            {"error": {"code": "provider_unavailable", "message": "The payment provider is not answering; try again.",
                       "details": [{"retry_after": 7}]}}))

    page.route(BOOK_ONLINE, unavailable)
    page.get_by_role("button", name="Bestill").click()
    expect(live).to_contain_text("Betalingsleverandøren svarer ikke akkurat nå. Ingenting er trukket. "
                                 "Prøv igjen om 7 sekunder.")
    page.unroute(BOOK_ONLINE)
    # they press "Prøv igjen", the same booking goes again with the same Idempotency-Key, and is booked once
    with page.expect_request(BOOK_ONLINE) as sent:
        page.get_by_role("button", name="Prøv igjen").click()
    assert sent.value.headers["idempotency-key"] == keys[0] != ""
    expect(widget).to_have_attribute("data-state", "done")
    expect(page.get_by_role("heading", name="Timen din er bestilt")).to_be_visible()
    booked = [a for a in clinic.appointments() if a["patient"].get("phone") == phone]
    assert len(booked) == 1 and booked[0]["patient"]["locale"] == "nb"


def test_a_wrong_publishable_key_says_the_form_is_misconfigured(clinic: Clinic, open_page: Any) -> None:
    page = open_page(f"{clinic.base_url}/demo?clinic={clinic.clinic_id}&key=cp_pub_not_a_real_key&locale=uk")
    expect(page.locator("#clinicpay-widget [role=status]")).to_contain_text(
        "Форму запису налаштовано неправильно (ключ клініки). Зверніться до клініки.")
    expect(page.locator("#clinicpay-widget form")).to_have_count(0)


def test_a_returning_patient_signed_in_on_the_clinics_site_books_as_themselves(clinic: Clinic, open_page: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from clinicpay.domain.patient_tokens import sign

    # Given a patient the clinic knows, and the clinic's site holding its patient-token secret
    email = unique_email("rosa")
    clinic.staff().post(clinic.path("/appointments"), expect=201, json={
        "patient": {"id": "site-rosa", "name": "Rosa Díaz", "email": email}, "service_id": "control",
        "starts_at": (datetime.now(UTC) + timedelta(days=5)).isoformat(), "booked_by": "staff"})
    secret = clinic.admin().post(clinic.path("/patient-token-secret"), expect=201).json()["secret"]
    token = sign(secret, clinic.clinic_id, "site-rosa", datetime.now(UTC) + timedelta(minutes=30))
    # When Rosa, signed in there, books through the widget (typing another address by mistake)
    page = open_page(clinic.demo_url() + f"&patient_token={token}", size=PHONE)
    expect(page.locator("#clinicpay-widget")).to_have_attribute("data-state", "form")
    page.get_by_label("Control (sin costo)").check()
    page.get_by_label("Nombre y apellido").fill("Rosa")
    page.get_by_label("Correo electrónico").fill("typo@example.com")
    with page.expect_request(BOOK_ONLINE) as sent:
        page.get_by_role("button", name="Reservar", exact=True).click()
    assert json.loads(sent.value.post_data or "{}")["patient_token"] == token
    # Then it is her booking, confirmed to the address the clinic has for her
    expect(page.locator("#clinicpay-widget")).to_have_attribute("data-state", "done")
    expect(page.locator("#clinicpay-widget")).to_contain_text(f"Enviamos la confirmación a {email}.")
    mine = [a for a in clinic.appointments() if a["patient"]["id"] == "site-rosa"]
    assert len(mine) == 2 and {a["patient"]["email"] for a in mine} == {email}
    assert outbox(clinic.base_url, "typo@example.com") == []


def test_an_expired_patient_token_asks_for_a_reload(clinic: Clinic, open_page: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from clinicpay.domain.patient_tokens import sign

    secret = clinic.admin().post(clinic.path("/patient-token-secret"), expect=201).json()["secret"]
    token = sign(secret, clinic.clinic_id, "site-1", datetime.now(UTC) - timedelta(minutes=10))
    page = open_page(clinic.demo_url(locale="en") + f"&patient_token={token}", size=PHONE)
    page.get_by_label("Control (sin costo)").check()
    page.get_by_label("Full name").fill("Sam")
    page.get_by_label("Email").fill(unique_email("sam"))
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.locator("#clinicpay-widget [role=status]")).to_contain_text(
        "Your sign-in on the clinic's site has expired. Reload the page to book.")
    assert clinic.appointments() == []


def test_a_name_with_a_bidi_override_is_refused_on_its_field(clinic: Clinic, open_page: Any) -> None:
    page = open_page(clinic.demo_url(locale="fr"), size=PHONE)
    page.get_by_label("Control (sin costo)").check()
    page.get_by_label("Nom et prénom").fill("Claire\u202eenialC")
    page.get_by_label("Adresse e-mail").fill(unique_email("claire"))
    page.get_by_role("button", name="Réserver", exact=True).click()
    expect(page.get_by_label("Nom et prénom")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#clinicpay-widget")).to_contain_text(
        "Saisissez seulement le nom, sur une ligne, sans caractères spéciaux.")
    assert clinic.appointments() == []


def test_a_patient_past_the_limit_is_told_how_long_to_wait(clinic: Clinic, open_page: Any) -> None:
    from datetime import UTC, datetime, timedelta

    import requests

    # Given ten bookings for this clinic from this address already (a script, say)
    url = f"{clinic.base_url}/v1/public/clinics/{clinic.clinic_id}/appointments"
    for i in range(10):
        made = requests.post(url, headers={"X-Clinic-Key": clinic.publishable_key}, timeout=10, json={
            "patient": {"name": f"Bot {i}"}, "service_id": "control",
            "starts_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()})
        assert made.status_code == 201, made.text
    # When one more booking comes from the same address through the widget
    page = open_page(clinic.demo_url(locale="en"), size=PHONE)
    page.get_by_label("Control (sin costo)").check()
    page.get_by_label("Full name").fill("Sam")
    page.get_by_label("Email").fill(unique_email("sam"))
    page.get_by_role("button", name="Book", exact=True).click()
    # Then it is told, in its language, how many seconds to wait; nothing was booked
    expect(page.locator("#clinicpay-widget [role=status]")).to_contain_text(
        re.compile(r"Too many attempts\. Wait \d+ seconds and try again\."))
    assert len(clinic.appointments()) == 10


def test_a_service_named_per_language_reads_in_the_widgets_language(clinic: Clinic, open_page: Any) -> None:
    clinic.admin().put(clinic.path("/services/control"), expect=200, json={
        "name": "Control (sin costo)", "names": {"fr": "Contrôle (gratuit)", "uk": "Контроль (безкоштовно)"},
        "price": {"amount": 0, "currency": clinic.currency}, "requires_online_payment": False})
    page = open_page(clinic.demo_url(locale="fr"), size=PHONE, locale="fr-FR")
    expect(page.get_by_label("Contrôle (gratuit)")).to_be_visible()
    expect(page.get_by_label("Consulta general")).to_be_visible()  # no French name: its name
    page.get_by_label("Langue").select_option("es")
    expect(page.get_by_label("Control (sin costo)")).to_be_visible()
