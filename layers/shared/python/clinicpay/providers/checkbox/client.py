"""The only module that calls Checkbox over HTTP (through clinicpay.providers.http).

Every call carries `X-Client-Name`, `X-Client-Version` and the register's `X-License-Key`; cashier
calls carry the bearer token from `signinPinCode`, kept per (register, cashier) until the JWT's
`exp`. A 401 drops the token and signs in again once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from clinicpay.domain.errors import ClinicpayError, ProviderError
from clinicpay.domain.fiscal import FiscalRegisterBusy, ShiftClosed
from clinicpay.providers import http
from clinicpay.providers.checkbox import schemas

PROVIDER = "checkbox"
CLIENT_NAME = "clinicpay"
CLIENT_VERSION = "0.1.0"

# Checkbox's 400 messages we act on (providers.md 3.5; wording UNCONFIRMED against official docs,
# so they are matched as substrings, case-insensitively).
SHIFT_NOT_OPENED = "зміну не відкрито"
REGISTER_BUSY = ("каса зайнята", "касир вже працює")

# Used when a token carries no readable `exp`: short enough never to outlive a real token.
DEFAULT_TOKEN_SECONDS = 600
TOKEN_MARGIN_SECONDS = 60

Model = TypeVar("Model", bound=BaseModel)


class CheckboxApiError(ProviderError):
    """Checkbox answered with a 4xx we do not translate into a domain error."""

    def __init__(self, http_status: int, provider_message: str | None):
        self.http_status = http_status
        self.provider_message = (provider_message or "")[:200] or None
        code = "provider_credentials_rejected" if http_status in (401, 403) else "provider_error"
        super().__init__(f"Checkbox refused the request (HTTP {http_status}).", code=code,
                         details=[{"provider": PROVIDER, "http_status": http_status,
                                   "provider_message": self.provider_message}])


class _TokenCache:
    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            found = self._tokens.get(key)
        if found and found[1] - TOKEN_MARGIN_SECONDS > time.time():
            return found[0]
        return None

    def put(self, key: str, token: str) -> None:
        with self._lock:
            self._tokens[key] = (token, jwt_expiry(token))

    def drop(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


# One per container: warm invocations reuse the cashier's token instead of signing in every time.
TOKENS = _TokenCache()


def jwt_expiry(token: str) -> float:
    """`exp` of a JWT, read without verifying (we did not issue it; Checkbox checks it)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        return time.time() + DEFAULT_TOKEN_SECONDS


class CheckboxClient:
    def __init__(self, license_key: str, pin_code: str, *, base_url: str, timeout: float = 8.0, attempts: int = 3):
        self._attempts = attempts
        self._license_key = license_key
        self._pin_code = pin_code
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._cache_key = hashlib.sha256(f"{self.base_url}\n{license_key}\n{pin_code}".encode()).hexdigest()

    def __repr__(self) -> str:
        return f"CheckboxClient(base_url={self.base_url!r})"

    # --- cashier ------------------------------------------------------------------------------
    def signin(self) -> str:
        payload = self._call("POST", "/api/v1/cashier/signinPinCode", body={"pin_code": self._pin_code},
                             authenticated=False)
        token = _parse(schemas.AccessToken, payload).access_token
        TOKENS.put(self._cache_key, token)
        return token

    def _token(self) -> str:
        return TOKENS.get(self._cache_key) or self.signin()

    # --- shifts -------------------------------------------------------------------------------
    def current_shift(self) -> schemas.Shift | None:
        try:
            payload = self._call("GET", "/api/v1/cashier/shift")
        except CheckboxApiError as error:
            if error.http_status == 404:
                return None
            raise
        return _parse(schemas.Shift, payload) if payload else None

    def open_shift(self) -> schemas.Shift:
        return _parse(schemas.Shift, self._call("POST", "/api/v1/shifts", body={}))

    def close_shift(self) -> schemas.Shift:
        return _parse(schemas.Shift, self._call("POST", "/api/v1/shifts/close", body={}))

    # --- receipts -----------------------------------------------------------------------------
    def sell(self, body: dict[str, Any]) -> schemas.Receipt:
        # Retried by the transport: the body carries our receipt `id`, so a repeat cannot make a
        # second receipt (Checkbox refuses or returns the first; the adapter handles both).
        return _parse(schemas.Receipt, self._call("POST", "/api/v1/receipts/sell", body=body, retry_post=True))

    def get_receipt(self, receipt_id: str) -> schemas.Receipt | None:
        try:
            payload = self._call("GET", f"/api/v1/receipts/{quote(receipt_id, safe='')}")
        except CheckboxApiError as error:
            if error.http_status == 404:
                return None
            raise
        return _parse(schemas.Receipt, payload)

    # --- transport ----------------------------------------------------------------------------
    def _headers(self, authenticated: bool) -> dict[str, str]:
        headers = {"X-Client-Name": CLIENT_NAME, "X-Client-Version": CLIENT_VERSION,
                   "X-License-Key": self._license_key}
        if authenticated:
            headers["Authorization"] = f"Bearer {self._token()}"
        return headers

    def _call(self, method: str, path: str, *, body: dict[str, Any] | None = None, authenticated: bool = True,
              retry_post: bool = False) -> Any:
        for attempt in (1, 2):
            try:
                response = http.request(PROVIDER, method, self.base_url + path, headers=self._headers(authenticated),
                                        json_body=body, timeout=self._timeout, attempts=self._attempts,
                                        retry_post=retry_post)
            except http.ProviderHttpError as error:
                if error.http_status == 401 and authenticated and attempt == 1:
                    TOKENS.drop(self._cache_key)  # expired or revoked: sign in again, once
                    continue
                raise _translate(error) from None
            if not response.body or not response.body.strip():
                return None
            try:
                return response.json()
            except ValueError:
                raise ProviderError("Checkbox answered with something that is not JSON.") from None
        raise AssertionError("unreachable")  # pragma: no cover


def _parse(model: type[Model], payload: Any) -> Model:
    return http.parse_as("Checkbox", model, payload)


def _translate(error: http.ProviderHttpError) -> ClinicpayError:
    message = None
    if isinstance(error.payload, dict):
        if isinstance(error.payload.get("message"), str):
            message = error.payload["message"]
        elif isinstance(error.payload.get("detail"), list):
            rules = schemas.ValidationErrorBody.model_validate(error.payload).detail
            # Field paths and rules only: Checkbox's `ctx` may quote the values we sent.
            message = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}" for d in rules[:5])
    lowered = (message or "").lower()
    if error.http_status == 400 and SHIFT_NOT_OPENED in lowered:
        return ShiftClosed()
    if error.http_status == 400 and any(words in lowered for words in REGISTER_BUSY):
        return FiscalRegisterBusy()
    return CheckboxApiError(error.http_status, message)
