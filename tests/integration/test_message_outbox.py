"""Emails and SMS that SES/SNS refuse for a passing reason are kept and sent once by `message-retry`
(issue 9 item 8): moto's SES refuses an unverified sender; the local fault hook makes SNS throttle."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from clinicpay.deadline import AWS_TOTAL_ATTEMPTS
from clinicpay.domain.errors import ProviderUnavailable
from clinicpay.notify.sender import AwsNotifier, AwsTransport
from clinicpay.ports import OutgoingMessage
from clinicpay.repositories.message_outbox import MessageOutbox
from clinicpay.repositories.shards import shard_key, shard_of
from clinicpay.settings import get_settings
from clinicpay.usecases.message_retry import MAX_ATTEMPTS, MessageRetryDeps, run_message_retry
from local import apigw, aws_faults, outbox
from tests.support.clinics import ClinicKeys, add_service, connect_fintoc, create_clinic
from tests.support.env import SENDER, TestStack

TABLE = "AppointmentsTable"


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = create_clinic()
    connect_fintoc(keys, stack.sandbox_url("fintoc"), stack.base_url)
    keys.admin().patch(keys.path("/settings"), json={"show_payment_link_in_email": True, "default_gateway": "fintoc"})
    add_service(keys, "consulta", 25000)
    return keys


def book(clinic: ClinicKeys, email: str, phone: str | None = None) -> dict[str, Any]:
    patient = {"id": "p-out", "name": "Ana Pérez", "email": email, **({"phone": phone} if phone else {})}
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    created = clinic.staff().post(clinic.path("/appointments"), json={
        "patient": patient, "service_id": "consulta", "starts_at": starts, "booked_by": "staff"})
    assert created.status == 201, created.body  # the booking's answer does not depend on the message
    return dict(created.json())


def kept() -> list[dict[str, Any]]:
    return [i for i in boto3.resource("dynamodb").Table(TABLE).scan()["Items"] if str(i["sk"]).startswith("OUTBOX#")]


def make_due(item: dict[str, Any]) -> None:
    """Time moves on: the kept message's next attempt is now past."""
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    boto3.resource("dynamodb").Table(TABLE).update_item(
        Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression="SET next_attempt_at = :p, due_sk = :p",
        ExpressionAttributeValues={":p": past})


def ses_refuses_the_sender() -> None:
    boto3.client("sesv2").delete_email_identity(EmailIdentity=SENDER)


def ses_accepts_the_sender() -> None:
    boto3.client("sesv2").create_email_identity(EmailIdentity=SENDER)


def test_an_email_ses_refuses_is_kept_and_sent_exactly_once_after_the_job_runs(clinic: ClinicKeys) -> None:
    # Given SES refuses the sender (moto: MessageRejected, as SES does before the identity is verified)
    ses_refuses_the_sender()
    # When a booking sends its confirmation
    created = book(clinic, "kept@example.cl")
    # Then nothing went out, and the message waits in the clinic's shard of the outbox
    assert outbox.messages(to="kept@example.cl") == []
    [item] = kept()
    assert (item["state"], item["attempts"], item["last_error"]) == ("waiting", 1, "MessageRejected")
    assert item["due_pk"] == shard_key("OUTBOX", clinic.clinic_id) and item["clinic_id"] == clinic.clinic_id
    # And the job leaves it alone before its first retry is due
    early = apigw.invoke_job("message-retry")
    assert (early["items_read"], early["sent"], early["shards"]) == (0, 0, early["dispatched"])
    # When it is due and SES still refuses: it waits again, on a longer backoff
    make_due(item)
    again = apigw.invoke_job("message-retry")
    assert (again["items_read"], again["waiting"], again["sent"]) == (1, 1, 0)
    [item] = kept()
    assert (item["state"], item["attempts"]) == ("waiting", 2)
    assert datetime.fromisoformat(item["next_attempt_at"]) > datetime.now(UTC) + timedelta(minutes=4)
    # When the sender is verified and the job runs, twice
    ses_accepts_the_sender()
    make_due(item)
    first, second = apigw.invoke_job("message-retry"), apigw.invoke_job("message-retry")
    # Then the patient got it once, with the link, and it is out of the index
    sent = outbox.messages(to="kept@example.cl")
    assert len(sent) == 1 and created["payment_link"]["url"] in sent[0]["body"]
    assert (first["sent"], second["sent"], second["items_read"]) == (1, 0, 0)
    [item] = kept()
    assert item["state"] == "sent" and item["message_id"] == sent[0]["id"]
    assert "due_pk" not in item and "body" not in item and item["ttl"] > datetime.now(UTC).timestamp()


def test_an_sms_sns_throttles_is_sent_once_though_three_runs_race_for_it(clinic: ClinicKeys) -> None:
    # Given SNS throttles the next SMS (the local fault hook), each of botocore's own attempts
    aws_faults.refuse_next("sns", AWS_TOTAL_ATTEMPTS, "Throttled")
    # When a booking with an email and a phone sends its confirmation
    book(clinic, "race@example.cl", phone="+56961234567")
    # Then the email went now and the SMS waits
    assert len(outbox.messages(to="race@example.cl")) == 1
    assert outbox.messages(to="+56961234567") == []
    [item] = kept()
    assert (item["channel"], item["last_error"]) == ("sms", "Throttled")
    make_due(item)
    # When three runs of the shard race for it (two in threads, one through the whole job)
    deps = MessageRetryDeps(outbox=MessageOutbox(get_settings().app_table),
                            transport=AwsTransport(get_settings().email_sender))
    start = threading.Barrier(3)
    results: list[dict[str, int]] = []

    def run(job: Any) -> None:
        start.wait()
        results.append(job())

    shard = shard_of(clinic.clinic_id)
    threads = [threading.Thread(target=run, args=(lambda: run_message_retry(deps, shard),)) for _ in range(2)]
    threads.append(threading.Thread(target=run, args=(lambda: apigw.invoke_job("message-retry"),)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Then the SMS went out exactly once
    assert len(outbox.messages(to="+56961234567")) == 1
    assert sum(r["sent"] for r in results) == 1
    assert kept()[0]["state"] == "sent"


def test_the_resend_route_answers_as_before_and_the_kept_link_goes_out_once(clinic: ClinicKeys) -> None:
    created = book(clinic, "resend@example.cl")
    assert len(outbox.messages(to="resend@example.cl")) == 1
    # (botocore retries a throttled call itself: SES throttles all of its attempts)
    aws_faults.refuse_next("ses", AWS_TOTAL_ATTEMPTS, "TooManyRequestsException")
    # When staff re-send the link while SES throttles
    sent = clinic.staff().post(clinic.path(f"/appointments/{created['appointment_id']}/payment-link/send"))
    # Then the route answers as it does when the link goes out: accepted for delivery
    assert sent.status == 202 and sent.json() == {"sent": ["email"]}
    [item] = kept()
    assert item["kind"] == "payment_link"
    make_due(item)
    assert apigw.invoke_job("message-retry")["sent"] == 1
    assert apigw.invoke_job("message-retry")["sent"] == 0
    links = [m for m in outbox.messages(to="resend@example.cl") if created["payment_link"]["url"] in m["body"]]
    assert len(links) == 2  # the confirmation, and the re-sent link once


def test_a_message_invalid_in_itself_is_refused_to_the_caller_and_not_kept(stack: TestStack) -> None:
    notifier = AwsNotifier(SENDER)
    bad = OutgoingMessage(channel="email", to="not an address", subject="s", body="b", kind="payment_link",
                          clinic_id="cl_invalid")
    with pytest.raises(ProviderUnavailable):
        notifier.send(bad)
    assert kept() == []


def test_a_message_still_refused_after_its_last_attempt_is_given_up_visibly(clinic: ClinicKeys) -> None:
    ses_refuses_the_sender()
    book(clinic, "never@example.cl")
    [item] = kept()
    boto3.resource("dynamodb").Table(TABLE).update_item(
        Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression="SET attempts = :n",
        ExpressionAttributeValues={":n": MAX_ATTEMPTS - 1})
    make_due(item)
    # When its last attempt is refused too
    report = apigw.invoke_job("message-retry")
    # Then it is given up: out of the index, kept with its error for a person, counted for the alarm
    assert (report["given_up"], report["sent"]) == (1, 0)
    [item] = kept()
    assert (item["state"], item["attempts"], item["last_error"]) == ("given_up", MAX_ATTEMPTS, "MessageRejected")
    assert "due_pk" not in item and item["body"]
    ses_accepts_the_sender()
    assert apigw.invoke_job("message-retry")["items_read"] == 0
    assert outbox.messages(to="never@example.cl") == []
