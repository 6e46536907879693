"""Patient-facing dates and money (Babel, CLDR) and the HTML part of an email."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from clinicpay.domain.money import CURRENCY_EXPONENTS, Money
from clinicpay.notify import sender
from clinicpay.notify.formatting import format_money, format_time
from clinicpay.notify.html import email_html
from clinicpay.ports import OutgoingMessage

ROOT = Path(__file__).resolve().parents[2]
MOMENT = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(("locale", "timezone", "expected"), [
    ("es", "America/Santiago", "martes, 1 de diciembre de 2026, 10:00 (hora de Chile)"),
    ("en", "America/Toronto", "Tuesday, December 1, 2026, 8:00\u202fAM (Eastern Time)"),
    ("fr", "Europe/Paris", "mardi 1 décembre 2026, 14:00 (heure d’Europe centrale)"),
    ("uk", "Europe/Kyiv", "вівторок, 1 грудня 2026\u202fр., 15:00 (за східноєвропейським часом)"),
    ("nb", "Europe/Oslo", "tirsdag 1. desember 2026, 14:00 (tidssone for Sentral-Europa)"),
])
def test_dates_name_the_weekday_the_clinics_wall_clock_and_its_zone(locale: str, timezone: str, expected: str) -> None:
    assert format_time(MOMENT, timezone, locale) == expected


def test_an_sms_gets_the_short_date_in_the_patients_language() -> None:
    assert format_time(MOMENT, "America/Santiago", "es", brief=True) == "mar, 1 dic, 10:00"
    assert format_time(MOMENT, "Europe/Kyiv", "uk", brief=True) == "вт, 1 груд., 15:00"


def test_a_summer_date_keeps_the_zones_generic_name() -> None:
    # Santiago is on summer time in December, Oslo is not in January: both read as the zone's name
    assert format_time(datetime(2027, 1, 15, 12, 0, tzinfo=UTC), "Europe/Oslo", "nb").endswith(
        "(tidssone for Sentral-Europa)")
    assert format_time(datetime(2026, 7, 15, 14, 0, tzinfo=UTC), "America/Santiago", "es").endswith(
        "10:00 (hora de Chile)")


@pytest.mark.parametrize(("locale", "clp", "uah"), [
    ("es", "25.000 CLP", "1.234,50 UAH"), ("en", "25,000 CLP", "1,234.50 UAH"),
    ("fr", "25\u202f000 CLP", "1\u202f234,50 UAH"), ("uk", "25\u00a0000 CLP", "1\u00a0234,50 UAH"),
    ("nb", "25\u00a0000 CLP", "1\u00a0234,50 UAH"),
])
def test_money_keeps_the_currencys_decimals_in_each_locale(locale: str, clp: str, uah: str) -> None:
    assert format_money(Money(amount=25000, currency="CLP"), locale) == clp
    assert format_money(Money(amount=123450, currency="UAH"), locale) == uah


def test_cldr_agrees_with_our_minor_units_for_every_currency() -> None:
    from babel.numbers import get_currency_precision

    assert {code: get_currency_precision(code) for code in CURRENCY_EXPONENTS} == CURRENCY_EXPONENTS


def test_babel_is_not_imported_until_a_message_is_rendered() -> None:
    program = ("import sys; sys.path.insert(0, 'layers/shared/python');"
               "import clinicpay.notify.formatting, clinicpay.notify.sender, clinicpay.usecases.messages;"
               "print('babel' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------- HTML
class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [v or "" for k, v in attrs if k == "href"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(document: str) -> _Collect:
    parsed = _Collect()
    parsed.feed(document)
    return parsed


def test_user_data_in_the_html_part_is_escaped() -> None:
    body = ("Hola <script>alert(1)</script> & \"Ana\" <img src=x onerror=y>,\n\n"
            "Paga aquí:\nhttps://pay.example/p/abc?x=1&y=\"2\"\n\n"
            "https://pay.example/p/tok\n\nClínica <b>Sur</b>")
    document = email_html("Tu hora <en> Clínica", body, "es", link_hosts=["pay.example"])
    parsed = _parse(document)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "b" not in parsed.tags
    assert "<script>alert(1)</script>" in "".join(parsed.text)  # shown as text, not run
    assert '<html lang="es">' in document
    # Addresses become links (only http/https); a paragraph that is just an address is a button
    assert parsed.hrefs == ["https://pay.example/p/abc?x=1&y=", "https://pay.example/p/tok"]
    assert "<title>Tu hora &lt;en&gt; Clínica</title>" in document


def test_a_javascript_address_never_becomes_a_link() -> None:
    assert _parse(email_html("s", "javascript:alert(1)\n\nx", "en", link_hosts=["pay.example"])).hrefs == []


def test_only_our_own_addresses_become_links() -> None:
    # a patient named "https://evil.example/login" in the public widget: text, never a link or button
    body = "Hola https://evil.example/login,\n\nhttps://evil.example/pay\n\nPaga: https://pay.example/p/tok"
    parsed = _parse(email_html("s", body, "es", link_hosts=["pay.example"]))
    assert parsed.hrefs == ["https://pay.example/p/tok"]
    assert "https://evil.example/login" in "".join(parsed.text) and "https://evil.example/pay" in "".join(parsed.text)


def test_an_email_goes_to_ses_with_a_text_and_an_html_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    sender._ses.cache_clear()
    client = sender._ses()
    captured: dict[str, Any] = {}
    with Stubber(client) as stub:
        stub.add_response("send_email", {"MessageId": "m-1"},
                          {"FromEmailAddress": "no-reply@clinic.test", "Destination": ANY, "Content": ANY})
        client.meta.events.register("provide-client-params.sesv2.SendEmail",
                                    lambda params, **_: captured.update(params))
        message_id = sender.AwsTransport("no-reply@clinic.test").deliver(OutgoingMessage(
            channel="email", to="ana@example.cl", subject="Tu hora", body="Hola Ana <3,\n\nNos vemos.",
            kind="appointment_created", clinic_id="cl_1", locale="es"))
    sender._ses.cache_clear()
    assert message_id == "m-1"
    body = captured["Content"]["Simple"]["Body"]
    assert body["Text"]["Data"] == "Hola Ana <3,\n\nNos vemos."
    assert "Hola Ana &lt;3," in body["Html"]["Data"] and '<html lang="es">' in body["Html"]["Data"]
    assert body["Html"]["Charset"] == body["Text"]["Charset"] == "UTF-8"
