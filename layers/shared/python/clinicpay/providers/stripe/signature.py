"""Verification of Stripe's `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>]` header.

The scheme (reference/providers.md 4.5, pinned by vectors 6.3 and 6.4): HMAC-SHA256 keyed with the
whole `whsec_...` secret's UTF-8 bytes over `f"{t}."` followed by the raw body bytes, lower-case hex.
Several `v1` values appear while a secret is being rolled: any one may match. `v0` is Stripe's
legacy test-mode scheme and is ignored, as every official library ignores it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from clinicpay.domain.errors import InvalidSignature

SIGNATURE_HEADER = "Stripe-Signature"

# The default of every official Stripe library. Like stripe-python, only old timestamps are refused.
DEFAULT_TOLERANCE_SECONDS = 300


def hmac_sha256_hex(secret: str, payload: bytes) -> str:
    """The bare primitive (vector 6.4): hex HMAC-SHA256 of `payload` keyed with `secret`."""
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


def compute_signature(secret: str, timestamp: int, raw_body: bytes) -> str:
    return hmac_sha256_hex(secret, f"{timestamp}.".encode() + raw_body)


def signature_header(secret: str, raw_body: bytes, timestamp: int | None = None) -> str:
    """A header as Stripe sends it; used by the sandbox and by tests that sign their own events."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    return f"t={signed_at},v1={compute_signature(secret, signed_at, raw_body)}"


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
    if timestamp is None or not candidates:
        raise InvalidSignature("The webhook signature header lacks t= or v1=.")
    return timestamp, candidates


def verify_signature(raw_body: bytes, header: str | None, secret: str, *,
                     tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> int:
    """Check `header` against `raw_body`; return the signed timestamp. Raises InvalidSignature.

    There is no switch to turn this off; `now` exists only so tests can freeze time.
    """
    if not secret:
        # An empty key would make an attacker-computed HMAC verify: fail closed.
        raise InvalidSignature("No webhook secret is configured for this endpoint.")
    if not header:
        raise InvalidSignature("The Stripe-Signature header is missing.")
    timestamp, candidates = _parse_header(header)
    expected = compute_signature(secret, timestamp, raw_body).encode()
    # Every candidate is compared (no early exit), as bytes: compare_digest refuses non-ASCII str.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise InvalidSignature()
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise InvalidSignature("The webhook signature is too old.")
    return timestamp
