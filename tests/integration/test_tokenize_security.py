"""What the cards API never accepts, stores, logs or reveals (issue 3, "Bad input and security")."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
import requests

from tests.support.api import ApiClient
from tests.support.cards import STAFF_CONSENT, VISA, book, new_clinic, patient_path, save_card
from tests.support.clinics import ClinicKeys
from tests.support.env import TestStack

CARD = "4000002760003184"
SHAPES = [CARD, "4000 0027 6000 3184", "4000-0027-6000-3184"]


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = new_clinic(stack)
    book(keys, "p-1")
    return keys


def all_items() -> list[dict[str, Any]]:
    found = []
    for name in ("AppointmentsTable", "CardsTable", "IdempotencyTable"):
        found += boto3.resource("dynamodb").Table(name).scan()["Items"]
    return found


def digits_only(text: str) -> str:
    return re.sub(r"[\s\-]", "", text)


def log_everything_we_log(caplog: pytest.LogCaptureFixture) -> None:
    """Our logger at DEBUG; everything else at INFO, the level the deployed stack runs at (botocore's
    own DEBUG output echoes whole API calls, and is never switched on in the functions)."""
    from clinicpay.observability import logger

    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger=logger.name)


def our_log_text(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """Every log line our code wrote (message and structured keys), plus anything printed. The
    sandboxes' HTTP access log (werkzeug) is the processor's log, not ours, and is left out."""
    records = [r for r in caplog.records if not r.name.startswith("werkzeug")]
    parts = [f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in records]
    captured = capsys.readouterr()
    return "\n".join([*parts, captured.out, captured.err])


def attempts(clinic: ClinicKeys, shape: str) -> list[tuple[str, str, dict[str, Any] | None, dict[str, str] | None]]:
    """(method, path, json body, query) for every tokenize route, with the card number in some field."""
    p = patient_path(clinic, "p-1")
    return [
        ("POST", f"{p}/cards", {"payment_method": shape, "consent": STAFF_CONSENT}, None),
        ("POST", f"{p}/cards", {"payment_method": "pm_card_visa", "consent": {**STAFF_CONSENT, "granted_by": shape}},
         None),
        ("POST", f"{p}/card-setup", {"consent": {**STAFF_CONSENT, "text_version": "v1"}, "note": {"deep": [shape]}},
         None),
        ("POST", f"{p}/card-requests", {"channels": ["email"], "message": f"card {shape} thanks"}, None),
        ("POST", f"{p}/charges", {"reason": "other", "amount": {"amount": 100, "currency": "CAD"}, "memo": shape}, None),
        ("GET", f"{p}/cards", None, {"search": shape}),
        ("POST", f"/v1/public/clinics/{clinic.clinic_id}/card-setup", {"patient_id": shape}, None),
        ("GET", patient_path(clinic, digits_only(shape), "/cards"), None, None),
    ]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_card_number_in_any_field_is_refused_and_reaches_no_table_and_no_log(
        clinic: ClinicKeys, shape: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    log_everything_we_log(caplog)
    client = clinic.staff().with_headers(**{"X-Clinic-Key": clinic.publishable_key})
    for method, path, body, query in attempts(clinic, shape):
        # When a request carries the number
        answer = client.request(method, path, json_body=body, query=query)
        # Then it is a 422 card_data_not_accepted that does not echo it
        assert answer.status == 422, (method, path, answer.body)
        assert answer.json()["error"]["code"] == "card_data_not_accepted"
        assert CARD not in digits_only(answer.body.decode())
    # And our consent page refuses it too, as a form field
    form = ApiClient().request("POST", "/cards/setup/" + "t" * 32, raw=urlencode({"consent": "yes", "x": shape}).encode(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status == 422
    # And the number is in no DynamoDB item and no line we logged
    assert CARD not in digits_only(json.dumps(all_items(), default=str))
    assert CARD not in digits_only(our_log_text(caplog, capsys))


@pytest.mark.parametrize("field", [{"exp_month": 12, "exp_year": 2034}, {"cvc": "123"}, {"expiry": "12/34"},
                                   {"card": {"cvv": "123"}}])
def test_expiry_dates_and_cvcs_are_refused_too(clinic: ClinicKeys, field: dict[str, Any]) -> None:
    answer = clinic.staff().post(patient_path(clinic, "p-1", "/cards"),
                                 json={"payment_method": "pm_card_visa", "consent": STAFF_CONSENT, **field})
    assert answer.status == 422 and answer.json()["error"]["code"] == "card_data_not_accepted"
    assert clinic.staff().get(patient_path(clinic, "p-1", "/cards")).json()["cards"] == []


def test_processor_tokens_never_leave_in_a_response_or_a_log_line(
        clinic: ClinicKeys, stack: TestStack, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    log_everything_we_log(caplog)
    staff = clinic.staff()
    # Given cards saved both ways, listed, made default, charged, removed
    hosted = save_card(clinic, "p-1", VISA)
    answers = [staff.post(patient_path(clinic, "p-1", "/cards"),
                          json={"payment_method": "pm_card_mastercard", "consent": STAFF_CONSENT})]
    answers.append(staff.get(patient_path(clinic, "p-1", "/cards")))
    answers.append(staff.put(patient_path(clinic, "p-1", f"/cards/{hosted['card_id']}/default")))
    answers.append(staff.post(patient_path(clinic, "p-1", "/charges"),
                              json={"reason": "other", "amount": {"amount": 700, "currency": "CAD"}}))
    answers.append(staff.post(patient_path(clinic, "p-1", "/card-setup"), json={"consent": STAFF_CONSENT}))
    answers.append(staff.delete(patient_path(clinic, "p-1", f"/cards/{hosted['card_id']}")))
    # When we look for the processor's tokens (PaymentMethod ids) anywhere they must not be
    key = f"sk_test_{clinic.clinic_id.replace('-', '_')}"
    events = requests.get(f"{stack.sandbox_url('stripe')}/_control/events", timeout=10).json()["events"]
    tokens = {e["data"]["object"]["id"] for e in events if e["data"]["object"]["id"].startswith("pm_")}
    tokens |= {e["data"]["object"].get("payment_method") for e in events if e["type"].startswith("setup_intent.")}
    tokens.discard(None)
    assert len(tokens) >= 2
    # Then no response carries one, nor the secret key, and no log line we wrote does
    bodies = "\n".join(a.body.decode() for a in answers)
    logged = our_log_text(caplog, capsys)
    for token in tokens:
        assert token not in bodies and token not in logged
    assert key not in bodies and key not in logged
    # While the cards table does hold the live tokens (that is what it is for)
    stored = json.dumps(boto3.resource("dynamodb").Table("CardsTable").scan()["Items"], default=str)
    assert any(token in stored for token in tokens)


def test_another_clinics_patient_or_card_is_404(clinic: ClinicKeys, stack: TestStack) -> None:
    # Given clinic A with a patient and a card, and clinic B
    card = save_card(clinic, "p-1", VISA)
    other = new_clinic(stack)
    book(other, "p-b")
    # When clinic B's staff use their key on clinic A's paths
    for method, path in (("GET", patient_path(clinic, "p-1", "/cards")),
                         ("DELETE", patient_path(clinic, "p-1", f"/cards/{card['card_id']}")),
                         ("PUT", patient_path(clinic, "p-1", f"/cards/{card['card_id']}/default"))):
        assert other.staff().request(method, path).status == 404
    # Or ask for clinic A's patient under their own clinic
    assert other.staff().get(patient_path(other, "p-1", "/cards")).status == 404
    assert other.staff().post(patient_path(other, "p-1", "/card-setup"), json={}).status == 404
    # Or for clinic A's card under their own patient
    assert other.staff().delete(patient_path(other, "p-b", f"/cards/{card['card_id']}")).status == 404
    # Then clinic A's card is untouched
    assert clinic.staff().get(patient_path(clinic, "p-1", "/cards")).json()["cards"][0]["card_id"] == card["card_id"]


def test_keys_and_roles(clinic: ClinicKeys) -> None:
    path = patient_path(clinic, "p-1", "/cards")
    assert ApiClient().get(path).status == 401
    assert ApiClient().with_key("cp_staff_not_a_key").get(path).status == 401
    assert clinic.widget().get(path).status == 401  # the publishable key is not a staff key
    assert ApiClient().with_key(clinic.publishable_key).get(path).status == 403
    assert clinic.admin().get(path).status == 200


def test_the_cards_table_is_readable_only_by_tokenize() -> None:
    from local import template

    doc = template.load()
    readers = [name for name, resource in doc["Resources"].items() if resource["Type"] == "AWS::Serverless::Function"
               and "CardsTable" in json.dumps(resource["Properties"].get("Policies", []))]
    assert readers == ["TokenizeFunction"]
