"""The request pipeline's pieces that need no AWS: byte checks, the route declaration, hardening."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from clinicpay.api import resolver
from clinicpay.api.auth import SIGNATURE_HEADERS, Access, authenticate
from clinicpay.domain.errors import Forbidden, InvalidSignature, NotFound, StorageUnavailable, Unauthorized
from clinicpay.repositories.keys import KeyRecord, hash_key


def _event(body: str | bytes, *, path: str = "/v1/clinics", b64: bool = False) -> dict[str, Any]:
    if isinstance(body, bytes) or b64:
        raw = body if isinstance(body, bytes) else body.encode()
        return {"rawPath": path, "body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
    return {"rawPath": path, "body": body, "isBase64Encoded": False}


def _code(answer: dict[str, Any] | None) -> tuple[int, str] | None:
    if answer is None:
        return None
    return answer["statusCode"], json.loads(answer["body"])["error"]["code"]


@pytest.mark.parametrize(("text", "deep"), [
    ("[" * 33 + "]" * 33, True),
    ("[" * 32 + "]" * 32, False),
    ('{"a":' * 33 + "1" + "}" * 33, True),
    ('{"note": "' + "[" * 500 + '"}', False),  # brackets inside a string are text
    ('{"note": "\\"' + "[" * 500 + '"}', False),  # an escaped quote does not end the string
    ("[]" * 5000, False),  # many, but side by side
])
def test_depth_is_counted_outside_strings(text: str, deep: bool) -> None:
    assert resolver._too_deep(text) is deep


def test_body_refusals() -> None:
    assert resolver.body_refusal(_event("{}")) is None
    assert _code(resolver.body_refusal(_event("x" * (64 * 1024 + 1)))) == (413, "payload_too_large")
    assert resolver.body_refusal(_event("x" * (64 * 1024 + 1), path="/webhooks/stripe/cl_1")) is None
    assert _code(resolver.body_refusal(_event(b'{"a": "\xff"}'))) == (400, "bad_request")
    assert _code(resolver.body_refusal(_event("\ud800"))) == (400, "bad_request")  # a lone surrogate from an event
    assert _code(resolver.body_refusal({"rawPath": "/", "body": "***", "isBase64Encoded": True})) == (400, "bad_request")
    assert _code(resolver.body_refusal(_event("[" * 100, b64=True))) == (400, "bad_request")
    # The size limit counts bytes, not characters.
    assert _code(resolver.body_refusal(_event("€" * 22_000))) == (413, "payload_too_large")


def test_edge_refusal_runs_before_the_card_guard_and_survives_deep_json() -> None:
    # The card guard parses JSON; 10,000 levels would overflow it. The depth check answers first.
    assert _code(resolver.edge_refusal(_event("[" * 10_000 + "]" * 10_000))) == (400, "bad_request")


def test_the_idempotency_wrapper_checks_a_request_once_and_still_refuses_card_data(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from clinicpay.api import card_guard
    from clinicpay.api.idempotency import idempotent_http

    checks: list[object] = []
    real = card_guard.card_data_refusal_reason
    monkeypatch.setattr(resolver, "card_data_refusal_reason", lambda event: checks.append(event) or real(event))
    handled: list[object] = []

    def resolve(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # What ClinicpayResolver.resolve does first: inside the wrapper, the same event is not checked again...
        assert resolver.edge_refusal(event) is None
        handled.append(event)
        return {"statusCode": 200, "body": "{}"}

    clean = {**_event('{"note": "hello"}'), "requestContext": {"http": {"method": "GET"}}, "headers": {}}
    assert idempotent_http(resolve)(clean, None)["statusCode"] == 200
    assert checks == [clean] and handled == [clean]
    # ...but any other event is, and after the wrapper returns this one is again.
    carrying = _event('{"cvc": "123"}', path="/v1/clinics/cl_1/appointments")
    assert _code(resolver.edge_refusal(carrying)) == (422, "card_data_not_accepted")
    assert resolver.edge_refusal(clean) is None and len(checks) == 3
    checks.clear()
    assert _code(idempotent_http(resolve)({**carrying, "headers": {}}, None)) == (422, "card_data_not_accepted")
    assert len(checks) == 1 and handled == [clean]


def test_every_route_must_declare_its_credential() -> None:
    app = resolver.make_resolver()
    with pytest.raises(TypeError, match="declare the credential"):
        app.get("/v1/things")
    with pytest.raises(TypeError, match="declare the credential"):
        app.route("/v1/things", "POST", access="staff")  # a string is not a declaration
    decorated = app.post("/v1/things", access=Access.STAFF)(lambda: {})
    assert callable(decorated)


def test_a_route_taking_the_publishable_key_declares_its_limit_and_no_other_does() -> None:
    app = resolver.make_resolver()
    with pytest.raises(TypeError, match="limit="):
        app.post("/v1/public/clinics/<clinic_id>/things", access=Access.PUBLISHABLE)
    with pytest.raises(TypeError, match="limit="):
        app.get("/v1/public/clinics/<clinic_id>/things", access=Access.PUBLISHABLE, limit="often")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limit="):
        app.get("/v1/clinics/<clinic_id>/things", access=Access.STAFF, limit="read")
    assert callable(app.get("/v1/public/clinics/<clinic_id>/things", access=Access.PUBLISHABLE, limit="read")(
        lambda clinic_id: {}))


def test_html_security_headers_allow_exactly_the_inline_scripts() -> None:
    page = "<html><script>alert(1)</script><p>x</p><script type='module'>go()</script></html>"
    headers = resolver.html_security_headers(page)
    digest = {base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in ("alert(1)", "go()")}
    policy = headers["Content-Security-Policy"]
    for value in digest:
        assert f"'sha256-{value}'" in policy
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    plain = resolver.html_security_headers("<p>no script</p>")["Content-Security-Policy"]
    assert "script-src" not in plain and "connect-src" not in plain


def test_harden_adds_what_is_missing_and_keeps_what_is_set() -> None:
    page = resolver.harden({"statusCode": 200, "headers": {"Content-Type": "text/html; charset=utf-8"}, "body": "<p/>"})
    assert page["headers"]["Referrer-Policy"] == "no-referrer" and "Content-Security-Policy" in page["headers"]
    busy = resolver.harden({"statusCode": 503, "headers": {"content-type": "application/json"}, "body": "{}"})
    assert busy["headers"]["Retry-After"] == "30"
    kept = resolver.harden({"statusCode": 503, "headers": {"retry-after": "7"}, "body": ""})
    assert kept["headers"] == {"retry-after": "7", "X-Content-Type-Options": "nosniff"}
    redirect = resolver.harden({"statusCode": 303, "headers": {"Location": "https://pay.example"}, "body": ""})
    assert redirect["headers"]["Referrer-Policy"] == "no-referrer"


class _Keys:
    def __init__(self, records: dict[str, KeyRecord]):
        self.records = {hash_key(k): v for k, v in records.items()}
        self.reads = 0

    def find(self, digest: str) -> KeyRecord | None:
        self.reads += 1
        return self.records.get(digest)


KEYS = {"adm": KeyRecord("cl_a", "admin", "1"), "stf": KeyRecord("cl_a", "staff", "2"),
        "pub": KeyRecord("cl_a", "publishable", "3"), "other": KeyRecord("cl_b", "admin", "4")}


def _auth(access: Access, headers: dict[str, str], path: dict[str, str] | None = None) -> Any:
    keys = _Keys(KEYS)
    try:
        return authenticate(access, headers, path or {"clinic_id": "cl_a", "org_id": "org"}, keys,  # type: ignore[arg-type]
                            operator=lambda: "op-key", org_of=lambda cid: "org" if cid == "cl_a" else None)
    finally:
        assert keys.reads <= 1  # one key read per request at most


@pytest.mark.parametrize(("access", "headers", "outcome"), [
    (Access.STAFF, {}, Unauthorized),
    (Access.STAFF, {"authorization": "Basic eDp5"}, Unauthorized),
    (Access.STAFF, {"authorization": "Bearer nope"}, Unauthorized),
    (Access.STAFF, {"authorization": "Bearer stf"}, "staff"),
    (Access.STAFF, {"authorization": "Bearer adm"}, "admin"),
    (Access.STAFF, {"authorization": "Bearer pub"}, Forbidden),
    (Access.STAFF, {"x-clinic-key": "pub"}, Unauthorized),
    (Access.STAFF, {"authorization": "Bearer other"}, NotFound),
    (Access.STAFF, {"authorization": "Bearer op-key"}, Forbidden),
    (Access.ADMIN, {"authorization": "Bearer stf"}, Forbidden),
    (Access.PUBLISHABLE, {"x-clinic-key": "pub"}, "publishable"),
    (Access.PUBLISHABLE, {"x-clinic-key": "adm"}, Forbidden),
    (Access.PUBLISHABLE, {"authorization": "Bearer pub"}, Unauthorized),
    (Access.OPERATOR, {"authorization": "Bearer op-key"}, "operator"),
    (Access.OPERATOR, {"authorization": "Bearer adm"}, Forbidden),
    (Access.OPERATOR, {"authorization": "Bearer other"}, Forbidden),
    (Access.OPERATOR, {"authorization": "Bearer nope"}, Unauthorized),
    (Access.ORG_ADMIN, {"authorization": "Bearer op-key"}, "operator"),
    (Access.ORG_ADMIN, {"authorization": "Bearer adm"}, "admin"),
    (Access.ORG_ADMIN, {"authorization": "Bearer other"}, NotFound),
    (Access.ORG_ADMIN, {"authorization": "Bearer stf"}, Forbidden),
    (Access.ADMIN_OR_OPERATOR, {"authorization": "Bearer op-key"}, "operator"),
    (Access.ADMIN_OR_OPERATOR, {"authorization": "Bearer adm"}, "admin"),
    (Access.ADMIN_OR_OPERATOR, {"authorization": "Bearer stf"}, Forbidden),
    (Access.ADMIN_OR_OPERATOR, {"authorization": "Bearer pub"}, Forbidden),
    (Access.ADMIN_OR_OPERATOR, {"authorization": "Bearer other"}, NotFound),
    (Access.ADMIN_OR_OPERATOR, {"authorization": "Bearer nope"}, Unauthorized),
    (Access.ADMIN_OR_OPERATOR, {"x-clinic-key": "pub"}, Unauthorized),
    (Access.LINK_TOKEN, {}, None),
])
def test_authenticate(access: Access, headers: dict[str, str], outcome: Any) -> None:
    if isinstance(outcome, type):
        with pytest.raises(outcome):
            _auth(access, headers)
    else:
        caller = _auth(access, headers)
        assert (caller.role if caller else None) == outcome


def test_signature_headers_are_the_providers_own() -> None:
    from clinicpay.providers.checkbox.signature import SIGNATURE_HEADER as checkbox
    from clinicpay.providers.fintoc.signature import SIGNATURE_HEADER as fintoc
    from clinicpay.providers.monobank.signature import SIGNATURE_HEADER as monobank
    from clinicpay.providers.stripe.signature import SIGNATURE_HEADER as stripe

    assert {k: v.lower() for k, v in SIGNATURE_HEADERS.items()} == {
        "fintoc": fintoc.lower(), "monobank": monobank.lower(), "stripe": stripe.lower(), "checkbox": checkbox.lower()}
    from clinicpay.api.auth import require_signature_header

    with pytest.raises(InvalidSignature):
        require_signature_header("stripe", {"stripe-signature": "  "})
    require_signature_header("stripe", {"stripe-signature": "t=1,v1=ab"})


def _unreadable_operator_secret() -> str:
    raise StorageUnavailable()


@pytest.mark.parametrize(("access", "headers", "outcome"), [
    # an admin never needs the operator's secret, on the routes the operator may use too
    (Access.ADMIN_OR_OPERATOR, {"authorization": "Bearer adm"}, "admin"),
    (Access.ORG_ADMIN, {"authorization": "Bearer adm"}, "admin"),
    # a key that is no clinic key may be the operator's: we cannot tell, so 503
    (Access.ADMIN_OR_OPERATOR, {"authorization": "Bearer nope"}, StorageUnavailable),
    (Access.OPERATOR, {"authorization": "Bearer nope"}, StorageUnavailable),
    # on a clinic's own routes the operator is refused anyway: 401, not 503
    (Access.STAFF, {"authorization": "Bearer nope"}, Unauthorized),
    (Access.ADMIN, {"authorization": "Bearer op-key"}, Unauthorized),
    (Access.OPERATOR, {}, Unauthorized),
])
def test_an_unreadable_operator_secret(access: Access, headers: dict[str, str], outcome: Any) -> None:
    keys = _Keys(KEYS)

    def call() -> Any:
        return authenticate(access, headers, {"clinic_id": "cl_a", "org_id": "org"}, keys,  # type: ignore[arg-type]
                            operator=_unreadable_operator_secret, org_of=lambda cid: "org")

    if isinstance(outcome, type):
        with pytest.raises(outcome):
            call()
    else:
        assert call().role == outcome
    assert keys.reads <= 1


def test_the_caller_carries_its_key_id() -> None:
    caller = _auth(Access.ADMIN_OR_OPERATOR, {"authorization": "Bearer adm"})
    assert (caller.role, caller.clinic_id, caller.key_id) == ("admin", "cl_a", "1")
    assert _auth(Access.ADMIN_OR_OPERATOR, {"authorization": "Bearer op-key"}).key_id is None
