"""The only module that calls Fintoc over HTTP (through clinicpay.providers.http.request)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from clinicpay.domain.errors import ProviderError
from clinicpay.providers import http
from clinicpay.providers.fintoc import schemas

PROVIDER = "fintoc"

# Pinned so a change of the account's default version in Fintoc's dashboard cannot reshape our
# requests and responses. Webhook events ignore this header (Fintoc serialises them with the
# account's pinned version), so the webhook parser reads only fields common to every version.
FINTOC_VERSION = "2026-02-01"

# Fintoc rejects longer Idempotency-Key values (reference/providers.md 1.7).
MAX_IDEMPOTENCY_KEY_LENGTH = 255

Model = TypeVar("Model", bound=BaseModel)


class FintocApiError(ProviderError):
    """Fintoc answered with a 4xx. Keeps Fintoc's own error code; never its message or our request."""

    def __init__(self, http_status: int, provider_code: str | None, error_type: str | None, param: str | None):
        self.http_status = http_status
        self.provider_code = provider_code
        code = "provider_credentials_rejected" if http_status in (401, 403) else "provider_error"
        suffix = f", {provider_code}" if provider_code else ""
        super().__init__(f"Fintoc refused the request (HTTP {http_status}{suffix}).", code=code,
                         details=[{"provider": PROVIDER, "http_status": http_status, "provider_code": provider_code,
                                   "provider_error_type": error_type, "param": param}])


class FintocClient:
    def __init__(self, secret_key: str, *, base_url: str, timeout: float = 8.0):
        self._secret_key = secret_key
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"FintocClient(base_url={self._base_url!r})"

    def create_checkout_session(self, body: dict[str, Any], *, idempotency_key: str) -> schemas.CheckoutSession:
        payload = self._call("POST", "/v1/checkout_sessions", body=body, idempotency_key=idempotency_key)
        return _parse(schemas.CheckoutSession, payload)

    def get_checkout_session(self, session_id: str) -> schemas.CheckoutSession:
        return _parse(schemas.CheckoutSession, self._call("GET", f"/v1/checkout_sessions/{http.path_segment(session_id)}"))

    def expire_checkout_session(self, session_id: str) -> schemas.CheckoutSession:
        # Expiring twice is harmless, so a key derived from the id is stable across our own retries.
        payload = self._call("POST", f"/v1/checkout_sessions/{http.path_segment(session_id)}/expire",
                             idempotency_key=f"expire-{session_id}")
        return _parse(schemas.CheckoutSession, payload)

    def create_refund(self, body: dict[str, Any], *, idempotency_key: str) -> schemas.Refund:
        return _parse(schemas.Refund, self._call("POST", "/v1/refunds", body=body, idempotency_key=idempotency_key))

    def get_refund(self, refund_id: str) -> schemas.Refund:
        return _parse(schemas.Refund, self._call("GET", f"/v1/refunds/{http.path_segment(refund_id)}"))

    def list_refunds(self) -> list[schemas.Refund]:
        """The account's refunds, newest first (the first page: the refunds we look for are recent)."""
        payload = self._call("GET", "/v1/refunds")
        if not isinstance(payload, list):
            raise ProviderError("Fintoc answered with an unexpected shape.")
        return [_parse(schemas.Refund, item) for item in payload]

    def create_webhook_endpoint(self, url: str, enabled_events: list[str], *, description: str,
                                idempotency_key: str | None = None) -> schemas.WebhookEndpoint:
        body = {"url": url, "enabled_events": enabled_events, "description": description}
        payload = self._call("POST", "/v1/webhook_endpoints", body=body,
                             idempotency_key=idempotency_key or str(uuid.uuid4()))
        return _parse(schemas.WebhookEndpoint, payload)

    def list_webhook_endpoints(self) -> list[schemas.WebhookEndpoint]:
        payload = self._call("GET", "/v1/webhook_endpoints")
        if not isinstance(payload, list):
            raise ProviderError("Fintoc answered with an unexpected shape.")
        return [_parse(schemas.WebhookEndpoint, item) for item in payload]

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        self._call("DELETE", f"/v1/webhook_endpoints/{http.path_segment(endpoint_id)}")

    def _call(self, method: str, path: str, *, body: dict[str, Any] | None = None,
              idempotency_key: str | None = None) -> Any:
        # The key goes in as-is: Fintoc keys are account credentials, not Bearer tokens.
        headers = {"Authorization": self._secret_key, "Fintoc-Version": FINTOC_VERSION,
                   "User-Agent": "clinicpay"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = _fit_key(idempotency_key)
        try:
            response = http.request(PROVIDER, method, self._base_url + path, headers=headers, json_body=body,
                                    timeout=self._timeout,
                                    # A POST is retried only when Fintoc will replay it by key.
                                    retry_post=idempotency_key is not None)
        except http.ProviderHttpError as error:
            raise _translate(error) from None
        if not response.body:
            return None
        try:
            return response.json()
        except ValueError:
            raise ProviderError("Fintoc answered with something that is not JSON.") from None


def _fit_key(key: str) -> str:
    # A long key is hashed rather than cut: the digest is as stable across retries as the key, and
    # cutting could make two different keys collide on a shared prefix.
    if not key:
        raise ValueError("an empty Idempotency-Key would be shared by every request")
    if len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        return key
    return "sha256-" + hashlib.sha256(key.encode()).hexdigest()




def _parse(model: type[Model], payload: Any) -> Model:
    return http.parse_as("Fintoc", model, payload)


def _translate(error: http.ProviderHttpError) -> FintocApiError:
    detail = schemas.ErrorDetail()
    if isinstance(error.payload, dict):
        try:
            detail = schemas.ErrorBody.model_validate(error.payload).error
        except ValidationError:
            pass
    return FintocApiError(error.http_status, detail.code, detail.type, detail.param)
