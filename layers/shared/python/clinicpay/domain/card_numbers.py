"""Recognise anything that looks like a card number so it can be refused before it is stored or logged.

A candidate is a run of 13-19 digits, optionally split by single spaces or dashes, that passes
Luhn. A run that follows a `+` is an E.164 phone number, not a card, and is left alone.
"""

from __future__ import annotations

import re

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
