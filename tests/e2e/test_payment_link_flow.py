"""Issue 2 end to end: the local stack started as a user starts it, driven over HTTP only."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e


def _json(response: requests.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_a_patient_pays_a_staff_booked_appointment_through_the_fintoc_sandbox(local_stack: LocalStack) -> None:
    base = local_stack.base_url
    http = requests.Session()
    # Given a clinic set up by its operator and admin, the way the README tells
    created = _json(http.post(f"{base}/v1/clinics", headers={"Authorization": f"Bearer {local_stack.operator_key}"},
                              json={"name": "Clínica E2E", "country": "CL", "currency": "CLP",
                                    "timezone": "America/Santiago", "locale": "es"}), 201)
    clinic_id, admin = created["clinic"]["clinic_id"], {"Authorization": f"Bearer {created['admin_key']}"}
    staff_key = _json(http.post(f"{base}/v1/clinics/{clinic_id}/staff-keys", headers=admin), 201)["key"]
    staff = {"Authorization": f"Bearer {staff_key}"}
    endpoint = _json(http.post(f"{base}/_sandbox/fintoc/v1/webhook_endpoints", headers={"Authorization": "sk_test_e2e"},
                               json={"url": f"{base}/webhooks/fintoc/{clinic_id}",
                                     "enabled_events": ["payment_intent.succeeded", "payment_intent.failed"]}), 201)
    gateway = _json(http.put(f"{base}/v1/clinics/{clinic_id}/gateways/fintoc", headers=admin, json={
        "secret_key": "sk_test_e2e", "public_key": "pk_test_e2e", "webhook_secret": endpoint["secret"]}), 200)
    assert gateway["verified"] is True and "sk_test_e2e" not in str(gateway["masked"])
    _json(http.patch(f"{base}/v1/clinics/{clinic_id}/settings", headers=admin,
                     json={"show_payment_link_in_email": True, "default_gateway": "fintoc"}), 200)
    _json(http.put(f"{base}/v1/clinics/{clinic_id}/services/consulta", headers=admin, json={
        "name": "Consulta", "price": {"amount": 25000, "currency": "CLP"}, "requires_online_payment": True}), 200)

    # When staff book an appointment for it
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0).isoformat()
    appointment = _json(http.post(f"{base}/v1/clinics/{clinic_id}/appointments", headers=staff, json={
        "patient": {"id": "p-e2e", "name": "Ana", "email": "ana.e2e@example.cl"}, "service_id": "consulta",
        "starts_at": starts, "booked_by": "staff"}), 201)
    link = appointment["payment_link"]["url"]
    assert appointment["payment_status"] == "unpaid" and appointment["payment_link"]["expires_at"] is None

    # Then the creation email in the outbox carries the link
    outbox = _json(http.get(f"{base}/_local/outbox"), 200)
    mails = [m for m in (outbox if isinstance(outbox, list) else outbox["messages"]) if m["to"] == "ana.e2e@example.cl"]
    assert mails and link in mails[0]["body"]

    # When the patient opens the link and pays on the sandbox's hosted page
    redirect = http.get(link, allow_redirects=False)
    assert redirect.status_code == 303
    checkout = redirect.headers["Location"]
    page = http.get(checkout)
    assert page.status_code == 200 and 'id="pay"' in page.text
    back = http.post(f"{checkout}/pay", allow_redirects=False)
    assert back.status_code in (302, 303) and "/result" in back.headers["Location"]
    assert http.get(back.headers["Location"]).status_code == 200

    # Then the signed webhook lands and the appointment is paid
    token = link.rsplit("/", 1)[1]
    deadline = time.monotonic() + 15
    status = None
    while time.monotonic() < deadline:
        status = _json(http.get(f"{base}/v1/public/payments/{token}"), 200)["payment_status"]
        if status == "paid":
            break
        time.sleep(0.2)
    assert status == "paid"
    paid = _json(http.get(f"{base}/v1/clinics/{clinic_id}/appointments/{appointment['appointment_id']}",
                          headers=staff), 200)
    assert paid["payment"]["reference"].startswith("pi_") and paid["payment"]["fee"]["amount"] == 327
    # and the link now shows the paid page; re-sending is refused
    assert 'data-status="paid"' in http.get(link).text
    resend = http.post(f"{base}/v1/clinics/{clinic_id}/appointments/{appointment['appointment_id']}/payment-link/send",
                       headers=staff)
    assert resend.status_code == 409 and resend.json()["error"]["code"] == "already_paid"
    # and the reminders job runs on demand
    assert http.post(f"{base}/_local/jobs/reminders").status_code == 200
