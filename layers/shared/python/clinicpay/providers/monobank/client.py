"""The only module that calls monobank acquiring over HTTP (through clinicpay.providers.http).

Auth is the merchant token in `X-Token`. monobank documents no idempotency key, so creating an
invoice is never retried by the transport (a retry could make a second invoice); reads and
`qr/reset-amount` (clearing twice is harmless) are.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel, ValidationError

from clinicpay.domain.errors import ProviderError
from clinicpay.providers import http
from clinicpay.providers.monobank import schemas

PROVIDER = "monobank"

Model = TypeVar("Model", bound=BaseModel)


class MonobankApiError(ProviderError):
    """monobank answered with a 4xx. Keeps its `errCode`; never `errText` or our request."""

    def __init__(self, http_status: int, err_code: str | None):
        self.http_status = http_status
        self.err_code = err_code
        code = "provider_credentials_rejected" if http_status in (401, 403) else "provider_error"
        suffix = f", {err_code}" if err_code else ""
        super().__init__(f"monobank refused the request (HTTP {http_status}{suffix}).", code=code,
                         details=[{"provider": PROVIDER, "http_status": http_status, "provider_code": err_code}])


class MonobankClient:
    def __init__(self, token: str, *, base_url: str, timeout: float = 8.0):
        self._token = token
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"MonobankClient(base_url={self.base_url!r})"

    # --- webhook key and merchant --------------------------------------------------------------
    def pubkey(self) -> str:
        return _parse(schemas.PubKey, self._call("GET", "/api/merchant/pubkey")).key

    def merchant_details(self) -> dict[str, Any]:
        payload = self._call("GET", "/api/merchant/details")
        return payload if isinstance(payload, dict) else {}

    # --- QR registers ---------------------------------------------------------------------------
    def qr_list(self) -> list[schemas.QrListItem]:
        return _parse(schemas.QrList, self._call("GET", "/api/merchant/qr/list")).items

    def qr_details(self, qr_id: str) -> schemas.QrDetails:
        return _parse(schemas.QrDetails, self._call("GET", "/api/merchant/qr/details", query={"qrId": qr_id}))

    def qr_reset_amount(self, qr_id: str) -> None:
        self._call("POST", "/api/merchant/qr/reset-amount", body={"qrId": qr_id}, retry_post=True)

    # --- invoices -------------------------------------------------------------------------------
    def create_invoice(self, body: dict[str, Any]) -> schemas.InvoiceCreated:
        return _parse(schemas.InvoiceCreated, self._call("POST", "/api/merchant/invoice/create", body=body))

    def invoice_status(self, invoice_id: str) -> schemas.InvoiceStatusBody:
        payload = self._call("GET", "/api/merchant/invoice/status", query={"invoiceId": invoice_id})
        return _parse(schemas.InvoiceStatusBody, payload)

    def cancel_invoice(self, body: dict[str, Any]) -> schemas.InvoiceCancelled:
        # Never retried by the transport: monobank documents no deduplication of `extRef`, so a
        # second try could give the money back twice. An answer we did not get is undecided
        # (ProviderOutcomeUnknown) and the refund waits for the webhook or our asking.
        return _parse(schemas.InvoiceCancelled, self._call("POST", "/api/merchant/invoice/cancel", body=body))

    def fiscal_checks(self, invoice_id: str) -> list[schemas.FiscalCheck]:
        payload = self._call("GET", "/api/merchant/invoice/fiscal-checks", query={"invoiceId": invoice_id})
        return _parse(schemas.FiscalChecks, payload or {}).checks

    def _call(self, method: str, path: str, *, body: dict[str, Any] | None = None,
              query: dict[str, str] | None = None, retry_post: bool = False) -> Any:
        url = self.base_url + path + (f"?{urlencode(query)}" if query else "")
        headers = {"X-Token": self._token, "User-Agent": "clinicpay"}
        try:
            response = http.request(PROVIDER, method, url, headers=headers, json_body=body, timeout=self._timeout,
                                    retry_post=retry_post)
        except http.ProviderHttpError as error:
            raise _translate(error) from None
        if not response.body or not response.body.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise ProviderError("monobank answered with something that is not JSON.") from None


def _parse(model: type[Model], payload: Any) -> Model:
    return http.parse_as("monobank", model, payload)


def _translate(error: http.ProviderHttpError) -> MonobankApiError:
    err_code = None
    if isinstance(error.payload, dict):
        try:
            err_code = schemas.ErrorBody.model_validate(error.payload).err_code
        except ValidationError:
            pass
    return MonobankApiError(error.http_status, str(err_code) if err_code is not None else None)
