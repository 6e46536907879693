"""The `t=<unix seconds>,v1=<hex>` webhook signature that Fintoc and Stripe share.

HMAC-SHA256 keyed with the whole endpoint secret's UTF-8 bytes (prefix included) over `f"{t}."`
followed by the raw body bytes, lower-case hex. The body is never re-serialised: one changed byte
breaks the signature. Several `v1` values may appear while a secret is rolled; any one may match.
Other keys (Stripe's legacy `v0`, a future `v2`) are ignored, as the providers' own libraries do.
Only old timestamps are refused, like both official SDKs: a sender clock slightly ahead must not
make genuine payments bounce. There is no switch to turn verification off.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from clinicpay.domain.errors import InvalidSignature

DEFAULT_TOLERANCE_SECONDS = 300


def hmac_sha256_hex(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


def compute_signature(secret: str, timestamp: int, raw_body: bytes) -> str:
    return hmac_sha256_hex(secret, f"{timestamp}.".encode() + raw_body)


def signature_header(secret: str, raw_body: bytes, timestamp: int | None = None) -> str:
    """A header as the provider sends it; used by the sandboxes and by tests that sign events."""
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


def verify(raw_body: bytes, header: str | None, secret: str, *, header_name: str,
           tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> int:
    """Check `header` against `raw_body`; return the signed timestamp. Raises InvalidSignature.

    `now` exists only so tests can freeze time."""
    if not secret:
        # An empty key would make an attacker-computed HMAC verify: fail closed.
        raise InvalidSignature("No webhook secret is configured for this endpoint.")
    if not header:
        raise InvalidSignature(f"The {header_name} header is missing.")
    timestamp, candidates = _parse_header(header)
    expected = compute_signature(secret, timestamp, raw_body).encode()
    # Every candidate is compared (no early exit), as bytes: compare_digest refuses non-ASCII str,
    # and the header is attacker input.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise InvalidSignature()
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise InvalidSignature("The webhook signature is too old.")
    return timestamp
