"""Stripe's `Stripe-Signature` header (reference/providers.md 4.5, pinned by vectors 6.3 and 6.4):
the timestamped HMAC scheme Stripe shares with Fintoc, with several `v1` while a secret rolls."""

from __future__ import annotations

from clinicpay.providers import timestamped_hmac
from clinicpay.providers.timestamped_hmac import (
    DEFAULT_TOLERANCE_SECONDS,
    compute_signature,
    hmac_sha256_hex,
    signature_header,
)

SIGNATURE_HEADER = "Stripe-Signature"

__all__ = ["DEFAULT_TOLERANCE_SECONDS", "SIGNATURE_HEADER", "compute_signature", "hmac_sha256_hex",
           "signature_header", "verify_signature"]


def verify_signature(raw_body: bytes, header: str | None, secret: str, *,
                     tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> int:
    return timestamped_hmac.verify(raw_body, header, secret, header_name=SIGNATURE_HEADER, tolerance=tolerance, now=now)
