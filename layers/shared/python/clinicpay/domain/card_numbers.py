"""Recognise anything that looks like a card number so it can be refused before it is stored or logged.

A candidate is a run of 13-19 digits, optionally split by single spaces or dashes, that passes
Luhn. A run that follows a `+` is an E.164 phone number, not a card, and is left alone.
"""

from __future__ import annotations

import re
from typing import Any

_CANDIDATE = re.compile(r"(?<![\d+])(?:\d[ -]?){12,18}\d(?!\d)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def contains_card_number(text: str) -> bool:
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


def is_card_number(text: str) -> bool:
    """The whole value is a card number (an id field holding only a card number), as opposed to a
    card number somewhere inside a longer text. A UUID or `pat_…` id never is one."""
    value = text.strip()
    if not _WHOLE.fullmatch(value):
        return False
    digits = re.sub(r"[ -]", "", value)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


_WHOLE = re.compile(r"(?:\d[ -]?){12,18}\d")


# Field names that only card data would use. A body that carries one is refused whatever its value,
# so an expiry date or a CVC (which no Luhn check can recognise) is never accepted either.
_CARD_FIELD = re.compile(r"^(card_?number|number|pan|cvc|cvv|cvv2|cvc2|security_?code|exp|expiry|expiration|"
                         r"exp_?month|exp_?year|expiry_?date|expiration_?date|card_?exp\w*)$", re.IGNORECASE)


def carries_card_fields(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_CARD_FIELD.match(str(key)) or carries_card_fields(item) for key, item in value.items())
    if isinstance(value, list):
        return any(carries_card_fields(item) for item in value)
    return False
