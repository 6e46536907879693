"""Cards-on-file helpers for the tests: connect a clinic to the Stripe sandbox the way a clinic admin
does (webhook endpoint in Stripe's dashboard, then credentials in our API), book a patient, and save
a card the way a patient does (the card typed on the sandbox's hosted page, never in our API)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests

from tests.support.api import ApiClient
from tests.support.clinics import ClinicKeys

T = TypeVar("T")

VISA = "4242424242424242"
ALWAYS_AUTHENTICATE = "4000002760003184"
INSUFFICIENT_FUNDS = "4000008260003178"
ALREADY_SET_UP = "4000003800000446"

STAFF_CONSENT = {"granted": True, "text_version": "cards-2026-02", "channel": "staff", "granted_by": "reception"}


def connect_stripe(keys: ClinicKeys, stripe_base: str, public_base: str, *,
                   secret_key: str | None = None) -> str:
    """Create our webhook endpoint at the sandbox, then store the credentials. Returns the secret."""
    secret_key = secret_key or f"sk_test_{keys.clinic_id.replace('-', '_')}"
    endpoint = requests.post(f"{stripe_base}/v1/webhook_endpoints", timeout=10,
                             headers={"Authorization": f"Bearer {secret_key}"},
                             data=[("url", f"{public_base}/webhooks/stripe/{keys.clinic_id}"),
                                   *[("enabled_events[]", e) for e in (
                                       "setup_intent.succeeded", "setup_intent.setup_failed",
                                       "payment_intent.succeeded", "payment_intent.payment_failed",
                                       "payment_intent.canceled", "payment_method.detached",
                                       "checkout.session.completed", "checkout.session.expired",
                                       "charge.refunded", "charge.refund.updated", "charge.dispute.created",
                                       "charge.dispute.updated", "charge.dispute.closed")]])
    assert endpoint.status_code == 200, endpoint.text
    secret = str(endpoint.json()["secret"])
    stored = keys.admin().put(keys.path("/gateways/stripe"), json={
        "secret_key": secret_key, "publishable_key": "pk_test_clinicpay", "webhook_secret": secret})
    assert stored.status == 200, stored.body
    return secret


def book(keys: ClinicKeys, patient_id: str, *, service: str = "consulta", email: str | None = "ana@example.ca",
         phone: str | None = None, locale: str | None = None, booked_by: str = "staff") -> dict[str, Any]:
    patient: dict[str, Any] = {"id": patient_id, "name": "Ana Tremblay"}
    for name, value in (("email", email), ("phone", phone), ("locale", locale)):
        if value:
            patient[name] = value
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    created = keys.staff().post(keys.path("/appointments"), json={
        "patient": patient, "service_id": service, "starts_at": starts, "booked_by": booked_by})
    assert created.status == 201, created.body
    return dict(created.json())


def patient_path(keys: ClinicKeys, patient_id: str, rest: str = "") -> str:
    return keys.path(f"/patients/{patient_id}{rest}")


def type_card(checkout_url: str, number: str, *, exp: str = "12 / 34", cvc: str = "123") -> requests.Response:
    """What a person does on the processor's hosted page: type the card, press the button."""
    return requests.post(checkout_url, data={"cardnumber": number, "exp": exp, "cvc": cvc, "name": "Ana Tremblay"},
                         allow_redirects=False, timeout=10)


def wait_for(predicate: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def settle(stripe_base: str | None = None, timeout: float = 15.0) -> None:
    """Wait until the Stripe sandbox has no webhook delivery under way (each one runs our handler to
    the end before it counts as done), so a test's next step does not race a delivery it did not
    mean to test."""
    import os

    base = stripe_base or os.environ["STRIPE_API_BASE"]
    wait_for(lambda: requests.get(f"{base}/_control/idle", timeout=10).json()["idle"], timeout=timeout)


def save_card(keys: ClinicKeys, patient_id: str, number: str = VISA) -> dict[str, Any]:
    """Staff start a setup with the patient's consent; the patient types the card on the sandbox page;
    the webhook saves it. Returns the saved card as the API lists it."""
    staff = keys.staff()
    before = {c["card_id"] for c in staff.get(patient_path(keys, patient_id, "/cards")).json()["cards"]}
    started = staff.post(patient_path(keys, patient_id, "/card-setup"), json={"consent": STAFF_CONSENT})
    assert started.status == 201, started.body
    typed = type_card(started.json()["url"], number)
    assert typed.status_code == 303, typed.text
    saved = wait_for(lambda: next((c for c in staff.get(patient_path(keys, patient_id, "/cards")).json()["cards"]
                                   if c["card_id"] not in before), None))
    settle()
    return saved


def staff(keys: ClinicKeys) -> ApiClient:
    return keys.staff()


def new_clinic(stack: Any, *, locale: str = "en", org_id: str | None = None) -> ClinicKeys:
    """A Canadian clinic (CAD) connected to the Stripe sandbox, with a consultation that has a
    no-show fee and a service that requires a card to be booked online."""
    from tests.support.clinics import add_service, create_clinic

    settle(stack.sandbox_url("stripe"))
    keys = create_clinic(country="CA", currency="CAD", timezone="America/Toronto", locale=locale,
                         name="Clinique Laval", org_id=org_id)
    connect_stripe(keys, stack.sandbox_url("stripe"), stack.base_url)
    add_service(keys, "consulta", 8000, "CAD", online=False, no_show_fee=2500)
    add_service(keys, "implant", 50000, "CAD", online=False, card=True, no_show_fee=10000)
    add_service(keys, "free-check", 0, "CAD", online=False)
    return keys


def form_post(client: ApiClient, path: str, fields: dict[str, str], *, user_agent: str = "Mozilla/5.0 (Pixel 8)") -> Any:
    from urllib.parse import urlencode

    return client.request("POST", path, raw=urlencode(fields).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", "User-Agent": user_agent})


def local_path(url: str) -> str:
    """`http://127.0.0.1:1234/cards/setup/x?y=1` -> `/cards/setup/x?y=1` (for the in-process client)."""
    return "/" + url.split("/", 3)[3]
