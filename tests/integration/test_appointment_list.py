"""GET /v1/clinics/{clinic_id}/appointments through the handler and moto: search, order, cursor
pages, the CSV, and what a hostile cursor or limit gets (docs/API.md, Appointments)."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.clinics import ClinicKeys, add_service, create_clinic
from tests.support.env import TestStack


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = create_clinic()
    add_service(keys, "control", 12000, online=False)
    return keys


def book(clinic: ClinicKeys, aid: str, hours: float, name: str, phone: str | None = None,
         email: str | None = None) -> None:
    patient: dict[str, Any] = {"id": f"p-{aid}", "name": name}
    if phone:
        patient["phone"] = phone
    if email:
        patient["email"] = email
    starts = (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()
    created = clinic.staff().post(clinic.path("/appointments"), json={
        "appointment_id": aid, "patient": patient, "service_id": "control", "starts_at": starts})
    assert created.status == 201, created.body


def listed(clinic: ClinicKeys, **query: str) -> dict[str, Any]:
    answer = clinic.staff().get(clinic.path("/appointments"), query=query)
    assert answer.status == 200, answer.body
    return dict(answer.json())


@pytest.fixture
def booked(clinic: ClinicKeys) -> ClinicKeys:
    book(clinic, "ap-past", -30, "Marta Núñez", phone="+56911112222")
    book(clinic, "ap-soon", 2, "José Álvarez", email="jose@example.cl")
    book(clinic, "ap-later", 50, "Ana Pérez", phone="+56987654321")
    book(clinic, "ap-oldest", -200, "Diego Soto")
    return clinic


def test_upcoming_first_then_past_and_cursor_pages_walk_every_row_once(booked: ClinicKeys) -> None:
    first = listed(booked, limit="3")
    assert [a["appointment_id"] for a in first["appointments"]] == ["ap-soon", "ap-later", "ap-past"]
    assert first["next_cursor"] and first["complete"] is True
    second = listed(booked, limit="3", cursor=first["next_cursor"])
    assert [a["appointment_id"] for a in second["appointments"]] == ["ap-oldest"]
    assert second["next_cursor"] is None


def test_without_new_parameters_the_answer_still_holds_every_appointment(booked: ClinicKeys) -> None:
    assert len(listed(booked)["appointments"]) == 4
    assert [a["appointment_id"] for a in listed(booked, payment_status="not_required", sort="starts_at")[
        "appointments"]] == ["ap-oldest", "ap-past", "ap-soon", "ap-later"]


def test_search_by_part_of_a_name_without_accents_and_by_phone_digits(booked: ClinicKeys) -> None:
    assert [a["appointment_id"] for a in listed(booked, q="alvarez")["appointments"]] == ["ap-soon"]
    assert [a["appointment_id"] for a in listed(booked, q="8765 4321")["appointments"]] == ["ap-later"]
    assert [a["appointment_id"] for a in listed(booked, q="JOSE@EXAMPLE")["appointments"]] == ["ap-soon"]


def test_a_cursor_from_another_clinic_is_a_400_and_shows_nothing_of_either(booked: ClinicKeys, stack: TestStack) -> None:
    other = create_clinic()
    add_service(other, "control", 12000, online=False)
    book(other, "ap-theirs-1", 5, "Otra Persona")
    book(other, "ap-theirs-2", 6, "Otra Persona")
    theirs = listed(other, limit="1")["next_cursor"]
    answer = booked.staff().get(booked.path("/appointments"), query={"limit": "1", "cursor": theirs})
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "invalid_cursor"
    assert "ap-theirs" not in answer.body.decode() and "ap-soon" not in answer.body.decode()


def test_a_cursor_rewritten_to_name_another_clinic_is_still_refused(booked: ClinicKeys) -> None:
    mine = listed(booked, limit="1")["next_cursor"]
    body = json.loads(base64.urlsafe_b64decode(mine + "=" * (-len(mine) % 4)))
    body["c"] = "some-other-clinic"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    answer = booked.staff().get(booked.path("/appointments"), query={"cursor": forged})
    assert answer.status == 400 and answer.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("limit", ["0", "201", "-5", "ten"])
def test_limit_out_of_bounds_is_refused(booked: ClinicKeys, limit: str) -> None:
    answer = booked.staff().get(booked.path("/appointments"), query={"limit": limit})
    assert answer.status in (400, 422)
    assert set(answer.json()["error"]) == {"code", "message", "details"}


def test_csv_with_the_same_filters_money_and_local_time(booked: ClinicKeys) -> None:
    book(booked, "ap-formula", 3, "=cmd|' /C calc'!A0", phone="+56933334444")
    for query, headers in (({"format": "csv", "q": "=cmd"}, {}), ({"q": "=cmd"}, {"Accept": "text/csv"})):
        answer = booked.staff().get(booked.path("/appointments"), query=query, headers=headers)
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/csv")
        text = answer.body.decode("utf-8")
        assert text.startswith("\ufeff")
        rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
        assert [r["appointment_id"] for r in rows] == ["ap-formula"]
        assert rows[0]["patient_name"] == "'=cmd|' /C calc'!A0"
        assert rows[0]["price"] == "12000" and rows[0]["currency"] == "CLP"
        assert rows[0]["time_zone"] == "America/Santiago"
