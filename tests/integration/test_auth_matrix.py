"""The auth-and-ownership matrix, generated from the served /openapi.json.

Every operation in the document x every kind of credential, with the example body the document
gives. Each operation says which credential it takes (`x-clinicpay-access`); the contract is then:
no or a bad credential -> 401, a key of another clinic -> 404, a known key that may not do this ->
403, the right one -> an answer the operation documents (never 401/403, never 5xx). A refused
request leaves every table and secret as it was, and reveals no field rule (its details are empty).
Routes whose credential is not a key (a link token, a provider's signature, none) answer the same
whatever key is sent.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.api import ApiClient
from tests.support.cards import book, connect_stripe
from tests.support.clinics import ClinicKeys, add_service, connect_fintoc, create_clinic
from tests.support.env import OPERATOR_KEY, TestStack

ORG_ID = "org-matrix"
PATIENT_ID = "pat-1042"  # the patient of the request examples
ALLOW = 0  # expected outcome: an answer the operation documents, not a refusal


@dataclass(frozen=True)
class Credential:
    name: str
    bearer: str | None = None  # which key goes in Authorization: Bearer
    widget: str | None = None  # which key goes in X-Clinic-Key


# Key references: "<clinic>.<role>" with clinic "own" (the path's clinic) or "other"; "operator";
# "unknown" (well-formed, never issued, e.g. revoked); "malformed".
CREDENTIALS = (
    Credential("none"),
    Credential("malformed", bearer="malformed", widget="malformed"),
    Credential("operator", bearer="operator"),
    Credential("admin", bearer="own.admin"),
    Credential("staff", bearer="own.staff"),
    Credential("publishable", widget="own.publishable"),
    Credential("admin-as-widget-key", widget="own.admin"),
    Credential("publishable-as-bearer", bearer="own.publishable"),
    Credential("other-admin", bearer="other.admin"),
    Credential("other-staff", bearer="other.staff"),
    Credential("other-publishable", widget="other.publishable"),
    Credential("unknown-key", bearer="unknown", widget="unknown"),
)


def expected(access: str, credential: Credential) -> int | None:
    """The status the contract gives; ALLOW for an authorized request; None when the route's
    credential is not a key (then every credential must get the same answer)."""
    if access in ("none", "link_token", "provider_signature"):
        return None
    if access == "publishable":
        return _judge(credential.widget, allowed={"own.publishable"})
    if access == "operator":
        if credential.bearer == "operator":
            return ALLOW
        return 403 if _known(credential.bearer) else 401
    if access == "admin_or_operator":
        return ALLOW if credential.bearer == "operator" else _judge(credential.bearer, allowed={"own.admin"})
    if access == "org_admin":
        if credential.bearer in ("operator", "own.admin"):
            return ALLOW
        if credential.bearer == "other.admin":
            return 404  # an admin of a clinic outside this organization
        return 403 if _known(credential.bearer) else 401
    allowed = {"admin": {"own.admin"}, "staff": {"own.admin", "own.staff"}}[access]
    if credential.bearer == "operator":
        return 403
    return _judge(credential.bearer, allowed=allowed)


def _known(key: str | None) -> bool:
    return bool(key) and key not in ("unknown", "malformed")


def _judge(key: str | None, *, allowed: set[str]) -> int:
    if not _known(key):
        return 401
    assert key is not None
    if key in allowed:
        return ALLOW
    return 404 if key.startswith("other.") else 403


# ------------------------------------------------------------------ the world the matrix runs in
@dataclass
class World:
    own: ClinicKeys
    other: ClinicKeys
    document: dict[str, Any]
    path_values: dict[str, str]
    tokens: dict[str, str]

    def key(self, reference: str | None) -> str | None:
        if reference is None:
            return None
        if reference == "operator":
            return OPERATOR_KEY
        if reference == "unknown":
            return f"cp_admin_{secrets.token_urlsafe(24)}"
        if reference == "malformed":
            return "not a key\u00e9"
        clinic, role = reference.split(".")
        keys = self.own if clinic == "own" else self.other
        return {"admin": keys.admin_key, "staff": keys.staff_key, "publishable": keys.publishable_key}[role]

    def headers(self, credential: Credential) -> dict[str, str]:
        headers = {}
        bearer, widget = self.key(credential.bearer), self.key(credential.widget)
        if credential.bearer == "malformed":
            headers["Authorization"] = f"Token {bearer}"
        elif bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        if widget:
            headers["X-Clinic-Key"] = widget
        return headers


@pytest.fixture(autouse=True)
def clean() -> None:
    """The matrix builds its world once (see `world`); the suite's per-test reset would erase it."""


@pytest.fixture(scope="module")
def world(stack: TestStack) -> Iterator[World]:
    stack.reset()
    own = create_clinic(org_id=ORG_ID)
    other = create_clinic(org_id="org-elsewhere", name="Otra Clínica")
    connect_fintoc(own, stack.sandbox_url("fintoc"), stack.base_url)
    connect_stripe(own, stack.sandbox_url("stripe"), stack.base_url)
    add_service(own, "consulta", 25000, "CLP", online=True, no_show_fee=10000)
    appointment = book(own, PATIENT_ID)
    setup = own.staff().post(own.path(f"/patients/{PATIENT_ID}/card-setup"), json={})
    assert setup.status == 201, setup.body
    document = ApiClient().get("/openapi.json").json()
    assert document == json.loads(DOCUMENT.read_text())
    yield World(own, other, document,
                path_values={"clinic_id": own.clinic_id, "org_id": ORG_ID, "patient_id": PATIENT_ID,
                             "appointment_id": appointment["appointment_id"], "service_id": "consulta"},
                tokens={"/pay/": appointment["payment_link"]["url"].rsplit("/", 1)[1],
                        "/v1/public/payments/": appointment["payment_link"]["url"].rsplit("/", 1)[1],
                        "/cards/setup/": setup.json()["url"].split("/cards/setup/", 1)[1].split("?")[0]})
    print(f"\nauth matrix: {len(SENT)} requests ({len(OPERATIONS)} operations x {len(CREDENTIALS)} credentials)")
    stack.reset()


def _operations() -> list[tuple[str, str]]:
    """From the document the admin function serves (the world fixture checks it is this file)."""
    document = json.loads(DOCUMENT.read_text())
    return [(method.upper(), path) for path, operations in document["paths"].items() for method in operations]


DOCUMENT = Path(__file__).resolve().parents[2] / "layers/shared/python/clinicpay/api/openapi.json"
OPERATIONS = _operations()


def _request(world: World, method: str, path: str) -> tuple[str, Any]:
    operation = world.document["paths"][path][method.lower()]
    concrete = path
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "path":
            continue
        name = parameter["name"]
        if name == "token":
            value = next(v for prefix, v in world.tokens.items() if path.startswith(prefix))
        else:
            value = world.path_values.get(name) or (parameter["schema"].get("examples") or [f"unknown-{name}"])[0]
        concrete = concrete.replace("{" + name + "}", value)
    body = None
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content:
        schema = content["schema"]
        if "$ref" in schema:
            schema = world.document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in schema:
            schema = next(world.document["components"]["schemas"][s["$ref"].rsplit("/", 1)[1]]
                          for s in schema["anyOf"] if "$ref" in s)
        body = schema["examples"][0]
    return concrete, body


def _snapshot() -> dict[str, Any]:
    dynamodb = boto3.client("dynamodb")
    tables = {name: sorted(json.dumps(item, sort_keys=True) for item in
                           dynamodb.scan(TableName=name)["Items"])
              for name in ("AppointmentsTable", "CardsTable", "IdempotencyTable", "KeysTable")}
    listed = boto3.client("secretsmanager").list_secrets()["SecretList"]
    tables["secrets"] = sorted(f"{s['Name']}@{s.get('LastChangedDate')}" for s in listed)
    return tables


def _send(world: World, method: str, path: str, credential: Credential) -> Any:
    concrete, body = _request(world, method, path)
    headers = world.headers(credential)
    if method != "GET":
        headers["Idempotency-Key"] = f"matrix-{secrets.token_hex(8)}"  # a refusal must not be remembered
    return ApiClient().request(method, concrete, json_body=body, headers=headers)


SENT: list[int] = []  # one entry per request the matrix sent


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_credential_gets_the_contract(world: World, method: str, path: str) -> None:
    operation = world.document["paths"][path][method.lower()]
    access = operation["x-clinicpay-access"]
    outcomes = [(credential, expected(access, credential)) for credential in CREDENTIALS]
    refused = [(c, status) for c, status in outcomes if status not in (ALLOW, None)]
    before = _snapshot()
    for credential, status in refused:
        answer = _send(world, method, path, credential)
        SENT.append(1)
        assert answer.status == status, f"{credential.name}: {answer.status} {answer.body[:300]!r}"
        error = answer.json()["error"]
        assert error["details"] == [], f"{credential.name}: a refusal must not reveal field rules: {error}"
    assert _snapshot() == before, "a refused request changed stored state"
    documented = set(operation["responses"])
    answers = {}
    for credential, status in outcomes:
        if status not in (ALLOW, None):
            continue
        answer = _send(world, method, path, credential)
        SENT.append(1)
        answers[credential.name] = answer.status
        assert answer.status < 500, f"{credential.name}: {answer.status} {answer.body[:300]!r}"
        assert str(answer.status) in documented, f"{credential.name}: undocumented {answer.status}"
        if status == ALLOW:
            assert answer.status not in (401, 403), f"{credential.name} was refused: {answer.body[:300]!r}"
        if answer.status >= 400 and answer.headers.get("Content-Type", "").startswith("application/json"):
            assert set(answer.json()) == {"error"}
    if all(status is None for _, status in outcomes):
        assert len(set(answers.values())) == 1, f"the answer depends on an irrelevant key: {answers}"
        assert set(answers.values()).isdisjoint({403}), answers
