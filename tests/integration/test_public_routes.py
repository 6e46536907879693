"""The publishable key is public: what the booking widget's routes may and may not do (issue 8,
items 3 and 4). Handlers in-process against moto, through the API Gateway emulation."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from local import outbox
from tests.support.api import ApiClient
from tests.support.cards import STAFF_CONSENT, book, new_clinic, patient_path, save_card
from tests.support.clinics import ClinicKeys, add_service, create_clinic, patient_token, patient_token_secret
from tests.support.env import TestStack

VICTIM = {"name": "Ana Tremblay", "email": "ana@example.ca", "phone": "+15145550100"}
ATTACKER = {"name": "Ana T", "email": "mallory@evil.example", "phone": "+15145550199"}


def starts(days: int = 3) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


def book_online(clinic: ClinicKeys, patient: dict[str, Any], *, service: str = "consulta",
                client: ApiClient | None = None, **extra: Any) -> Any:
    return (client or clinic.widget()).post(f"/v1/public/clinics/{clinic.clinic_id}/appointments", json={
        "patient": patient, "service_id": service, "starts_at": starts(), **extra})


def stored_patient(clinic: ClinicKeys, patient_id: str) -> dict[str, Any] | None:
    item = boto3.resource("dynamodb").Table("AppointmentsTable").get_item(
        Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"PATIENT#{patient_id}"}).get("Item")
    return dict(item) if item else None


@pytest.fixture
def cards_clinic(stack: TestStack) -> ClinicKeys:
    """A Canadian clinic on the Stripe sandbox whose online bookings of "implant" need a card, with a
    patient (p-1) who has a card on file."""
    clinic = new_clinic(stack)
    clinic.admin().patch(clinic.path("/settings"), json={"card_required_for_online_booking": True})
    book(clinic, "p-1", email=VICTIM["email"], phone=VICTIM["phone"])
    save_card(clinic, "p-1")
    return clinic


# ---------------------------------------------------------------------------- no patient without proof
def test_a_public_booking_naming_a_known_patient_changes_nothing_of_theirs(cards_clinic: ClinicKeys) -> None:
    clinic = cards_clinic
    before = stored_patient(clinic, "p-1")
    assert before and before["cards_on_file"] == 1
    outbox_before = len(outbox.messages(to=VICTIM["email"]))
    # When someone with the publishable key books a card-required service naming p-1, other details
    booked = book_online(clinic, {"id": "p-1", **ATTACKER}, service="implant")
    assert booked.status == 201, booked.body
    data = booked.json()
    # Then the booking is for a new patient record, not p-1
    patient_id = data["appointment"]["patient"]["id"]
    assert patient_id != "p-1" and patient_id.startswith("pt_")
    # p-1's stored details are unchanged
    assert stored_patient(clinic, "p-1") == before
    # p-1's card on file is not used: the booking waits for a card of its own
    assert data["appointment"]["status"] == "awaiting_card"
    assert data["next_action"]["type"] == "save_card"
    # and a card request staff then send p-1 goes to p-1's own address, not the attacker's
    sent = clinic.staff().post(patient_path(clinic, "p-1", "/card-requests"), json={"channels": ["email"]})
    assert sent.status == 202, sent.body
    assert len(outbox.messages(to=VICTIM["email"])) == outbox_before + 1
    assert [m for m in outbox.messages(to=ATTACKER["email"]) if "/cards/setup/" in (m["body"] or "")] == []
    # The new record holds what was typed, and nothing from p-1
    fresh = stored_patient(clinic, patient_id)
    assert fresh and fresh["email"] == ATTACKER["email"] and "cards_on_file" not in fresh


def test_known_and_unknown_patient_ids_are_answered_alike(cards_clinic: ClinicKeys) -> None:
    clinic = cards_clinic

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in sorted(value.items())}
        if isinstance(value, list):
            return [shape(v) for v in value]
        return type(value).__name__

    def timed(patient_id: str) -> tuple[int, Any, float]:
        client = clinic.widget().from_address(f"198.51.100.{len(timings) + 1}")
        started = time.perf_counter()
        answer = book_online(clinic, {"id": patient_id, **ATTACKER}, service="implant", client=client)
        return answer.status, answer.json(), time.perf_counter() - started

    timings: list[tuple[str, float]] = []
    answers = {}
    for round_ in range(4):
        for who in ("p-1", f"nobody-{round_}"):
            status, body, took = timed(who)
            timings.append((who, took))
            answers[who if who == "p-1" else "nobody"] = (status, body)
    known, unknown = answers["p-1"], answers["nobody"]
    # Same status, same shape, the same kind of answer (a save-card step for both)
    assert known[0] == unknown[0] == 201
    assert shape(known[1]) == shape(unknown[1])
    assert known[1]["next_action"]["type"] == unknown[1]["next_action"]["type"] == "save_card"
    # and the same order of magnitude of time (no lookup of the named id at all)
    known_median = statistics.median(t for who, t in timings if who == "p-1")
    unknown_median = statistics.median(t for who, t in timings if who != "p-1")
    assert 1 / 3 < known_median / unknown_median < 3, (known_median, unknown_median)


def test_public_card_setup_needs_the_patients_token_and_answers_every_id_alike(cards_clinic: ClinicKeys) -> None:
    clinic = cards_clinic
    url = f"/v1/public/clinics/{clinic.clinic_id}/card-setup"
    answers = [clinic.widget().post(url, json={"patient_id": pid}) for pid in ("p-1", "nobody")]
    assert [a.status for a in answers] == [422, 422]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["error"]["details"][0]["field"] == "patient_token"
    # A token signed with another clinic's secret, or expired, is the same refusal
    other = create_clinic()
    forged = patient_token(clinic, patient_token_secret(other), "p-1")
    secret = patient_token_secret(clinic)
    expired = patient_token(clinic, secret, "p-1", minutes=-5)
    for token in (forged, expired, "not.a.token"):
        refused = clinic.widget().post(url, json={"patient_token": token})
        assert refused.status == 422 and refused.json()["error"]["code"] == "patient_token_invalid"
    # A token of this clinic's site for p-1 and for a patient we have no record of: both 201
    for pid in ("p-1", "p-not-yet-here"):
        started = clinic.widget().post(url, json={"patient_token": patient_token(clinic, secret, pid)})
        assert started.status == 201 and started.json()["page"] == "consent"


# ---------------------------------------------------------------------------- returning patients
def test_a_returning_patient_with_a_token_books_as_themselves(cards_clinic: ClinicKeys) -> None:
    clinic = cards_clinic
    before = stored_patient(clinic, "p-1")
    token = patient_token(clinic, patient_token_secret(clinic), "p-1")
    # When p-1 books the card-required service from the clinic's site, typing other details
    booked = book_online(clinic, {"name": "A. Tremblay", "email": "other@example.ca"}, service="implant",
                         patient_token=token)
    assert booked.status == 201, booked.body
    appointment = booked.json()["appointment"]
    # Then it is p-1's booking, confirmed by the card on file, with p-1's stored details
    assert appointment["patient"]["id"] == "p-1"
    assert appointment["status"] == "confirmed" and booked.json()["next_action"] is None
    assert appointment["patient"]["email"] == VICTIM["email"]
    assert stored_patient(clinic, "p-1") == before
    assert outbox.messages(to="other@example.ca") == []


def test_a_token_for_a_patient_we_do_not_know_yet_creates_them_once(stack: TestStack) -> None:
    clinic = create_clinic(country="CL", currency="CLP")
    add_service(clinic, "control", 0)
    secret = patient_token_secret(clinic)
    token = patient_token(clinic, secret, "site-77", name="Rosa Díaz", email="rosa@example.cl")
    first = book_online(clinic, {"name": "Rosa"}, service="control", patient_token=token)
    assert first.status == 201, first.body
    assert first.json()["appointment"]["patient"]["id"] == "site-77"
    # the record is made from what the clinic's site signed (before what was typed)
    assert (stored_patient(clinic, "site-77") or {})["email"] == "rosa@example.cl"
    # A later booking with other typed details changes nothing
    again = book_online(clinic, {"name": "Someone", "email": "x@example.cl"}, service="control",
                        patient_token=patient_token(clinic, secret, "site-77"))
    assert again.status == 201
    assert (stored_patient(clinic, "site-77") or {})["name"] == "Rosa Díaz"
    assert (stored_patient(clinic, "site-77") or {})["email"] == "rosa@example.cl"


def test_rotating_and_revoking_the_patient_token_secret(stack: TestStack) -> None:
    clinic = create_clinic(country="CL", currency="CLP")
    add_service(clinic, "control", 0)
    # Before the admin makes a secret, no token is accepted
    assert clinic.admin().get(clinic.path("/patient-token-secret")).json()["configured"] is False
    first = patient_token_secret(clinic)
    old_token = patient_token(clinic, first, "p-9")
    second = patient_token_secret(clinic)
    assert first != second and first.startswith("cpts_")
    # The secret is never shown again; the previous one is honoured for a while after a rotation
    shown = clinic.admin().get(clinic.path("/patient-token-secret"))
    assert shown.status == 200 and first not in shown.body.decode() and second not in shown.body.decode()
    assert shown.json()["previous"]["valid_until"]
    assert book_online(clinic, {"name": "P"}, service="control", patient_token=old_token).status == 201
    assert book_online(clinic, {"name": "P"}, service="control",
                       patient_token=patient_token(clinic, second, "p-9")).status == 201
    # Revoked: every token fails; staff keys may not touch the secret
    assert clinic.staff().post(clinic.path("/patient-token-secret")).status == 403
    assert clinic.admin().delete(clinic.path("/patient-token-secret")).status == 204
    refused = book_online(clinic, {"name": "P"}, service="control", patient_token=patient_token(clinic, second, "p-9"))
    assert refused.status == 422 and refused.json()["error"]["code"] == "patient_token_invalid"


# ---------------------------------------------------------------------------- limits
@pytest.fixture
def free_clinic() -> ClinicKeys:
    clinic = create_clinic(country="CL", currency="CLP", name="Clínica Norte")
    add_service(clinic, "control", 0)
    return clinic


def test_thirty_bookings_in_seven_seconds_meet_429s_and_no_message_storm(free_clinic: ClinicKeys) -> None:
    clinic = free_clinic
    client = clinic.widget().from_address("203.0.113.7")
    # The limits count in fixed 10-minute windows: start well inside one, so all thirty fall in it
    # however slow the machine (what the test measures is the counting, not this machine's speed).
    window = 600
    if window - time.time() % window < 60:
        time.sleep(window - time.time() % window + 0.5)
    started = time.time()
    answers = [book_online(clinic, {"name": f"Bot {i}", "email": f"bot{i}@example.cl", "phone": "+56961234567"},
                           service="control", client=client) for i in range(30)]
    assert int(started // window) == int(time.time() // window)  # one window, as a burst is
    statuses = [a.status for a in answers]
    # The first ten pass (a patient never books ten times in ten minutes), the rest are refused
    assert statuses[:10] == [201] * 10 and set(statuses[10:]) == {429}
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 600 and refused.json()["error"]["details"] == [{"retry_after": retry_after}]
    # Ten confirmations went out, not thirty; the refused bookings do not exist
    assert len([m for m in outbox.messages() if m["to"] == "+56961234567"]) == 10
    assert len(clinic.staff().get(clinic.path("/appointments")).json()["appointments"]) == 10
    # Another client address of the same clinic still books; a refused retry with the same
    # Idempotency-Key is not remembered as refused
    assert book_online(clinic, {"name": "Real patient"}, service="control",
                       client=clinic.widget().from_address("192.0.2.44")).status == 201
    again = client.post(f"/v1/public/clinics/{clinic.clinic_id}/appointments", headers={"Idempotency-Key": "k-1"},
                        json={"patient": {"name": "Bot"}, "service_id": "control", "starts_at": starts()})
    assert again.status == 429


@pytest.fixture
def low_clinic_limit() -> Iterator[None]:
    import os

    from clinicpay.settings import get_settings

    os.environ["PUBLIC_WRITES_PER_CLINIC"] = "4"
    get_settings.cache_clear()
    yield
    del os.environ["PUBLIC_WRITES_PER_CLINIC"]
    get_settings.cache_clear()


def test_the_clinic_wide_limit_holds_across_addresses(free_clinic: ClinicKeys, low_clinic_limit: None) -> None:
    clinic = free_clinic
    statuses = [book_online(clinic, {"name": "P"}, service="control",
                            client=clinic.widget().from_address(f"2001:db8:{i}::1")).status for i in range(6)]
    assert statuses == [201] * 4 + [429] * 2
    # another clinic is not affected
    other = create_clinic(country="CL", currency="CLP")
    add_service(other, "control", 0)
    assert book_online(other, {"name": "P"}, service="control").status == 201


def test_a_public_ipv6_client_is_counted_by_its_64(free_clinic: ClinicKeys) -> None:
    clinic = free_clinic
    statuses = [book_online(clinic, {"name": "P"}, service="control",
                            client=clinic.widget().from_address(f"2001:db8:aa:bb::{i:x}")).status for i in range(12)]
    assert statuses == [201] * 10 + [429] * 2


def test_reads_are_limited_too_but_far_above_a_widget(free_clinic: ClinicKeys) -> None:
    clinic = free_clinic
    client = clinic.widget().from_address("203.0.113.9")
    # a patient loading the widget a few dozen times is nowhere near the limit
    assert {client.get(f"/v1/public/clinics/{clinic.clinic_id}/services").status for _ in range(40)} == {200}
    services = client.get(f"/v1/public/clinics/{clinic.clinic_id}/services").json()
    assert services["clinic"]["country"] == "CL"


# ---------------------------------------------------------------------------- messages
def test_sms_from_a_public_booking_only_to_the_clinics_country(free_clinic: ClinicKeys) -> None:
    clinic = free_clinic
    for phone in ("+4791234567", "+18765551234", "+56600123456"):  # Norway, Jamaica, a Chilean 600 number
        refused = book_online(clinic, {"name": "Ana", "phone": phone}, service="control")
        assert refused.status == 422, phone
        [detail] = refused.json()["error"]["details"]
        assert detail["field"] == "patient.phone" and detail["type"] == "phone_country"
        assert detail["country"] == "CL" and detail["calling_code"] == 56
        assert outbox.messages(to=phone) == []
    assert clinic.staff().get(clinic.path("/appointments")).json()["appointments"] == []
    # A Chilean mobile gets its SMS
    assert book_online(clinic, {"name": "Ana", "phone": "+56961234567"}, service="control").status == 201
    assert len(outbox.messages(to="+56961234567")) == 1


def test_staff_may_still_book_a_foreign_phone(free_clinic: ClinicKeys) -> None:
    # The clinic's own staff know their patients: the restriction is for the public routes.
    created = free_clinic.staff().post(free_clinic.path("/appointments"), json={
        "patient": {"id": "p-tourist", "name": "Ola", "phone": "+4791234567"}, "service_id": "control",
        "starts_at": starts()})
    assert created.status == 201, created.body


@pytest.mark.parametrize("name", ["Ana\r\nBcc: victim@example.com", "Ana\nX", "Ana\x00", "Ana\u202egnp.exe",
                                  "Ana\x85", "Ana\tPérez", "\u2066Ana"])
def test_control_characters_in_a_name_are_refused_with_the_field_named(free_clinic: ClinicKeys, name: str) -> None:
    clinic = free_clinic
    public = book_online(clinic, {"name": name, "email": "ana@example.cl"}, service="control")
    staff = clinic.staff().post(clinic.path("/appointments"), json={
        "patient": {"id": "p-1", "name": name, "email": "ana@example.cl"}, "service_id": "control",
        "starts_at": starts()})
    for answer in (public, staff):
        assert answer.status == 422
        assert [d["field"] for d in answer.json()["error"]["details"]] == ["patient.name"]
    assert outbox.messages(to="ana@example.cl") == []


def test_control_characters_in_clinic_service_and_template_text_are_refused(free_clinic: ClinicKeys) -> None:
    clinic = free_clinic
    admin = clinic.admin()
    service = admin.put(clinic.path("/services/x"), json={"name": "Consulta\r\nBcc: x",
                                                            "price": {"amount": 0, "currency": "CLP"}})
    assert service.status == 422 and service.json()["error"]["details"][0]["field"] == "name"
    from tests.support.env import OPERATOR_KEY

    made = ApiClient().with_key(OPERATOR_KEY).post("/v1/clinics", json={
        "name": "Clínica\x00", "country": "CL", "currency": "CLP", "timezone": "America/Santiago", "locale": "es"})
    assert made.status == 422 and made.json()["error"]["details"][0]["field"] == "name"
    path = clinic.path("/message-templates/appointment_created/email/es")
    subject = admin.put(path, json={"subject": "Hola\r\nBcc: x@example.com", "body": "ok"})
    assert subject.status == 422 and subject.json()["error"]["details"][0]["field"] == "subject"
    body = admin.put(path, json={"subject": "Hola", "body": "line\u202e one\nline two"})
    assert body.status == 422 and body.json()["error"]["details"][0]["field"] == "body"
    # Line breaks are what a body is made of (a CRLF is kept as LF)
    assert admin.put(path, json={"subject": "Hola $patient_name", "body": "Hola\r\n$patient_name"}).status == 200


def test_a_crlf_stored_before_names_were_checked_never_reaches_a_subject(free_clinic: ClinicKeys) -> None:
    clinic = free_clinic
    admin = clinic.admin()
    assert admin.put(clinic.path("/message-templates/payment_link/email/es"),
                     json={"subject": "Pago de $patient_name", "body": "Paga aquí: $payment_link"}).status == 200
    add_service(clinic, "consulta", 25000)
    # Given an appointment whose stored name holds a CRLF (written straight to the table, as old data)
    created = clinic.staff().post(clinic.path("/appointments"), json={
        "patient": {"id": "p-old", "name": "Ana", "email": "old@example.cl"}, "service_id": "consulta",
        "starts_at": starts()}).json()
    boto3.resource("dynamodb").Table("AppointmentsTable").update_item(
        Key={"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{created['appointment_id']}"},
        UpdateExpression="SET patient.#n = :n", ExpressionAttributeNames={"#n": "name"},
        ExpressionAttributeValues={":n": "Ana\r\nBcc: victim@example.com"})
    # When staff send the payment link
    sent = clinic.staff().post(clinic.path(f"/appointments/{created['appointment_id']}/payment-link/send"))
    assert sent.status == 202, sent.body
    # Then the subject is one line
    subject = outbox.messages(to="old@example.cl")[-1]["subject"]
    assert "\r" not in subject and "\n" not in subject and subject.startswith("Pago de Ana")


def test_the_booking_widget_answer_is_json_even_when_refused(free_clinic: ClinicKeys) -> None:
    refused = book_online(free_clinic, {"name": "x\x00"}, service="control")
    assert refused.status == 422 and json.loads(refused.body)["error"]["code"] == "validation_error"


def test_staff_card_routes_keep_working_with_minted_ids(cards_clinic: ClinicKeys) -> None:
    # Card and setup ids are minted without digits now; every route that names them still answers.
    clinic = cards_clinic
    [card] = clinic.staff().get(patient_path(clinic, "p-1", "/cards")).json()["cards"]
    assert card["card_id"].startswith("card_") and not any(ch.isdigit() for ch in card["card_id"][5:])
    assert clinic.staff().put(patient_path(clinic, "p-1", f"/cards/{card['card_id']}/default")).status == 200
    charged = clinic.staff().post(patient_path(clinic, "p-1", "/charges"), headers={"Idempotency-Key": "c-1"},
                                  json={"reason": "other", "amount": {"amount": 500, "currency": "CAD"}})
    assert charged.status == 201 and not any(ch.isdigit() for ch in charged.json()["charge_id"][3:])
    assert clinic.staff().post(patient_path(clinic, "p-1", "/card-setup"), json={"consent": STAFF_CONSENT}).status == 201


@pytest.fixture
def two_writes_per_client() -> Iterator[None]:
    import os

    from clinicpay.settings import get_settings

    os.environ["PUBLIC_WRITES_PER_CLIENT"] = "2"
    get_settings.cache_clear()
    yield
    del os.environ["PUBLIC_WRITES_PER_CLIENT"]
    get_settings.cache_clear()


def test_limits_count_after_the_key_and_before_the_body(free_clinic: ClinicKeys, two_writes_per_client: None) -> None:
    clinic = free_clinic
    url = f"/v1/public/clinics/{clinic.clinic_id}/appointments"
    address = "203.0.113.90"
    # Given requests without a valid publishable key: refused (401) and not counted
    stranger = ApiClient().with_headers(**{"X-Clinic-Key": "cp_pub_nosuchkey"}).from_address(address)
    assert {stranger.post(url, json={"patient": {"name": "P"}, "service_id": "control",
                                     "starts_at": starts()}).status for _ in range(5)} == {401}
    widget = clinic.widget().from_address(address)
    assert book_online(clinic, {"name": "First"}, service="control", client=widget).status == 201
    # When the widget's next request has a body that breaks a rule
    invalid = widget.post(url, json={"patient": {"name": "P"}, "service_id": "control", "starts_at": 12})
    # Then it is refused for its fields, and it counted: the client's third write meets the limit
    assert invalid.status == 422
    over = book_online(clinic, {"name": "Third"}, service="control", client=widget)
    assert over.status == 429 and over.json()["error"]["code"] == "rate_limited"
    # even with a body the route would refuse (no field rule is checked past the limit)
    assert widget.post(url, json={"unknown": True}).status == 429
    assert len(clinic.staff().get(clinic.path("/appointments")).json()["appointments"]) == 1


@pytest.fixture
def one_write_a_second() -> Iterator[None]:
    import os

    from clinicpay.settings import get_settings

    os.environ.update({"PUBLIC_WRITES_PER_CLIENT": "1", "PUBLIC_WINDOW_SECONDS": "1"})
    get_settings.cache_clear()
    yield
    for name in ("PUBLIC_WRITES_PER_CLIENT", "PUBLIC_WINDOW_SECONDS"):
        del os.environ[name]
    get_settings.cache_clear()


def test_a_429_is_not_remembered_under_its_idempotency_key(free_clinic: ClinicKeys, one_write_a_second: None) -> None:
    clinic = free_clinic
    client = clinic.widget().from_address("203.0.113.77")
    url = f"/v1/public/clinics/{clinic.clinic_id}/appointments"
    body = {"patient": {"name": "Ana"}, "service_id": "control", "starts_at": starts()}
    # Given a booking refused by the limit, sent with an Idempotency-Key (a fresh key per try: when
    # the two writes straddle a one-second window the keyed one is booked, and its key remembers that)
    for attempt in range(5):
        key = f"widget-key-{attempt}"
        client.post(url, json={**body, "patient": {"name": f"Other {attempt}"}})
        refused = client.post(url, json=body, headers={"Idempotency-Key": key})
        if refused.status == 429:
            break
    assert refused.status == 429
    # When the widget sends the same booking with the same key once the window has passed
    time.sleep(float(refused.headers["Retry-After"]) + 0.2)
    retried = client.post(url, json=body, headers={"Idempotency-Key": key})
    # Then it is booked (the refusal was not stored as the key's answer), and only once
    assert retried.status == 201, retried.body
    again = client.post(url, json=body, headers={"Idempotency-Key": key})
    assert again.status == 201 and again.json() == retried.json()
