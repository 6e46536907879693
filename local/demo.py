"""Creates the demo clinics on a running local stack, through the real HTTP API, as the operator
and each clinic's admin would:

- Chile, Fintoc: "Clínica Demo" (CLP, es). `consulta` 25 000 CLP paid online by bank transfer
  through the Fintoc sandbox; `control` free.
- Canada, Stripe: "Clinique Démo Montréal" (CAD, fr). `consultation` 85.00 CAD paid online through
  Stripe Checkout; `intervention` needs a card on file to be booked online (no-show fee 50.00 CAD).
- Ukraine, monobank QR: "Клініка Демо" (UAH, uk). monobank QR registers synced and a Checkbox
  register whose shift is open, so an amount put on a register can be paid on the sandbox page and
  gets its fiscal receipt; `konsultatsiia` 600.00 UAH paid online through a monobank invoice.

Every clinic sends a reminder 24 hours and 1 hour before an appointment (the 1-hour one lets a
walkthrough see a reminder a minute after booking). Each step prints one line; a failing step
prints what answered (status, error code and message) instead of a traceback, and the steps that
depend on it are skipped. The clinics are kept in `CLINICS` for the stack's pages (/_local, /demo).
"""

from __future__ import annotations

import json
import os
import shlex
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

TIMEOUT = 20
REMINDER_HOURS_BEFORE = [24, 1]

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

CARD_CLINIC = {"name": "Clinique Démo Montréal", "country": "CA", "currency": "CAD", "timezone": "America/Toronto",
               "locale": "fr"}
STRIPE_SECRET_KEY = "sk_test_demo_clinicpay_local"
STRIPE_EVENTS = ["setup_intent.succeeded", "setup_intent.setup_failed", "payment_intent.succeeded",
                 "payment_intent.payment_failed", "payment_method.detached", "checkout.session.completed",
                 "checkout.session.expired"]
CARD_SERVICES = {
    "consultation": {"name": "Consultation", "price": {"amount": 8500, "currency": "CAD"},
                     "requires_online_payment": True, "requires_card_on_file": False, "no_show_fee": None},
    "intervention": {"name": "Intervention (carte requise)", "price": {"amount": 15000, "currency": "CAD"},
                     "requires_online_payment": False, "requires_card_on_file": True,
                     "no_show_fee": {"amount": 5000, "currency": "CAD"}},
}
# Kept for callers of the earlier single-clinic demo: the card-required service.
CARD_SERVICE = CARD_SERVICES["intervention"]

QR_CLINIC = {"name": "Клініка Демо", "country": "UA", "currency": "UAH", "timezone": "Europe/Kyiv", "locale": "uk"}
QR_SERVICES = {
    "konsultatsiia": {"name": "Консультація лікаря", "price": {"amount": 60000, "currency": "UAH"},
                      "requires_online_payment": True, "requires_card_on_file": False, "no_show_fee": None},
}


class StepFailed(Exception):
    pass


@dataclass
class DemoClinic:
    """One demo clinic as the stack's pages show it."""

    key: str  # "chile", "canada", "ukraine"
    name: str
    summary: str
    clinic_id: str
    admin_key: str
    publishable_key: str
    country: str
    currency: str
    timezone: str
    locale: str
    provider: str
    services: dict[str, str] = field(default_factory=dict)  # id -> what it shows
    failed: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


# The demo clinics this process created (the local stack's /_local and /demo read them).
CLINICS: list[DemoClinic] = []
_creating = threading.Lock()


def appointment_curl(base_url: str, clinic: DemoClinic, *, minutes_ahead: int = 61) -> str:
    """A ready booking: in 61 minutes, so its 1-hour reminder is due a minute from now."""
    starts_at = (datetime.now(UTC) + timedelta(minutes=minutes_ahead)).replace(second=0, microsecond=0)
    body = {"patient": {"id": "pat_ana", "name": "Ana Pérez", "email": "ana@example.com",
                        "phone": "+56912345678", "locale": "es"},
            "service_id": "consulta", "starts_at": starts_at.isoformat(), "booked_by": "staff"}
    return (f"curl -s -X POST {base_url}/v1/clinics/{clinic.clinic_id}/appointments \\\n"
            f"    -H 'Authorization: Bearer {clinic.admin_key}' -H 'Content-Type: application/json' \\\n"
            f"    -d {shlex.quote(json.dumps(body, ensure_ascii=False))}")


def describe(base_url: str, clinics: list[DemoClinic]) -> list[str]:
    """The banner's lines about the demo clinics."""
    lines = []
    for clinic in clinics:
        lines += [f" {clinic.name}  ({clinic.summary})",
                  f"   id {clinic.clinic_id}   admin key {clinic.admin_key}   publishable {clinic.publishable_key}",
                  f"   widget {base_url}/demo?clinic={clinic.clinic_id}&key={clinic.publishable_key}"]
        if clinic.failed:
            lines.append(f"   demo steps that failed: {', '.join(clinic.failed)} (see the lines above)")
    chile = next((c for c in clinics if c.key == "chile"), None)
    if chile is not None:
        lines += [" Book and pay (then open payment_link.url; the email is in the outbox; a minute later",
                  " POST /_local/jobs/reminders sends its 1-hour reminder):",
                  *("   " + line for line in appointment_curl(base_url, chile).splitlines())]
    lines.append(f" Staff pages    {base_url}/staff  (a clinic id and its admin key to sign in)")
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
          body: Any = None, form: Any = None) -> dict[str, Any]:
    all_headers = {"Authorization": f"Bearer {key}"} if key else {}
    all_headers.update(headers or {})
    try:
        response = requests.request(method, url, json=body, data=form, headers=all_headers, timeout=TIMEOUT)
    except requests.RequestException as error:
        raise StepFailed(f"{method} {url}: {type(error).__name__}: {error}") from None
    if response.status_code >= 400:
        raise StepFailed(f"{method} {url} -> {_describe_failure(response)}")
    try:
        data = response.json() if response.content else {}
    except ValueError:
        raise StepFailed(f"{method} {url} -> {response.status_code}, not JSON: {response.text[:200]!r}") from None
    return data if isinstance(data, dict) else {"data": data}


class _Steps:
    """Runs one clinic's setup steps, logging each, remembering the failed ones."""

    def __init__(self, clinic: DemoClinic, log: Any):
        self.clinic, self.log = clinic, log

    def __call__(self, label: str, method: str, url: str, **kwargs: Any) -> dict[str, Any] | None:
        try:
            result = _call(method, url, **kwargs)
        except StepFailed as error:
            self.log(f"demo: ✗ {self.clinic.key}: {label}: {error}")
            self.clinic.failed.append(label)
            return None
        self.log(f"demo: ✓ {self.clinic.key}: {label}")
        return result


def _create(base_url: str, operator_key: str, key: str, body: dict[str, str], summary: str, provider: str,
            log: Any) -> DemoClinic | None:
    try:
        created = _call("POST", f"{base_url}/v1/clinics", key=operator_key, body=body)
        clinic = DemoClinic(key, body["name"], summary, created["clinic"]["clinic_id"], created["admin_key"],
                            created["publishable_key"], body["country"], body["currency"], body["timezone"],
                            body["locale"], provider)
    except (StepFailed, KeyError, TypeError) as error:
        detail = f"unexpected answer, missing {error}" if not isinstance(error, StepFailed) else str(error)
        log(f"demo: ✗ create {body['name']}: {detail}")
        return None
    log(f"demo: ✓ clinic {clinic.name} {clinic.clinic_id}")
    return clinic


def _services(step: _Steps, clinic_url: str, admin: str, services: dict[str, dict[str, Any]], clinic: DemoClinic) -> None:
    for service_id, service in services.items():
        if step(f"service {service_id}", "PUT", f"{clinic_url}/services/{service_id}", key=admin, body=service):
            clinic.services[service_id] = service["name"]


def chile_fintoc(base_url: str, operator_key: str, *, fintoc: str, public: str, log: Any = print) -> DemoClinic | None:
    clinic = _create(base_url, operator_key, "chile", CLINIC, "Chile · CLP · Fintoc bank transfers", "fintoc", log)
    if clinic is None:
        return None
    step, url = _Steps(clinic, log), f"{base_url}/v1/clinics/{clinic.clinic_id}"
    endpoint = step("fintoc webhook endpoint", "POST", f"{fintoc}/v1/webhook_endpoints",
                    headers={"Authorization": FINTOC_SECRET_KEY},
                    body={"url": f"{public}/webhooks/fintoc/{clinic.clinic_id}", "enabled_events": FINTOC_EVENTS,
                          "description": "clinicpay local demo"})
    secret = (endpoint or {}).get("secret")
    if secret:
        step("fintoc gateway credentials", "PUT", f"{url}/gateways/fintoc", key=clinic.admin_key,
             body={"secret_key": FINTOC_SECRET_KEY, "public_key": FINTOC_PUBLIC_KEY, "webhook_secret": secret})
    else:
        log("demo: - chile: fintoc gateway credentials: skipped (no webhook secret)")
        clinic.failed.append("fintoc gateway credentials")
    step("settings (link in email, Fintoc, reminders 24 h and 1 h before)", "PATCH", f"{url}/settings",
         key=clinic.admin_key, body={"show_payment_link_in_email": True, "default_gateway": "fintoc",
                                     "reminder_hours_before": REMINDER_HOURS_BEFORE})
    _services(step, url, clinic.admin_key, SERVICES, clinic)
    return clinic


def canada_stripe(base_url: str, operator_key: str, *, stripe: str, public: str, log: Any = print) -> DemoClinic | None:
    clinic = _create(base_url, operator_key, "canada", CARD_CLINIC,
                     "Canada · CAD · Stripe Checkout and cards on file; a card-required service", "stripe", log)
    if clinic is None:
        return None
    step, url = _Steps(clinic, log), f"{base_url}/v1/clinics/{clinic.clinic_id}"
    endpoint = step("stripe webhook endpoint", "POST", f"{stripe}/v1/webhook_endpoints",
                    headers={"Authorization": f"Bearer {STRIPE_SECRET_KEY}"},
                    form=[("url", f"{public}/webhooks/stripe/{clinic.clinic_id}"),
                          *[("enabled_events[]", e) for e in STRIPE_EVENTS]])
    secret = (endpoint or {}).get("secret")
    if secret:
        step("stripe gateway credentials", "PUT", f"{url}/gateways/stripe", key=clinic.admin_key,
             body={"secret_key": STRIPE_SECRET_KEY, "publishable_key": "pk_test_demo_clinicpay_local",
                   "webhook_secret": secret})
    else:
        clinic.failed.append("stripe gateway credentials")
    step("settings (link in email, Stripe, card required online, reminders)", "PATCH", f"{url}/settings",
         key=clinic.admin_key, body={"show_payment_link_in_email": True, "default_gateway": "stripe",
                                     "card_required_for_online_booking": True,
                                     "reminder_hours_before": REMINDER_HOURS_BEFORE})
    _services(step, url, clinic.admin_key, CARD_SERVICES, clinic)
    return clinic


def ukraine_qr(base_url: str, operator_key: str, *, log: Any = print) -> DemoClinic | None:
    """Monobank QR registers and a Checkbox register with its shift open, so a person can put an
    amount on a register, pay it on the sandbox page and see the fiscal receipt."""
    clinic = _create(base_url, operator_key, "ukraine", QR_CLINIC,
                     "Ukraine · UAH · monobank QR and invoices, Checkbox receipts, shift open", "monobank", log)
    if clinic is None:
        return None
    step, url = _Steps(clinic, log), f"{base_url}/v1/clinics/{clinic.clinic_id}"
    step("monobank gateway credentials", "PUT", f"{url}/gateways/monobank", key=clinic.admin_key,
         body={"token": "demo-monobank-token"})
    step("checkbox gateway credentials", "PUT", f"{url}/gateways/checkbox", key=clinic.admin_key,
         body={"license_key": "demo-checkbox-licence", "pin_code": "1234"})
    registers = step("monobank QR registers synced", "POST", f"{url}/qr-registers/sync", key=clinic.admin_key)
    step("fiscal shift opened", "POST", f"{url}/fiscal/shift/open", key=clinic.admin_key)
    step("settings (link in email, monobank, reminders)", "PATCH", f"{url}/settings", key=clinic.admin_key,
         body={"show_payment_link_in_email": True, "default_gateway": "monobank",
               "reminder_hours_before": REMINDER_HOURS_BEFORE})
    _services(step, url, clinic.admin_key, QR_SERVICES, clinic)
    if registers is not None:
        count = len(registers.get("registers") or registers.get("data") or [])
        clinic.services["qr"] = f"{count} QR registers"
    return clinic


def bootstrap(base_url: str, operator_key: str, *, fintoc_api_base: str | None = None,
              stripe_api_base: str | None = None, public_base_url: str | None = None,
              log: Any = print) -> list[DemoClinic]:
    """Create the three demo clinics, unless this process already did; returns them (CLINICS)."""
    with _creating:
        if CLINICS:
            return list(CLINICS)
        fintoc = (fintoc_api_base or os.environ.get("FINTOC_API_BASE") or f"{base_url}/_sandbox/fintoc").rstrip("/")
        stripe = (stripe_api_base or os.environ.get("STRIPE_API_BASE") or f"{base_url}/_sandbox/stripe").rstrip("/")
        public = (public_base_url or os.environ.get("PUBLIC_BASE_URL") or base_url).rstrip("/")
        log("demo: creating the demo clinics through the API ...")
        made = [chile_fintoc(base_url, operator_key, fintoc=fintoc, public=public, log=log),
                canada_stripe(base_url, operator_key, stripe=stripe, public=public, log=log),
                ukraine_qr(base_url, operator_key, log=log)]
        CLINICS.extend(clinic for clinic in made if clinic is not None)
        if len(CLINICS) < len(made):
            log("demo: some demo clinics could not be created (see above); the stack itself is up.")
        return list(CLINICS)
