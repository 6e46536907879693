"""Fintoc's `Fintoc-Signature` header (reference/providers.md 1.6, pinned by vector 6.1): the
timestamped HMAC scheme Fintoc shares with Stripe."""

from __future__ import annotations

from clinicpay.providers import timestamped_hmac
from clinicpay.providers.timestamped_hmac import DEFAULT_TOLERANCE_SECONDS, compute_signature, signature_header

SIGNATURE_HEADER = "Fintoc-Signature"

__all__ = ["DEFAULT_TOLERANCE_SECONDS", "SIGNATURE_HEADER", "compute_signature", "signature_header", "verify_signature"]


def verify_signature(raw_body: bytes, header: str | None, secret: str, *,
                     tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> int:
    return timestamped_hmac.verify(raw_body, header, secret, header_name=SIGNATURE_HEADER, tolerance=tolerance, now=now)
