"""Verification of Fintoc's `Fintoc-Signature: t=<unix seconds>,v1=<hex>` webhook header.

The scheme (reference/providers.md 1.6, pinned by vector 6.1): HMAC-SHA256 keyed with the endpoint
secret's UTF-8 bytes, `whsec_` prefix included, over `f"{t}."` followed by the raw body bytes.
The body is never re-serialised: a single changed byte (spacing, key order) breaks the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from clinicpay.domain.errors import InvalidSignature

SIGNATURE_HEADER = "Fintoc-Signature"

# Fintoc's Python SDK default. Only old timestamps are refused, like the SDK: a sender clock that
# runs slightly ahead must not make genuine payments bounce.
DEFAULT_TOLERANCE_SECONDS = 300


def compute_signature(secret: str, timestamp: int, raw_body: bytes) -> str:
    message = f"{timestamp}.".encode() + raw_body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature("The webhook signature timestamp is not a number.") from None
        elif key == "v1":
            candidates.append(value.strip())
        # Other schemes (e.g. a future v2=) are ignored, as Fintoc's SDK does.
    if timestamp is None or not candidates:
        raise InvalidSignature("The webhook signature header lacks t= or v1=.")
    return timestamp, candidates


def verify_signature(raw_body: bytes, header: str | None, secret: str, *,
                     tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> int:
    """Check `header` against `raw_body`; return the signed timestamp. Raises InvalidSignature.

    `now` exists so tests can freeze time; production callers leave it out.
    """
    if not secret:
        # An empty key would make any attacker-computed HMAC verify; fail closed.
        raise InvalidSignature("No webhook secret is configured for this endpoint.")
    if not header:
        raise InvalidSignature("The Fintoc-Signature header is missing.")
    timestamp, candidates = _parse_header(header)
    expected = compute_signature(secret, timestamp, raw_body)
    # Every candidate is compared (no early exit) so timing reveals nothing about which one matched.
    # Bytes, not str: compare_digest refuses non-ASCII strings, and the header is attacker input.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))
    if not matched:
        raise InvalidSignature()
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise InvalidSignature("The webhook signature is too old.")
    return timestamp
