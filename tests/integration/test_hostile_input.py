"""Hostile traffic at the HTTP edge: every answer is a 4xx in the error shape, before or after
authentication, and a caller without a valid key learns nothing about field rules.

Most cases go over real HTTP to the local server (the API Gateway emulation), so the emulator's own
handling of odd bytes and paths is under test too; the rest go in-process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import boto3
import pytest
import requests

from local import apigw
from tests.support.api import ApiClient
from tests.support.cards import book
from tests.support.clinics import ClinicKeys, add_service, create_clinic
from tests.support.env import OPERATOR_KEY, TestStack


@pytest.fixture
def clinic() -> ClinicKeys:
    keys = create_clinic()
    add_service(keys, "consulta", 25000, "CLP", online=True)
    return keys


def _error(response: requests.Response | apigw.HttpResult) -> dict[str, Any]:
    body = response.json() if isinstance(response, apigw.HttpResult) else response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return dict(body["error"])


def _json_operations() -> list[tuple[str, str, str]]:
    """(method, path template, access) of every operation that takes a JSON body."""
    document = json.loads(_document())
    return [(method.upper(), path, op["x-clinicpay-access"]) for path, ops in document["paths"].items()
            for method, op in ops.items() if "application/json" in op.get("requestBody", {}).get("content", {})]


def _document() -> str:
    from importlib import resources

    return resources.files("clinicpay.api").joinpath("openapi.json").read_text()


def _fill(path: str, clinic: ClinicKeys) -> str:
    values = {"clinic_id": clinic.clinic_id, "org_id": "org-1", "patient_id": "pat-1", "service_id": "consulta",
              "provider": "stripe", "kind": "payment_link", "channel": "email", "locale": "es", "qr_id": "qr1"}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)


def _credential(access: str, clinic: ClinicKeys) -> dict[str, str]:
    if access == "publishable":
        return {"X-Clinic-Key": clinic.publishable_key}
    key = {"operator": OPERATOR_KEY, "org_admin": OPERATOR_KEY, "admin": clinic.admin_key}.get(access, clinic.staff_key)
    return {"Authorization": f"Bearer {key}"}


# ------------------------------------------------------------------ media type: 415 after auth, 401 before
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
def test_a_body_that_is_not_json_is_415_for_every_json_route(clinic: ClinicKeys, content_type: str) -> None:
    operations = _json_operations()
    assert len(operations) >= 14  # every route that takes a JSON body (the document says which)
    for method, template, access in operations:
        path = _fill(template, clinic)
        answer = ApiClient().request(method, path, raw=b"a=1", headers={"Content-Type": content_type,
                                                                         **_credential(access, clinic)})
        assert answer.status == 415, (method, template, answer.status, answer.body[:200])
        assert _error(answer)["code"] == "unsupported_media_type"
        # Without a key the same request is a 401 that names no field and no media type.
        anonymous = ApiClient().request(method, path, raw=b"a=1", headers={"Content-Type": content_type})
        assert anonymous.status == 401, (method, template, anonymous.status)
        assert _error(anonymous)["details"] == []


def test_authentication_comes_before_validation(clinic: ClinicKeys) -> None:
    invalid = {"patient": {"id": "", "name": ""}, "service_id": "??", "starts_at": 0, "surprise": True}
    path = clinic.path("/appointments")
    assert ApiClient().post(path, json=invalid).json() == {"error": {
        "code": "unauthorized", "message": "Missing or invalid credentials.", "details": []}}
    other = create_clinic()
    refused = other.staff().post(path, json=invalid)
    assert refused.status == 404 and _error(refused)["details"] == []
    widget = clinic.widget().post(path, json=invalid)  # a publishable key on a staff route: 401 (no bearer)
    assert widget.status == 401 and _error(widget)["details"] == []
    as_bearer = ApiClient().with_key(clinic.publishable_key).post(path, json=invalid)
    assert as_bearer.status == 403 and _error(as_bearer)["details"] == []
    rules = clinic.staff().post(path, json=invalid)
    assert rules.status == 422 and _error(rules)["details"]  # the right key learns what to fix


# ------------------------------------------------------------------ bytes: size, depth, UTF-8, integers
def test_json_nested_ten_thousand_deep_is_400_with_or_without_a_key(stack: TestStack, clinic: ClinicKeys) -> None:
    for body in ("[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000):
        for headers in ({}, {"Authorization": f"Bearer {clinic.staff_key}", "Idempotency-Key": "deep-1"}):
            answer = requests.post(f"{stack.base_url}{clinic.path('/appointments')}", data=body, timeout=10,
                                   headers={"Content-Type": "application/json", **headers})
            assert answer.status_code == 400, answer.text[:200]
            assert _error(answer)["code"] == "bad_request"


def test_nesting_our_documents_use_is_accepted(clinic: ClinicKeys) -> None:
    # 32 levels is the limit; a real body is 3 deep. 31 nested lists in a string field are just text.
    body = {"patient": {"id": "p-1", "name": "[[[[" * 40}, "service_id": "consulta",
            "starts_at": "2031-03-14T10:30:00-03:00"}
    assert clinic.staff().post(clinic.path("/appointments"), json=body).status == 201


@pytest.mark.parametrize("path", ["/v1/clinics", "/webhooks/fintoc/cl_x"])
def test_a_body_over_the_limit_is_413(stack: TestStack, path: str) -> None:
    size = 1024 * 1024 + 1 if path.startswith("/webhooks/") else 64 * 1024 + 1
    answer = requests.post(f"{stack.base_url}{path}", data=b"{" + b" " * size + b"}", timeout=10,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    error = _error(answer)
    assert error["code"] == "payload_too_large" and error["details"] == [{"limit_bytes": size - 1}]


def test_a_provider_event_of_a_few_hundred_kilobytes_still_reaches_the_webhook(stack: TestStack) -> None:
    body = json.dumps({"type": "payment_intent.succeeded", "data": {"padding": "x" * 300_000}})
    answer = requests.post(f"{stack.base_url}/webhooks/fintoc/cl_x", data=body, timeout=10,
                           headers={"Content-Type": "application/json", "Fintoc-Signature": "t=1,v1=00"})
    assert answer.status_code == 404  # on to the handler: no such clinic (not a 413)


def test_an_integer_beyond_pythons_limit_is_400_not_500(clinic: ClinicKeys) -> None:
    body = b'{"name": "Consulta", "price": {"amount": ' + b"9" * 5000 + b', "currency": "CLP"}}'
    headers = {"Content-Type": "application/json"}
    answer = clinic.admin().request("PUT", clinic.path("/services/consulta"), raw=body, headers=headers)
    assert answer.status == 400 and _error(answer)["code"] == "bad_request"
    assert ApiClient().request("PUT", clinic.path("/services/consulta"), raw=body, headers=headers).status == 401
    # In a query string too (the QR report's amount filter).
    report = clinic.staff().get(clinic.path("/reports/qr-payments"), query={"min_amount": "9" * 5000})
    assert report.status == 422 and _error(report)["code"] == "validation_error"


def test_invalid_utf8_is_400_over_http(stack: TestStack, clinic: ClinicKeys) -> None:
    # The emulator hands bytes that are not UTF-8 to the function base64-encoded, as API Gateway does.
    for headers in ({}, {"Authorization": f"Bearer {clinic.staff_key}"}):
        answer = requests.post(f"{stack.base_url}{clinic.path('/appointments')}", data=b'{"name": "\xff\xfe\xc3"}',
                               timeout=10, headers={"Content-Type": "application/json", **headers})
        assert answer.status_code == 400 and answer.headers["Content-Type"] == "application/json"
        assert _error(answer)["code"] == "bad_request"
    form = requests.post(f"{stack.base_url}/cards/setup/tok_x", data=b"consent=\xff", timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 400


def test_numbers_and_booleans_do_not_stand_in_for_times_and_flags(clinic: ClinicKeys) -> None:
    staff = clinic.staff()
    for starts_at in (0, 1.5, "1700000000", "tomorrow", "0001-01-01T00:00:00Z", "9999-12-31T23:00:00-05:00"):
        answer = staff.post(clinic.path("/appointments"), json={
            "patient": {"id": "p-1", "name": "Ana"}, "service_id": "consulta", "starts_at": starts_at})
        assert answer.status == 422, starts_at
        assert _error(answer)["details"][0]["field"] == "starts_at"
    assert staff.get(clinic.path("/appointments"), query={"to": "0.5"}).status == 422
    for moment in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"):  # found by the fuzzer: 500 before
        assert staff.get(clinic.path("/reports/qr-payments"), query={"from": moment}).status == 422
    for flag in (0, 1, "true"):
        answer = clinic.admin().patch(clinic.path("/settings"), json={"show_payment_link_in_email": flag})
        assert answer.status == 422, flag
    assert clinic.admin().patch(clinic.path("/settings"), json={"online_link_ttl_minutes": "10"}).status == 422


def test_a_body_must_be_an_object(clinic: ClinicKeys) -> None:
    for body in ([None, None], "text", 3):
        answer = clinic.staff().post(clinic.path("/patients/p-1/card-setup"), json=body)
        assert answer.status == 422, body
        assert _error(answer)["details"] == [{"field": "", "message": "The body must be a JSON object.", "type": "",
                                              "path": [], "kind": "invalid"}]


# ------------------------------------------------------------------ paths: 404/405 in the error shape
def test_unknown_paths_and_encoded_slashes_are_404_in_the_error_shape(stack: TestStack, clinic: ClinicKeys) -> None:
    auth = {"Authorization": f"Bearer {clinic.admin_key}"}
    for path in ("/nope", "/v1/clinics/x/y/z/w", f"{clinic.path()}%2Fsettings%2Fx", "/v1/clinics/a%2Fb",
                 f"{clinic.path('/appointments')}/a%2F..%2F..", "/%00", "/v1/%E2%82%AC"):
        answer = requests.get(f"{stack.base_url}{path}", headers=auth, timeout=10)
        assert answer.status_code == 404, (path, answer.text[:200])
        assert _error(answer)["code"] == "not_found"


def test_a_known_path_with_another_method_is_405_with_allow(stack: TestStack) -> None:
    answer = requests.delete(f"{stack.base_url}/health", timeout=10)
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET"
    assert _error(answer) == {"code": "method_not_allowed", "message": "This path does not take that method.",
                              "details": [{"allowed": ["GET"]}]}
    put = requests.put(f"{stack.base_url}/v1/clinics/cl_1/appointments", timeout=10)
    assert put.status_code == 405 and put.headers["Allow"] == "GET, POST"


def test_the_emulator_answers_like_api_gateway_without_a_default_route(monkeypatch: pytest.MonkeyPatch) -> None:
    from local import template

    monkeypatch.setattr(template, "default_route", lambda: None)
    answer = apigw.invoke_http("GET", "/nope")
    assert answer.status == 404 and answer.json() == {"message": "Not Found"}


# ------------------------------------------------------------------ pages and 503s
def _csp_hashes(policy: str) -> set[str]:
    return set(re.findall(r"'sha256-([^']+)'", policy))


def test_every_html_page_sends_security_headers(clinic: ClinicKeys) -> None:
    booked = book(clinic, "p-1")
    token = booked["payment_link"]["url"].rsplit("/", 1)[1]
    setup = clinic.staff().post(clinic.path("/patients/p-1/card-setup"), json={}).json()["url"]
    card_token = setup.split("/cards/setup/", 1)[1].split("?")[0]
    pages = [f"/pay/{token}/result", "/pay/unknown-token", "/pay/unknown-token/result", "/docs",
             f"/cards/setup/{card_token}", "/cards/setup/unknown", f"/cards/setup/{card_token}/done",
             "/cards/authentication-complete"]
    for path in pages:
        answer = ApiClient().get(path)
        assert answer.headers["Content-Type"].startswith("text/html"), path
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        scripts = re.findall(r"<script>(.*?)</script>", answer.body.decode(), re.DOTALL)
        expected = {base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in scripts}
        assert _csp_hashes(policy) == expected, path  # each inline script allowed by its own hash, nothing else
        if scripts:
            assert "connect-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]


def test_redirects_away_from_token_pages_send_no_referrer(stack: TestStack, clinic: ClinicKeys) -> None:
    from tests.support.clinics import connect_fintoc

    connect_fintoc(clinic, stack.sandbox_url("fintoc"), stack.base_url)
    booked = book(clinic, "p-1")
    answer = requests.get(booked["payment_link"]["url"], allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and answer.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(("code", "status", "error_code", "retry_after"), [
    ("InternalServerError", 503, "storage_unavailable", 5),
    ("ProvisionedThroughputExceededException", 429, "throttled", 1)])
def test_storage_trouble_says_when_to_retry(clinic: ClinicKeys, monkeypatch: pytest.MonkeyPatch, code: str,
                                            status: int, error_code: str, retry_after: int) -> None:
    from botocore.exceptions import ClientError

    from clinicpay.repositories.dynamo import table

    def failing(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": code, "Message": "storage trouble"}}, "GetItem")

    monkeypatch.setattr(table("AppointmentsTable"), "get_item", failing)
    answer = clinic.staff().get(clinic.path())
    assert answer.status == status and answer.headers["Retry-After"] == str(retry_after)
    assert _error(answer)["code"] == error_code
    assert {"retry_after": retry_after} in _error(answer)["details"]


def test_a_clinic_without_a_gateway_gets_a_page_with_retry_after(clinic: ClinicKeys) -> None:
    booked = book(clinic, "p-1")
    answer = ApiClient().get("/pay/" + booked["payment_link"]["url"].rsplit("/", 1)[1])
    assert answer.status == 503 and answer.headers["Retry-After"] == "3600"
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")


# ------------------------------------------------------------------ idempotency keeps nothing for refusals
def test_a_refused_request_leaves_no_idempotency_record(clinic: ClinicKeys) -> None:
    body = {"patient": {"id": "p-1", "name": "Ana"}, "service_id": "consulta", "starts_at": "2031-03-14T10:30:00Z"}
    headers = {"Idempotency-Key": "same-key"}
    for client in (ApiClient(), create_clinic().staff(), clinic.widget()):
        assert client.post(clinic.path("/appointments"), json=body, headers=headers).status in (401, 404)
    assert boto3.client("dynamodb").scan(TableName="IdempotencyTable")["Count"] == 0
    # The rightful caller's first use of that key runs (it is not answered with someone's refusal).
    assert clinic.staff().post(clinic.path("/appointments"), json=body, headers=headers).status == 201
