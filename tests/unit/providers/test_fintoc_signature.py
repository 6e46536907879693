"""Fintoc-Signature verification, pinned by Fintoc's own SDK test vector (reference/providers.md 6.1)."""

from __future__ import annotations

import hashlib

import pytest

from clinicpay.domain.errors import InvalidSignature
from clinicpay.providers.fintoc.signature import compute_signature, verify_signature

SECRET = "whsec_test_secret"
TIMESTAMP = 1743890251
V1 = "11b98dd8f5500109246aa4d9875fad2e97d462560b012a5f50ff924411de0b0f"
HEADER = f"t={TIMESTAMP},v1={V1}"
BODY = (
    b'{"id":"evt_2AaZeLCz0GjOW5zj","type":"payment_intent.succeeded","mode":"test",'
    b'"created_at":"2025-04-05T21:57:31.834Z","data":{"id":"pi_2vKOKniSGXRhXTKrJ67VXZxGCVt","mode":"test",'
    b'"amount":1,"object":"payment_intent","status":"succeeded","currency":"MXN","metadata":{},'
    b'"created_at":"2025-04-05T21:57:17Z","expires_at":null,"error_reason":null,"payment_type":"bank_transfer",'
    b'"reference_id":null,"widget_token":null,"customer_email":null,"sender_account":{"type":"checking_account",'
    b'"number":"501514890244223279","holder_id":"mfiu593501oe4","institution_id":"mx_stp"},'
    b'"business_profile":null,"transaction_date":null,"recipient_account":{"type":"checking_account",'
    b'"number":"646180357600000000","holder_id":"fsm211008hz9","institution_id":"mx_stp"},'
    b'"payment_type_options":{}},"object":"event"}'
)
INSIDE_TOLERANCE = TIMESTAMP + 120


def test_vector_body_is_the_published_one() -> None:
    # Given the body copied from the reference
    # Then it is byte-for-byte the one Fintoc signed (a copy error would make every test below moot)
    assert len(BODY) == 785
    assert hashlib.sha256(BODY).hexdigest() == "e9ada1ff559632266322e3d9d4dfc9d7346ce5add0bd49f9ac0f4b23f82261db"


def test_fintoc_vector_verifies_with_time_frozen_inside_tolerance() -> None:
    # Given Fintoc's vector and a clock two minutes after it was signed
    # When it is verified
    signed_at = verify_signature(BODY, HEADER, SECRET, now=INSIDE_TOLERANCE)
    # Then it passes and reports when it was signed
    assert signed_at == TIMESTAMP
    assert compute_signature(SECRET, TIMESTAMP, BODY) == V1


def test_a_tampered_body_is_refused() -> None:
    # Given the vector with one character of the amount changed
    tampered = BODY.replace(b'"amount":1,', b'"amount":9,')
    # When / Then
    with pytest.raises(InvalidSignature):
        verify_signature(tampered, HEADER, SECRET, now=INSIDE_TOLERANCE)


def test_a_reserialised_body_is_refused() -> None:
    # Given the same JSON with a space added, as a parse-and-dump would produce
    reserialised = BODY.replace(b'"mode":"test",', b'"mode": "test",', 1)
    # When / Then: the signature covers bytes, not meaning
    with pytest.raises(InvalidSignature):
        verify_signature(reserialised, HEADER, SECRET, now=INSIDE_TOLERANCE)


@pytest.mark.parametrize("secret", ["whsec_wrong_secret", "test_secret", ""])
def test_a_wrong_or_missing_secret_is_refused(secret: str) -> None:
    # Given another secret, the secret without its whsec_ prefix, or none at all
    # When / Then
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, HEADER, secret, now=INSIDE_TOLERANCE)


def test_a_stale_timestamp_is_refused() -> None:
    # Given a clock 301 s after signing, past the 300 s tolerance
    # When / Then
    with pytest.raises(InvalidSignature, match="too old"):
        verify_signature(BODY, HEADER, SECRET, now=TIMESTAMP + 301)


def test_the_tolerance_edge_and_a_future_timestamp_are_accepted() -> None:
    # Given clocks exactly at the edge, and well before the signature (sender clock ahead)
    # When / Then: only old timestamps are refused, as in Fintoc's SDK
    assert verify_signature(BODY, HEADER, SECRET, now=TIMESTAMP + 300) == TIMESTAMP
    assert verify_signature(BODY, HEADER, SECRET, now=TIMESTAMP - 3600) == TIMESTAMP


def test_the_tolerance_is_a_parameter() -> None:
    # Given a 60 s tolerance and a signature 120 s old
    # When / Then
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, HEADER, SECRET, tolerance=60, now=INSIDE_TOLERANCE)


@pytest.mark.parametrize("header", [None, "", "garbage", f"t={TIMESTAMP}", f"v1={V1}", f"t=soon,v1={V1}"])
def test_a_missing_or_malformed_header_is_refused(header: str | None) -> None:
    # Given no header, or one without a usable t= and v1=
    # When / Then
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, header, SECRET, now=INSIDE_TOLERANCE)


def test_an_extra_v2_key_is_ignored() -> None:
    # Given the header with an extra scheme Fintoc might add, before and after v1
    for header in (f"t={TIMESTAMP},v1={V1},v2=deadbeef", f"v2=deadbeef, t={TIMESTAMP}, v1={V1}"):
        # When / Then: the unknown key changes nothing
        assert verify_signature(BODY, header, SECRET, now=INSIDE_TOLERANCE) == TIMESTAMP


def test_a_v2_key_alone_is_not_enough() -> None:
    # Given a header whose only signature is under an unknown scheme
    header = f"t={TIMESTAMP},v2={V1}"
    # When / Then
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, header, SECRET, now=INSIDE_TOLERANCE)


def test_a_non_ascii_signature_is_refused_not_crashed() -> None:
    # Given an attacker-supplied signature with non-ASCII characters
    header = f"t={TIMESTAMP},v1=ñ{V1[1:]}"
    # When / Then: a refusal, not a TypeError from the comparison
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, header, SECRET, now=INSIDE_TOLERANCE)
