"""Verification of monobank's `X-Sign` webhook header (reference/providers.md 2.5, vector 6.2).

X-Sign is base64 of a DER ECDSA signature (P-256, SHA-256) over the raw body bytes exactly as they
arrived; the public key comes from `GET /api/merchant/pubkey` as base64 of a PEM SPKI key. Nothing
time-related is signed, so there is no replay window: callers deduplicate on
(invoiceId, status, modifiedDate).

The key is cached per token (one merchant, one key) and fetched again when a signature does not
verify, because monobank may have rotated it - but at most once a minute per merchant
(clinicpay.refresh_gate): `/pubkey` is rate-limited (429 `TMR`), and forged webhooks must not be
able to make us call it at will, nor use up the calls a real rotation needs. Verification cannot
be switched off.

`cryptography` (some 35 ms of import) loads with the first key or signature: `fiscalize` imports
this module through the monobank adapter to create QR invoices and never verifies a webhook.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from clinicpay.domain.errors import InvalidSignature, ProviderError
from clinicpay.observability import logger
from clinicpay.refresh_gate import GATE, RefreshGate

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_HEADER = "X-Sign"

# A DER ECDSA P-256 signature is 8..72 bytes; anything far off is not worth a key fetch.
_MAX_SIGNATURE_BYTES = 80


def load_public_key(key_base64: str) -> ec.EllipticCurvePublicKey:
    """The `key` of /api/merchant/pubkey -> a P-256 public key. Raises ProviderError if it is not one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        pem = base64.b64decode(key_base64.strip(), validate=True)
        key = serialization.load_pem_public_key(pem)
    except (binascii.Error, ValueError, TypeError):
        raise ProviderError("monobank's webhook public key is not a base64 PEM key.") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ProviderError("monobank's webhook public key is not an EC P-256 key.")
    return key


def decode_signature(x_sign: str | None) -> bytes:
    if not x_sign:
        raise InvalidSignature("The X-Sign header is missing.")
    try:
        signature = base64.b64decode(x_sign.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature("The X-Sign header is not base64.") from None
    if not 8 <= len(signature) <= _MAX_SIGNATURE_BYTES:
        raise InvalidSignature("The X-Sign header is not an ECDSA signature.")
    return signature


def verify_signature(raw_body: bytes, x_sign: str | None, public_key: ec.EllipticCurvePublicKey) -> None:
    """Raise InvalidSignature unless `x_sign` signs exactly `raw_body` with `public_key`."""
    from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    signature = decode_signature(x_sign)
    try:
        public_key.verify(signature, raw_body, ec.ECDSA(hashes.SHA256()))
    except CryptoInvalidSignature:
        raise InvalidSignature() from None


class PublicKeyCache:
    """monobank public keys by merchant, fetched lazily and re-fetched on a failed verification, at
    most once per `gate` window."""

    def __init__(self, gate: RefreshGate = GATE) -> None:
        self._keys: dict[str, tuple[str, ec.EllipticCurvePublicKey]] = {}
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}  # one first fetch per merchant, however many wait
        self._gate = gate

    @staticmethod
    def cache_key(base_url: str, token: str) -> str:
        # Keyed by a digest: the token itself stays out of long-lived structures.
        return hashlib.sha256(f"{base_url}\n{token}".encode()).hexdigest()

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()

    def _fetch(self, cache_key: str, fetch: Callable[[], str]) -> tuple[str, ec.EllipticCurvePublicKey]:
        encoded = fetch()
        entry = (encoded, load_public_key(encoded))
        with self._lock:
            self._keys[cache_key] = entry
        return entry

    def _key(self, cache_key: str, fetch: Callable[[], str]) -> tuple[tuple[str, ec.EllipticCurvePublicKey], bool]:
        """The cached key, else the one fetched now: concurrent first callers share one fetch.
        Returns it and whether it was fetched just now (by this caller or one it waited for)."""
        with self._lock:
            cached = self._keys.get(cache_key)
            if cached is not None:
                return cached, False
            first_fetch = self._fetching.setdefault(cache_key, threading.Lock())
        with first_fetch:
            with self._lock:
                cached = self._keys.get(cache_key)
            return (cached if cached is not None else self._fetch(cache_key, fetch)), True

    def verify(self, cache_key: str, raw_body: bytes, x_sign: str | None, fetch: Callable[[], str]) -> None:
        """Verify with the cached key; on failure fetch the key again (once a minute at most) and
        retry with it."""
        decode_signature(x_sign)  # a missing or malformed header never costs a key fetch
        gate_key = f"monobank-pubkey#{cache_key[:32]}"
        tried, fetched_now = self._key(cache_key, fetch)
        try:
            verify_signature(raw_body, x_sign, tried[1])
            return
        except InvalidSignature:
            if fetched_now:
                # A key fetched this instant is as fresh as a re-fetch would be: count it as one.
                self._gate.mark(gate_key)
                raise
        with self._lock:
            latest = self._keys.get(cache_key)
        if latest is not None and latest[0] != tried[0]:
            verify_signature(raw_body, x_sign, latest[1])  # another caller just fetched a rotated key
            return
        if not self._gate.allow(gate_key):
            raise InvalidSignature()
        encoded, fresh = self._fetch(cache_key, fetch)
        if encoded == tried[0]:
            raise InvalidSignature()
        logger.info("monobank webhook key rotated", extra={"provider": "monobank"})
        verify_signature(raw_body, x_sign, fresh)


# One per container: warm invocations reuse the key instead of fetching it for every webhook.
KEYS = PublicKeyCache()
