"""Helpers for the browser tests (tests/e2e/test_browser_*.py): constants, clinics set up through
the real HTTP API (as an operator and a clinic admin would), outbox reads, page checks. The
fixtures are in conftest_browser.py; nothing here reaches into the stack's process.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from local import template

CHROMIUM = "/usr/bin/chromium"
# The launch arguments that work as root in this container (../shared/reference/toolchain.md).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SCREENSHOTS = template.ROOT / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
TIMEOUT = 15
ROUTE_KEYS = {route.route_key for route in template.routes()}


def require_routes(*route_keys: str) -> None:
    """Skip, naming the first route template.yaml does not have yet."""
    for key in route_keys:
        if key not in ROUTE_KEYS:
            pytest.skip(f"{key} is not in template.yaml yet")


# ------------------------------------------------------------------------------------ HTTP helpers

class ApiError(AssertionError):
    pass


@dataclass
class Http:
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)

    def call(self, method: str, path: str, *, json: Any = None, expect: int | tuple[int, ...] | None = None,
             headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> requests.Response:
        response = requests.request(method, f"{self.base_url}{path}", json=json, params=params,
                                    headers={**self.headers, **(headers or {})}, timeout=TIMEOUT)
        wanted = (expect,) if isinstance(expect, int) else expect
        if wanted and response.status_code not in wanted:
            raise ApiError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, json=json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("PUT", path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("PATCH", path, json=json, **kwargs)


@dataclass
class Clinic:
    """A clinic made through the API for one test, with its three kinds of keys."""

    base_url: str
    clinic_id: str
    name: str
    admin_key: str
    staff_key: str
    publishable_key: str
    timezone: str
    currency: str

    def admin(self) -> Http:
        return Http(self.base_url, {"Authorization": f"Bearer {self.admin_key}"})

    def staff(self) -> Http:
        return Http(self.base_url, {"Authorization": f"Bearer {self.staff_key}"})

    def path(self, rest: str = "") -> str:
        return f"/v1/clinics/{self.clinic_id}{rest}"

    def demo_url(self, locale: str | None = None) -> str:
        query = f"clinic={self.clinic_id}&key={self.publishable_key}"
        return f"{self.base_url}/demo?{query}" + (f"&locale={locale}" if locale else "")

    def put_service(self, service_id: str, name: str, amount: int, *, online: bool = True, card: bool = False,
                    no_show_fee: int | None = None, deposit: dict[str, Any] | None = None) -> None:
        self.admin().put(self.path(f"/services/{service_id}"), expect=200, json={
            "name": name, "price": {"amount": amount, "currency": self.currency}, "requires_online_payment": online,
            "requires_card_on_file": card,
            "no_show_fee": {"amount": no_show_fee, "currency": self.currency} if no_show_fee is not None else None,
            "deposit": deposit})

    def connect_fintoc(self) -> None:
        """Register our webhook at the Fintoc sandbox (as a clinic does in Fintoc's dashboard), then
        store the credentials. A secret key of its own keeps this clinic's events to itself."""
        secret_key = f"sk_test_{self.clinic_id}"
        endpoint = Http(self.base_url, {"Authorization": secret_key}).post(
            "/_sandbox/fintoc/v1/webhook_endpoints", expect=(200, 201),
            json={"url": f"{self.base_url}/webhooks/fintoc/{self.clinic_id}",
                  "enabled_events": ["payment_intent.succeeded", "payment_intent.failed", "payment_intent.pending",
                                     "checkout_session.expired", "refund.in_progress", "refund.succeeded",
                                     "refund.failed"]})
        self.admin().put(self.path("/gateways/fintoc"), expect=200, json={
            "secret_key": secret_key, "public_key": f"pk_test_{self.clinic_id}", "webhook_secret": endpoint.json()["secret"]})
        self.admin().patch(self.path("/settings"), expect=200,
                           json={"show_payment_link_in_email": True, "default_gateway": "fintoc"})

    def starts_at(self, days: int = 3, hour: int = 10) -> str:
        moment = (datetime.now(ZoneInfo(self.timezone)) + timedelta(days=days)).replace(
            hour=hour, minute=0, second=0, microsecond=0)
        return moment.isoformat()

    def book(self, patient: dict[str, Any], service_id: str, *, days: int = 3) -> dict[str, Any]:
        response = self.staff().post(self.path("/appointments"), expect=201, json={
            "patient": patient, "service_id": service_id, "starts_at": self.starts_at(days), "booked_by": "staff"})
        return dict(response.json())

    def appointment(self, appointment_id: str) -> dict[str, Any]:
        return dict(self.staff().get(self.path(f"/appointments/{appointment_id}"), expect=200).json())

    def appointments(self) -> list[dict[str, Any]]:
        return list(self.staff().get(self.path("/appointments"), expect=200).json()["appointments"])


def outbox(base_url: str, to: str) -> list[dict[str, Any]]:
    return list(requests.get(f"{base_url}/_local/outbox", params={"to": to}, timeout=TIMEOUT).json())


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{message} not met within {timeout}s")


def unique_email(prefix: str) -> str:
    return f"{prefix}.{secrets.token_hex(4)}@example.com"


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


def unlabelled_controls(page: Any, scope: str) -> list[str]:
    """Visible form controls under `scope` with no label a screen reader can announce."""
    return list(page.evaluate("""(scope) => Array.from(document.querySelectorAll(scope + ' input, ' + scope + ' select, '
        + scope + ' textarea')).filter(el => el.type !== 'hidden' && el.offsetParent !== null)
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
        .map(el => el.outerHTML.slice(0, 120))""", scope))


def checkout_session(url: str) -> bool:
    return bool(re.search(r"/_sandbox/fintoc/sandbox/cs_", url))


def utc_now() -> datetime:
    return datetime.now(UTC)
