"""A strict reader of the iCalendar files we serve (RFC 5545), for tests: it refuses what a calendar
application might refuse, rather than guessing."""

from __future__ import annotations

import re

_NAME = re.compile(r"^[A-Z][A-Z0-9-]*")
_UTC_TIME = re.compile(r"^\d{8}T\d{6}Z$")


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def parse_calendar(raw: bytes) -> dict[str, str]:
    """The one VEVENT's properties (TEXT values unescaped); AssertionError on anything not RFC 5545."""
    text = raw.decode("utf-8")
    assert text.endswith("\r\n"), "content lines end with CRLF"
    physical = text[:-2].split("\r\n")
    assert all("\n" not in line and "\r" not in line for line in physical), "bare LF or CR"
    assert all(len(line.encode()) <= 75 for line in physical), "a line longer than 75 octets is not folded"
    lines: list[str] = []
    for line in physical:
        if line.startswith((" ", "\t")):
            assert lines, "a continuation line first"
            lines[-1] += line[1:]
        else:
            lines.append(line)
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    calendar: dict[str, str] = {}
    event: dict[str, str] = {}
    current = calendar
    depth: list[str] = []
    for line in lines:
        name = _NAME.match(line)
        assert name and ":" in line, f"not a content line: {line!r}"
        key, _, value = line.partition(":")
        key = key.split(";")[0]
        if key == "BEGIN":
            depth.append(value)
            if value == "VEVENT":
                assert not event, "one event per file"
                current = event
            continue
        if key == "END":
            assert depth and depth.pop() == value, f"END:{value} does not close {depth}"
            current = calendar
            continue
        assert key not in current, f"{key} twice"
        # Unescaped separators are not allowed in a single TEXT value.
        if key in ("SUMMARY", "DESCRIPTION", "LOCATION"):
            assert not re.search(r"(?<!\\)[;,]", value.replace("\\\\", "")), f"{key} has an unescaped ; or ,"
            value = _unescape(value)
        current[key] = value
    assert not depth
    assert calendar.get("VERSION") == "2.0" and calendar.get("PRODID"), "VERSION and PRODID are required"
    for required in ("UID", "DTSTAMP", "DTSTART", "SUMMARY"):
        assert required in event, f"VEVENT without {required}"
    assert _UTC_TIME.match(event["DTSTAMP"]) and _UTC_TIME.match(event["DTSTART"]), "UTC date-times"
    return event
