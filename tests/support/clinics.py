"""Set up clinics through the real API, the way an operator and a clinic admin would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from tests.support.api import ApiClient
from tests.support.env import OPERATOR_KEY


@dataclass
class ClinicKeys:
    clinic_id: str
    admin_key: str
    publishable_key: str
    staff_key: str

    def admin(self) -> ApiClient:
        return ApiClient().with_key(self.admin_key)

    def staff(self) -> ApiClient:
        return ApiClient().with_key(self.staff_key)

    def widget(self) -> ApiClient:
        return ApiClient({"X-Clinic-Key": self.publishable_key})

    def path(self, rest: str = "") -> str:
        return f"/v1/clinics/{self.clinic_id}{rest}"


def create_clinic(*, country: str = "CL", currency: str = "CLP", timezone: str = "America/Santiago",
                  locale: str = "es", name: str = "Clínica Test", org_id: str | None = None) -> ClinicKeys:
    body: dict[str, Any] = {"name": name, "country": country, "currency": currency, "timezone": timezone,
                            "locale": locale}
    if org_id:
        body["org_id"] = org_id
    created = ApiClient().with_key(OPERATOR_KEY).post("/v1/clinics", json=body)
    assert created.status == 201, created.body
    data = created.json()
    clinic_id = data["clinic"]["clinic_id"]
    staff = ApiClient().with_key(data["admin_key"]).post(f"/v1/clinics/{clinic_id}/staff-keys")
    assert staff.status == 201, staff.body
    return ClinicKeys(clinic_id, data["admin_key"], data["publishable_key"], staff.json()["key"])


def connect_fintoc(keys: ClinicKeys, fintoc_base: str, public_base: str, secret_key: str = "sk_test_clinic") -> str:
    """Register our webhook endpoint at the Fintoc sandbox (as a clinic does in Fintoc's dashboard),
    then store the credentials. Returns the webhook secret."""
    endpoint = requests.post(f"{fintoc_base}/v1/webhook_endpoints", headers={"Authorization": secret_key}, timeout=10,
                             json={"url": f"{public_base}/webhooks/fintoc/{keys.clinic_id}",
                                   "enabled_events": ["payment_intent.succeeded", "payment_intent.failed",
                                                      "payment_intent.pending", "checkout_session.expired",
                                                      "refund.in_progress", "refund.succeeded", "refund.failed"]})
    assert endpoint.status_code in (200, 201), endpoint.text
    secret = endpoint.json()["secret"]
    stored = keys.admin().put(keys.path("/gateways/fintoc"),
                              json={"secret_key": secret_key, "public_key": "pk_test_clinic", "webhook_secret": secret})
    assert stored.status == 200, stored.body
    return str(secret)


def add_service(keys: ClinicKeys, service_id: str, amount: int, currency: str = "CLP", *, online: bool = True,
                card: bool = False, no_show_fee: int | None = None, deposit: dict[str, Any] | None = None) -> None:
    response = keys.admin().put(keys.path(f"/services/{service_id}"), json={
        "name": service_id.replace("-", " ").title(), "price": {"amount": amount, "currency": currency},
        "requires_online_payment": online, "requires_card_on_file": card,
        "no_show_fee": {"amount": no_show_fee, "currency": currency} if no_show_fee is not None else None,
        "deposit": deposit})
    assert response.status == 200, response.body


def patient_token_secret(keys: ClinicKeys) -> str:
    """The clinic's patient-token secret, as its admin obtains it for the clinic's site."""
    made = keys.admin().post(keys.path("/patient-token-secret"))
    assert made.status == 201, made.body
    return str(made.json()["secret"])


def patient_token(keys: ClinicKeys, secret: str, patient_id: str, *, minutes: int = 30, **claims: str) -> str:
    """What the clinic's site signs for a patient signed in there."""
    from datetime import UTC, datetime, timedelta

    from clinicpay.domain.patient_tokens import sign

    return sign(secret, keys.clinic_id, patient_id, datetime.now(UTC) + timedelta(minutes=minutes), **claims)
