"""What a patient receives, counted in the outbox (moto's SES and SNS): one message per event, each
email with an HTML part next to its text, dates in the patient's language (issue 11, item 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from local import outbox
from local.apigw import invoke_job
from tests.integration.test_payment_links import appointment, open_link, pay_at_sandbox, token_of, wait_for
from tests.support.clinics import ClinicKeys, add_service, connect_fintoc, create_clinic
from tests.support.env import TestStack

EMAIL, PHONE = "sofia@example.cl", "+56987654321"


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = create_clinic()
    connect_fintoc(keys, stack.sandbox_url("fintoc"), stack.base_url)
    keys.admin().patch(keys.path("/settings"), json={"show_payment_link_in_email": True, "default_gateway": "fintoc"})
    add_service(keys, "consulta", 25000)
    return keys


def widget_booking(clinic: ClinicKeys, *, name: str = "Sofía <b>Díaz</b> & Co", days: int = 3) -> dict[str, Any]:
    starts = (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()
    answer = clinic.widget().post(f"/v1/public/clinics/{clinic.clinic_id}/appointments", json={
        "patient": {"name": name, "email": EMAIL, "phone": PHONE}, "service_id": "consulta", "starts_at": starts})
    assert answer.status == 201, answer.body
    booked: dict[str, Any] = answer.json()
    assert booked["next_action"]["type"] == "pay"
    return booked


def sent_to_patient() -> list[dict[str, Any]]:
    return outbox.messages(to=EMAIL) + outbox.messages(to=PHONE)


def make_held_confirmation_due(clinic: ClinicKeys, appointment_id: str) -> None:
    """Time moves on: the held confirmation (the first pending entry) is due a minute ago."""
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    key = {"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{appointment_id}"}
    item = table.get_item(Key=key, ConsistentRead=True)["Item"]
    due = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert item["reminders_pending"][0] == item["confirmation_due_at"]
    table.update_item(Key=key, UpdateExpression="SET reminder_due_at = :d, confirmation_due_at = :d, "
                                                "reminders_pending = :p",
                      ExpressionAttributeValues={":d": due, ":p": [due, *item["reminders_pending"][1:]]})


def test_booking_and_paying_in_the_widget_is_one_message_the_receipt(clinic: ClinicKeys) -> None:
    # Given a patient who books in the widget and goes straight to pay
    booked = widget_booking(clinic)
    # Then nothing is sent while they pay (no "you can pay here" to someone already paying)
    assert sent_to_patient() == []
    # When they pay
    pay_at_sandbox(open_link(token_of(booked["appointment"])).headers["Location"])
    appointment_id = booked["appointment"]["appointment_id"]
    wait_for(lambda: appointment(clinic, appointment_id).get("payment_status") == "paid")
    # Then they get exactly one message, the receipt by email, which confirms the booking
    [receipt] = wait_for(sent_to_patient)
    assert receipt["channel"] == "email" and receipt["kind"] == "payment_receipt"
    assert "Recibimos tu pago de 25.000 CLP" in receipt["body"]
    # And the held confirmation never goes out: the payment took the appointment off the due index
    invoke_job("reminders")
    assert len(sent_to_patient()) == 1


def test_a_patient_who_does_not_pay_gets_the_confirmation_with_the_link_once(clinic: ClinicKeys) -> None:
    booked = widget_booking(clinic)
    appointment_id = booked["appointment"]["appointment_id"]
    assert sent_to_patient() == []
    make_held_confirmation_due(clinic, appointment_id)
    first, second = invoke_job("reminders"), invoke_job("reminders")
    assert first["sent"] == 1 and second["sent"] == 0
    mail = outbox.messages(to=EMAIL)
    sms = outbox.messages(to=PHONE)
    assert [m["kind"] for m in mail] == ["appointment_created"] and [m["kind"] for m in sms] == ["appointment_created"]
    assert booked["appointment"]["payment_link"]["url"] in mail[0]["body"]
    assert booked["appointment"]["payment_link"]["url"] in sms[0]["body"]
    # The 24-hour reminder stays pending after it
    item = boto3.resource("dynamodb").Table("AppointmentsTable").get_item(
        Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{appointment_id}"}, ConsistentRead=True)["Item"]
    assert len(item["reminders_pending"]) == 1 and item["reminders_pending"][0] != item["confirmation_due_at"]


def test_an_email_carries_an_escaped_html_part_and_a_text_part_with_a_dated_weekday(clinic: ClinicKeys) -> None:
    booked = widget_booking(clinic)
    make_held_confirmation_due(clinic, booked["appointment"]["appointment_id"])
    invoke_job("reminders")
    [mail] = outbox.messages(to=EMAIL)
    # The text part (the source of truth) names the patient as typed, the weekday and the zone
    assert mail["body"].startswith("Hola Sofía <b>Díaz</b> & Co,")
    assert "(hora de Chile)" in mail["body"]
    weekdays = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
    assert any(f"el {day}, " in mail["body"] for day in weekdays)
    # The HTML part shows the same words, the patient's markup escaped, the link clickable
    html = mail["html"]
    assert html and '<html lang="es">' in html
    assert "Sofía &lt;b&gt;Díaz&lt;/b&gt; &amp; Co" in html and "<b>Díaz</b>" not in html
    assert f'href="{booked["appointment"]["payment_link"]["url"]}"' in html
    # The SMS is plain and shorter: no zone name
    [sms] = outbox.messages(to=PHONE)
    assert "(hora de Chile)" not in sms["body"] and sms["html"] is None


def test_the_outbox_page_renders_the_html_email_and_keeps_its_json(clinic: ClinicKeys) -> None:
    from local import pages

    booked = widget_booking(clinic, name="Ana <i>Test</i>")
    make_held_confirmation_due(clinic, booked["appointment"]["appointment_id"])
    invoke_job("reminders")
    rows = outbox.messages(to=EMAIL)
    [row] = rows
    # The JSON form: the text part as sent (moto keeps only the HTML part), and the HTML part
    assert row["text"] == row["body"] and row["text"].startswith("Hola Ana <i>Test</i>,")
    assert row["html"].startswith("<!doctype html>") and row["kind"] == "appointment_created" and row["language"] == "es"
    page = pages.outbox_page(rows, to=EMAIL)
    assert '<iframe class="email" sandbox=""' in page and "Plain-text part" in page
    assert "Ana <i>Test</i>" not in page  # escaped in the frame's srcdoc and in the text view


def test_a_receipt_names_its_references_the_receipt_page_and_the_clinics_contact(clinic: ClinicKeys) -> None:
    answer = clinic.admin().patch(clinic.path("/settings"), json={
        "address": "Av. Providencia 1234, Santiago", "phone": "+56221234567", "website": "https://sur.example"})
    assert answer.status == 200 and answer.json()["address"] == "Av. Providencia 1234, Santiago"
    assert clinic.admin().patch(clinic.path("/settings"), json={"phone": "call us"}).status == 422
    booked = widget_booking(clinic)
    link = booked["appointment"]["payment_link"]["url"]
    pay_at_sandbox(open_link(token_of(booked["appointment"])).headers["Location"])
    [receipt] = wait_for(sent_to_patient)
    paid = appointment(clinic, booked["appointment"]["appointment_id"])
    assert f"N.º de reserva: {paid['appointment_id']}" in receipt["body"]
    assert f"Referencia del pago: {paid['payment']['reference']}" in receipt["body"]
    assert f"Tu comprobante y el archivo para tu calendario: {link}" in receipt["body"]
    assert receipt["body"].endswith("Av. Providencia 1234, Santiago\n+56221234567\nhttps://sur.example")


def test_a_service_named_in_the_patients_language_reads_so_in_messages_and_on_the_receipt(clinic: ClinicKeys) -> None:
    put = clinic.admin().put(clinic.path("/services/consulta"), json={
        "name": "Consulta", "names": {"en": "Consultation", "uk": "Консультація"},
        "price": {"amount": 25000, "currency": "CLP"}, "requires_online_payment": True})
    assert put.status == 200 and put.json()["names"] == {"en": "Consultation", "uk": "Консультація"}
    bad = clinic.admin().put(clinic.path("/services/consulta"), json={
        "name": "Consulta", "names": {"de": "Beratung"}, "price": {"amount": 25000, "currency": "CLP"}})
    assert bad.status == 422
    listed = clinic.widget().get(f"/v1/public/clinics/{clinic.clinic_id}/services").json()["services"]
    assert listed[0]["names"] == {"en": "Consultation", "uk": "Консультація"}
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    for email, locale in (("en@example.cl", "en"), ("es@example.cl", "es")):
        made = clinic.staff().post(clinic.path("/appointments"), json={
            "patient": {"id": f"p-{locale}", "name": "Pat", "email": email, "locale": locale},
            "service_id": "consulta", "starts_at": starts, "booked_by": "staff"})
        assert made.status == 201, made.body
    [english] = outbox.messages(to="en@example.cl")
    [spanish] = outbox.messages(to="es@example.cl")
    assert "Your Consultation appointment at" in english["body"]
    assert "Tu hora de Consulta en" in spanish["body"]  # no Spanish name given: the default name


def test_the_held_confirmation_leaves_the_link_out_when_the_clinic_shows_no_links_in_emails(clinic: ClinicKeys) -> None:
    clinic.admin().patch(clinic.path("/settings"), json={"show_payment_link_in_email": False})
    booked = widget_booking(clinic)
    make_held_confirmation_due(clinic, booked["appointment"]["appointment_id"])
    assert invoke_job("reminders")["sent"] == 1
    [mail] = outbox.messages(to=EMAIL)
    assert mail["kind"] == "appointment_created" and "/pay/" not in mail["body"]
