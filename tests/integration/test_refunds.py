"""Refunds of link payments, deposits and desk payments, end to end: the handlers, moto and the
Fintoc sandbox (issue 9: the appointment's ledger)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests

from local import outbox
from local.apigw import HttpResult
from tests.support.api import ApiClient
from tests.support.clinics import ClinicKeys, add_service, connect_fintoc, create_clinic
from tests.support.env import TestStack

FINTOC_KEY = "sk_test_clinic"


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = create_clinic()
    connect_fintoc(keys, stack.sandbox_url("fintoc"), stack.base_url, FINTOC_KEY)
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "fintoc"})
    add_service(keys, "consulta", 25000)
    add_service(keys, "cirugia", 25000, deposit={"type": "percent", "percent": 30})
    return keys


def book(clinic: ClinicKeys, service: str = "consulta", *, phone: str | None = "+56912345678") -> dict[str, Any]:
    patient: dict[str, Any] = {"id": "p-1", "name": "Ana Pérez", "email": "ana@example.cl"}
    if phone:
        patient["phone"] = phone
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    created = clinic.staff().post(clinic.path("/appointments"), json={
        "patient": patient, "service_id": service, "starts_at": starts, "booked_by": "staff"})
    assert created.status == 201, created.body
    return created.json()


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


def pay_link(stack: TestStack, clinic: ClinicKeys, created: dict[str, Any], *, expect: str = "paid") -> str:
    """The patient opens the link and pays at the sandbox; returns the checkout session id."""
    token = created["payment_link"]["url"].rsplit("/", 1)[1]
    opened = ApiClient().get(f"/pay/{token}")
    assert opened.status == 303, opened.body
    checkout = opened.headers["Location"]
    paid = requests.post(f"{checkout}/pay", allow_redirects=False, timeout=10)
    assert paid.status_code in (302, 303)
    wait_for(lambda: appointment(clinic, created["appointment_id"]).get("payment_status") == expect)
    return checkout.rsplit("/", 1)[1]


def refund(clinic: ClinicKeys, appointment_id: str, body: dict[str, Any] | None = None,
           key: str | None = None) -> HttpResult:
    headers = {"Idempotency-Key": key} if key else {}
    return clinic.staff().post(clinic.path(f"/appointments/{appointment_id}/refunds"), json=body or {},
                               headers=headers)


def payments(clinic: ClinicKeys, appointment_id: str) -> dict[str, Any]:
    return clinic.staff().get(clinic.path(f"/appointments/{appointment_id}/payments")).json()


def sandbox(stack: TestStack, path: str, body: dict[str, Any] | None = None) -> requests.Response:
    return requests.post(f"{stack.sandbox_url('fintoc')}{path}", json=body or {}, timeout=10)


def refund_messages(to: str = "ana@example.cl") -> list[dict[str, Any]]:
    return [m for m in outbox.messages(to=to) if "devolvió" in (m.get("subject") or "") or "devolvimos" in m["body"]]


def clp(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "CLP"}


def test_a_full_refund_is_pending_at_fintoc_until_its_event_settles_it_and_the_patient_is_told_once(
        stack: TestStack, clinic: ClinicKeys) -> None:
    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    # When staff refund everything
    answer = refund(clinic, aid, {"reason": "Hora cancelada"})
    # Then Fintoc has it, pending (it pays refunds out in a daily batch)
    assert answer.status == 201, answer.body
    made = answer.json()
    assert made["status"] == "pending" and made["amount"] == clp(25000) and made["provider"] == "fintoc"
    assert made["payment_reference"].startswith("pi_") and made["provider_refund_id"].startswith("ref_")
    shown = appointment(clinic, aid)
    assert shown["payment_status"] == "paid" and shown["amount_refunded"] == clp(0)
    assert payments(clinic, aid)["payments"][0]["refund_pending"] == clp(25000)
    # When Fintoc's batch pays it out
    settled = sandbox(stack, f"/_control/refunds/{made['provider_refund_id']}/settle", {"status": "succeeded"})
    assert settled.status_code == 200
    # Then the appointment is refunded, with its amounts, and the patient is told once (email + SMS)
    shown = wait_for(lambda: (a := appointment(clinic, aid))["payment_status"] == "refunded" and a)
    assert shown["amount_paid"] == clp(25000) and shown["amount_refunded"] == clp(25000)
    assert shown["balance_due"] == clp(0)
    listed = clinic.staff().get(clinic.path(f"/appointments/{aid}/refunds")).json()["refunds"]
    assert [(r["refund_id"], r["status"]) for r in listed] == [(made["refund_id"], "succeeded")]
    wait_for(lambda: len(refund_messages()) == 1)
    sms = [m for m in outbox.messages(to="+56912345678") if "devolvimos" in m["body"]]
    assert len(sms) == 1 and "25.000" in sms[0]["body"]
    # And Fintoc delivering the same event again changes nothing
    for delivery in requests.get(f"{stack.sandbox_url('fintoc')}/_control/deliveries", timeout=10).json()["deliveries"]:
        if delivery["event_type"] == "refund.succeeded":
            requests.post(f"{stack.sandbox_url('fintoc')}/_control/redeliver/{delivery['event_id']}", timeout=10)
    time.sleep(0.5)
    assert len(refund_messages()) == 1 and appointment(clinic, aid)["amount_refunded"] == clp(25000)


def test_a_partial_refund_then_the_rest_and_never_more_than_was_paid(stack: TestStack, clinic: ClinicKeys) -> None:
    sandbox(stack, "/_control/refunds/mode", {"mode": "succeed"})
    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    # A part
    first = refund(clinic, aid, {"amount": clp(10000)})
    assert first.status == 201 and first.json()["amount"] == clp(10000)
    shown = wait_for(lambda: (a := appointment(clinic, aid))["payment_status"] == "partially_refunded" and a)
    assert shown["amount_refunded"] == clp(10000)
    # More than is left is refused, naming what is left
    over = refund(clinic, aid, {"amount": clp(15001)})
    assert over.status == 409 and over.json()["error"]["code"] == "refund_exceeds_remaining"
    assert over.json()["error"]["details"][0]["remaining"] == clp(15000)
    # The rest (no amount: everything left)
    rest = refund(clinic, aid)
    assert rest.status == 201 and rest.json()["amount"] == clp(15000)
    shown = wait_for(lambda: (a := appointment(clinic, aid))["payment_status"] == "refunded" and a)
    assert shown["amount_refunded"] == clp(25000)
    # Nothing is left
    again = refund(clinic, aid)
    assert again.status == 409 and again.json()["error"]["code"] == "nothing_to_refund"
    assert [r["amount"]["amount"] for r in clinic.staff().get(
        clinic.path(f"/appointments/{aid}/refunds")).json()["refunds"]] == [10000, 15000]
    wait_for(lambda: len(refund_messages()) == 2)


def test_a_refusal_releases_the_reserved_amount(stack: TestStack, clinic: ClinicKeys) -> None:
    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    sandbox(stack, "/_control/refunds/refuse-next", {"status": 400, "code": "refund_not_allowed"})
    refused = refund(clinic, aid)
    assert refused.status == 201, refused.body
    assert refused.json()["status"] == "failed" and refused.json()["failure_code"] == "refund_not_allowed"
    row = payments(clinic, aid)["payments"][0]
    assert row["refundable"] == clp(25000) and row["refund_pending"] == clp(0)
    assert appointment(clinic, aid)["payment_status"] == "paid"
    # The whole amount can be refunded again
    sandbox(stack, "/_control/refunds/mode", {"mode": "succeed"})
    retried = refund(clinic, aid)
    assert retried.status == 201 and retried.json()["amount"] == clp(25000)
    wait_for(lambda: appointment(clinic, aid)["payment_status"] == "refunded")
    assert refund_messages() and len(refund_messages()) == 1


def test_an_undecided_answer_stays_pending_and_fintoc_s_event_settles_it(stack: TestStack, clinic: ClinicKeys) -> None:
    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    # Fintoc makes the refund but answers 500 (stored under our key and replayed to every retry)
    sandbox(stack, "/_control/refunds/error-next", {"applied": True})
    answer = refund(clinic, aid, key="click-1")
    assert answer.status == 201, answer.body
    made = answer.json()
    assert made["status"] == "pending" and made["provider_refund_id"] is None
    # The same click again: the same refund, still undecided (Fintoc replays its stored 500)
    again = refund(clinic, aid, key="click-1")
    assert again.status in (200, 201) and again.json()["refund_id"] == made["refund_id"]
    # Nothing more can be refunded meanwhile: the amount is reserved
    other = refund(clinic, aid)
    assert other.status == 409 and other.json()["error"]["code"] == "nothing_to_refund"
    # Fintoc's batch runs; its events carry our refund id in the metadata
    at_fintoc = requests.get(f"{stack.sandbox_url('fintoc')}/v1/refunds", headers={"Authorization": FINTOC_KEY},
                             timeout=10).json()
    assert len(at_fintoc) == 1 and at_fintoc[0]["metadata"]["refund_id"] == made["refund_id"]
    sandbox(stack, f"/_control/refunds/{at_fintoc[0]['id']}/settle", {"status": "succeeded"})
    shown = wait_for(lambda: (a := appointment(clinic, aid))["payment_status"] == "refunded" and a)
    assert shown["amount_refunded"] == clp(25000)
    listed = clinic.staff().get(clinic.path(f"/appointments/{aid}/refunds")).json()["refunds"]
    assert len(listed) == 1 and listed[0]["status"] == "succeeded"
    assert listed[0]["provider_refund_id"] == at_fintoc[0]["id"]


def test_a_refund_fintoc_fails_later_is_released_and_the_patient_is_not_told(stack: TestStack,
                                                                              clinic: ClinicKeys) -> None:
    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    made = refund(clinic, aid, {"amount": clp(5000)}).json()
    sandbox(stack, f"/_control/refunds/{made['provider_refund_id']}/settle",
            {"status": "failed", "failure_code": "insufficient_funds"})
    failed = wait_for(lambda: [r for r in clinic.staff().get(clinic.path(f"/appointments/{aid}/refunds")).json()["refunds"]
                               if r["status"] == "failed"])
    assert failed[0]["failure_code"] == "insufficient_funds"
    assert payments(clinic, aid)["payments"][0]["refundable"] == clp(25000)
    assert appointment(clinic, aid)["payment_status"] == "paid" and refund_messages() == []


def test_a_deposit_online_then_the_balance_at_the_desk_and_refunds_know_which_part_was_paid_where(
        stack: TestStack, clinic: ClinicKeys) -> None:
    sandbox(stack, "/_control/refunds/mode", {"mode": "succeed"})
    created = book(clinic, "cirugia")
    assert created["deposit"] == clp(7500) and created["balance_due"] == clp(25000)
    # The link asks the deposit (30 % of 25 000)
    session_id = pay_link(stack, clinic, created, expect="deposit_paid")
    session = requests.get(f"{stack.sandbox_url('fintoc')}/v1/checkout_sessions/{session_id}",
                           headers={"Authorization": FINTOC_KEY}, timeout=10).json()
    assert session["amount"] == 7500
    aid = created["appointment_id"]
    shown = appointment(clinic, aid)
    assert shown["amount_paid"] == clp(7500) and shown["balance_due"] == clp(17500)
    # The link now says the deposit came in, and asks nothing more
    token = created["payment_link"]["url"].rsplit("/", 1)[1]
    page = ApiClient().get(f"/pay/{token}")
    assert page.status == 200 and b'data-status="deposit_paid"' in page.body
    result = ApiClient().get(f"/pay/{token}/result")
    assert b'data-status="deposit_paid"' in result.body
    public = ApiClient().get(f"/v1/public/payments/{token}").json()
    assert (public["payment_status"], public["amount_due"]) == ("deposit_paid", None)
    # More than the balance at the desk is refused; the balance is taken
    desk = clinic.staff().post(clinic.path(f"/appointments/{aid}/payments"),
                               json={"method": "desk", "amount": clp(17501)})
    assert desk.status == 409 and desk.json()["error"]["code"] == "exceeds_balance_due"
    desk = clinic.staff().post(clinic.path(f"/appointments/{aid}/payments"),
                               json={"method": "desk", "amount": clp(17500), "note": "efectivo"})
    assert desk.status == 201, desk.body
    assert desk.json()["appointment"]["payment_status"] == "paid"
    assert desk.json()["appointment"]["balance_due"] == clp(0)
    rows = payments(clinic, aid)["payments"]
    assert {(r["method"], r["amount"]["amount"]) for r in rows} == {("online", 7500), ("desk", 17500)}
    # Refund with no payment named: the online deposit, back through Fintoc
    online = refund(clinic, aid)
    assert online.status == 201 and online.json()["provider"] == "fintoc" and online.json()["amount"] == clp(7500)
    wait_for(lambda: appointment(clinic, aid)["payment_status"] == "partially_refunded")
    # The desk part is refunded at the desk: recorded at once, no provider call
    calls_before = len(requests.get(f"{stack.sandbox_url('fintoc')}/v1/refunds",
                                    headers={"Authorization": FINTOC_KEY}, timeout=10).json())
    desk_ref = next(r["reference"] for r in rows if r["method"] == "desk")
    at_desk = refund(clinic, aid, {"payment_reference": desk_ref})
    assert at_desk.status == 201 and at_desk.json()["status"] == "succeeded" and at_desk.json()["provider"] == "desk"
    assert len(requests.get(f"{stack.sandbox_url('fintoc')}/v1/refunds",
                            headers={"Authorization": FINTOC_KEY}, timeout=10).json()) == calls_before
    shown = appointment(clinic, aid)
    assert shown["payment_status"] == "refunded" and shown["amount_refunded"] == clp(25000)
    wait_for(lambda: len(refund_messages()) == 2)


def test_staff_send_a_balance_link_that_is_a_new_provider_session(stack: TestStack, clinic: ClinicKeys) -> None:
    created = book(clinic, "cirugia")
    deposit_session = pay_link(stack, clinic, created, expect="deposit_paid")
    aid = created["appointment_id"]
    # Without asking for the balance, sending the link is refused: nothing to collect by link
    refused = clinic.staff().post(clinic.path(f"/appointments/{aid}/payment-link/send"), json={})
    assert refused.status == 409
    sent = clinic.staff().post(clinic.path(f"/appointments/{aid}/payment-link/send"), json={"purpose": "balance"})
    assert sent.status == 202, sent.body
    token = created["payment_link"]["url"].rsplit("/", 1)[1]
    assert ApiClient().get(f"/v1/public/payments/{token}").json()["amount_due"] == clp(17500)
    link = clinic.staff().post(clinic.path(f"/appointments/{aid}/payment-link"), json={}).json()
    assert (link["purpose"], link["amount_due"]) == ("balance", clp(17500))
    mail = [m for m in outbox.messages(to="ana@example.cl") if "Paga tu hora" in (m.get("subject") or "")]
    assert mail and "17.500" in mail[-1]["body"]
    balance_session = pay_link(stack, clinic, created)
    assert balance_session != deposit_session
    session = requests.get(f"{stack.sandbox_url('fintoc')}/v1/checkout_sessions/{balance_session}",
                           headers={"Authorization": FINTOC_KEY}, timeout=10).json()
    assert session["amount"] == 17500
    shown = appointment(clinic, aid)
    assert shown["amount_paid"] == clp(25000) and shown["balance_due"] == clp(0)
    item = boto3.resource("dynamodb").Table("AppointmentsTable").get_item(
        Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{aid}"})["Item"]
    assert {deposit_session, balance_session} <= set(item["session_ids"])
    assert len(payments(clinic, aid)["payments"]) == 2


def test_refunds_are_staff_only_and_never_cross_clinics(stack: TestStack, clinic: ClinicKeys) -> None:
    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    other = create_clinic(name="Otra")
    assert other.staff().post(other.path(f"/appointments/{aid}/refunds"), json={}).status == 404
    assert clinic.widget().post(clinic.path(f"/appointments/{aid}/refunds"), json={}).status in (401, 403)
    bad = refund(clinic, aid, {"amount": {"amount": 100, "currency": "EUR"}})
    assert bad.status == 422
    bad = refund(clinic, aid, {"amount": clp(0)})
    assert bad.status == 422
    unknown = refund(clinic, aid, {"payment_reference": "pi_notours"})
    assert unknown.status == 404 and unknown.json()["error"]["code"] == "payment_not_found"
    assert appointment(clinic, aid)["payment_status"] == "paid"


# --- refunds started at Fintoc's dashboard, two clinics on one account -----------------------------

def test_a_dashboard_refund_applies_once_at_its_clinic_and_is_foreign_at_another_sharing_the_account(
        stack: TestStack) -> None:
    from tests.integration.test_ownership_fintoc import appointment as branch_appointment
    from tests.integration.test_ownership_fintoc import book as branch_book
    from tests.integration.test_ownership_fintoc import checkout_of, connect, pay
    from tests.support.ownership import deliver, event_records, foreign, hold

    fintoc = stack.sandbox_url("fintoc")
    north, south = connect(stack, create_clinic(name="Sucursal Norte")), connect(stack, create_clinic(name="Sucursal Sur"))
    # The same appointment id in both clinics; only the north one is paid
    paid = branch_book(north, "ap-shared-1", "norte@example.cl")
    branch_book(south, "ap-shared-1", "sur@example.cl")
    pay(checkout_of(paid))
    wait_for(lambda: branch_appointment(north, "ap-shared-1")["payment_status"] == "paid")
    reference = branch_appointment(north, "ap-shared-1")["payment"]["reference"]
    # When the owner refunds part of it in Fintoc's dashboard, pending first, and every event of
    # the account reaches both endpoints, twice
    hold(fintoc)
    made = requests.post(f"{fintoc}/_control/payment_intents/{reference}/dashboard-refund",
                         json={"amount": 10000, "status": "pending"}, timeout=10).json()
    requests.post(f"{fintoc}/_control/refunds/{made['id']}/settle", json={"status": "succeeded"}, timeout=10)
    events = [row for row in requests.get(f"{fintoc}/_control/events", timeout=10).json()["events"]
              if row["type"].startswith("refund.")]
    assert [e["type"] for e in events] == ["refund.in_progress", "refund.succeeded"]
    answers = [deliver(fintoc, e["id"], endpoint_id=b.endpoint_id) for _ in range(2) for e in events
               for b in (south, north)]
    assert answers == [200] * 8
    # Then the north appointment shows it once, as a refund from the provider
    shown = branch_appointment(north, "ap-shared-1")
    assert shown["payment_status"] == "partially_refunded" and shown["amount_refunded"] == clp(10000)
    listed = north.keys.staff().get(north.keys.path("/appointments/ap-shared-1/refunds")).json()["refunds"]
    assert [(r["source"], r["status"], r["provider_refund_id"]) for r in listed] == [("provider", "succeeded", made["id"])]
    outcomes = sorted(str(r["outcome"]) for r in event_records(north.clinic_id) if r["event_id"] in {e["id"] for e in events})
    assert outcomes == ["applied", "applied"]
    wait_for(lambda: len([m for m in outbox.messages(to="norte@example.cl") if "devolvió" in (m["subject"] or "")]) == 1)
    # and at the south clinic, which never recorded that payment, both events are foreign
    assert branch_appointment(south, "ap-shared-1")["payment_status"] == "unpaid"
    assert {e: foreign(south.clinic_id)[e] for e in (x["id"] for x in events)} == dict.fromkeys(
        (x["id"] for x in events), "unknown_object")
    # A refund staff ask at the north clinic names that clinic in its metadata: foreign at the south
    refund_answer = north.keys.staff().post(north.keys.path("/appointments/ap-shared-1/refunds"), json={})
    assert refund_answer.status == 201 and refund_answer.json()["amount"] == clp(15000)
    requests.post(f"{fintoc}/_control/refunds/{refund_answer.json()['provider_refund_id']}/settle",
                  json={"status": "succeeded"}, timeout=10)
    ours = [row for row in requests.get(f"{fintoc}/_control/events", timeout=10).json()["events"]
            if row["type"].startswith("refund.") and row["id"] not in {e["id"] for e in events}]
    for event in ours:
        assert deliver(fintoc, event["id"], endpoint_id=south.endpoint_id) == 200
        assert deliver(fintoc, event["id"], endpoint_id=north.endpoint_id) == 200
    assert {foreign(south.clinic_id)[e["id"]] for e in ours} == {"other_clinic"}
    assert branch_appointment(north, "ap-shared-1")["payment_status"] == "refunded"


def test_a_dashboard_refund_above_what_is_left_is_refused_loudly_and_changes_nothing(
        stack: TestStack, clinic: ClinicKeys) -> None:
    # Our refund of 20 000 never reached Fintoc (undecided, still reserved); the owner then refunds
    # 10 000 in the dashboard. Fintoc allows it (it never saw ours); our ledger cannot hold both.
    from tests.support.ownership import event_records

    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    sandbox(stack, "/_control/refunds/error-next", {"applied": False})
    assert refund(clinic, aid, {"amount": clp(20000)}).json()["status"] == "pending"
    reference = payments(clinic, aid)["payments"][0]["reference"]
    sandbox(stack, f"/_control/payment_intents/{reference}/dashboard-refund", {"amount": 10000})
    wait_for(lambda: any(r.get("reason") == "exceeds_remaining" for r in event_records(clinic.clinic_id)))
    shown = appointment(clinic, aid)
    assert shown["payment_status"] == "paid" and shown["amount_refunded"] == clp(0)
    assert payments(clinic, aid)["payments"][0]["refund_pending"] == clp(20000)


def test_an_undecided_refund_whose_event_lost_our_id_is_recognised_not_counted_twice(
        stack: TestStack, clinic: ClinicKeys) -> None:
    # Our refund's answer was lost and its event names no refund of ours (the dashboard path):
    # the pending refund of ours for that payment and amount is that refund.
    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    sandbox(stack, "/_control/refunds/error-next", {"applied": False})
    ours = refund(clinic, aid).json()
    assert ours["status"] == "pending"
    reference = payments(clinic, aid)["payments"][0]["reference"]
    made = sandbox(stack, f"/_control/payment_intents/{reference}/dashboard-refund", {"amount": 25000}).json()
    shown = wait_for(lambda: (a := appointment(clinic, aid))["payment_status"] == "refunded" and a)
    assert shown["amount_refunded"] == clp(25000)
    listed = clinic.staff().get(clinic.path(f"/appointments/{aid}/refunds")).json()["refunds"]
    assert [(r["refund_id"], r["status"], r["provider_refund_id"]) for r in listed] == [
        (ours["refund_id"], "succeeded", made["id"])]


def test_a_provider_that_cannot_be_reached_refunds_nothing_and_the_same_key_tries_again(
        stack: TestStack, clinic: ClinicKeys) -> None:
    from clinicpay.domain.errors import ProviderOutcomeUnknown, ProviderUnavailable
    from clinicpay.providers.fintoc import FintocGateway
    from clinicpay.providers.registry import refunding_gateway
    from clinicpay.repositories.appointments import AppointmentRepository
    from clinicpay.repositories.ledger import LedgerRepository
    from clinicpay.usecases.refunds import RefundAsk, RefundDeps, request_refund

    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    table = "AppointmentsTable"
    unreachable = RefundDeps(  # nothing listens there: the request never leaves
        appointments=AppointmentRepository(table), ledger=LedgerRepository(table),
        gateway_for=lambda *_: FintocGateway({"secret_key": FINTOC_KEY}, base_url="http://127.0.0.1:9", timeout=1))
    with pytest.raises(ProviderUnavailable) as raised:
        request_refund(unreachable, clinic.clinic_id, aid, RefundAsk(idempotency_key="k-1"))
    assert not isinstance(raised.value, ProviderOutcomeUnknown)
    [failed] = clinic.staff().get(clinic.path(f"/appointments/{aid}/refunds")).json()["refunds"]
    assert (failed["status"], failed["failure_code"]) == ("failed", "provider_unavailable")
    assert payments(clinic, aid)["payments"][0]["refundable"] == clp(25000)  # released
    # The same key, Fintoc reachable again: the same refund, asked this time
    reachable = RefundDeps(appointments=AppointmentRepository(table), ledger=LedgerRepository(table),
                           gateway_for=refunding_gateway)
    again, created_now = request_refund(reachable, clinic.clinic_id, aid, RefundAsk(idempotency_key="k-1"))
    assert (again.refund_id, again.status, created_now) == (failed["refund_id"], "pending", False)
    assert again.provider_refund_id and payments(clinic, aid)["payments"][0]["refund_pending"] == clp(25000)
