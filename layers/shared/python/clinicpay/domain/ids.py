"""Every id, token and key we mint, in a form that can never look like a card number.

The card-number guard refuses a run of 13-19 digits that passes Luhn. An id spelled in hex holds
such a run now and then (about 1 in 1,000 of a 20-character one), and every later request naming
it would be refused. So ids are random bytes spelled in sixteen consonants, never a digit: an id,
a link token or a key cannot hold even two digits in a row, let alone thirteen. With no vowels no
word can form either. A provider that needs a UUID (Checkbox receipt ids) gets a UUID4 drawn again
until no dash-joined run of 13 digits appears in it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid

# One letter per hex digit: bytes.hex() then str.translate, both in C (about a microsecond an id).
ALPHABET = "bcdfghjkmnpqrstv"
_FROM_HEX = str.maketrans("0123456789abcdef", ALPHABET)

# The guard's notion of a run: digits, optionally split by single spaces or dashes.
_DIGIT_RUN = re.compile(r"(?:\d[ -]?){12,}\d")


def spell(hex_digits: str) -> str:
    """Hex digits respelled in the id alphabet (keeps the value, drops every digit)."""
    return hex_digits.lower().translate(_FROM_HEX)


def new_id(prefix: str, nbytes: int = 10) -> str:
    """`ap_kqmdvbtrhgfnscpjxw`: the prefix names the kind; 10 random bytes (80 bits) by default."""
    return f"{prefix}_{spell(secrets.token_hex(nbytes))}"


def new_token(nbytes: int = 24) -> str:
    """An unguessable link token or key body: 24 random bytes (192 bits), 48 letters."""
    return spell(secrets.token_hex(nbytes))


def id_from_digest(prefix: str, *parts: str, length: int = 24) -> str:
    """A deterministic id (the same parts, the same id), e.g. a charge id from an Idempotency-Key."""
    return f"{prefix}_{spell(hashlib.sha256('|'.join(parts).encode()).hexdigest()[:length])}"


def has_digit_run(text: str) -> bool:
    return _DIGIT_RUN.search(text) is not None


def new_uuid() -> str:
    """A UUID4 (for providers that require one) with no 13-digit run, dashes included."""
    while True:
        value = str(uuid.uuid4())
        if not has_digit_run(value):
            return value
