"""The staff list of a clinic's appointments: search, order, pages (cursor) and the CSV export.

Appointments are keyed by id under the clinic (`CLINIC#{cid}` / `APPT#{aid}`): no key orders them
by date. The list reads the clinic's own partition (never another clinic's, never a table scan),
bounded to `MAX_READ` items evaluated, then matches, orders and pages in memory. Every page reads
the partition again; a clinic whose list goes past the bound is answered `complete: false` (narrow
it with `from`/`to`). An index on (clinic, start time) would make pages cheap; it needs a stack
update of its own and a backfill of existing appointments (named in docs/API.md as a limit).

The cursor (usecases/list_cursor.py) holds the moment "upcoming" was split at on the first page and
the last row shown, for this clinic and these filters; anything else is a 400 `invalid_cursor`.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

from clinicpay.domain.appointment import Appointment
from clinicpay.domain.errors import BadRequest
from clinicpay.domain.money import CURRENCY_EXPONENTS
from clinicpay.usecases import list_cursor

Sort = Literal["upcoming", "starts_at", "-starts_at"]
SORTS: tuple[Sort, ...] = ("upcoming", "starts_at", "-starts_at")
DEFAULT_LIMIT = 200  # what one answer held before pages existed: callers that never page see no change
MAX_LIMIT = 200
MAX_READ = 5000  # items of the clinic's partition evaluated per request (filters included)
MAX_CSV_ROWS = 5000
_DIGITS = re.compile(r"\d")
_PHONE_LIKE = re.compile(r"^[\d\s+().\-/]+$")


def fold(text: str | None) -> str:
    """Case and accents do not count: "José" matches "jose", "ÁLVAREZ" matches "alvarez"."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


@dataclass(frozen=True)
class Search:
    """`q` as typed: words of a name or an email (all must appear), or a phone number (its digits
    appear in the patient's, whatever spaces, dashes or "+" were typed)."""

    words: tuple[str, ...]
    digits: str | None

    @classmethod
    def parse(cls, q: str | None) -> Search | None:
        text = (q or "").strip()
        if not text:
            return None
        digits = "".join(_DIGITS.findall(text))
        if _PHONE_LIKE.match(text) and len(digits) >= 3:
            return cls(words=(), digits=digits)
        return cls(words=tuple(fold(text).split()), digits=None)

    def matches(self, appointment: Appointment) -> bool:
        patient = appointment.patient
        if self.digits is not None:
            return self.digits in "".join(_DIGITS.findall(patient.phone or ""))
        haystack = " ".join(fold(part) for part in (patient.name, patient.email, patient.id,
                                                     appointment.appointment_id) if part)
        return all(word in haystack for word in self.words)


@dataclass(frozen=True)
class ListQuery:
    clinic_id: str
    payment_status: str | None = None
    starts_from: datetime | None = None
    starts_to: datetime | None = None
    q: str | None = None
    sort: Sort = "upcoming"
    status: str | None = None  # the booking's: confirmed, awaiting_card, cancelled

    def fingerprint(self) -> str:
        """The filters a cursor was made for (a cursor is refused under other filters)."""
        return list_cursor.fingerprint([self.payment_status, _iso(self.starts_from), _iso(self.starts_to),
                                        (self.q or "").strip(), self.sort, self.status])


class Listed(Protocol):
    """What the repository reads: the appointment and what is stored with it (its link)."""

    @property
    def appointment(self) -> Appointment: ...


Item = TypeVar("Item", bound=Listed)
Reader = Callable[[str, str | None, int], tuple[list[Item], bool]]


@dataclass(frozen=True)
class Page(Generic[Item]):
    appointments: list[Item]
    next_cursor: str | None
    complete: bool  # False: the clinic has more appointments than one list reads (MAX_READ)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _order_key(appointment: Appointment, sort: Sort, pivot: int) -> tuple[int, int, str]:
    """Rows ordered by this key ascending. `upcoming`: from `pivot` on, soonest first; then the
    past, latest first. The appointment id breaks ties so that a cursor names one place."""
    at = _micros(appointment.starts_at)
    if sort == "starts_at":
        return (0, at, appointment.appointment_id)
    if sort == "-starts_at":
        return (0, -at, appointment.appointment_id)
    return (0, at, appointment.appointment_id) if at >= pivot else (1, -at, appointment.appointment_id)


def encode_cursor(query: ListQuery, pivot: int, last: tuple[int, int, str]) -> str:
    return list_cursor.encode(query.clinic_id, query.fingerprint(), [pivot, *last])


def decode_cursor(query: ListQuery, cursor: str) -> tuple[int, tuple[int, int, str]]:
    """(pivot, last row's key) of a cursor this list gave for the same clinic and filters."""
    position = list_cursor.decode(query.clinic_id, query.fingerprint(), cursor)
    if (len(position) != 4 or not all(list_cursor.is_int(v) for v in position[:3]) or position[1] not in (0, 1)
            or not isinstance(position[3], str) or len(position[3]) > 64):
        raise list_cursor.invalid()
    return position[0], (position[1], position[2], position[3])


def _selected(query: ListQuery, found: Iterable[Item]) -> list[Item]:
    search = Search.parse(query.q)
    return [s for s in found
            if (query.starts_from is None or s.appointment.starts_at >= query.starts_from)
            and (query.starts_to is None or s.appointment.starts_at < query.starts_to)
            and (query.status is None or s.appointment.status.value == query.status)
            and (search is None or search.matches(s.appointment))]


def list_page(read: Reader[Item], query: ListQuery, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None,
              now: datetime) -> Page[Item]:
    """One page of the clinic's appointments matching `query`, in its order, after `cursor`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit is between 1 and {MAX_LIMIT}.", code="invalid_limit",
                         details=[{"field": "limit", "message": f"between 1 and {MAX_LIMIT}"}])
    pivot, after = decode_cursor(query, cursor) if cursor else (_micros(now), None)
    found, complete = read(query.clinic_id, query.payment_status, MAX_READ)
    ordered = sorted(((_order_key(s.appointment, query.sort, pivot), s) for s in _selected(query, found)),
                     key=lambda pair: pair[0])
    if after is not None:
        ordered = [pair for pair in ordered if pair[0] > after]
    shown = ordered[:limit]
    more = len(ordered) > limit
    return Page(appointments=[a for _, a in shown], complete=complete,
                next_cursor=encode_cursor(query, pivot, shown[-1][0]) if more else None)


def export_rows(read: Reader[Item], query: ListQuery, *, now: datetime) -> tuple[list[Item], bool]:
    """Every matching appointment, in the list's order, up to MAX_CSV_ROWS; and whether that was all."""
    found, complete = read(query.clinic_id, query.payment_status, MAX_READ)
    pivot = _micros(now)
    ordered = sorted(_selected(query, found), key=lambda s: _order_key(s.appointment, query.sort, pivot))
    return ordered[:MAX_CSV_ROWS], complete and len(ordered) <= MAX_CSV_ROWS


# ------------------------------------------------------------------ CSV
CSV_COLUMNS = ("appointment_id", "starts_at_local", "time_zone", "patient_id", "patient_name", "patient_email",
               "patient_phone", "service_id", "service_name", "booking_status", "payment_status", "currency",
               "price", "deposit", "amount_paid", "amount_refunded", "balance_due", "payment_provider",
               "payment_reference", "payment_fee", "paid_at_local", "booked_by", "created_at_local")


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one beginning like a formula (= + - @, tab, CR) gets a
    leading apostrophe (OWASP's CSV injection advice), so a patient named "=HYPERLINK(...)" stays a name."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def decimal_amount(amount: int | None, currency: str) -> str:
    """Minor units as a decimal in the currency's exponent: 12345 EUR -> "123.45", 40000 CLP -> "40000"."""
    if amount is None:
        return ""
    places = CURRENCY_EXPONENTS.get(currency, 2)
    sign, whole = ("-" if amount < 0 else ""), abs(amount)
    if places == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole // 10 ** places}.{whole % 10 ** places:0{places}d}"


def to_csv(appointments: list[Appointment], timezone: str) -> str:
    """UTF-8 text with a byte-order mark (Excel reads UTF-8 without one as the local code page:
    "José" would show as "JosÃ©"), CRLF lines, times in the clinic's zone."""
    zone = ZoneInfo(timezone)
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)

    def local(moment: datetime | None) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""

    for a in appointments:
        code = a.price.currency
        money = [decimal_amount(m.amount if m else None, code)
                 for m in (a.price, a.deposit, a.amount_paid, a.amount_refunded, a.balance_due)]
        paid = a.payment
        writer.writerow([csv_cell(v) for v in (
            a.appointment_id, local(a.starts_at), timezone, a.patient.id, a.patient.name, a.patient.email,
            a.patient.phone, a.service_id, a.service_name, a.status.value, a.payment_status.value, code, *money,
            paid.provider if paid else None, paid.reference if paid else None,
            decimal_amount(paid.fee.amount, paid.fee.currency) if paid and paid.fee else None,
            local(paid.paid_at) if paid else None, a.booked_by.value, local(a.created_at))])
    return out.getvalue()
