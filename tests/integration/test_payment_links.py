"""Payment links end to end through the handlers, moto and the Fintoc sandbox (issue 2)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests

from clinicpay.secrets import secret_name
from local import outbox
from local.apigw import HttpResult
from tests.support.api import ApiClient
from tests.support.clinics import ClinicKeys, add_service, connect_fintoc, create_clinic
from tests.support.env import TestStack


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = create_clinic()
    connect_fintoc(keys, stack.sandbox_url("fintoc"), stack.base_url)
    keys.admin().patch(keys.path("/settings"), json={"show_payment_link_in_email": True, "default_gateway": "fintoc"})
    add_service(keys, "consulta", 25000)
    add_service(keys, "control", 0, online=False)
    return keys


def book(clinic: ClinicKeys, *, service: str = "consulta", email: str = "ana@example.cl", locale: str | None = None,
         hours_ahead: int = 72, **extra: Any) -> HttpResult:
    patient: dict[str, Any] = {"id": "p-1", "name": "Ana Pérez", "email": email}
    if locale:
        patient["locale"] = locale
    starts = (datetime.now(UTC) + timedelta(hours=hours_ahead)).replace(microsecond=0).isoformat()
    return clinic.staff().post(clinic.path("/appointments"), json={
        "patient": patient, "service_id": service, "starts_at": starts, "booked_by": "staff", **extra})


def token_of(appointment: dict[str, Any]) -> str:
    return str(appointment["payment_link"]["url"].rsplit("/", 1)[1])


def open_link(token: str) -> HttpResult:
    return ApiClient().get(f"/pay/{token}")


def pay_at_sandbox(checkout_url: str, action: str = "pay") -> None:
    response = requests.post(f"{checkout_url}/{action}", allow_redirects=False, timeout=10)
    assert response.status_code in (302, 303), response.text


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def appointment(clinic: ClinicKeys, appointment_id: str) -> dict[str, Any]:
    return clinic.staff().get(clinic.path(f"/appointments/{appointment_id}")).json()


def items(prefix: str) -> list[dict[str, Any]]:
    return [i for i in boto3.resource("dynamodb").Table("AppointmentsTable").scan()["Items"]
            if str(i["sk"]).startswith(prefix) or str(i["pk"]).startswith(prefix)]


def test_staff_booked_appointment_gets_a_link_that_never_expires_and_an_email_that_carries_it(clinic: ClinicKeys) -> None:
    # When
    created = book(clinic)
    # Then
    assert created.status == 201
    body = created.json()
    assert body["payment_status"] == "unpaid"
    assert body["payment_link"]["expires_at"] is None
    assert body["payment_link"]["url"].startswith("http://127.0.0.1:")
    mail = outbox.messages(to="ana@example.cl")
    assert len(mail) == 1 and body["payment_link"]["url"] in mail[0]["body"]
    assert "25.000 CLP" in mail[0]["body"] or "Consulta" in mail[0]["body"]


def test_no_link_in_email_when_the_clinic_setting_is_off(clinic: ClinicKeys) -> None:
    clinic.admin().patch(clinic.path("/settings"), json={"show_payment_link_in_email": False})
    created = book(clinic).json()
    assert "payment_link" in created
    assert created["payment_link"]["url"] not in outbox.messages(to="ana@example.cl")[0]["body"]


def test_a_free_service_needs_no_payment(clinic: ClinicKeys) -> None:
    created = book(clinic, service="control").json()
    assert created["payment_status"] == "not_required" and "payment_link" not in created


def test_patient_pays_through_fintoc_and_the_appointment_becomes_paid_exactly_once(clinic: ClinicKeys) -> None:
    # Given
    created = book(clinic).json()
    token = token_of(created)
    # When the patient opens the link twice, they land on the same live checkout
    first, second = open_link(token), open_link(token)
    assert first.status == 303 and second.status == 303
    checkout = first.headers["Location"]
    assert checkout == second.headers["Location"] and "/_sandbox/fintoc/sandbox/cs_" in checkout
    # and pays there
    pay_at_sandbox(checkout)
    # Then the webhook lands and the appointment is paid, with reference and fee
    paid = wait_for(lambda: (a := appointment(clinic, created["appointment_id"])).get("payment_status") == "paid" and a)
    assert paid["payment"]["provider"] == "fintoc" and paid["payment"]["reference"].startswith("pi_")
    assert paid["payment"]["amount"] == {"amount": 25000, "currency": "CLP"}
    # 1.1% of 25 000 = 275, plus 19% VAT = 327.25 -> 327 pesos
    assert paid["payment"]["fee"] == {"amount": 327, "currency": "CLP"}
    assert len(items("PAYMENT#")) == 1
    # and the patient gets a receipt, in the clinic's language
    receipts = wait_for(lambda: [m for m in outbox.messages(to="ana@example.cl") if "Recibimos tu pago" in m["subject"]])
    assert len(receipts) == 1 and "25.000 CLP" in receipts[0]["body"]
    # and the link now shows a paid page instead of a checkout
    again = open_link(token)
    assert again.status == 200 and b'data-status="paid"' in again.body


def _deliveries(stack: TestStack) -> list[dict[str, Any]]:
    return list(requests.get(f"{stack.sandbox_url('fintoc')}/_control/deliveries", timeout=10).json()["deliveries"])


def _paid_appointment(clinic: ClinicKeys) -> tuple[dict[str, Any], str]:
    created = book(clinic).json()
    checkout = open_link(token_of(created)).headers["Location"]
    pay_at_sandbox(checkout)
    # Polled while the webhook's transaction runs: moto may answer a read then with a 503-style error
    # (it restores tables around transactions), which counts as "not yet", never as paid.
    wait_for(lambda: appointment(clinic, created["appointment_id"]).get("payment_status") == "paid")
    return created, checkout


def _signed_delivery(stack: TestStack, event_type: str) -> dict[str, Any]:
    found = wait_for(lambda: [d for d in _deliveries(stack) if d["event_type"] == event_type and d["delivered"]])
    return dict(found[0])


def test_the_same_event_twenty_times_at_once_is_one_transition_and_one_payment_row(stack: TestStack,
                                                                                  clinic: ClinicKeys) -> None:
    # Given a paid appointment and the exact signed delivery Fintoc made
    _paid_appointment(clinic)
    delivery = _signed_delivery(stack, "payment_intent.succeeded")
    body, header = delivery["body"].encode(), delivery["fintoc_signature"]
    # When it is delivered twenty more times at once
    def send(_: int) -> int:
        return requests.post(f"{stack.base_url}/webhooks/fintoc/{clinic.clinic_id}", data=body, timeout=20,
                             headers={"Fintoc-Signature": header, "Content-Type": "application/json"}).status_code
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(send, range(20)))
    # Then every delivery is acknowledged and nothing more happened
    assert statuses == [200] * 20
    assert len(items("PAYMENT#")) == 1
    assert len([m for m in outbox.messages(to="ana@example.cl") if "Recibimos" in (m["subject"] or "")]) == 1


def test_the_same_success_applied_from_twenty_threads_pays_once(clinic: ClinicKeys) -> None:
    # The HTTP test above runs handlers one at a time (one warm container); here twenty threads race
    # on the real conditional writes, as twenty Lambda containers would.
    from clinicpay.domain.money import Money
    from clinicpay.ports import PaymentEvent
    from clinicpay.repositories.appointments import AppointmentRepository
    from clinicpay.usecases.payment_events import apply_payment_event

    created = book(clinic).json()
    session_id = open_link(token_of(created)).headers["Location"].rsplit("/", 1)[1]  # the checkout we stored
    repo = AppointmentRepository("AppointmentsTable")
    event = PaymentEvent(provider="fintoc", event_id="evt_race", kind="succeeded", occurred_at=datetime.now(UTC),
                         session_id=session_id, payment_reference="pi_race", appointment_id=created["appointment_id"],
                         amount=Money(amount=25000, currency="CLP"))
    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lambda _: apply_payment_event(repo, clinic.clinic_id, event), range(20)))
    assert outcomes.count("applied") == 1
    assert set(outcomes) <= {"applied", "duplicate", "already_paid"}
    assert len(items("PAYMENT#")) == 1


def test_a_failed_event_after_success_does_not_unpay(stack: TestStack, clinic: ClinicKeys) -> None:
    created, _ = _paid_appointment(clinic)
    delivery = _signed_delivery(stack, "payment_intent.succeeded")
    webhook_secret = json.loads(boto3.client("secretsmanager").get_secret_value(
        SecretId=secret_name(clinic.clinic_id, "fintoc"))["SecretString"])["webhook_secret"]
    event = json.loads(delivery["body"])
    event.update(id="evt_late_failure", type="payment_intent.failed")
    event["data"]["status"] = "failed"
    response = _post_signed(stack, clinic, json.dumps(event).encode(), webhook_secret)
    assert response.status_code == 200
    assert appointment(clinic, created["appointment_id"])["payment_status"] == "paid"


def _post_signed(stack: TestStack, clinic: ClinicKeys, body: bytes, secret: str, *, at: int | None = None,
                 header: str | None = None) -> requests.Response:
    import hashlib
    import hmac

    t = at if at is not None else int(time.time())
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    if header != "":
        headers["Fintoc-Signature"] = header or f"t={t},v1={signature}"
    return requests.post(f"{stack.base_url}/webhooks/fintoc/{clinic.clinic_id}", data=body, headers=headers,
                         timeout=10)


@pytest.mark.parametrize("case", ["unsigned", "bad_signature", "stale", "wrong_secret"])
def test_unverifiable_webhooks_are_401_and_change_nothing(stack: TestStack, clinic: ClinicKeys, case: str) -> None:
    # Given an unpaid appointment and a forged success for it
    created = book(clinic).json()
    secret = json.loads(boto3.client("secretsmanager").get_secret_value(
        SecretId=secret_name(clinic.clinic_id, "fintoc"))["SecretString"])["webhook_secret"]
    body = json.dumps({"id": "evt_forged", "type": "payment_intent.succeeded", "mode": "test",
                       "created_at": datetime.now(UTC).isoformat(), "object": "event",
                       "data": {"id": "pi_forged", "object": "payment_intent", "status": "succeeded", "amount": 25000,
                                "currency": "CLP", "metadata": {"appointment_id": created["appointment_id"]}}}).encode()
    # When
    if case == "unsigned":
        response = _post_signed(stack, clinic, body, secret, header="")
    elif case == "bad_signature":
        response = _post_signed(stack, clinic, body, secret, header=f"t={int(time.time())},v1={'0' * 64}")
    elif case == "stale":
        response = _post_signed(stack, clinic, body, secret, at=int(time.time()) - 301)
    else:
        response = _post_signed(stack, clinic, body, "whsec_not_the_secret")
    # Then
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert appointment(clinic, created["appointment_id"])["payment_status"] == "unpaid"
    assert items("EVENT#") == []


def test_webhook_for_an_unknown_clinic_is_404(stack: TestStack) -> None:
    response = requests.post(f"{stack.base_url}/webhooks/fintoc/cl_nope", data=b"{}", timeout=10,
                             headers={"Fintoc-Signature": "t=1,v1=00"})
    assert response.status_code == 404


@pytest.mark.parametrize("fault", [503, "timeout"])
def test_fintoc_down_at_the_click_gives_a_retry_page_and_writes_nothing(stack: TestStack, clinic: ClinicKeys,
                                                                         fault: Any) -> None:
    # Given Fintoc failing every call for a while
    token = token_of(book(clinic).json())
    # (one click makes up to three attempts: a POST with an Idempotency-Key is safe to retry)
    requests.post(f"{stack.sandbox_url('fintoc')}/_control/fail-next", json={"status": fault, "count": 3}, timeout=10)
    # When
    response = open_link(token)
    # Then
    assert response.status == 503 and b'data-status="retry"' in response.body
    assert not any("provider_session" in i for i in items("APPT#"))
    # and once Fintoc is back, the same link works
    assert open_link(token).status == 303


def test_an_expired_checkout_is_replaced_on_the_next_click(stack: TestStack, clinic: ClinicKeys) -> None:
    token = token_of(book(clinic).json())
    first = open_link(token).headers["Location"]
    session_id = first.rsplit("/", 1)[1]
    requests.post(f"{stack.sandbox_url('fintoc')}/_control/sessions/{session_id}/expire-now", timeout=10)
    # The sandbox tells us by webhook (checkout_session.expired); the next click makes a new session.
    second = wait_for(lambda: (loc := open_link(token).headers["Location"]) != first and loc)
    assert second.rsplit("/", 1)[1].startswith("cs_")


def test_an_online_link_past_its_ttl_shows_a_clear_expired_page(clinic: ClinicKeys) -> None:
    booked = clinic.widget().post(f"/v1/public/clinics/{clinic.clinic_id}/appointments", json={
        "patient": {"id": "p-9", "name": "Luis", "email": "luis@example.cl"}, "service_id": "consulta",
        "starts_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()}).json()
    assert booked["next_action"]["type"] == "pay"
    assert booked["appointment"]["payment_link"]["expires_at"] is not None
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    table.update_item(Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{booked['appointment']['appointment_id']}"},
                      UpdateExpression="SET link_expires_at = :past",
                      ExpressionAttributeValues={":past": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()})
    response = open_link(token_of(booked["appointment"]))
    assert response.status == 410 and b'data-status="expired"' in response.body


def test_staff_resend_the_link_and_get_409_once_paid(clinic: ClinicKeys) -> None:
    created = book(clinic).json()
    path = clinic.path(f"/appointments/{created['appointment_id']}/payment-link/send")
    sent = clinic.staff().post(path)
    assert sent.status == 202
    assert len(outbox.messages(to="ana@example.cl")) == 2
    paid_one, _ = _paid_appointment(clinic)
    again = clinic.staff().post(clinic.path(f"/appointments/{paid_one['appointment_id']}/payment-link/send"))
    assert again.status == 409 and again.json()["error"]["code"] == "already_paid"


def test_reminders_go_out_once_with_the_link_while_unpaid(clinic: ClinicKeys) -> None:
    from local.apigw import invoke_job

    # Given a booking whose 24-hour reminder is due (time moved on by rewriting the due time)
    created = book(clinic, email="rem@example.cl", hours_ahead=30, locale="uk").json()
    due = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    boto3.resource("dynamodb").Table("AppointmentsTable").update_item(
        Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{created['appointment_id']}"},
        UpdateExpression="SET reminder_due_at = :d, reminders_pending = :p", ExpressionAttributeValues={":d": due, ":p": [due]})
    # When the job runs twice
    first, second = invoke_job("reminders"), invoke_job("reminders")
    assert first["sent"] == 1 and second["sent"] == 0
    reminder = [m for m in outbox.messages(to="rem@example.cl") if "нагадування" in (m["subject"] or "").lower()]
    assert len(reminder) == 1 and created["payment_link"]["url"] in reminder[0]["body"]


@pytest.mark.parametrize("price", [{"amount": 100.5, "currency": "CLP"}, {"amount": -5, "currency": "CLP"},
                                   {"amount": 100, "currency": "XYZ"}])
def test_bad_money_is_422_and_creates_nothing(clinic: ClinicKeys, price: dict[str, Any]) -> None:
    response = book(clinic, price=price)
    assert response.status == 422 and response.json()["error"]["code"] == "validation_error"
    assert items("APPT#") == []


def test_wrong_key_is_401_and_another_clinics_appointment_is_404(clinic: ClinicKeys) -> None:
    created = book(clinic).json()
    other = create_clinic()
    assert ApiClient().with_key("cp_staff_wrong").get(clinic.path(f"/appointments/{created['appointment_id']}")).status == 401
    assert other.staff().get(clinic.path(f"/appointments/{created['appointment_id']}")).status == 404
    assert other.staff().get(other.path(f"/appointments/{created['appointment_id']}")).status == 404


def test_idempotency_key_returns_the_first_response(clinic: ClinicKeys) -> None:
    starts = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    body = {"patient": {"id": "p-1", "name": "Ana"}, "service_id": "consulta", "starts_at": starts}
    headers = {"Idempotency-Key": "booking-123"}
    first = clinic.staff().post(clinic.path("/appointments"), json=body, headers=headers)
    second = clinic.staff().post(clinic.path("/appointments"), json=body, headers=headers)
    assert first.status == second.status == 201
    assert first.json()["appointment_id"] == second.json()["appointment_id"]
    assert len(items("APPT#")) == 1
    changed = clinic.staff().post(clinic.path("/appointments"), json={**body, "service_id": "control"}, headers=headers)
    assert changed.status == 422 and changed.json()["error"]["code"] == "idempotency_key_reused"
