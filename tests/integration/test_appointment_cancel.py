"""POST .../appointments/{appointment_id}/cancel through the handlers, moto and the Fintoc sandbox:
what a cancel stops (the link, reminders) and what it does not touch (money paid, another clinic)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.integration.test_payment_links import book, open_link, token_of
from tests.support.clinics import ClinicKeys, add_service, connect_fintoc, create_clinic
from tests.support.env import TestStack


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = create_clinic()
    connect_fintoc(keys, stack.sandbox_url("fintoc"), stack.base_url)
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "fintoc", "reminder_hours_before": [24]})
    add_service(keys, "consulta", 25000)
    return keys


def stored(clinic: ClinicKeys, appointment_id: str) -> dict[str, Any]:
    return dict(boto3.resource("dynamodb").Table("AppointmentsTable").get_item(
        Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{appointment_id}"}, ConsistentRead=True)["Item"])


def cancel(clinic: ClinicKeys, appointment_id: str, body: Any = None) -> Any:
    return clinic.staff().post(clinic.path(f"/appointments/{appointment_id}/cancel"), json=body)


def test_a_cancel_stops_the_link_and_the_reminders_once(clinic: ClinicKeys) -> None:
    created = book(clinic).json()
    aid = created["appointment_id"]
    assert "reminder_pk" in stored(clinic, aid)

    answer = cancel(clinic, aid, {"reason": "El paciente avisó"})

    assert answer.status == 200, answer.body
    body = answer.json()
    assert (body["status"], body["cancel_reason"]) == ("cancelled", "El paciente avisó")
    item = stored(clinic, aid)
    assert "reminder_pk" not in item and "reminder_due_at" not in item
    # the link asks nothing any more, and staff cannot send it
    assert open_link(token_of(created)).status == 409
    sent = clinic.staff().post(clinic.path(f"/appointments/{aid}/payment-link/send"), json={})
    assert sent.status == 409 and sent.json()["error"]["code"] == "appointment_cancelled"
    # again: the same appointment, its first cancel kept
    again = cancel(clinic, aid, {"reason": "otra razón"})
    assert again.status == 200
    assert (again.json()["cancel_reason"], again.json()["cancelled_at"]) == ("El paciente avisó", body["cancelled_at"])
    # and the list tells cancelled bookings apart
    other = book(clinic).json()["appointment_id"]
    listed = {s: [a["appointment_id"] for a in clinic.staff().get(clinic.path("/appointments"), query={"status": s})
                  .json()["appointments"]] for s in ("cancelled", "confirmed")}
    assert listed == {"cancelled": [aid], "confirmed": [other]}


def test_another_clinic_cannot_cancel_and_unknown_ids_are_404(clinic: ClinicKeys, stack: TestStack) -> None:
    created = book(clinic).json()
    other = create_clinic()
    refused = other.staff().post(other.path(f"/appointments/{created['appointment_id']}/cancel"), json={})
    assert refused.status == 404
    # and the other clinic's path with this clinic's key is refused before anything is read (as no such clinic)
    assert clinic.staff().post(other.path(f"/appointments/{created['appointment_id']}/cancel")).status == 404
    assert cancel(clinic, "ap-does-not-exist").status == 404
    assert stored(clinic, created["appointment_id"])["status"] == "confirmed"
    # hostile bodies change nothing
    assert cancel(clinic, created["appointment_id"], {"reason": "x", "refund": True}).status == 422
    assert stored(clinic, created["appointment_id"])["status"] == "confirmed"


def test_a_cancelled_appointment_gets_no_reminder_even_when_one_was_due(clinic: ClinicKeys) -> None:
    from datetime import UTC, datetime, timedelta

    from local import outbox
    from local.apigw import invoke_job

    # Given a booking whose reminder is due (time moved on by rewriting the due time)
    email = "cancelled-reminder@example.cl"
    created = book(clinic, email=email, hours_ahead=30).json()
    due = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    boto3.resource("dynamodb").Table("AppointmentsTable").update_item(
        Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{created['appointment_id']}"},
        UpdateExpression="SET reminder_due_at = :d, reminders_pending = :p", ExpressionAttributeValues={":d": due, ":p": [due]})
    before = len(outbox.messages(to=email))
    # When staff cancel it and the reminders job runs
    assert cancel(clinic, created["appointment_id"]).status == 200
    invoke_job("reminders")
    # Then nothing more reaches the patient
    assert len(outbox.messages(to=email)) == before


def test_a_checkout_opened_before_the_cancel_and_paid_after_is_recorded_and_refundable(stack: TestStack,
                                                                                        clinic: ClinicKeys) -> None:
    import requests

    from tests.integration.test_refunds import appointment, payments, refund, wait_for
    from tests.support.api import ApiClient

    # Given the patient opened the link's checkout, then staff cancelled the appointment
    created = book(clinic).json()
    aid = created["appointment_id"]
    opened = ApiClient().get(f"/pay/{token_of(created)}")
    assert opened.status == 303, opened.body
    assert cancel(clinic, aid).status == 200
    # When the patient completes that checkout anyway
    paid = requests.post(f"{opened.headers['Location']}/pay", allow_redirects=False, timeout=10)
    assert paid.status_code in (302, 303)
    # Then the money is on the appointment, which stays cancelled, and staff can give it back
    shown = wait_for(lambda: (a := appointment(clinic, aid))["payment_status"] == "paid" and a)
    assert (shown["status"], shown["amount_paid"]["amount"]) == ("cancelled", 25000)
    assert payments(clinic, aid)["payments"][0]["refundable"]["amount"] == 25000
    given_back = refund(clinic, aid, {"reason": "Hora cancelada"})
    assert given_back.status == 201, given_back.body
    assert given_back.json()["amount"]["amount"] == 25000
    # and a cancel once paid still leaves the money where it is
    assert cancel(clinic, aid).json()["amount_paid"]["amount"] == 25000


def test_a_cancel_landing_while_a_click_makes_its_checkout_leaves_no_checkout_to_pay(
        clinic: ClinicKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from clinicpay.repositories.appointments import AppointmentRepository

    created = book(clinic).json()
    aid = created["appointment_id"]
    store_session = AppointmentRepository.save_session

    def cancelled_meanwhile(self: AppointmentRepository, clinic_id: str, appointment_id: str, *args: Any,
                            **kwargs: Any) -> bool:
        # The click read the appointment (not cancelled) and made the provider's checkout; staff's
        # cancel lands before the checkout is stored on the appointment.
        assert self.cancel(clinic_id, appointment_id, datetime.now(UTC), None)
        return store_session(self, clinic_id, appointment_id, *args, **kwargs)

    monkeypatch.setattr(AppointmentRepository, "save_session", cancelled_meanwhile)
    opened = open_link(token_of(created))
    # The patient is not sent to a checkout for a cancelled appointment, and none is kept on it
    assert opened.status == 409, (opened.status, opened.headers.get("Location"))
    assert "provider_session" not in stored(clinic, aid)
