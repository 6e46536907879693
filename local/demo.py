"""Creates a demo clinic on a running local stack, through the real HTTP API, as the operator.

Each step prints one line; a failing step prints what answered (status, error code and message)
instead of a traceback, and the steps that depend on it are skipped.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests

CLINIC = {"name": "Clínica Demo", "country": "CL", "currency": "CLP", "timezone": "America/Santiago",
          "locale": "es"}
FINTOC_SECRET_KEY = "sk_test_demo_clinicpay_local"
FINTOC_PUBLIC_KEY = "pk_test_demo_clinicpay_local"
FINTOC_EVENTS = ["payment_intent.succeeded", "payment_intent.failed", "checkout_session.expired",
                 "refund.in_progress", "refund.succeeded", "refund.failed"]
SERVICES = {
    "consulta": {"name": "Consulta general", "price": {"amount": 25000, "currency": "CLP"},
                 "requires_online_payment": True, "requires_card_on_file": False, "no_show_fee": None},
    "control": {"name": "Control (sin costo)", "price": {"amount": 0, "currency": "CLP"},
                "requires_online_payment": False, "requires_card_on_file": False, "no_show_fee": None},
}
STRIPE_SECRET_KEY = "sk_test_demo_clinicpay_local"
STRIPE_EVENTS = ["setup_intent.succeeded", "setup_intent.setup_failed", "payment_intent.succeeded",
                 "payment_intent.payment_failed", "payment_method.detached", "checkout.session.completed",
                 "checkout.session.expired"]
CARD_SERVICE = {"name": "Procedimiento (requiere tarjeta)", "price": {"amount": 40000, "currency": "CLP"},
                "requires_online_payment": False, "requires_card_on_file": True,
                "no_show_fee": {"amount": 10000, "currency": "CLP"}}
QR_CLINIC = {"name": "Клініка Демо", "country": "UA", "currency": "UAH", "timezone": "Europe/Kyiv", "locale": "uk"}
TIMEOUT = 20


class StepFailed(Exception):
    pass


@dataclass
class DemoClinic:
    clinic_id: str
    admin_key: str
    publishable_key: str
    failed: list[str] = field(default_factory=list)
    qr: dict[str, str] | None = None

    def appointment_curl(self, base_url: str) -> str:
        starts_at = (datetime.now(ZoneInfo(CLINIC["timezone"])) + timedelta(days=1)).replace(
            hour=10, minute=0, second=0, microsecond=0)
        body = {"patient": {"id": "pat_ana", "name": "Ana Pérez", "email": "ana@example.com",
                            "phone": "+56912345678", "locale": "es"},
                "service_id": "consulta", "starts_at": starts_at.isoformat(), "booked_by": "staff"}
        return (f"curl -s -X POST {base_url}/v1/clinics/{self.clinic_id}/appointments \\\n"
                f"    -H 'Authorization: Bearer {self.admin_key}' -H 'Content-Type: application/json' \\\n"
                f"    -d {shlex.quote(json.dumps(body, ensure_ascii=False))}")

    def describe(self, base_url: str) -> list[str]:
        lines = [
            f" Demo clinic    {CLINIC['name']}  id {self.clinic_id}",
            f" Admin key      {self.admin_key}",
            f" Publishable    {self.publishable_key}",
            f" Widget demo    {base_url}/demo?clinic={self.clinic_id}&key={self.publishable_key}",
            f" Staff pages    {base_url}/staff  (clinic id above, admin key to sign in)",
            " Services       consulta (CLP 25000, paid online via Fintoc sandbox), control (free)",
            " Book and pay (then open payment_link.url, and see the email in the outbox):",
            *("   " + line for line in self.appointment_curl(base_url).splitlines()),
        ]
        if self.qr:
            lines += [f" QR clinic      {QR_CLINIC['name']}  id {self.qr['clinic_id']}  admin key {self.qr['admin_key']}",
                      "                (staff pages -> Pagos QR / QR: put an amount, open the register's page, pay)"]
        if self.failed:
            lines.append(f" Demo steps that failed: {', '.join(self.failed)} (see the lines above)")
        return lines


def _describe_failure(response: requests.Response) -> str:
    try:
        error = response.json().get("error") or response.json()
    except (ValueError, AttributeError):
        return f"{response.status_code} {response.text[:200]!r}"
    if isinstance(error, dict) and ("code" in error or "message" in error):
        text = f"{response.status_code} {error.get('code', '')}: {error.get('message', '')}".rstrip(": ")
        details = error.get("details")
        return f"{text} {json.dumps(details, ensure_ascii=False)[:300]}" if details else text
    return f"{response.status_code} {json.dumps(error)[:200]}"


def _call(method: str, url: str, *, key: str | None = None, headers: dict[str, str] | None = None,
          body: Any = None) -> dict[str, Any]:
    all_headers = {"Authorization": f"Bearer {key}"} if key else {}
    all_headers.update(headers or {})
    try:
        response = requests.request(method, url, json=body, headers=all_headers, timeout=TIMEOUT)
    except requests.RequestException as error:
        raise StepFailed(f"{method} {url}: {type(error).__name__}: {error}") from None
    if response.status_code >= 400:
        raise StepFailed(f"{method} {url} -> {_describe_failure(response)}")
    try:
        data = response.json() if response.content else {}
    except ValueError:
        raise StepFailed(f"{method} {url} -> {response.status_code}, not JSON: {response.text[:200]!r}") from None
    return data if isinstance(data, dict) else {"data": data}


def bootstrap(base_url: str, operator_key: str, *, fintoc_api_base: str | None = None,
              public_base_url: str | None = None, log: Any = print) -> DemoClinic | None:
    """Create the demo clinic. Returns None when even the clinic could not be created."""
    fintoc = (fintoc_api_base or os.environ.get("FINTOC_API_BASE") or f"{base_url}/_sandbox/fintoc").rstrip("/")
    public = (public_base_url or os.environ.get("PUBLIC_BASE_URL") or base_url).rstrip("/")
    log("demo: creating the demo clinic through the API ...")

    try:
        created = _call("POST", f"{base_url}/v1/clinics", key=operator_key, body=CLINIC)
        clinic = DemoClinic(created["clinic"]["clinic_id"], created["admin_key"], created["publishable_key"])
    except (StepFailed, KeyError, TypeError) as error:
        detail = f"unexpected answer, missing {error}" if not isinstance(error, StepFailed) else str(error)
        log(f"demo: ✗ create clinic: {detail}")
        log("demo: skipped the remaining demo steps (they need the clinic); the stack itself is up.")
        return None
    log(f"demo: ✓ clinic {clinic.clinic_id}")
    clinic_url = f"{base_url}/v1/clinics/{clinic.clinic_id}"

    def step(label: str, method: str, url: str, **kwargs: Any) -> dict[str, Any] | None:
        try:
            result = _call(method, url, **kwargs)
        except StepFailed as error:
            log(f"demo: ✗ {label}: {error}")
            clinic.failed.append(label)
            return None
        log(f"demo: ✓ {label}")
        return result

    endpoint = step("fintoc webhook endpoint", "POST", f"{fintoc}/v1/webhook_endpoints",
                    headers={"Authorization": FINTOC_SECRET_KEY},
                    body={"url": f"{public}/webhooks/fintoc/{clinic.clinic_id}", "enabled_events": FINTOC_EVENTS,
                          "description": "clinicpay local demo"})
    secret = (endpoint or {}).get("secret")
    if endpoint is not None and not secret:
        log("demo: ✗ fintoc webhook endpoint: the answer has no 'secret'")
        clinic.failed.append("fintoc webhook endpoint")
    if secret:
        step("fintoc gateway credentials", "PUT", f"{clinic_url}/gateways/fintoc", key=clinic.admin_key,
             body={"secret_key": FINTOC_SECRET_KEY, "public_key": FINTOC_PUBLIC_KEY, "webhook_secret": secret})
    else:
        log("demo: - fintoc gateway credentials: skipped (no webhook secret)")
        clinic.failed.append("fintoc gateway credentials")
    step("settings (link in email, default gateway fintoc)", "PATCH", f"{clinic_url}/settings", key=clinic.admin_key,
         body={"show_payment_link_in_email": True, "default_gateway": "fintoc"})
    for service_id, service in SERVICES.items():
        step(f"service {service_id}", "PUT", f"{clinic_url}/services/{service_id}", key=clinic.admin_key, body=service)
    _cards_on_file(step, clinic, clinic_url, base_url, public)
    clinic.qr = bootstrap_qr_clinic(base_url, operator_key, log=log)
    return clinic


def _cards_on_file(step: Any, clinic: DemoClinic, clinic_url: str, base_url: str, public: str) -> None:
    """Stripe (sandbox) as the card vault, and a service that needs a card to be booked online."""
    stripe = (os.environ.get("STRIPE_API_BASE") or f"{base_url}/_sandbox/stripe").rstrip("/")
    try:
        response = requests.post(f"{stripe}/v1/webhook_endpoints", timeout=TIMEOUT,
                                 headers={"Authorization": f"Bearer {STRIPE_SECRET_KEY}"},
                                 data=[("url", f"{public}/webhooks/stripe/{clinic.clinic_id}"),
                                       *[("enabled_events[]", e) for e in STRIPE_EVENTS]])
        secret = response.json().get("secret") if response.ok else None
    except (requests.RequestException, ValueError):
        secret = None
    if not secret:
        clinic.failed.append("stripe webhook endpoint")
        return
    step("stripe gateway credentials (cards on file)", "PUT", f"{clinic_url}/gateways/stripe", key=clinic.admin_key,
         body={"secret_key": STRIPE_SECRET_KEY, "publishable_key": "pk_test_demo_clinicpay_local",
               "webhook_secret": secret})
    step("setting: card required for online booking", "PATCH", f"{clinic_url}/settings", key=clinic.admin_key,
         body={"card_required_for_online_booking": True})
    step("service procedimiento (card required)", "PUT", f"{clinic_url}/services/procedimiento",
         key=clinic.admin_key, body=CARD_SERVICE)


def bootstrap_qr_clinic(base_url: str, operator_key: str, *, log: Any = print) -> dict[str, str] | None:
    """A Ukrainian clinic with monobank QR registers and a Checkbox register, its shift open, so a
    person can put an amount on a register, pay it on the sandbox page and see the fiscal receipt."""
    try:
        created = _call("POST", f"{base_url}/v1/clinics", key=operator_key, body=QR_CLINIC)
        clinic_id, admin = created["clinic"]["clinic_id"], created["admin_key"]
        url = f"{base_url}/v1/clinics/{clinic_id}"
        _call("PUT", f"{url}/gateways/monobank", key=admin, body={"token": "demo-monobank-token"})
        _call("PUT", f"{url}/gateways/checkbox", key=admin, body={"license_key": "demo-checkbox-licence",
                                                                 "pin_code": "1234"})
        registers = _call("POST", f"{url}/qr-registers/sync", key=admin)
        _call("POST", f"{url}/fiscal/shift/open", key=admin)
    except (StepFailed, KeyError, TypeError) as error:
        log(f"demo: ✗ QR clinic: {error}")
        return None
    count = len(registers.get("registers") or registers.get("data") or [])
    log(f"demo: ✓ QR clinic {clinic_id} ({count} monobank QR registers synced, Checkbox shift opening)")
    return {"clinic_id": clinic_id, "admin_key": admin}
