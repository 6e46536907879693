"""Charges whose answer was lost (issue 9 items 4 and 5), through the handler, moto and the Stripe
sandbox's own failure modes: a request still in flight under its key (409), a stored and replayed
500, a timeout; and taking over a stale claim, racing the patient's 3-D Secure step."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import boto3
import pytest
import requests

from tests.support.cards import (
    ALWAYS_AUTHENTICATE,
    VISA,
    book,
    new_clinic,
    patient_path,
    save_card,
    settle,
    wait_for,
)
from tests.support.clinics import ClinicKeys
from tests.support.env import TestStack
from tests.support.ownership import hold


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    return new_clinic(stack)


def fail_next(stack: TestStack, status: Any, *, count: int = 1, seconds: float | None = None,
              path: str = "/v1/payment_intents") -> None:
    body: dict[str, Any] = {"status": status, "count": count, "path": path}
    if seconds is not None:
        body["seconds"] = seconds
    answer = requests.post(f"{stack.sandbox_url('stripe')}/_control/fail-next", json=body, timeout=10)
    assert answer.status_code == 200, answer.text


def charge(clinic: ClinicKeys, body: dict[str, Any], *, key: str | None = None, patient: str = "p-1") -> Any:
    headers = {"Idempotency-Key": key} if key else None
    return clinic.staff().post(patient_path(clinic, patient, "/charges"), json=body, headers=headers)


def charge_view(clinic: ClinicKeys, charge_id: str, patient: str = "p-1") -> dict[str, Any]:
    return dict(clinic.staff().get(patient_path(clinic, patient, f"/charges/{charge_id}")).json())


def appointment_of(clinic: ClinicKeys, appointment_id: str) -> dict[str, Any]:
    return dict(clinic.staff().get(clinic.path(f"/appointments/{appointment_id}")).json())


def intents(stack: TestStack, event_type: str = "payment_intent.created") -> list[dict[str, Any]]:
    found = requests.get(f"{stack.sandbox_url('stripe')}/_control/events", params={"type": event_type}, timeout=10)
    return [e["data"]["object"] for e in found.json()["events"]]


def sandbox_intent(stack: TestStack, clinic: ClinicKeys, intent_id: str) -> dict[str, Any]:
    key = f"sk_test_{clinic.clinic_id.replace('-', '_')}"
    return dict(requests.get(f"{stack.sandbox_url('stripe')}/v1/payment_intents/{intent_id}",
                             headers={"Authorization": f"Bearer {key}"}, timeout=10).json())


def for_appointment(appointment: dict[str, Any], reason: str = "appointment", **extra: Any) -> dict[str, Any]:
    return {"reason": reason, "appointment_id": appointment["appointment_id"], **extra}


# ------------------------------------------------------------------ item 4: undecided answers
def test_a_request_still_in_flight_answers_409_and_the_charge_stays_processing_until_stripe_settles_it(
        clinic: ClinicKeys, stack: TestStack) -> None:
    appointment = book(clinic, "p-1")
    save_card(clinic, "p-1", VISA)
    # Given Stripe holds our PaymentIntent request in flight longer than our timeout (3 s here)
    fail_next(stack, "hold", seconds=20)
    # When staff charge the appointment
    first = charge(clinic, for_appointment(appointment), key="desk-1")
    # Then our retries under the same key met 409 idempotency_key_in_use: undecided, so 202 processing
    assert first.status == 202, first.body
    assert first.json()["status"] == "processing" and first.json()["undecided"] is True
    assert "failure_code" not in first.json()
    # And a second charge for the same appointment is refused while it is processing
    other = charge(clinic, for_appointment(appointment), key="desk-2")
    assert other.status == 409 and other.json()["error"]["code"] == "already_charged"
    # And a retry of the same request while Stripe still holds it is still processing, never failed
    again = charge(clinic, for_appointment(appointment), key="desk-1")
    assert again.status == 202 and again.json()["charge_id"] == first.json()["charge_id"]
    # When Stripe finishes the held request
    requests.post(f"{stack.sandbox_url('stripe')}/_control/release", timeout=10)
    # Then its webhook settles the charge and the appointment: one PaymentIntent, succeeded
    charge_id = first.json()["charge_id"]
    wait_for(lambda: charge_view(clinic, charge_id)["status"] == "succeeded")
    settle()
    assert appointment_of(clinic, appointment["appointment_id"])["payment_status"] == "paid"
    assert len(intents(stack)) == 1
    # And the same request once more answers the settled charge, without a second payment
    final = charge(clinic, for_appointment(appointment), key="desk-1")
    assert final.status == 201 and final.json()["status"] == "succeeded" and len(intents(stack)) == 1


def test_a_stored_500_is_replayed_for_the_same_key_and_the_charge_never_fails(clinic: ClinicKeys,
                                                                             stack: TestStack) -> None:
    appointment = book(clinic, "p-1")
    save_card(clinic, "p-1", VISA)
    hold(stack.sandbox_url("stripe"))  # no webhook comes: only the API answers tell us anything
    # Given Stripe runs our request (the card is charged) and answers 500, stored under the key
    fail_next(stack, 500)
    first = charge(clinic, for_appointment(appointment), key="desk-500")
    assert first.status == 202 and first.json()["status"] == "processing"
    [made] = intents(stack, "payment_intent.succeeded")  # the money moved
    # When staff retry the same request, Stripe replays the same 500 (Stripe-Should-Retry: false)
    again = charge(clinic, for_appointment(appointment), key="desk-500")
    # Then it is still processing: never failed, and never a second PaymentIntent
    assert again.status == 202 and again.json()["status"] == "processing"
    assert len(intents(stack)) == 1
    other = charge(clinic, for_appointment(appointment), key="desk-other")
    assert other.status == 409
    assert appointment_of(clinic, appointment["appointment_id"])["payment_status"] == "not_required"
    # And reconciliation finds the PaymentIntent by our charge id and settles it
    run_reconcile(clinic, minutes=10)
    assert charge_view(clinic, first.json()["charge_id"])["status"] == "succeeded"
    paid = appointment_of(clinic, appointment["appointment_id"])
    assert paid["payment_status"] == "paid" and paid["payment"]["reference"] == made["id"]


def test_a_500_before_anything_ran_is_failed_by_reconciliation_and_frees_the_appointment(
        clinic: ClinicKeys, stack: TestStack) -> None:
    appointment = book(clinic, "p-1")
    save_card(clinic, "p-1", VISA)
    fail_next(stack, "500_unapplied")
    first = charge(clinic, for_appointment(appointment), key="desk-x")
    assert first.status == 202 and intents(stack) == []
    # Reconciliation: no PaymentIntent carries our charge id, so Stripe never made it
    run_reconcile(clinic, minutes=10)
    failed = charge_view(clinic, first.json()["charge_id"])
    assert failed["status"] == "failed" and failed["failure_code"] == "not_created"
    # And the appointment can be charged (once)
    assert charge(clinic, for_appointment(appointment), key="desk-y").json()["status"] == "succeeded"
    assert len(intents(stack)) == 1


def test_every_attempt_timing_out_leaves_the_charge_processing_and_its_webhook_settles_it(
        clinic: ClinicKeys, stack: TestStack) -> None:
    appointment = book(clinic, "p-1")
    save_card(clinic, "p-1", VISA)
    # Given Stripe runs the request but every answer (the replays of our retries too) comes too late
    fail_next(stack, "timeout", count=3, seconds=4)
    first = charge(clinic, for_appointment(appointment, "no_show"), key="late-1")
    assert first.status == 202 and first.json()["status"] == "processing"
    # Then Stripe's webhook (the charge was made once) settles it
    wait_for(lambda: charge_view(clinic, first.json()["charge_id"])["status"] == "succeeded", timeout=15)
    settle()
    assert len(intents(stack)) == 1 and len(intents(stack, "payment_intent.succeeded")) == 1


def run_reconcile(clinic: ClinicKeys, *, minutes: float) -> dict[str, Any]:
    """The tokenize function's `card-reconcile` job for this clinic, run `minutes` from now (as if
    the schedule came then), with the function's own role."""
    from clinicpay.api.route_groups import function_module
    from clinicpay.repositories.shards import shard_of
    from local import apigw, iam

    apigw.handler_for("TokenizeFunction")
    jobs = function_module(apigw._modules["TokenizeFunction"].__file__, "jobs")  # the job's code (functions/tokenize/jobs.py)
    with iam.invoking("TokenizeFunction"):
        result = jobs.run_job({"job": "card-reconcile", "shard": shard_of(clinic.clinic_id)},
                                now=datetime.now(UTC) + timedelta(minutes=minutes))
    return dict(result)


# ------------------------------------------------------------------ item 5: taking over a stale claim
def claims_table() -> Any:
    return boto3.resource("dynamodb").Table("CardsTable")


def backdate_claim(clinic: ClinicKeys, appointment: dict[str, Any], reason: str = "appointment",
                   minutes: int = 20) -> None:
    claims_table().update_item(
        Key={"pk": f"CLINIC#{clinic.clinic_id}#PATIENT#p-1", "sk": f"APPTCHARGE#{appointment['appointment_id']}#{reason}"},
        UpdateExpression="SET claimed_at = :at",
        ExpressionAttributeValues={":at": (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()})


def awaiting_authentication(clinic: ClinicKeys, appointment: dict[str, Any]) -> dict[str, Any]:
    first = charge(clinic, for_appointment(appointment))
    assert first.status == 201 and first.json()["status"] == "requires_action", first.body
    return dict(first.json())


def complete_3ds(action_url: str) -> int:
    return requests.post(action_url, data={"result": "complete"}, allow_redirects=False, timeout=10).status_code


def test_a_stale_claim_is_taken_over_after_cancelling_the_old_payment_intent(clinic: ClinicKeys,
                                                                            stack: TestStack) -> None:
    appointment = book(clinic, "p-1")
    save_card(clinic, "p-1", ALWAYS_AUTHENTICATE)
    visa = save_card(clinic, "p-1", VISA)
    old = awaiting_authentication(clinic, appointment)
    # Within 15 minutes, a second charge is refused
    assert charge(clinic, for_appointment(appointment, card_id=visa["card_id"])).status == 409
    backdate_claim(clinic, appointment)
    # When staff charge another card after the patient never authenticated
    new = charge(clinic, for_appointment(appointment, card_id=visa["card_id"]))
    # Then the old PaymentIntent was cancelled at Stripe first, and the new charge went through
    assert new.status == 201 and new.json()["status"] == "succeeded", new.body
    [old_intent] = intents(stack, "payment_intent.canceled")
    assert old_intent["status"] == "canceled" and old_intent["metadata"]["clinicpay_charge_id"] == old["charge_id"]
    assert charge_view(clinic, old["charge_id"])["status"] == "failed"
    # And the patient can no longer complete the old one
    assert complete_3ds(old["action_url"]) == 409
    settle()
    assert len(intents(stack, "payment_intent.succeeded")) == 1


def test_if_the_patient_finished_3ds_first_the_old_charge_wins_and_the_new_one_is_refused(
        clinic: ClinicKeys, stack: TestStack) -> None:
    appointment = book(clinic, "p-1")
    save_card(clinic, "p-1", ALWAYS_AUTHENTICATE)
    visa = save_card(clinic, "p-1", VISA)
    old = awaiting_authentication(clinic, appointment)
    backdate_claim(clinic, appointment)
    hold(stack.sandbox_url("stripe"))  # its payment_intent.succeeded has not reached us
    assert complete_3ds(old["action_url"]) == 303
    refused = charge(clinic, for_appointment(appointment, card_id=visa["card_id"]))
    assert refused.status == 409 and refused.json()["error"]["code"] == "already_paid"
    # The cancel found it succeeded: the old charge is settled from Stripe's answer, no new payment
    assert charge_view(clinic, old["charge_id"])["status"] == "succeeded"
    assert appointment_of(clinic, appointment["appointment_id"])["payment_status"] == "paid"
    assert len(intents(stack)) == 1 and intents(stack, "payment_intent.canceled") == []


def race(patient: Any, patient_delay: float, staff: Any) -> dict[str, Any]:
    """The patient's 3-D Secure click and the staff's takeover, started together."""
    answers: dict[str, Any] = {}
    start = threading.Barrier(2)

    def as_patient() -> None:
        start.wait()
        time.sleep(patient_delay)
        answers["3ds"] = patient()

    def as_staff() -> None:
        start.wait()
        answers["charge"] = staff()

    threads = [threading.Thread(target=as_patient), threading.Thread(target=as_staff)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_the_takeover_racing_the_patients_3ds_never_leaves_two_payments(clinic: ClinicKeys, stack: TestStack) -> None:
    """Figure for the report: rounds of a takeover and a 3-D Secure completion started together."""
    book(clinic, "p-1")
    save_card(clinic, "p-1", ALWAYS_AUTHENTICATE)
    visa = save_card(clinic, "p-1", VISA)
    winners: list[str] = []
    # The patient's click lands from at once to a little after the takeover began: our handler reads
    # a few items before it asks Stripe to cancel, so both orders happen.
    for patient_delay in (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 0.0, 0.15):
        appointment = book(clinic, "p-1")
        old = awaiting_authentication(clinic, appointment)
        backdate_claim(clinic, appointment)
        answers = race(partial(complete_3ds, old["action_url"]), patient_delay,
                       partial(charge, clinic, for_appointment(appointment, card_id=visa["card_id"])))
        settle()
        paid = appointment_of(clinic, appointment["appointment_id"])
        succeeded = [i for i in intents(stack, "payment_intent.succeeded")
                     if i["metadata"].get("appointment_id") == appointment["appointment_id"]]
        # Exactly one payment for the appointment, whichever came first, and it is the one recorded
        assert len(succeeded) == 1, (answers, succeeded)
        assert paid["payment_status"] == "paid" and paid["payment"]["reference"] == succeeded[0]["id"]
        if answers["3ds"] == 303:
            assert answers["charge"].status == 409
            winners.append("patient")
        else:
            assert answers["3ds"] == 409 and answers["charge"].json()["status"] == "succeeded"
            winners.append("takeover")
    print(f"\ntakeover race: {len(winners)} rounds, {winners.count('patient')} won by the patient's 3-D Secure, "
          f"{winners.count('takeover')} by the takeover, 0 with two payments")


def test_runs_of_undecided_charges_are_never_failed_nor_charged_twice(clinic: ClinicKeys, stack: TestStack) -> None:
    """Figure for the report: rounds of each way Stripe's answer is lost."""
    book(clinic, "p-1")
    save_card(clinic, "p-1", VISA)
    rounds = 3
    seen: dict[str, Counter[str]] = {}
    for mode in ("timeout", "hold", 500):
        answers: Counter[str] = Counter()
        for n in range(rounds):
            appointment = book(clinic, "p-1")
            fail_next(stack, mode, count=3 if mode == "timeout" else 1, seconds=4 if mode == "timeout" else 20)
            key = f"{mode}-{n}"
            first = charge(clinic, for_appointment(appointment), key=key)
            answers[f"first {first.status} {first.json()['status']}"] += 1
            again = charge(clinic, for_appointment(appointment), key=key)  # staff retry at once
            answers[f"retry {again.status} {again.json()['status']}"] += 1
            if mode == "hold":
                requests.post(f"{stack.sandbox_url('stripe')}/_control/release", timeout=10)
            charge_id = first.json()["charge_id"]
            wait_for(lambda c=charge_id: charge_view(clinic, c)["status"] == "succeeded", timeout=15)
            settle()
            final = charge(clinic, for_appointment(appointment), key=key)
            assert final.status == 201 and final.json()["charge_id"] == charge_id
            made = [i for i in intents(stack) if i["metadata"]["appointment_id"] == appointment["appointment_id"]]
            assert len(made) == 1 and appointment_of(clinic, appointment["appointment_id"])["payment_status"] == "paid"
        assert not any("failed" in answer for answer in answers)
        seen[str(mode)] = answers
    print(f"\nundecided charges, {rounds} rounds per mode: "
          + "; ".join(f"{mode}: {dict(answers)}" for mode, answers in seen.items())
          + f"; every charge settled succeeded, {len(intents(stack))} PaymentIntents for {3 * rounds} charges, 0 failed")
