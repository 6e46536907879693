"""Verification of Checkbox's webhook header `x-request-signature` (reference/providers.md 3.7).

The scheme: base64(HMAC-SHA256(key=webhook secret, msg=raw body bytes)). Checkbox publishes no test
vector (6.5), so our tests pin it with a self-made fixture. Nothing time-related is signed: callers
deduplicate by receipt id. An empty secret never verifies anything (fail closed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from clinicpay.domain.errors import InvalidSignature

SIGNATURE_HEADER = "x-request-signature"


def compute_signature(secret: str, raw_body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()).decode()


def verify_signature(raw_body: bytes, header: str | None, secret: str) -> None:
    if not secret:
        raise InvalidSignature("No Checkbox webhook secret is configured for this clinic.")
    if not header:
        raise InvalidSignature("The x-request-signature header is missing.")
    expected = compute_signature(secret, raw_body)
    # Bytes, not str: compare_digest refuses non-ASCII strings, and the header is attacker input.
    if not hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace")):
        raise InvalidSignature()
