"""Refunds whose provider answer or event never came (issue 9: money that comes back or goes missing):
the `link-reconcile` job asks Fintoc and Stripe about pending refunds, through real handlers, moto and
the sandboxes with every webhook held back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from boto3.dynamodb.conditions import Key

from local import apigw
from tests.integration.test_refunds import (
    FINTOC_KEY,
    appointment,
    book,
    clp,
    pay_link,
    payments,
    refund,
    refund_messages,
    sandbox,
    wait_for,
)
from tests.support.clinics import ClinicKeys, add_service, connect_fintoc, create_clinic
from tests.support.env import TestStack
from tests.support.ownership import hold


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = create_clinic()
    connect_fintoc(keys, stack.sandbox_url("fintoc"), stack.base_url, FINTOC_KEY)
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "fintoc"})
    add_service(keys, "consulta", 25000)
    return keys


def refund_items(clinic_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    return list(table.query(KeyConditionExpression=Key("pk").eq(f"CLINIC#{clinic_id}")
                            & Key("sk").begins_with("REFUND#"))["Items"])


def age(clinic_id: str, *, minutes: int = 6, made_hours_ago: float | None = None) -> None:
    """As if time had passed: each pending refund's next ask moves into the past (and, if asked, the
    refund itself was made that many hours ago)."""
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    for item in refund_items(clinic_id):
        if "due_sk" not in item:
            continue
        past = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat(timespec="seconds")
        sets, values = "SET due_sk = :d", {":d": past + str(item["due_sk"])[len(past):]}
        if made_hours_ago is not None:
            sets += ", created_at = :c"
            values[":c"] = (datetime.now(UTC) - timedelta(hours=made_hours_ago)).isoformat()
        table.update_item(Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression=sets,
                          ExpressionAttributeValues=values)


def refunds_of(clinic: ClinicKeys, appointment_id: str) -> list[dict[str, Any]]:
    return list(clinic.staff().get(clinic.path(f"/appointments/{appointment_id}/refunds")).json()["refunds"])


def at_fintoc(stack: TestStack) -> list[dict[str, Any]]:
    return list(requests.get(f"{stack.sandbox_url('fintoc')}/v1/refunds", headers={"Authorization": FINTOC_KEY},
                             timeout=10).json())


def test_a_refund_whose_answer_and_events_were_lost_is_settled_by_asking_fintoc(stack: TestStack,
                                                                                 clinic: ClinicKeys) -> None:
    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    hold(stack.sandbox_url("fintoc"))
    try:
        # Fintoc makes the refund but its answer is lost (a 500 stored under our key) ...
        sandbox(stack, "/_control/refunds/error-next", {"applied": True})
        made = refund(clinic, aid, key="click-1").json()
        assert made["status"] == "pending" and made["provider_refund_id"] is None
        # ... and its payout batch settles it, but the events never reach us
        [at_provider] = [r for r in at_fintoc(stack) if r["metadata"].get("refund_id") == made["refund_id"]]
        sandbox(stack, f"/_control/refunds/{at_provider['id']}/settle", {"status": "succeeded"})
        # too young to ask about: the event may still be on its way
        assert apigw.invoke_job("link-reconcile")["refunds"] == {}
        assert refunds_of(clinic, aid)[0]["status"] == "pending"
        age(clinic.clinic_id)
        assert apigw.invoke_job("link-reconcile")["refunds"] == {"settled": 1}
        [settled] = refunds_of(clinic, aid)
        assert (settled["status"], settled["provider_refund_id"]) == ("succeeded", at_provider["id"])
        shown = appointment(clinic, aid)
        assert shown["payment_status"] == "refunded" and shown["amount_refunded"] == clp(25000)
        assert len(refund_messages()) == 1  # the patient is told once
        # nothing is waiting any more: later runs ask nothing, and a late event changes nothing
        age(clinic.clinic_id)
        assert apigw.invoke_job("link-reconcile")["refunds"] == {}
        assert "due_pk" not in refund_items(clinic.clinic_id)[0]
    finally:
        hold(stack.sandbox_url("fintoc"), False)
    assert len(refund_messages()) == 1


def test_a_refund_fintoc_still_holds_stays_pending_and_is_asked_again_later(stack: TestStack,
                                                                            clinic: ClinicKeys) -> None:
    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    hold(stack.sandbox_url("fintoc"))
    try:
        made = refund(clinic, aid, {"amount": clp(5000)}).json()
        assert made["status"] == "pending" and made["provider_refund_id"]
        age(clinic.clinic_id)
        assert apigw.invoke_job("link-reconcile")["refunds"] == {"pending": 1}
        [item] = refund_items(clinic.clinic_id)
        assert item["refund_asks"] == 1 and item["due_sk"] > datetime.now(UTC).isoformat(timespec="seconds")
        # the batch fails it; the event is lost; the next ask releases the amount
        sandbox(stack, f"/_control/refunds/{made['provider_refund_id']}/settle",
                {"status": "failed", "failure_code": "insufficient_funds"})
        age(clinic.clinic_id)
        assert apigw.invoke_job("link-reconcile")["refunds"] == {"failed": 1}
        [failed] = refunds_of(clinic, aid)
        assert (failed["status"], failed["failure_code"]) == ("failed", "insufficient_funds")
        assert payments(clinic, aid)["payments"][0]["refundable"] == clp(25000)
        assert appointment(clinic, aid)["payment_status"] == "paid" and refund_messages() == []
    finally:
        hold(stack.sandbox_url("fintoc"), False)


def test_a_refund_fintoc_never_received_is_sent_again_then_released_once_its_key_is_too_old(
        stack: TestStack, clinic: ClinicKeys) -> None:
    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    # Fintoc answers 500 and makes nothing; it replays that 500 to every retry under our key
    sandbox(stack, "/_control/refunds/error-next", {"applied": False})
    made = refund(clinic, aid, key="click-1").json()
    assert made["status"] == "pending" and at_fintoc(stack) == []
    # asked: Fintoc has no such refund, so it is sent again under the same key (still the 500)
    age(clinic.clinic_id)
    assert apigw.invoke_job("link-reconcile")["refunds"] == {"asked_again": 1}
    assert refunds_of(clinic, aid)[0]["status"] == "pending" and at_fintoc(stack) == []
    other = refund(clinic, aid)
    assert other.status == 409 and other.json()["error"]["code"] == "nothing_to_refund"  # still reserved
    # a day later the key may be forgotten at Fintoc: sending again could refund twice, so it is
    # released for staff to decide, and says why
    age(clinic.clinic_id, made_hours_ago=24)
    assert apigw.invoke_job("link-reconcile")["refunds"] == {"released": 1}
    [released] = refunds_of(clinic, aid)
    assert (released["status"], released["failure_code"]) == ("failed", "not_received_by_provider")
    assert payments(clinic, aid)["payments"][0]["refundable"] == clp(25000)
    again = refund(clinic, aid)
    assert again.status == 201 and again.json()["status"] == "pending" and len(at_fintoc(stack)) == 1


def test_another_clinic_s_refund_at_the_same_account_is_never_taken_for_ours(stack: TestStack,
                                                                             clinic: ClinicKeys) -> None:
    # two clinics on one Fintoc account; ours was never received, theirs was made with the same ids
    # of ours in another clinic's metadata: ours is not settled by theirs
    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    sandbox(stack, "/_control/refunds/error-next", {"applied": False})
    made = refund(clinic, aid, key="click-1").json()
    [payment] = payments(clinic, aid)["payments"]
    theirs = requests.post(f"{stack.sandbox_url('fintoc')}/v1/refunds", headers={"Authorization": FINTOC_KEY,
                                                                                  "Idempotency-Key": "theirs-1"},
                           json={"resource_type": "payment_intent", "resource_id": payment["reference"],
                                 "amount": 1000, "metadata": {"clinic_id": "another-clinic",
                                                              "refund_id": made["refund_id"]}}, timeout=10)
    assert theirs.status_code in (200, 201), theirs.text
    age(clinic.clinic_id)
    assert apigw.invoke_job("link-reconcile")["refunds"] == {"asked_again": 1}
    assert refunds_of(clinic, aid)[0]["status"] == "pending"


def test_a_stripe_link_refund_whose_events_were_lost_is_settled_by_asking_stripe(stack: TestStack) -> None:
    from tests.integration.test_link_reconcile import act, stripe_clinic

    link = stripe_clinic(stack)
    appointment_id, checkout = link.book(1)
    act(link, checkout, "paid")
    wait_for(lambda: link.appointment(appointment_id)["payment_status"] == "paid")
    stripe = stack.sandbox_url("stripe")
    hold(stripe)
    try:
        # the refund starts pending at Stripe (a bank-backed refund takes days), and every event is held
        assert requests.post(f"{stripe}/_control/refunds/next", json={"status": "pending"}, timeout=10).ok
        made = refund(link.keys, appointment_id, {"amount": {"amount": 12000, "currency": "CAD"}}).json()
        assert made["status"] == "pending" and made["provider_refund_id"]
        age(link.clinic_id)
        assert apigw.invoke_job("link-reconcile")["refunds"] == {"pending": 1}
        assert requests.post(f"{stripe}/_control/refunds/{made['provider_refund_id']}/settle",
                             json={"status": "succeeded"}, timeout=10).ok
        age(link.clinic_id)
        assert apigw.invoke_job("link-reconcile")["refunds"] == {"settled": 1}
        shown = link.appointment(appointment_id)
        assert shown["payment_status"] == "refunded" and shown["amount_refunded"] == {"amount": 12000, "currency": "CAD"}
    finally:
        hold(stripe, False)


def test_refunds_left_pending_before_the_deploy_are_put_on_the_index_by_the_operator_script(
        stack: TestStack, clinic: ClinicKeys) -> None:
    from ops.watch_pending_refunds import watch_pending_refunds

    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    made = refund(clinic, aid, {"amount": clp(5000)}).json()
    # as stored before the deploy: pending, not on the index
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    [item] = refund_items(clinic.clinic_id)
    table.update_item(Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression="REMOVE due_pk, due_sk")
    dry = watch_pending_refunds("AppointmentsTable", apply=False)
    assert dry.watched >= 1 and "due_pk" not in refund_items(clinic.clinic_id)[0]
    applied = watch_pending_refunds("AppointmentsTable", apply=True)
    assert applied.watched == dry.watched
    assert watch_pending_refunds("AppointmentsTable", apply=True).watched == 0  # safe to repeat
    # due now: Fintoc settles it, its event is lost, and the job's ask settles it here
    hold(stack.sandbox_url("fintoc"))
    try:
        sandbox(stack, f"/_control/refunds/{made['provider_refund_id']}/settle", {"status": "succeeded"})
        assert apigw.invoke_job("link-reconcile")["refunds"]["settled"] >= 1
    finally:
        hold(stack.sandbox_url("fintoc"), False)
    assert refunds_of(clinic, aid)[0]["status"] == "succeeded"
    assert "due_pk" not in refund_items(clinic.clinic_id)[0]


def test_a_stripe_link_refund_that_fails_after_it_succeeded_gives_the_money_back_to_the_ledger(
        stack: TestStack) -> None:
    from tests.integration.test_link_reconcile import act, stripe_clinic

    link = stripe_clinic(stack)
    appointment_id, checkout = link.book(1)
    act(link, checkout, "paid")
    wait_for(lambda: link.appointment(appointment_id)["payment_status"] == "paid")
    made = refund(link.keys, appointment_id, {"amount": {"amount": 5000, "currency": "CAD"}}).json()
    assert made["status"] == "succeeded"
    assert link.appointment(appointment_id)["payment_status"] == "partially_refunded"
    # days later the card turns out closed: Stripe fails the refund and says so (charge.refund.updated)
    stripe = stack.sandbox_url("stripe")
    assert requests.post(f"{stripe}/_control/refunds/{made['provider_refund_id']}/settle",
                         json={"status": "failed", "failure_reason": "expired_or_canceled_card"}, timeout=10).ok
    shown = wait_for(lambda: (a := link.appointment(appointment_id))["payment_status"] == "paid" and a)
    assert shown["amount_refunded"] == {"amount": 0, "currency": "CAD"}
    [failed] = refunds_of(link.keys, appointment_id)
    assert (failed["status"], failed["failure_code"]) == ("failed", "expired_or_canceled_card")
    # the whole payment is refundable again, and a new refund of all of it is accepted
    [payment] = payments(link.keys, appointment_id)["payments"]
    assert payment["refundable"] == {"amount": 12000, "currency": "CAD"}
    again = refund(link.keys, appointment_id)
    assert again.status == 201 and again.json()["amount"] == {"amount": 12000, "currency": "CAD"}
    assert link.appointment(appointment_id)["payment_status"] == "refunded"


def test_monobank_link_refunds_are_asked_about_and_one_never_received_is_released_not_sent_again(
        stack: TestStack) -> None:
    from tests.integration.test_link_reconcile import act, monobank_clinic

    link = monobank_clinic(stack)
    mono = stack.sandbox_url("monobank")
    first, checkout = link.book(1)
    act(link, checkout, "paid")
    second, checkout = link.book(2)
    act(link, checkout, "paid")
    hold(mono)
    try:
        # the paying webhooks were kept back by the sandbox: the job's asking applies them
        age_watches(link.clinic_id)
        apigw.invoke_job("link-reconcile")
        for appointment_id in (first, second):
            wait_for(lambda aid=appointment_id: link.appointment(aid)["payment_status"] == "paid")
        # the first refund is accepted (processing) and succeeds at monobank; its webhook is lost
        assert requests.post(f"{mono}/_control/cancel-next", json={"outcome": "success", "delay": 0}, timeout=10).ok
        made = refund(link.keys, first, {"amount": {"amount": 85000, "currency": "UAH"}}).json()
        assert made["status"] == "pending"
        # the second never reaches monobank (a 500 before it acts): it is undecided here
        assert requests.post(f"{mono}/_control/fail-next", json={"status": 500, "count": 1}, timeout=10).ok
        lost = refund(link.keys, second, {"amount": {"amount": 85000, "currency": "UAH"}}).json()
        assert lost["status"] == "pending" and lost["provider_refund_id"] is None
        age(link.clinic_id)
        assert apigw.invoke_job("link-reconcile")["refunds"] == {"settled": 1, "unanswered": 1}
        assert link.appointment(first)["payment_status"] == "refunded"
        # half an hour on, monobank still lists no such refund: released, and never sent again
        # (monobank does not deduplicate extRef: a second cancel could refund twice)
        age(link.clinic_id, made_hours_ago=0.6)
        assert apigw.invoke_job("link-reconcile")["refunds"] == {"released": 1}
        [released] = refunds_of(link.keys, second)
        assert (released["status"], released["failure_code"]) == ("failed", "not_received_by_provider")
        assert link.appointment(second)["payment_status"] == "paid"
    finally:
        hold(mono, False)


def age_watches(clinic_id: str) -> None:
    """Every link watch of the clinic due now (as if minutes had passed)."""
    from tests.integration.test_link_reconcile import watches

    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    for watch in watches(clinic_id):
        if "due_sk" in watch:
            table.update_item(Key={"pk": watch["pk"], "sk": watch["sk"]}, UpdateExpression="SET due_sk = :d",
                              ExpressionAttributeValues={":d": past + str(watch["due_sk"])[len(past):]})


def test_a_refund_whose_provider_id_came_while_the_job_asked_is_never_released_as_never_received(
        stack: TestStack, clinic: ClinicKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    from clinicpay.repositories.ledger import LedgerRepository

    created = book(clinic)
    pay_link(stack, clinic, created)
    aid = created["appointment_id"]
    # Fintoc's answer to our refund was lost (500), a day ago: the job would release it if Fintoc lists none
    sandbox(stack, "/_control/refunds/error-next", {"applied": False})
    assert refund(clinic, aid, key="click-1").json()["status"] == "pending"
    age(clinic.clinic_id, made_hours_ago=24)
    claim = LedgerRepository.claim_refund_ask

    def noted_meanwhile(self: LedgerRepository, waiting: Any, now: datetime) -> Any:
        # Between the job's read of the index and its claim, Fintoc's refund event names its id
        # (the id is kept on the pending refund, as note_provider_refund does): Fintoc has it.
        [item] = [i for i in refund_items(clinic.clinic_id) if i["sk"].startswith("REFUND#")]
        boto3.resource("dynamodb").Table("AppointmentsTable").update_item(
            Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression="SET provider_refund_id = :p",
            ExpressionAttributeValues={":p": "re_noted_meanwhile"})
        return claim(self, waiting, now)

    monkeypatch.setattr(LedgerRepository, "claim_refund_ask", noted_meanwhile)
    outcome = apigw.invoke_job("link-reconcile")["refunds"]
    # The amount stays reserved: a refund the provider named is not "never received"
    assert "released" not in outcome, outcome
    [kept] = refunds_of(clinic, aid)
    assert kept["status"] == "pending"
    assert refund(clinic, aid).status == 409  # nothing left to refund twice
