"""Patient tokens: how a public route knows that the person booking is a patient the clinic knows.

The publishable key is public, so it proves nothing about who is at the keyboard. A returning
patient is recognised only through a token signed by the clinic's own site (after the patient
signed in there) with the clinic's patient-token secret: a JWT (RFC 7519), HS256 only,

    header  {"alg": "HS256", "typ": "JWT"}
    claims  {"sub": "<the clinic's patient id>", "aud": "<clinic_id>", "exp": <unix seconds>,
             "name"?, "email"?, "phone"?, "locale"?}

`exp` at most 24 hours ahead; the optional claims are used only for a patient we have no record of
yet. Verification is PyJWT's (`algorithms=["HS256"]`: no "none", no public-key confusion), with
60 s of leeway for clocks. The exact contract is in docs/API.md ("Returning patients").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from clinicpay.domain.errors import ValidationFailed

MAX_LIFETIME = timedelta(hours=24)
LEEWAY_SECONDS = 60
SECRET_PREFIX = "cpts_"
_PATIENT_ID = re.compile(r"^[A-Za-z0-9_\-.@]{1,64}$")
CONTACT_CLAIMS = ("name", "email", "phone", "locale")


class PatientTokenInvalid(ValidationFailed):
    code, default_message = "patient_token_invalid", "The patient token is not valid; sign in on the clinic's site again."


@dataclass(frozen=True)
class ProvedPatient:
    patient_id: str
    claims: dict[str, str]  # the optional contact claims the clinic's site put in the token


@lru_cache(maxsize=1)
def _jwt() -> Any:
    # PyJWT pulls in `cryptography` (about 0.1 s); only bookings that carry a token pay for it.
    import jwt

    return jwt


def _refuse(reason: str) -> PatientTokenInvalid:
    return PatientTokenInvalid(details=[{"field": "patient_token", "message": reason, "type": "patient_token"}])


def verify(token: str, secrets: list[str], clinic_id: str, now: datetime) -> ProvedPatient:
    """The patient the token names, if one of the clinic's active secrets signed it for this clinic
    and it has not expired. Every failure is the same 422 whichever patient id it names."""
    jwt = _jwt()
    if not secrets or len(token) > 4096:
        raise _refuse("invalid")
    claims: dict[str, Any] | None = None
    for secret in secrets:
        try:
            # Expiry is checked below against our clock (the use case's), not PyJWT's.
            claims = jwt.decode(token, secret, algorithms=["HS256"], audience=clinic_id,
                                options={"require": ["exp", "sub", "aud"], "verify_exp": False})
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError:
            raise _refuse("invalid") from None
    if claims is None:
        raise _refuse("invalid")
    subject, expires = claims.get("sub"), claims.get("exp")
    if not isinstance(subject, str) or not _PATIENT_ID.fullmatch(subject) or not isinstance(expires, int | float):
        raise _refuse("invalid")
    if expires < now.timestamp() - LEEWAY_SECONDS:
        raise _refuse("expired")
    if expires > (now + MAX_LIFETIME).timestamp() + LEEWAY_SECONDS:
        raise _refuse("lifetime_too_long")
    contact = {name: str(claims[name]) for name in CONTACT_CLAIMS if isinstance(claims.get(name), str)}
    return ProvedPatient(patient_id=subject, claims=contact)


def sign(secret: str, clinic_id: str, patient_id: str, expires_at: datetime, **claims: str) -> str:
    """What the clinic's site does (here for tests, the demo page and the docs' examples)."""
    payload: dict[str, Any] = {"sub": patient_id, "aud": clinic_id, "exp": int(expires_at.timestamp()), **claims}
    return str(_jwt().encode(payload, secret, algorithm="HS256"))
