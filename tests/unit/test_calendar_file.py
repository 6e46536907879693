"""The calendar file and the receipt's small formatters (issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clinicpay.api.calendar_file import appointment_calendar
from clinicpay.api.pages import local_time
from clinicpay.usecases.payment_links import mask_email
from tests.support.ical import parse_calendar

STARTS = datetime(2031, 3, 14, 13, 30, tzinfo=UTC)


def test_a_long_summary_with_separators_and_non_ascii_text_folds_and_reads_back() -> None:
    summary = "Консультація; огляд, контроль\\після лікування — Клініка «Здоровʼя» " * 3
    raw = appointment_calendar(uid="ap_1.cl_1@clinicpay", starts_at=STARTS, summary=summary,
                               description="Line one\nLine two", stamp=STARTS).encode()
    # every physical line is at most 75 octets, and folding never splits a UTF-8 character
    assert max(len(line) for line in raw.split(b"\r\n")) <= 75
    raw.decode("utf-8")
    event = parse_calendar(raw)
    assert event["SUMMARY"] == summary and event["DESCRIPTION"] == "Line one\nLine two"
    assert event["DTSTART"] == "20310314T133000Z" and event["DTSTAMP"] == "20310314T133000Z"
    assert event["UID"] == "ap_1.cl_1@clinicpay"


def test_the_strict_reader_refuses_what_a_calendar_might() -> None:
    good = appointment_calendar(uid="u", starts_at=STARTS, summary="a", stamp=STARTS)
    with pytest.raises(AssertionError):
        parse_calendar(good.replace("\r\n", "\n").encode())  # bare LF
    with pytest.raises(AssertionError):
        parse_calendar(good.replace("SUMMARY:a", "SUMMARY:a;b").encode())  # unescaped separator
    with pytest.raises(AssertionError):
        parse_calendar(good.replace("SUMMARY:a", "SUMMARY:" + "x" * 80).encode())  # unfolded


@pytest.mark.parametrize(("locale", "shown"), [
    ("es", "viernes, 14 de marzo de 2031, 10:30 (hora de Chile)"),
    ("en", "Friday, March 14, 2031, 10:30\u202fAM (Chile Time)"),
    ("fr", "vendredi 14 mars 2031, 10:30 (heure du Chili)"),
    ("uk", "пʼятниця, 14 березня 2031\u202fр., 10:30 (за чилійським часом)"),
    ("nb", "fredag 14. mars 2031, 10:30 (chilensk tid)"),
])
def test_the_appointment_time_is_the_clinics_wall_clock_with_weekday_and_zone_named(locale: str, shown: str) -> None:
    assert local_time(STARTS, "America/Santiago", locale) == shown


def test_a_zone_east_of_utc_and_in_summer_time() -> None:
    assert local_time(datetime(2031, 7, 1, 8, 0, tzinfo=UTC), "Europe/Kyiv", "uk") == \
        "вівторок, 1 липня 2031\u202fр., 11:00 (за східноєвропейським часом)"


def test_a_time_the_page_already_places_is_short() -> None:
    assert local_time(STARTS, "America/Santiago", "es", named=False) == "14 mar 2031, 10:30"


@pytest.mark.parametrize(("address", "masked"), [("ana.rojas@example.cl", "a***@example.cl"),
                                                 ("a@b.co", "a***@b.co"), ("x+tag@sub.example.com", "x***@sub.example.com")])
def test_the_receipt_address_is_masked(address: str, masked: str) -> None:
    assert mask_email(address) == masked
