"""Stripe-Signature verification against the published vectors (reference/providers.md 6.3, 6.4)."""

from __future__ import annotations

import hashlib

import pytest

from clinicpay.domain.errors import InvalidSignature
from clinicpay.providers.stripe.signature import (
    compute_signature,
    hmac_sha256_hex,
    signature_header,
    verify_signature,
)

# Vector 6.3 (stripe-dotnet EventUtilityTest): 484 bytes, 2-space indentation, LF, ONE trailing newline.
DOTNET_SECRET = "webhook_secret"
DOTNET_TIMESTAMP = 1533204620
DOTNET_V1 = "2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7"
DOTNET_HEADER = (f"t={DOTNET_TIMESTAMP},v1={DOTNET_V1},"
                 "v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef")
DOTNET_BODY = b"""{
  "id": "evt_123",
  "object": "event",
  "account": "acct_123",
  "api_version": "2017-05-25",
  "created": 1533204620,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "created": 123456789,
      "email": "test@stripe.com",
      "livemode": false,
      "metadata": {}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_123",
    "idempotency_key": "idempotency-key-123"
  },
  "type": "customer.created"
}
"""


def test_the_vector_body_is_byte_exact() -> None:
    # Given the body as transcribed  Then it is the published 484 bytes
    assert len(DOTNET_BODY) == 484
    assert hashlib.sha256(DOTNET_BODY).hexdigest() == "98cc89412549ca7faf118fca984763bdb6f81e13d1ce8c528dbbb5be602ec1be"


def test_stripe_dotnet_vector_verifies_within_tolerance() -> None:
    # Given the published header (with a dummy v0) and a clock 10 s after its timestamp
    # When it is verified
    signed_at = verify_signature(DOTNET_BODY, DOTNET_HEADER, DOTNET_SECRET, now=DOTNET_TIMESTAMP + 10)
    # Then it passes and names the signed time
    assert signed_at == DOTNET_TIMESTAMP
    assert compute_signature(DOTNET_SECRET, DOTNET_TIMESTAMP, DOTNET_BODY) == DOTNET_V1


def test_the_vector_without_its_trailing_newline_fails() -> None:
    # Given the same body, one byte shorter  Then the signature no longer matches (providers.md: 8c506d7d...)
    assert compute_signature(DOTNET_SECRET, DOTNET_TIMESTAMP, DOTNET_BODY[:-1]).startswith("8c506d7d")
    with pytest.raises(InvalidSignature):
        verify_signature(DOTNET_BODY[:-1], DOTNET_HEADER, DOTNET_SECRET, now=DOTNET_TIMESTAMP)


@pytest.mark.parametrize(("payload", "expected"), [
    (b"", "f7f9bd47fb987337b5796fdc1fdb9ba221d0d5396814bfcaf9521f43fd8927fd"),
    (b'{"obj1":"hello","obj2":"world"}', "bebb1a643997f419b315ddba19e6f5411e1ce7f810ba6d3617ce72823092f363"),
    ("\U0001F600".encode(), "837da296d05c4fe31f61d5d7ead035099d9585a5bcde87de952012a78f0b0c43"),
])
def test_stripe_node_hmac_primitives(payload: bytes, expected: str) -> None:
    # Given stripe-node's vectors (6.4): the bare HMAC, key "test_secret", no timestamp
    # When / Then: our primitive gives the same lower-case hex
    assert hmac_sha256_hex("test_secret", payload) == expected


def test_any_of_several_v1_signatures_is_accepted_while_a_secret_rolls() -> None:
    # Given a header with a stale v1 first and the right one second
    header = f"t={DOTNET_TIMESTAMP},v1={'0' * 64},v1={DOTNET_V1}"
    # When / Then
    assert verify_signature(DOTNET_BODY, header, DOTNET_SECRET, now=DOTNET_TIMESTAMP) == DOTNET_TIMESTAMP


def test_a_matching_v0_alone_is_not_enough() -> None:
    # Given a header whose only match is in the legacy v0 scheme
    header = f"t={DOTNET_TIMESTAMP},v0={DOTNET_V1}"
    # When / Then: v0 is ignored, and without v1 the header is refused
    with pytest.raises(InvalidSignature):
        verify_signature(DOTNET_BODY, header, DOTNET_SECRET, now=DOTNET_TIMESTAMP)


@pytest.mark.parametrize(("offset", "ok"), [(299, True), (300, True), (301, False), (-3600, True)])
def test_timestamps_older_than_300_seconds_are_refused(offset: int, ok: bool) -> None:
    # Given a correct signature verified `offset` seconds after it was made (negative: sender clock ahead)
    now = DOTNET_TIMESTAMP + offset
    if ok:
        assert verify_signature(DOTNET_BODY, DOTNET_HEADER, DOTNET_SECRET, now=now)
    else:
        with pytest.raises(InvalidSignature):
            verify_signature(DOTNET_BODY, DOTNET_HEADER, DOTNET_SECRET, now=now)


@pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=00", f"v1={DOTNET_V1}", f"t={DOTNET_TIMESTAMP}",
                                    f"t={DOTNET_TIMESTAMP},v1=\u00e9\u00e9"])
def test_missing_or_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(DOTNET_BODY, header, DOTNET_SECRET, now=DOTNET_TIMESTAMP)


def test_an_empty_secret_never_verifies_even_a_header_made_with_it() -> None:
    # Given a header an attacker computed with an empty key
    header = signature_header("", DOTNET_BODY, DOTNET_TIMESTAMP)
    # When / Then: we fail closed
    with pytest.raises(InvalidSignature):
        verify_signature(DOTNET_BODY, header, "", now=DOTNET_TIMESTAMP)


def test_a_changed_body_or_secret_fails() -> None:
    header = signature_header("whsec_abc", b'{"a":1}', 1_700_000_000)
    assert verify_signature(b'{"a":1}', header, "whsec_abc", now=1_700_000_000)
    for body, secret in ((b'{"a": 1}', "whsec_abc"), (b'{"a":1}', "whsec_abd")):
        with pytest.raises(InvalidSignature):
            verify_signature(body, header, secret, now=1_700_000_000)
