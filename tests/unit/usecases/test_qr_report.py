"""The QR payments report: filters from the query string, and CSV that a spreadsheet cannot run."""

from __future__ import annotations

import pytest

from clinicpay.domain.errors import ValidationFailed
from clinicpay.usecases.qr_report import CSV_COLUMNS, parse_filters, to_csv


def test_dates_are_days_in_the_clinics_zone_and_to_includes_its_day() -> None:
    filters = parse_filters({"from": "2026-11-01", "to": "2026-11-30", "fiscal_status": "pending",
                             "min_amount": "100", "max_amount": "90000", "qr_id": "qr1"}, "Europe/Kyiv")
    assert filters.paid_from == "2026-10-31T22:00:00+00:00"
    assert filters.paid_to == "2026-11-30T22:00:00+00:00"
    assert (filters.fiscal_status, filters.min_amount, filters.max_amount, filters.qr_id) == ("pending", 100, 90000, "qr1")


def test_times_keep_their_offset() -> None:
    assert parse_filters({"from": "2026-11-23T10:00:00+02:00"}).paid_from == "2026-11-23T08:00:00+00:00"


@pytest.mark.parametrize("query", [
    {"from": "yesterday"}, {"to": "2026-11-23T10:00:00"}, {"fiscal_status": "lost"}, {"min_amount": "10.5"},
    {"max_amount": "-1"},
])
def test_bad_filters_are_a_422_naming_the_field(query: dict[str, str]) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_filters(query)
    assert refused.value.status == 422 and refused.value.details


def test_csv_has_a_header_one_line_per_row_and_defused_formulas() -> None:
    row = {"payment_id": "qrp_1", "paid_at": "2026-11-23T10:00:05+00:00", "amount": {"amount": 85000, "currency": "UAH"},
           "qr_id": "qr1", "appointment_id": "=HYPERLINK(\"x\")", "masked_pan": "444403******1902",
           "fiscal_status": "fiscalized", "invoice_id": "p2_1", "fiscal": {"last_error": None},
           "receipt": {"id": "r1", "fiscal_code": "FC1", "url": "https://check/FC1"}}
    lines = to_csv([row]).splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert lines[1].startswith("qrp_1,2026-11-23T10:00:05+00:00,85000,UAH,qr1,\"'=HYPERLINK")
    assert "FC1" in lines[1] and len(lines) == 2
