"""A provider that never answers cannot make us outlive the function: the patient gets our retry
page (or our error shape) before Lambda's timeout, HTTP routes and scheduled jobs alike.

The local emulator gives each invocation the context Lambda would: it runs out at the function's
Timeout from template.yaml (Globals included). Most tests here shorten it through the context to
stay quick; one runs at the real template timeout with the production provider timeout.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests

from clinicpay import deadline
from clinicpay.settings import get_settings
from local import apigw, outbox, template
from local.sandboxes import fintoc
from tests.support.clinics import ClinicKeys, add_service, connect_fintoc, create_clinic
from tests.support.env import TestStack
from tests.support.qr import QrClinic, create_qr_clinic


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = create_clinic()
    connect_fintoc(keys, stack.sandbox_url("fintoc"), stack.base_url)
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "fintoc"})
    add_service(keys, "consulta", 25000)
    return keys


def booked_link(clinic: ClinicKeys) -> str:
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    created = clinic.staff().post(clinic.path("/appointments"), json={
        "patient": {"id": "p-1", "name": "Ana Pérez", "email": "ana@example.cl"}, "service_id": "consulta",
        "starts_at": starts, "booked_by": "staff"})
    assert created.status == 201, created.body
    return str(created.json()["payment_link"]["url"].rsplit("/", 1)[1])


def fintoc_hangs(stack: TestStack, count: int = 5) -> None:
    answer = requests.post(f"{stack.sandbox_url('fintoc')}/_control/fail-next", json={"status": "hang", "count": count},
                           timeout=10)
    assert answer.status_code == 200, answer.text


@pytest.fixture
def production_provider_timeout() -> Iterator[float]:
    """The provider timeout the template deploys with (Settings' default), instead of the tests' 3 s."""
    saved = os.environ.pop("PROVIDER_TIMEOUT_SECONDS", None)
    get_settings.cache_clear()
    try:
        yield get_settings().provider_timeout_seconds
    finally:
        if saved is not None:
            os.environ["PROVIDER_TIMEOUT_SECONDS"] = saved
        get_settings.cache_clear()


def test_the_emulator_gives_each_invocation_its_functions_template_timeout() -> None:
    functions = template.functions()
    assert functions["CreateLinkFunction"].timeout == 20  # from Globals
    assert functions["FiscalizeFunction"].timeout == 60  # its own
    for logical_id, function in functions.items():
        remaining = apigw.LambdaContext.for_function(logical_id).get_remaining_time_in_millis() / 1000
        assert function.timeout - 1 < remaining <= function.timeout
    assert apigw.LambdaContext.for_function("CreateLinkFunction", 6).get_remaining_time_in_millis() <= 6000


def test_every_function_runs_under_its_lambda_deadline() -> None:
    for logical_id in template.functions():
        assert getattr(apigw.handler_for(logical_id), "clinicpay_deadline", False), logical_id


def test_pay_answers_the_retry_page_before_a_short_function_timeout_when_fintoc_never_answers(
        stack: TestStack, clinic: ClinicKeys) -> None:
    # Given a link, and Fintoc holding every call without ever answering
    token = booked_link(clinic)
    fintoc_hangs(stack)
    # When the patient clicks, in a function that has 6 s (3 s per attempt in the tests' settings;
    # the old client would have spent 3 x 3 s plus backoff, 10.2 s)
    timeout = 6.0
    started = time.monotonic()
    page = apigw.invoke_http("GET", f"/pay/{token}", timeout=timeout)
    took = time.monotonic() - started
    # Then our retry page, in time, and no attempt started that the budget could not hold
    assert page.status == 503 and b'data-status="retry"' in page.body and page.headers["Retry-After"] == "30"
    assert took < timeout - deadline.ANSWER_SECONDS
    assert [f["remaining"] for f in fintoc.FAULTS.pending()] == [4]  # one attempt only


def test_pay_with_no_time_left_for_fintoc_sends_nothing_and_answers_at_once(stack: TestStack, clinic: ClinicKeys) -> None:
    token = booked_link(clinic)
    fintoc_hangs(stack)
    started = time.monotonic()
    page = apigw.invoke_http("GET", f"/pay/{token}", timeout=deadline.RESERVE_SECONDS + 0.5)
    assert page.status == 503 and b'data-status="retry"' in page.body
    assert time.monotonic() - started < 1.0
    assert [f["remaining"] for f in fintoc.FAULTS.pending()] == [5]  # Fintoc was not called


def test_pay_answers_before_the_real_template_timeout_with_the_production_provider_timeout(
        stack: TestStack, clinic: ClinicKeys, production_provider_timeout: float) -> None:
    # Given the deployed settings: 8 s per attempt, up to 3 attempts, CreateLinkFunction's 20 s
    token = booked_link(clinic)
    fintoc_hangs(stack)
    function_timeout = template.functions()["CreateLinkFunction"].timeout
    assert (production_provider_timeout, function_timeout) == (8.0, 20.0)
    # When the patient clicks (the old client: 8 + 0.4 + 8 + 0.8 + 8 = 25.2 s, past the timeout)
    started = time.monotonic()
    page = apigw.invoke_http("GET", f"/pay/{token}")
    took = time.monotonic() - started
    # Then our retry page before the function would have been stopped, after two attempts
    assert page.status == 503 and b'data-status="retry"' in page.body
    assert function_timeout - deadline.RESERVE_SECONDS - 1.0 < took < function_timeout - deadline.ANSWER_SECONDS
    assert [f["remaining"] for f in fintoc.FAULTS.pending()] == [3]


def test_an_undecided_click_then_works_once_fintoc_is_back(stack: TestStack, clinic: ClinicKeys) -> None:
    token = booked_link(clinic)
    fintoc_hangs(stack, count=1)
    assert apigw.invoke_http("GET", f"/pay/{token}", timeout=6.0).status == 503
    # The next click is answered: the checkout, made under the same Idempotency-Key
    again = apigw.invoke_http("GET", f"/pay/{token}")
    assert again.status == 303 and again.headers["Location"].rsplit("/", 1)[1].startswith("cs_")


# --- scheduled jobs ---------------------------------------------------------------------------------

@pytest.fixture
def qr_clinic(stack: TestStack) -> QrClinic:
    return create_qr_clinic(stack.sandbox_url("monobank"), stack.sandbox_url("checkbox"))


def test_a_job_stops_calling_a_hung_provider_before_its_function_timeout(qr_clinic: QrClinic) -> None:
    # Given a QR payment waiting for its receipt (Checkbox answered 503 at payment time)
    qr_clinic.open_shift()
    qr_clinic.checkbox.fail_next(503, 1, path="/receipts")
    invoice_id = qr_clinic.put_amount(qr_clinic.merchant_register(), 85000)["invoice_id"]
    qr_clinic.monobank.pay(invoice_id)
    payment_id = f"qrp_{invoice_id}"
    assert qr_clinic.payment(payment_id)["fiscal_status"] == "pending"
    # And now a Checkbox that holds every receipt call without answering
    qr_clinic.checkbox.fail_next("hang", 10, path="/receipts")
    # When the daily check runs in an invocation of 8 s (the old client: 3 attempts x 3 s to sell,
    # then 3 more to look the receipt up, over 20 s)
    timeout = 8.0
    started = time.monotonic()
    report = apigw.invoke_job("unfiscalized-check", timeout=timeout)
    took = time.monotonic() - started
    # Then it reports in time, and the payment still waits, visibly
    assert took < timeout - deadline.ANSWER_SECONDS
    assert report["clinics"][qr_clinic.clinic_id]["remaining"] == 1
    row = qr_clinic.payment(payment_id)
    assert row["fiscal_status"] == "pending" and row["fiscal"]["last_error"] == "provider_unavailable"


# --- the sandboxes' `hang` fault ------------------------------------------------------------------

def test_a_hang_fault_holds_the_call_does_nothing_and_lets_go_when_the_sandbox_resets(stack: TestStack) -> None:
    base = stack.sandbox_url("fintoc")
    body = {"amount": 25000, "currency": "CLP", "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no"}
    headers = {"Authorization": "sk_test_hang"}
    # A hang that names its length answers after it, having done nothing
    requests.post(f"{base}/_control/fail-next", json={"status": "hang", "count": 1, "seconds": 0.5}, timeout=10)
    started = time.monotonic()
    held = requests.post(f"{base}/v1/checkout_sessions", json=body, headers=headers, timeout=10)
    assert held.status_code == 503 and time.monotonic() - started >= 0.5
    assert fintoc.STATE.session_owner == {}
    # One that does not is let go by a reset
    fintoc_hangs(stack, count=1)
    answers: list[int] = []
    caller = threading.Thread(target=lambda: answers.append(
        requests.post(f"{base}/v1/checkout_sessions", json=body, headers=headers, timeout=30).status_code))
    caller.start()
    caller.join(1.0)
    assert caller.is_alive() and answers == []  # still held
    fintoc.reset()
    caller.join(2.0)
    assert answers == [503] and fintoc.STATE.session_owner == {}


def test_the_reminders_job_starts_no_reminder_it_could_not_finish_and_the_next_run_sends_it(
        stack: TestStack, clinic: ClinicKeys) -> None:
    # Given a due reminder
    starts = (datetime.now(UTC) + timedelta(hours=30)).replace(microsecond=0).isoformat()
    created = clinic.staff().post(clinic.path("/appointments"), json={
        "patient": {"id": "p-2", "name": "Eva", "email": "eva@example.cl"}, "service_id": "consulta",
        "starts_at": starts, "booked_by": "staff"}).json()
    due = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    boto3.resource("dynamodb").Table("AppointmentsTable").update_item(
        Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{created['appointment_id']}"},
        UpdateExpression="SET reminder_due_at = :d, reminders_pending = :p", ExpressionAttributeValues={":d": due, ":p": [due]})
    before = len(outbox.messages(to="eva@example.cl"))
    # When the job runs with time to read what is due but not for a reminder's calls
    late = apigw.invoke_job("reminders", timeout=deadline.RESERVE_SECONDS - 0.2)
    # Then it claims nothing and sends nothing, and the next run sends it, once
    assert (late["sent"], late["skipped"], late["failed"]) == (0, 0, 0)
    assert len(outbox.messages(to="eva@example.cl")) == before
    assert apigw.invoke_job("reminders")["sent"] == 1 and apigw.invoke_job("reminders")["sent"] == 0
    assert len(outbox.messages(to="eva@example.cl")) == before + 1
