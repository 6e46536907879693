"""The served OpenAPI document is valid 3.1 and says, for every operation, what a client needs:
its credential, its error answers in the error shape, Retry-After on 503, examples, working links."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from clinicpay.api.auth import Access

DOCUMENT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "layers/shared/python/clinicpay/api/openapi.json").read_text())
OPERATIONS = [(method, path, op) for path, ops in DOCUMENT["paths"].items() for method, op in ops.items()]
IDS = [f"{m.upper()} {p}" for m, p, _ in OPERATIONS]


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT)


def test_security_schemes() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["clinicKey"]["in"] == "header" and schemes["clinicKey"]["name"] == "X-Clinic-Key"
    assert {n for n in schemes if n.endswith("Signature")} == {f"{p}Signature" for p in
                                                               ("fintoc", "monobank", "stripe", "checkbox")}


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_declares_its_credential_and_errors(method: str, path: str, operation: dict[str, Any]) -> None:
    access = Access(operation["x-clinicpay-access"])
    security = operation["security"]
    if access in (Access.NONE, Access.LINK_TOKEN):
        assert security == []
    elif access is Access.PUBLISHABLE:
        assert security == [{"clinicKey": []}] and path.startswith("/v1/public/clinics/")
    elif access is Access.PROVIDER_SIGNATURE:
        assert security == [{f"{path.split('/')[2]}Signature": []}]
    else:
        assert security == [{"bearer": list(access.roles)}]
    responses = operation["responses"]
    if access.checked_by_resolver:
        assert {"401", "403"} <= set(responses)
    if "{clinic_id}" in path and access.checked_by_resolver:
        assert "404" in responses  # another clinic's key
    assert responses["503"]["headers"]["Retry-After"]["required"] is True
    for status, response in responses.items():
        if status[0] in "45" or status == "default":
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    if operation.get("requestBody"):
        assert {"400", "413", "415", "422"} <= set(responses)
    assert [s for s in responses if s.startswith("2") or s.startswith("3")], "a success status"


def test_real_success_statuses() -> None:
    def successes(method: str, path: str) -> set[str]:
        return {s for s in DOCUMENT["paths"][path][method]["responses"] if s[0] in "23"}

    assert successes("post", "/v1/clinics") == {"201"}
    assert successes("post", "/v1/clinics/{clinic_id}/appointments") == {"201"}
    assert successes("post", "/v1/clinics/{clinic_id}/appointments/{appointment_id}/payment-link/send") == {"202"}
    assert successes("delete", "/v1/clinics/{clinic_id}/gateways/{provider}") == {"204"}
    assert "content" not in DOCUMENT["paths"]["/v1/clinics/{clinic_id}/gateways/{provider}"]["delete"]["responses"]["204"]
    assert {"303", "200"} <= successes("get", "/pay/{token}")
    assert DOCUMENT["paths"]["/pay/{token}"]["get"]["responses"]["303"]["headers"]["Location"]["required"] is True


def test_enums_for_providers_currencies_and_statuses() -> None:
    from clinicpay.domain.money import CURRENCY_EXPONENTS

    schemas = DOCUMENT["components"]["schemas"]
    assert schemas["Money"]["properties"]["currency"]["enum"] == sorted(CURRENCY_EXPONENTS)
    assert schemas["CreateClinicRequest"]["properties"]["currency"]["enum"] == sorted(CURRENCY_EXPONENTS)
    provider = next(p for p in DOCUMENT["paths"]["/v1/clinics/{clinic_id}/gateways/{provider}"]["put"]["parameters"]
                    if p["name"] == "provider")
    assert provider["schema"]["enum"] == ["fintoc", "monobank", "stripe", "checkbox"]
    assert set(schemas["PaymentStatus"]["enum"]) == {"not_required", "unpaid", "pending", "deposit_paid", "paid",
                                                  "partially_refunded", "refunded"}


@pytest.mark.parametrize(("method", "path", "operation"), [o for o in OPERATIONS if o[2].get("requestBody")],
                         ids=[i for i, o in zip(IDS, OPERATIONS, strict=True) if o[2].get("requestBody")])
def test_every_json_body_has_an_example(method: str, path: str, operation: dict[str, Any]) -> None:
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    refs = [schema] + schema.get("anyOf", [])
    examples = [s.get("examples") or DOCUMENT["components"]["schemas"][s["$ref"].rsplit("/", 1)[1]].get("examples")
                for s in refs if "$ref" in s or "examples" in s]
    assert any(examples), f"{method.upper()} {path} has no example body"


def test_links_point_at_operations_and_their_parameters() -> None:
    by_id = {op["operationId"]: (path, op) for _, path, op in OPERATIONS}
    assert len(by_id) == len(OPERATIONS), "operationIds are unique"
    links = 0
    for _, _, operation in OPERATIONS:
        for response in operation["responses"].values():
            for name, link in response.get("links", {}).items():
                links += 1
                _, target = by_id[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
                assert set(link["parameters"]) == names, (name, link)
    chain = DOCUMENT["paths"]["/v1/clinics/{clinic_id}/appointments"]["post"]["responses"]["201"]["links"]
    assert chain["GetAppointment"]["parameters"]["appointment_id"] == "$response.body#/appointment_id"
    assert links >= 15
