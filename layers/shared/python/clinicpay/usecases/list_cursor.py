"""Opaque cursors for the staff lists (appointments, QR payments): a position in one clinic's list
under one set of filters.

A cursor is base64url JSON, not signed: it names only a place in a list the caller may read anyway,
and every page is read from the path's clinic, so no cursor can show another clinic's items. It is
still checked, so that a cursor of another clinic or other filters, or one that was edited, is a
clear 400 `invalid_cursor` instead of a page that silently starts somewhere else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from clinicpay.domain.errors import BadRequest

VERSION = 1
MAX_LENGTH = 512
_SHAPE = re.compile(r"[A-Za-z0-9_\-]+")


def fingerprint(filters: Any) -> str:
    """A short digest of the filters a cursor was made for (any JSON-able value)."""
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode(clinic_id: str, filters_fingerprint: str, position: list[Any]) -> str:
    body = {"v": VERSION, "c": clinic_id, "f": filters_fingerprint, "k": position}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")


def invalid(message: str = "The cursor is not one this list gave.") -> BadRequest:
    return BadRequest(message, code="invalid_cursor", details=[{"field": "cursor", "message": message}])


def decode(clinic_id: str, filters_fingerprint: str, cursor: str) -> list[Any]:
    """The position a cursor of this list (this clinic, these filters) holds; the caller checks its shape."""
    if len(cursor) > MAX_LENGTH or not _SHAPE.fullmatch(cursor):
        raise invalid()
    try:
        body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise invalid() from None
    if not isinstance(body, dict) or body.get("v") != VERSION or not isinstance(body.get("k"), list):
        raise invalid()
    if body.get("c") != clinic_id:
        raise invalid("The cursor belongs to another clinic's list.")
    if body.get("f") != filters_fingerprint:
        raise invalid("The cursor was made for other filters: start again without it.")
    return list(body["k"])


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
