"""The patient's pages after paying: the receipt, its calendar file, and a checkout left unpaid (issue 11)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from local.apigw import HttpResult
from tests.integration.test_payment_links import appointment, book, open_link, pay_at_sandbox, token_of, wait_for
from tests.support.api import ApiClient
from tests.support.clinics import ClinicKeys, add_service, connect_fintoc, create_clinic
from tests.support.env import TestStack
from tests.support.ical import parse_calendar


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = create_clinic(name="Clínica Alameda")
    connect_fintoc(keys, stack.sandbox_url("fintoc"), stack.base_url)
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "fintoc"})
    add_service(keys, "consulta", 1250000)
    return keys


def get(path: str, query: dict[str, str] | None = None) -> HttpResult:
    return ApiClient().get(path, query=query)


def visible_text(page: HttpResult) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", page.body.decode())))


def paid(clinic: ClinicKeys, **booking: Any) -> tuple[dict[str, Any], str]:
    created = book(clinic, **booking).json()
    token = token_of(created)
    pay_at_sandbox(open_link(token).headers["Location"])
    wait_for(lambda: appointment(clinic, created["appointment_id"]).get("payment_status") == "paid")
    return created, token


def test_the_paid_link_is_a_receipt_in_the_patients_language(clinic: ClinicKeys) -> None:
    # Given a paid appointment at 10:30 Santiago time, three days ahead
    created, token = paid(clinic, email="ana.rojas@example.cl")
    stored = appointment(clinic, created["appointment_id"])
    # When the patient opens the link again
    page = open_link(token)
    # Then it is a receipt, in Spanish, with no "already paid" wording
    assert page.status == 200 and b'data-status="paid"' in page.body
    text = visible_text(page)
    assert "Pagado. ¡Gracias!" in text and "ya está pagada" not in text
    assert "Clínica Alameda" in text
    assert "1.250.000 CLP" in text  # minor units (CLP has none), grouped the Chilean way
    local = datetime.fromisoformat(stored["starts_at"]).astimezone(ZoneInfo("America/Santiago"))
    weekday = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"][local.weekday()]
    assert f"{weekday}, {local.day} de " in text and f"{local:%H:%M} (hora de Chile)" in text
    assert created["appointment_id"] in text
    assert stored["payment"]["reference"] in text and "Referencia del pago (Fintoc)" in text
    assert "Enviamos el comprobante a a***@example.cl." in text and "ana.rojas" not in text
    assert f'href="/pay/{token}/calendar.ics"' in page.body.decode()
    # no site configured: no link back
    assert 'id="website"' not in page.body.decode()
    # and it keeps the page's security headers
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(("locale", "amount", "heading", "sent"), [
    ("en", "1,250,000 CLP", "Paid — thank you", "A receipt was sent to d***@example.com."),
    ("fr", "1\u202f250\u202f000 CLP", "Payé — merci !", "Un reçu a été envoyé à d***@example.com."),
    ("uk", "1\u00a0250\u00a0000 CLP", "Оплачено — дякуємо!", "Квитанцію надіслано на d***@example.com."),
    ("nb", "1\u00a0250\u00a0000 CLP", "Betalt – takk!", "Kvitteringen er sendt til d***@example.com."),
])
def test_the_receipt_follows_the_patients_language(clinic: ClinicKeys, locale: str, amount: str, heading: str,
                                                   sent: str) -> None:
    _, token = paid(clinic, email="diego@example.com", locale=locale)
    page = open_link(token)
    text = visible_text(page)
    assert heading in text and sent in text
    # the exact (narrow) no-break space of the locale, not any space
    assert f'<span id="amount">{amount}</span>' in page.body.decode()


def test_the_result_page_shows_the_receipt_once_paid_and_links_back_to_the_clinics_site(clinic: ClinicKeys) -> None:
    # Given a clinic with a site, and a paid appointment
    assert clinic.admin().patch(clinic.path("/settings"), json={"website": "https://alameda.example.cl/reservas?x=1&y=2"}
                                ).status == 200
    _, token = paid(clinic)
    # When the provider sends the patient back
    page = get(f"/pay/{token}/result")
    # Then the result page is the same receipt, with the way back
    assert page.status == 200 and b'data-status="paid"' in page.body
    assert 'id="website" href="https://alameda.example.cl/reservas?x=1&amp;y=2"' in page.body.decode()
    assert "Volver al sitio de la clínica" in visible_text(page)


@pytest.mark.parametrize("website", ["http://alameda.example.cl", "javascript:alert(1)", "https://a b.cl",
                                     'https://x.cl/"onmouseover=1', "https://user:pw@x.cl", "https://" + "a" * 300])
def test_a_website_that_is_not_a_plain_https_url_is_422_and_changes_nothing(clinic: ClinicKeys, website: str) -> None:
    refused = clinic.admin().patch(clinic.path("/settings"), json={"website": website})
    assert refused.status == 422 and refused.json()["error"]["details"][0]["field"] == "website"
    assert clinic.staff().get(clinic.path("/settings")).json()["website"] is None


def test_the_website_setting_can_be_cleared(clinic: ClinicKeys) -> None:
    clinic.admin().patch(clinic.path("/settings"), json={"website": "https://alameda.example.cl"})
    cleared = clinic.admin().patch(clinic.path("/settings"), json={"website": None})
    assert cleared.status == 200 and cleared.json()["website"] is None


def test_the_calendar_file_is_valid_icalendar_for_the_appointment(clinic: ClinicKeys) -> None:
    created, token = paid(clinic)
    stored = appointment(clinic, created["appointment_id"])
    # When
    first, second = get(f"/pay/{token}/calendar.ics"), get(f"/pay/{token}/calendar.ics")
    # Then
    assert first.status == 200 and first.headers["Content-Type"].startswith("text/calendar")
    assert "attachment" in first.headers["Content-Disposition"]
    event = parse_calendar(first.body)
    assert event["DTSTART"] == datetime.fromisoformat(stored["starts_at"]).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    assert event["SUMMARY"] == "Consulta — Clínica Alameda"  # the service's name when booked, and the clinic
    # the UID names the appointment, the same on every download (a second import updates the entry)
    assert event["UID"] == parse_calendar(second.body)["UID"] and created["appointment_id"] in event["UID"]
    assert event["URL"].endswith(f"/pay/{token}")


def test_an_unpaid_appointment_has_its_calendar_file_and_an_unknown_token_is_404(clinic: ClinicKeys) -> None:
    created = book(clinic).json()
    assert get(f"/pay/{token_of(created)}/calendar.ics").status == 200
    unknown = get("/pay/no-such-token-123456789/calendar.ics")
    assert unknown.status == 404 and unknown.headers["Content-Type"].startswith("text/html")


def test_a_lapsed_online_booking_has_no_calendar_file(clinic: ClinicKeys) -> None:
    clinic.admin().patch(clinic.path("/settings"), json={"online_link_ttl_minutes": 5})
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    booked = clinic.widget().post(f"/v1/public/clinics/{clinic.clinic_id}/appointments", json={
        "patient": {"name": "Ana", "email": "ana@example.cl"}, "service_id": "consulta", "starts_at": starts}).json()
    token = booked["next_action"]["url"].rsplit("/", 1)[1]
    assert get(f"/pay/{token}/calendar.ics").status == 200
    # Given the link's time has passed (moved back in the table, as the clock would)
    _expire_link(clinic, booked["appointment"]["appointment_id"])
    assert get(f"/pay/{token}/calendar.ics").status == 410


def _expire_link(clinic: ClinicKeys, appointment_id: str) -> None:
    import boto3

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    boto3.resource("dynamodb").Table("AppointmentsTable").update_item(
        Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{appointment_id}"},
        UpdateExpression="SET link_expires_at = :past", ExpressionAttributeValues={":past": past},
        ConditionExpression="attribute_exists(pk)")


def test_leaving_the_checkout_unpaid_says_so_with_a_way_to_try_again(stack: TestStack, clinic: ClinicKeys) -> None:
    # Given a patient at Fintoc's checkout who cancels there
    created = book(clinic).json()
    token = token_of(created)
    checkout = open_link(token).headers["Location"]
    back = requests.post(f"{checkout}/fail", allow_redirects=False, timeout=10)
    # Then Fintoc sends them to our cancel URL, which says nothing was charged and offers a retry
    assert back.status_code in (302, 303) and back.headers["Location"].endswith(f"/pay/{token}/result?cancelled=1")
    page = get(f"/pay/{token}/result", {"cancelled": "1"})
    assert page.status == 200 and b'data-status="cancelled"' in page.body
    assert "El pago no se completó; no se cobró nada. Puedes intentarlo de nuevo." in visible_text(page)
    assert f'href="/pay/{token}"' in page.body.decode()
    # and the success return, before the webhook, is the waiting page (no "nothing was charged")
    waiting = get(f"/pay/{token}/result")
    assert b'data-status="waiting"' in waiting.body and "no se cobró" not in visible_text(waiting)
