"""422 details a client can act on: each names its field as a path and its rule as a stable kind."""

from __future__ import annotations

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from clinicpay.api import resolver
from clinicpay.domain.errors import ValidationFailed
from clinicpay.domain.text import OneLine


class _Patient(BaseModel):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.@]+$")
    name: str = Field(min_length=1, max_length=200)


class _Booking(BaseModel):
    patient: _Patient
    reminder_hours_before: list[int] = Field(default_factory=list, max_length=5)
    ttl_minutes: int = Field(default=60, gt=4, le=10080)


def _details(body: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        _Booking.model_validate(body)
    except ValidationError as error:
        # Powertools puts the body's fields under "body", as it does for a route's request.
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
    else:
        raise AssertionError("the body was valid")
    answer = resolver._validation_error(RequestValidationError(errors))
    assert answer.status_code == 422
    payload = json.loads(str(answer.body))["error"]
    assert payload["code"] == "validation_error"
    return payload["details"]


def test_a_pattern_error_is_kind_pattern_with_the_field_path_and_no_value() -> None:
    [detail] = _details({"patient": {"id": "Diego Pérez 4242424242424242", "name": "Diego"}})
    assert detail["field"] == "patient.id" and detail["path"] == ["patient", "id"]
    assert detail["kind"] == "pattern" and detail["type"] == "string_pattern_mismatch"
    assert "4242" not in json.dumps(detail)  # the value sent is never echoed


def test_missing_bounds_and_list_indexes() -> None:
    details = {d["field"]: d for d in _details({"patient": {"id": "p-1", "name": ""}, "ttl_minutes": 4,
                                                "reminder_hours_before": [1, "x"]})}
    assert details["patient.name"]["kind"] == "too_short" and details["patient.name"]["limit"] == 1
    assert details["ttl_minutes"]["kind"] == "too_small" and details["ttl_minutes"]["limit"] == 4
    assert details["ttl_minutes"]["exclusive"] is True
    assert details["reminder_hours_before.1"]["path"] == ["reminder_hours_before", 1]
    assert details["reminder_hours_before.1"]["kind"] == "type"
    [missing] = _details({})
    assert missing["path"] == ["patient"] and missing["kind"] == "missing" and "limit" not in missing


def test_details_a_use_case_writes_get_the_same_path_and_kind() -> None:
    error = ValidationFailed(details=[{"field": "amount.currency", "message": "must be CLP"},
                                      {"field": "patient.name", "message": "Field required", "type": "missing"},
                                      {"retry_after": 3}])
    body = json.loads(str(resolver._domain_error(error).body))["error"]["details"]
    assert body[0] == {"field": "amount.currency", "message": "must be CLP", "type": "", "path": ["amount", "currency"],
                       "kind": "invalid"}
    assert body[1]["kind"] == "missing" and body[1]["path"] == ["patient", "name"]
    assert body[2] == {"retry_after": 3}


class _Named(BaseModel):
    # What the service, clinic and patient names are: one line (an after-validator), then its length.
    name: OneLine = Field(min_length=1, max_length=200)
    address: OneLine | None = Field(default=None, min_length=1, max_length=300)
    names: dict[str, Annotated[OneLine, Field(min_length=1, max_length=200)]] = Field(default_factory=dict,
                                                                                       max_length=2)


def test_a_one_line_text_out_of_bounds_is_a_length_of_characters_not_a_count_of_values() -> None:
    try:
        _Named.model_validate({"name": "x" * 201, "address": "", "names": {"en": "", "fr": "y", "uk": "z"}})
    except ValidationError as error:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
    answer = resolver._validation_error(RequestValidationError(errors))
    details = {d["field"]: d for d in json.loads(str(answer.body))["error"]["details"]}
    # pydantic says too_long/too_short (its words for a collection) once a validator wraps the str
    assert (details["name"]["kind"], details["name"]["limit"]) == ("too_long", 200)
    assert (details["names.en"]["kind"], details["names.en"]["limit"]) == ("too_short", 1)
    assert (details["address"]["kind"], details["address"]["limit"]) == ("too_short", 1)
    # a dict with too many entries is still a count of values
    try:
        _Named.model_validate({"name": "x", "names": {"en": "a", "fr": "b", "uk": "c"}})
    except ValidationError as error:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
    [many] = json.loads(str(resolver._validation_error(RequestValidationError(errors)).body))["error"]["details"]
    assert (many["field"], many["kind"], many["limit"]) == ("names", "too_many", 2)
