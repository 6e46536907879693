"""The staff appointment list: search, order, cursor pages and the CSV (usecases/appointment_list.py)."""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from clinicpay.domain.appointment import Appointment
from clinicpay.domain.errors import BadRequest
from clinicpay.usecases import appointment_list as listing
from clinicpay.usecases.appointment_list import ListQuery

NOW = datetime(2031, 3, 14, 12, 0, tzinfo=UTC)


@dataclass
class Row:
    appointment: Appointment


def appt(aid: str, hours: float, *, name: str = "Ana Pérez", email: str | None = "ana@example.cl",
         phone: str | None = "+56912345678", clinic: str = "c1", price: int = 25000, currency: str = "CLP") -> Row:
    return Row(Appointment.model_validate({
        "appointment_id": aid, "clinic_id": clinic, "service_id": "consulta", "service_name": "Consulta",
        "patient": {"id": f"p-{aid}", "name": name, "email": email, "phone": phone},
        "starts_at": (NOW + timedelta(hours=hours)).isoformat(), "booked_by": "staff",
        "price": {"amount": price, "currency": currency}, "payment_status": "unpaid",
        "created_at": NOW.isoformat(), "amount_paid": {"amount": 0, "currency": currency},
        "amount_refunded": {"amount": 0, "currency": currency}}))


def reader(rows: list[Row], complete: bool = True):  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def read(clinic_id: str, payment_status: str | None, max_read: int) -> tuple[list[Row], bool]:
        seen.append(clinic_id)
        return [r for r in rows if r.appointment.clinic_id == clinic_id], complete
    read.seen = seen  # type: ignore[attr-defined]
    return read


def ids(page: listing.Page[Row]) -> list[str]:
    return [r.appointment.appointment_id for r in page.appointments]


ROWS = [appt("past-old", -48), appt("past-new", -2), appt("soon", 1), appt("later", 30), appt("latest", 300)]


def test_upcoming_first_soonest_then_the_past_latest_first() -> None:
    page = listing.list_page(reader(ROWS), ListQuery("c1"), now=NOW)
    assert ids(page) == ["soon", "later", "latest", "past-new", "past-old"]
    assert page.next_cursor is None and page.complete


@pytest.mark.parametrize(("sort", "expected"), [
    ("starts_at", ["past-old", "past-new", "soon", "later", "latest"]),
    ("-starts_at", ["latest", "later", "soon", "past-new", "past-old"])])
def test_sort_by_start_time_either_way(sort: listing.Sort, expected: list[str]) -> None:
    assert ids(listing.list_page(reader(ROWS), ListQuery("c1", sort=sort), now=NOW)) == expected


def test_pages_follow_the_cursor_with_no_row_twice_or_missed_even_when_time_moves_on() -> None:
    read, query, shown = reader(ROWS), ListQuery("c1"), []
    page = listing.list_page(read, query, limit=2, now=NOW)
    shown += ids(page)
    while page.next_cursor:
        # "soon" becomes past between pages: the first page's split point holds for the whole walk.
        page = listing.list_page(read, query, limit=2, cursor=page.next_cursor, now=NOW + timedelta(hours=5))
        shown += ids(page)
    assert shown == ["soon", "later", "latest", "past-new", "past-old"]


def test_search_by_part_of_name_ignores_case_and_accents() -> None:
    rows = [appt("a1", 1, name="José Álvarez", email="jose@x.cl"), appt("a2", 2, name="Ana Pérez")]
    assert ids(listing.list_page(reader(rows), ListQuery("c1", q="ALVAR jose"), now=NOW)) == ["a1"]
    assert ids(listing.list_page(reader(rows), ListQuery("c1", q="perez"), now=NOW)) == ["a2"]


def test_search_by_email_and_by_phone_whatever_its_spacing() -> None:
    rows = [appt("a1", 1, email="Diego.Soto@Example.CL", phone="+56987654321"), appt("a2", 2, phone=None)]
    assert ids(listing.list_page(reader(rows), ListQuery("c1", q="diego.soto@"), now=NOW)) == ["a1"]
    assert ids(listing.list_page(reader(rows), ListQuery("c1", q="9 8765-43"), now=NOW)) == ["a1"]
    assert ids(listing.list_page(reader(rows), ListQuery("c1", q="+56 9 1111"), now=NOW)) == []


def test_from_and_to_compare_moments_not_text_in_other_offsets() -> None:
    # 13:30 at -03:00 is 16:30 UTC: after 15:00 UTC although "13:30" < "15:00" as text.
    rows = [Row(appt("a1", 0).appointment.model_copy(update={
        "starts_at": datetime.fromisoformat("2031-03-14T13:30:00-03:00")}))]
    query = ListQuery("c1", starts_from=datetime(2031, 3, 14, 15, 0, tzinfo=UTC))
    assert ids(listing.list_page(reader(rows), query, now=NOW)) == ["a1"]


def _forge(body: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def test_a_cursor_of_another_clinic_is_refused_and_reads_nothing() -> None:
    theirs = listing.list_page(reader(ROWS), ListQuery("c1"), limit=1, now=NOW).next_cursor
    assert theirs
    read = reader(ROWS + [appt("x", 1, clinic="c2")])
    with pytest.raises(BadRequest) as refused:
        listing.list_page(read, ListQuery("c2"), limit=1, cursor=theirs, now=NOW)
    assert refused.value.code == "invalid_cursor" and read.seen == []  # type: ignore[attr-defined]


FP = ListQuery("c1").fingerprint()


@pytest.mark.parametrize("cursor", [
    "not a cursor!", "e30", "x" * 600, _forge({"v": 1, "c": "c1", "f": "0" * 16, "k": [0, 0, 0, "a"]}),
    _forge({"v": 1, "c": "c1", "f": FP, "k": ["now", 0, 0, "a"]}),
    _forge({"v": 1, "c": "c1", "f": FP, "k": [0, 7, 0, "a"]}),
    _forge({"v": 1, "c": "c1", "f": FP, "k": [0, 0, True, "a"]}),
    _forge({"v": 1, "c": "c1", "f": FP, "k": [0, 0, 0, "a" * 65]}),
    _forge({"v": 1, "c": "c1", "f": FP, "k": [0, 0, 0]}),
    _forge({"v": 1, "c": "c1", "f": FP, "k": "0,0,0,a"}),
    _forge({"v": 2, "c": "c1", "f": FP, "k": [0, 0, 0, "a"]}),
    _forge(["v", 1]),
    base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("=")])
def test_hostile_cursors_are_a_clear_400(cursor: str) -> None:
    with pytest.raises(BadRequest) as refused:
        listing.list_page(reader(ROWS), ListQuery("c1"), cursor=cursor, now=NOW)
    assert refused.value.code == "invalid_cursor"


def test_a_cursor_under_other_filters_is_refused() -> None:
    cursor = listing.list_page(reader(ROWS), ListQuery("c1"), limit=1, now=NOW).next_cursor
    with pytest.raises(BadRequest):
        listing.list_page(reader(ROWS), ListQuery("c1", q="ana"), cursor=cursor, now=NOW)


@pytest.mark.parametrize("limit", [0, -1, listing.MAX_LIMIT + 1])
def test_limit_out_of_bounds_is_refused(limit: int) -> None:
    with pytest.raises(BadRequest) as refused:
        listing.list_page(reader(ROWS), ListQuery("c1"), limit=limit, now=NOW)
    assert refused.value.code == "invalid_limit"


def test_a_list_past_the_read_bound_says_it_is_incomplete() -> None:
    assert not listing.list_page(reader(ROWS, complete=False), ListQuery("c1"), now=NOW).complete


def test_csv_money_in_the_currency_exponent_local_times_and_formulas_defused() -> None:
    rows = [appt("a1", 1, name="=HYPERLINK(\"http://x\")", price=12345, currency="EUR"),
            appt("a2", 2, name="José", email="-x@x.cl", phone="+56911111111")]
    text = listing.to_csv([r.appointment for r in rows], "America/Santiago")
    assert text.startswith("\ufeff")
    table = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert table[0]["patient_name"] == "'=HYPERLINK(\"http://x\")"
    assert table[0]["price"] == "123.45" and table[0]["currency"] == "EUR"
    assert table[1]["patient_email"] == "'-x@x.cl" and table[1]["patient_phone"] == "'+56911111111"
    assert table[1]["patient_name"] == "José"
    # 13:00 UTC in March is 10:00 in Santiago (-03:00).
    assert table[0]["starts_at_local"] == "2031-03-14 10:00" and table[0]["time_zone"] == "America/Santiago"


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    (40000, "CLP", "40000"), (5, "EUR", "0.05"), (-250, "UAH", "-2.50"), (100000, "USD", "1000.00")])
def test_decimal_amounts(amount: int, currency: str, shown: str) -> None:
    assert listing.decimal_amount(amount, currency) == shown


def test_csv_cells_that_start_like_formulas() -> None:
    assert [listing.csv_cell(v) for v in ("=1", "+1", "-1", "@a", "\tx", "\rx", "a=b", None)] == [
        "'=1", "'+1", "'-1", "'@a", "'\tx", "'\rx", "a=b", ""]
