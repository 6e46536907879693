"""Names without control characters, SMS only to the clinic's country, patient tokens, credential
masks (issue 8, items 3, 4 and 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from pydantic import TypeAdapter, ValidationError

from clinicpay.domain.credentials import mask
from clinicpay.domain.errors import ValidationFailed
from clinicpay.domain.patient_tokens import PatientTokenInvalid, sign, verify
from clinicpay.domain.phones import calling_code, sms_refusal
from clinicpay.domain.text import MultiLine, OneLine, clean_line
from clinicpay.notify.builtin import Text
from clinicpay.notify.messages import render

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
SECRET = "cpts_" + "k" * 64


# ---------------------------------------------------------------------------- control characters
@pytest.mark.parametrize("text", ["Ana\r\nBcc: x", "Ana\n", "\rAna", "A\x00na", "Ana\x1b[31m", "Ana\x7f", "Ana\x85",
                                  "Ana\x9b", "Ana\u202e", "Ana\u202a", "Ana\u2066x\u2069", "Ana\u2028", "Ana\t",
                                  "\u061cAna"])
def test_one_line_text_refuses_every_control(text: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(OneLine).validate_python(text)


@pytest.mark.parametrize("text", ["Ana Pérez", "Łukasz Żółć", "Олена Шевченко", "محمد", "李小龍", "O'Brien-Smith",
                                  "Jo\u200dhn", "👩\u200d⚕️ Dra. Ana"])
def test_one_line_text_keeps_every_script(text: str) -> None:
    assert TypeAdapter(OneLine).validate_python(text) == text


def test_multi_line_text_keeps_line_breaks_only() -> None:
    assert TypeAdapter(MultiLine).validate_python("Hola\r\n$patient_name\n") == "Hola\n$patient_name\n"
    for text in ("a\rb", "a\x00\nb", "a\n\u202eb", "a\tb"):
        with pytest.raises(ValidationError):
            TypeAdapter(MultiLine).validate_python(text)


def test_a_rendered_subject_is_always_one_line_whatever_was_stored() -> None:
    rendered = render(Text("Cita de $patient_name\r\nBcc: x@example.com", "Hola $patient_name\u202e\x00"), "es",
                      {"patient_name": "Ana\r\nBcc: victim@example.com"})
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    assert "\x00" not in rendered.body and "\u202e" not in rendered.body
    assert clean_line("a\r\nb") == "a  b"


# ---------------------------------------------------------------------------- phones
@pytest.mark.parametrize(("phone", "country", "refusal"), [
    ("+56961234567", "CL", None), ("+15145550100", "CA", None), ("+4791234567", "NO", None),
    ("+380501234567", "UA", None), ("+33612345678", "FR", None),
    ("+4791234567", "CL", "foreign_number"),  # another country
    ("+18765551234", "CA", "foreign_number"),  # +1, but Jamaica
    ("+19005550100", "CA", "foreign_number"),  # +1 900: a US premium-rate range
    ("+56600123456", "CL", "not_mobile"),  # a Chilean 600 number
    ("+56912345678", "CL", "invalid_number"),  # no such Chilean range
])
def test_public_sms_only_to_mobiles_of_the_clinics_country(phone: str, country: str, refusal: str | None) -> None:
    assert sms_refusal(phone, country) == refusal


def test_calling_codes() -> None:
    assert (calling_code("CL"), calling_code("ca"), calling_code("UA")) == (56, 1, 380)


# ---------------------------------------------------------------------------- patient tokens
def test_a_token_signed_by_the_clinics_secret_proves_the_patient() -> None:
    token = sign(SECRET, "cl_a", "p-1", NOW + timedelta(minutes=30), email="ana@example.cl")
    proved = verify(token, [SECRET], "cl_a", NOW)
    assert proved.patient_id == "p-1" and proved.claims == {"email": "ana@example.cl"}
    # the previous secret, still in its grace period, is tried too
    assert verify(token, ["cpts_" + "n" * 64, SECRET], "cl_a", NOW).patient_id == "p-1"


@pytest.mark.parametrize("case", ["other_secret", "other_clinic", "expired", "too_long", "none_alg", "rs_alg",
                                  "no_exp", "bad_sub", "garbage", "no_secret"])
def test_every_bad_token_is_the_same_refusal(case: str) -> None:
    later = NOW + timedelta(minutes=30)
    secrets = [SECRET]
    payload = {"sub": "p-1", "aud": "cl_a", "exp": int(later.timestamp())}
    token = {
        "other_secret": lambda: sign("cpts_" + "o" * 64, "cl_a", "p-1", later),
        "other_clinic": lambda: sign(SECRET, "cl_b", "p-1", later),
        "expired": lambda: sign(SECRET, "cl_a", "p-1", NOW - timedelta(minutes=5)),
        "too_long": lambda: sign(SECRET, "cl_a", "p-1", NOW + timedelta(days=30)),
        "none_alg": lambda: jwt.encode(payload, None, algorithm="none"),
        "rs_alg": lambda: jwt.encode(payload, SECRET, algorithm="HS512"),
        "no_exp": lambda: jwt.encode({"sub": "p-1", "aud": "cl_a"}, SECRET, algorithm="HS256"),
        "bad_sub": lambda: jwt.encode({**payload, "sub": "p 1/../x"}, SECRET, algorithm="HS256"),
        "garbage": lambda: "not.a.token",
        "no_secret": lambda: sign(SECRET, "cl_a", "p-1", later),
    }[case]()
    if case == "no_secret":
        secrets = []
    with pytest.raises(PatientTokenInvalid) as refused:
        verify(token, secrets, "cl_a", NOW)
    assert isinstance(refused.value, ValidationFailed) and refused.value.status == 422
    assert refused.value.details[0]["field"] == "patient_token"


# ---------------------------------------------------------------------------- masks
@pytest.mark.parametrize(("name", "value", "shown"), [
    ("secret_key", "sk_test_clinicA_acct", "sk_test_…acct"),  # the case: 8 of 12 hidden
    ("secret_key", "sk_test_clinicA", "sk_test_…"),  # under 12 past the prefix: no tail
    ("secret_key", "sk_test_clinicA_account1", "sk_test_…unt1"),
    ("secret_key", "sk_live_51HxYz0123456789abcdefAbCd", "sk_live_…AbCd"),
    ("webhook_secret", "whsec_zzzzzzzzzzzz9999", "whsec_…9999"),
    ("token", "uHq1QmXfPq0J3n8e7sLwRtYvB2cD4fG6hJ8kL0mN2pQ", "…N2pQ"),
    ("token", "short-token", "…"),
    ("license_key", "e7a1f7b59eefe11e0e0e6d0a", "…6d0a"),
    ("pin_code", "1234567890", "••••"),
    ("public_key", "pk_test_visible", "pk_test_visible"),
])
def test_masks_show_a_known_prefix_and_at_most_four_characters(name: str, value: str, shown: str) -> None:
    masked = mask(name, value)
    assert masked == shown
    if name not in ("public_key", "pin_code"):
        hidden = value[len(masked.split("…")[0]):]
        tail = masked.split("…")[1] if "…" in masked else ""
        assert len(tail) <= 4 and (not tail or len(hidden) - len(tail) >= 8)
