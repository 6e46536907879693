"""An appointment as an iCalendar file (RFC 5545), for the patient's calendar.

Small enough to write by hand and keep the cold start light: CRLF line endings, content lines folded
at 75 octets without splitting a UTF-8 character, TEXT values escaped, times in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime


def _escape(value: str) -> str:
    """RFC 5545 3.3.11: backslash, semicolon, comma and newline are escaped in TEXT values."""
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def _fold(line: str) -> str:
    """RFC 5545 3.1: lines longer than 75 octets continue on the next line after CRLF + one space."""
    out: list[str] = []
    current = b""
    limit = 75
    for char in line:
        encoded = char.encode()
        if len(current) + len(encoded) > limit:
            out.append(current.decode())
            current = b""
            limit = 74  # the leading space of a continuation line counts
        current += encoded
    out.append(current.decode())
    return "\r\n ".join(out)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def appointment_calendar(*, uid: str, starts_at: datetime, summary: str, description: str = "",
                         url: str | None = None, stamp: datetime | None = None) -> str:
    """One VEVENT. The UID is stable per appointment, so importing the file again updates the entry.
    Appointments carry no duration, so there is no DTEND: the event is the appointment's start."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//clinicpay//appointment//EN", "CALSCALE:GREGORIAN",
             "METHOD:PUBLISH", "BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{_utc(stamp or datetime.now(UTC))}",
             f"DTSTART:{_utc(starts_at)}", f"SUMMARY:{_escape(summary)}"]
    if description:
        lines.append(f"DESCRIPTION:{_escape(description)}")
    if url:
        lines.append(f"URL:{url}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "".join(_fold(line) + "\r\n" for line in lines)
