"""QR payments test support: a Ukrainian clinic with monobank and Checkbox credentials (stored through
the real admin API), and small clients for the two sandboxes' APIs and test controls."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from local.apigw import HttpResult
from tests.support.api import ApiClient
from tests.support.clinics import ClinicKeys, create_clinic

TIMEOUT = 15


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


class Monobank:
    """The monobank sandbox, as a merchant (X-Token) and through its test controls."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.base}{path}", headers={"X-Token": self.token}, timeout=TIMEOUT, **kwargs)

    def pay(self, invoice_id: str, *, deliver: bool = True, action: str = "pay") -> dict[str, Any]:
        """Pay (or fail) the invoice; with delivery, return once monobank's last webhook was answered
        with 200 (our handler answers after recording the payment and its first fiscal attempt)."""
        answer = requests.post(f"{self.base}/_control/invoices/{invoice_id}/{action}", json={"deliver": deliver},
                               timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        final = "success" if action == "pay" else "failure"
        if deliver:
            wait_for(lambda: any(d["status"] == final and d["status_code"] == 200 for d in self.deliveries(invoice_id)))
        return dict(answer.json())

    def events(self, invoice_id: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.base}/_control/events", params={"invoice_id": invoice_id}, timeout=TIMEOUT)
        return list(answer.json()["events"])

    def event(self, invoice_id: str, status: str) -> dict[str, Any]:
        return next(e for e in self.events(invoice_id) if e["status"] == status)

    def deliveries(self, invoice_id: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.base}/_control/deliveries", params={"invoice_id": invoice_id}, timeout=TIMEOUT)
        return list(answer.json()["deliveries"])

    def redeliver(self, event_id: str) -> None:
        assert requests.post(f"{self.base}/_control/redeliver/{event_id}", timeout=TIMEOUT).status_code == 202

    def rotate_key(self) -> str:
        return str(requests.post(f"{self.base}/_control/rotate-key", timeout=TIMEOUT).json()["key"])

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = requests.post(f"{self.base}/_control/{path}", json=body or {}, timeout=TIMEOUT)
        assert answer.status_code in (200, 201), answer.text
        return dict(answer.json())

    def status(self, invoice_id: str) -> dict[str, Any]:
        answer = self.api("GET", "/api/merchant/invoice/status", params={"invoiceId": invoice_id})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def cabinet_refund(self, invoice_id: str, **body: Any) -> dict[str, Any]:
        """A refund started in monobank's cabinet (succeeds at once; its webhook follows)."""
        return self.control(f"invoices/{invoice_id}/cancel", body)

    def hold(self, held: bool = True) -> None:
        """While held, monobank makes and keeps its webhooks but sends none (a lost webhook)."""
        self.control("hold", {"hold": held})

    def fiscalize_itself(self, source: str | None = "checkbox") -> None:
        self.control("fiscalization", {"token": self.token, "source": source})

    def fiscal_checks(self, invoice_id: str) -> list[dict[str, Any]]:
        answer = self.api("GET", "/api/merchant/invoice/fiscal-checks", params={"invoiceId": invoice_id})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["checks"])


class Checkbox:
    """The Checkbox sandbox's test controls for one cash register (licence key)."""

    def __init__(self, base: str, license_key: str):
        self.base, self.license_key = base, license_key

    def receipts(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.base}/_control/licenses/{self.license_key}/receipts", timeout=TIMEOUT)
        return list(answer.json()["receipts"])

    def fail_next(self, status: str | int, count: int = 1, *, path: str = "", seconds: float | None = None) -> None:
        body: dict[str, Any] = {"status": status, "count": count, "path": path}
        if seconds is not None:
            body["seconds"] = seconds
        assert requests.post(f"{self.base}/_control/fail-next", json=body, timeout=TIMEOUT).status_code == 200

    def clear_faults(self) -> None:
        assert requests.post(f"{self.base}/_control/clear-faults", timeout=TIMEOUT).status_code == 200

    def error_next(self, count: int = 1) -> None:
        assert requests.post(f"{self.base}/_control/receipt-error-next", json={"count": count},
                             timeout=TIMEOUT).status_code == 200


@dataclass
class QrClinic:
    keys: ClinicKeys
    monobank: Monobank
    checkbox: Checkbox

    @property
    def clinic_id(self) -> str:
        return self.keys.clinic_id

    def staff(self) -> ApiClient:
        return self.keys.staff()

    def path(self, rest: str = "") -> str:
        return self.keys.path(rest)

    def sync(self) -> list[dict[str, Any]]:
        answer = self.staff().post(self.path("/qr-registers/sync"))
        assert answer.status == 200, answer.body
        return list(answer.json()["registers"])

    def merchant_register(self) -> str:
        return next(r["qr_id"] for r in self.sync() if r["amount_type"] == "merchant")

    def put_amount(self, qr_id: str, amount: int, **extra: Any) -> dict[str, Any]:
        answer = self.staff().post(self.path(f"/qr-registers/{qr_id}/amount"),
                                   json={"amount": {"amount": amount, "currency": "UAH"}, **extra})
        assert answer.status == 201, answer.body
        return dict(answer.json())

    def open_shift(self) -> dict[str, Any]:
        answer = self.staff().post(self.path("/fiscal/shift/open"))
        assert answer.status == 200, answer.body
        return dict(answer.json())

    def report(self, **query: str) -> list[dict[str, Any]]:
        answer = self.staff().get(self.path("/reports/qr-payments"), query=query)
        assert answer.status == 200, answer.body
        return list(answer.json()["rows"])

    def payment(self, payment_id: str) -> dict[str, Any]:
        answer = self.staff().get(self.path(f"/qr-payments/{payment_id}"))
        assert answer.status == 200, answer.body
        return dict(answer.json()["payment"])

    def find_payment(self, payment_id: str) -> dict[str, Any] | None:
        answer = self.staff().get(self.path(f"/qr-payments/{payment_id}"))
        return dict(answer.json()["payment"]) if answer.status == 200 else None

    def wait_fiscalized(self, payment_id: str, timeout: float = 20.0) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            row = self.find_payment(payment_id)
            return row if row and row["fiscal_status"] == "fiscalized" else None

        return dict(wait_for(done, timeout=timeout))

    def fiscalize(self, payment_id: str) -> HttpResult:
        return self.staff().post(self.path(f"/qr-payments/{payment_id}/fiscalize"))

    def refund(self, payment_id: str, amount: int | None = None, *, key: str | None = None) -> HttpResult:
        body: dict[str, Any] = {} if amount is None else {"amount": {"amount": amount, "currency": "UAH"}}
        headers = {"Idempotency-Key": key} if key else None
        return self.staff().post(self.path(f"/qr-payments/{payment_id}/refunds"), json=body, headers=headers)

    def settings(self, **changes: Any) -> dict[str, Any]:
        answer = self.keys.admin().patch(self.path("/settings"), json=changes)
        assert answer.status == 200, answer.body
        return dict(answer.json())

    def send_webhook(self, body: str | bytes, x_sign: str | None) -> HttpResult:
        headers = {"Content-Type": "application/json"}
        if x_sign is not None:
            headers["X-Sign"] = x_sign
        raw = body.encode() if isinstance(body, str) else body
        return ApiClient().post(f"/webhooks/monobank/{self.clinic_id}", raw=raw, headers=headers)


def create_qr_clinic(monobank_base: str, checkbox_base: str) -> QrClinic:
    keys = create_clinic(country="UA", currency="UAH", timezone="Europe/Kyiv", locale="uk", name="Клініка Тест")
    token, license_key = f"mono_{keys.clinic_id}", f"lic_{keys.clinic_id}"
    stored = keys.admin().put(keys.path("/gateways/monobank"), json={"token": token})
    assert stored.status == 200, stored.body
    stored = keys.admin().put(keys.path("/gateways/checkbox"), json={"license_key": license_key, "pin_code": "1234"})
    assert stored.status == 200, stored.body
    return QrClinic(keys, Monobank(monobank_base, token), Checkbox(checkbox_base, license_key))
