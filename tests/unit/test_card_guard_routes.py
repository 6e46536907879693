"""The card-number guard, route by route (issue 8, item 5): every route of the template has its line
in api/card_guard.py; a card number in any free-text field of any route's body (taken from the
served OpenAPI document), in any query parameter and as any path segment is refused; an id field
refuses a card number only as its whole value; credentials and webhooks are not scanned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clinicpay.api.card_guard import GUARDS, guard_for
from clinicpay.api.resolver import card_data_refusal
from local import template

OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "layers/shared/python/clinicpay/api/openapi.json").read_text())
SHAPES = ["4000002760003184", "4000 0027 6000 3184", "4000-0027-6000-3184"]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = OPENAPI["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def string_fields(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the string fields a body may hold (nested objects and optional ones too)."""
    schema = _resolve(schema)
    found: list[str] = []
    for option in schema.get("anyOf", []):
        found += string_fields(option, prefix)
    if schema.get("type") == "string" and prefix and "enum" not in schema and "format" not in schema:
        found.append(prefix)
    for name, sub in schema.get("properties", {}).items():
        found += string_fields(sub, f"{prefix}.{name}" if prefix else name)
    return list(dict.fromkeys(found))


def body_schema(route_key: str) -> dict[str, Any] | None:
    method, path = route_key.split(" ", 1)
    operation = OPENAPI["paths"].get(path, {}).get(method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    return content["schema"] if content else None


def nested(field: str, value: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    node = body
    *parents, leaf = field.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return body


def event(route_key: str, *, body: Any = None, query: str = "", params: dict[str, str] | None = None) -> dict[str, Any]:
    method, path = route_key.split(" ", 1)
    params = params or {name: f"x_{name}" for name in template_params(path)}
    raw_path = path.format(**params)
    return {"routeKey": route_key, "rawPath": raw_path, "rawQueryString": query, "pathParameters": params,
            "body": json.dumps(body) if body is not None else None, "isBase64Encoded": False,
            "requestContext": {"http": {"method": method}}}


def template_params(path: str) -> list[str]:
    import re

    return re.findall(r"{(\w+)}", path)


ROUTES = sorted(r.route_key for r in template.routes())


def test_every_route_of_the_template_says_what_it_guards() -> None:
    assert sorted(GUARDS) == ROUTES


@pytest.mark.parametrize("route_key", ROUTES)
@pytest.mark.parametrize("shape", SHAPES)
def test_card_numbers_in_what_a_person_types_are_refused(route_key: str, shape: str) -> None:
    rule = GUARDS[route_key]
    schema = body_schema(route_key)
    fields = string_fields(schema) if schema else []
    if rule.body:
        for field in fields:
            name = f"body.{field}"
            whole = card_data_refusal(event(route_key, body=nested(field, shape)))
            inside = card_data_refusal(event(route_key, body=nested(field, f"card {shape} thanks")))
            assert whole is not None, (route_key, field)
            # an id field refuses only a card number as its whole value; free text anywhere in it
            assert (inside is None) == (rule.kind(name) == "id"), (route_key, field)
        # a field the route does not know is free text too
        assert card_data_refusal(event(route_key, body={"note": {"deep": [f"my card {shape}"]}})) is not None
    else:
        # credentials and signed webhooks are not scanned for card numbers...
        for field in [*fields, "secret_key", "token", "data"]:
            assert card_data_refusal(event(route_key, body=nested(field, shape))) is None, (route_key, field)
    if rule.query:
        assert card_data_refusal(event(route_key, query=f"q={shape.replace(' ', '+')}")) is not None
    else:
        assert card_data_refusal(event(route_key, query=f"q={shape.replace(' ', '+')}")) is None
    # and a card number as a path segment is always refused
    for name in template_params(route_key.split(" ", 1)[1]):
        params = {n: (shape if n == name else f"x_{n}") for n in template_params(route_key.split(" ", 1)[1])}
        assert card_data_refusal(event(route_key, params=params)) is not None, (route_key, name)


@pytest.mark.parametrize("route_key", [r for r in ROUTES if r.split(" ", 1)[1].startswith("/v1/")])
def test_card_only_field_names_are_refused_in_every_v1_body(route_key: str) -> None:
    assert card_data_refusal(event(route_key, body={"exp_month": 12, "cvc": "123"})) is not None


def test_ids_in_id_fields_pass_even_with_digit_runs_inside() -> None:
    route = "POST /v1/clinics/{clinic_id}/appointments"
    body = {"patient": {"id": "3f2504e0-4f89-4100-9b21-423427800000", "name": "Ana"}, "appointment_id": "4242424242424242x",
            "service_id": "consulta"}
    assert card_data_refusal(event(route, body=body)) is None
    assert card_data_refusal(event(route, body={**body, "patient": {"id": "p-1", "name": "4242424242424242"}}))


def test_a_route_we_do_not_know_is_scanned_whole() -> None:
    unknown = {"routeKey": "GET /nowhere/{x}", "rawPath": "/nowhere/4242424242424242", "rawQueryString": ""}
    assert guard_for(unknown).path and card_data_refusal(unknown) is not None


def test_our_consent_page_form_is_free_text() -> None:
    form = {"routeKey": "POST /cards/setup/{token}", "rawPath": "/cards/setup/x", "rawQueryString": "",
            "pathParameters": {"token": "x"}, "body": "consent=yes&text_version=v1&x=4242+4242+4242+4242"}
    assert card_data_refusal(form) is not None
    assert card_data_refusal({**form, "body": "consent=yes&text_version=cards-2026-02&lang=es"}) is None


def test_stripes_return_parameters_are_not_scanned() -> None:
    back = {"routeKey": "GET /cards/authentication-complete", "rawPath": "/cards/authentication-complete",
            "rawQueryString": "payment_intent=pi_4242424242424242&redirect_status=succeeded"}
    assert card_data_refusal(back) is None
