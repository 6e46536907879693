"""Text that reaches a message or a page: names and template text, free of control characters.

A CR or LF in a name can start a new header line in an email subject; NUL truncates text in some
readers; the other C0/C1 controls render as nothing or as garbage; bidi overrides and isolates
(U+202A-E, U+2066-9) make "evil.com/moc.knab" read as something else. Names and one-line text
refuse them all (422 naming the field); template bodies may hold line breaks (LF; a CRLF is
stored as LF) and nothing else from that list.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# C0 (U+0000-001F), DEL, C1 (U+0080-009F), line/paragraph separators, bidi embeddings, overrides
# and isolates, and the Arabic letter mark (a bidi control too).
_CONTROLS = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u061c"
_ANY_CONTROL = re.compile(f"[{_CONTROLS}]")


def has_control(text: str) -> bool:
    return _ANY_CONTROL.search(text) is not None


def _one_line(value: str) -> str:
    if has_control(value):
        raise ValueError("must not contain control characters (line breaks, tabs, NUL, bidi overrides)")
    return value


def _lines(value: str) -> str:
    value = value.replace("\r\n", "\n")
    if any(has_control(line) for line in value.split("\n")):
        raise ValueError("must not contain control characters other than line breaks")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]
"""A name or a subject: printable text on one line."""

MultiLine = Annotated[str, AfterValidator(_lines)]
"""A message body: printable text, line breaks allowed."""


def clean_line(text: str) -> str:
    """For text already stored before names were checked: every control becomes a space, so an old
    name can never split an email subject or hide in a page."""
    return _ANY_CONTROL.sub(" ", text)


def clean_lines(text: str) -> str:
    return "\n".join(clean_line(line) for line in text.replace("\r\n", "\n").split("\n"))
