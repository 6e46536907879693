"""Writes events/<function>/<EventName>.json for every HttpApi route and schedule in template.yaml,
and events/<function>/<JobQueue>.json: one shard of a job as the job queue's event source mapping
delivers it (clinicpay.fanout).

    python -m local.make_events          (re-run after adding a route; tests/unit/test_events.py checks)

API events are built by local.apigw.build_event (the same builder the local stack uses), with
realistic bodies and headers, and fixed request ids and times so regenerating gives no diff.
Use them with `sam local invoke -e events/...` (needs Docker) or apigw.handler_for(...)(event, ctx).
Generated files whose route or job is gone from the template are removed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from local import apigw, template

EVENTS = template.ROOT / "events"
FIXED_EPOCH_MS = 1795428000000  # 2026-11-23T10:00:00Z
FIXED_TIME = "23/Nov/2026:10:00:00 +0000"
HOST = "abc123.execute-api.us-east-1.amazonaws.com"

PARAMS = {
    "clinic_id": "cl_7Hc2pQ9xKd", "org_id": "org_andes", "appointment_id": "ap_0Jt5b2Wm",
    "service_id": "consulta", "provider": "fintoc", "token": "lnk_Zq8vT3nR6yB1sK4wP0aE",
    "patient_id": "pat_ana", "card_id": "card_3Lk9", "qr_id": "qr_k1a2", "payment_id": "qrp_5Ty7",
    "kind": "appointment_created", "channel": "email", "locale": "es", "job": "reminders", "charge_id": "ch_8Rf2Lq",
    "key_id": "3f9c1a7e5b2d",
}
PATIENT = {"id": "pat_ana", "name": "Ana Pérez", "email": "ana@example.com", "phone": "+56961234567", "locale": "es"}
# What the clinic's site signs for a signed-in patient (HS256 with its patient-token secret; docs/API.md).
PATIENT_TOKEN = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwYXRfYW5hIiwiYXVkIjoiY2xfN0hjMnBROXhLZCIsImV4cCI6MTc5"
                 "NTQyOTgwMH0.LM-oreGOpHwmYtj9HXTKXjHXpS2lYMnsxG4SAZVp4Nk")
CLP = {"amount": 25000, "currency": "CLP"}
STARTS_AT = "2026-11-24T10:00:00-03:00"

# Sample bodies by route key ("METHOD /path" as in template.yaml); API.md is the reference.
BODIES: dict[str, Any] = {
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/cancel": {"reason": "El paciente avisó por teléfono"},
    "POST /v1/clinics": {"name": "Clínica Los Andes", "country": "CL", "currency": "CLP",
                         "timezone": "America/Santiago", "locale": "es", "org_id": "org_andes"},
    "PATCH /v1/clinics/{clinic_id}/settings": {"show_payment_link_in_email": True, "online_link_ttl_minutes": 60,
                                               "reminder_hours_before": [24, 2], "default_gateway": "fintoc",
                                               "fiscalization": "clinicpay",
                                               "fiscal_shift_schedule": {"open": "08:00", "close": "20:00"}},
    "PUT /v1/clinics/{clinic_id}/gateways/{provider}": {"secret_key": "sk_test_4f9a0c2e7b1d", "public_key":
                                                        "pk_test_8e2b6d1a9c3f", "webhook_secret": "whsec_1b2c3d4e"},
    "PUT /v1/clinics/{clinic_id}/services/{service_id}": {"name": "Consulta general", "price": CLP,
                                                          "requires_online_payment": True,
                                                          "requires_card_on_file": False, "no_show_fee": None,
                                                          "deposit": {"type": "percent", "percent": 30}},
    "POST /v1/clinics/{clinic_id}/staff-keys": {"name": "Recepción"},
    "PUT /v1/clinics/{clinic_id}/message-templates/{kind}/{channel}/{locale}": {
        "subject": "Tu hora en $clinic_name", "body": "Hola $patient_name, tu hora es el $starts_at.\n$payment_line"},
    "PUT /v1/orgs/{org_id}/message-templates/{kind}/{channel}/{locale}": {
        "subject": "Tu hora en $clinic_name", "body": "Hola $patient_name, tu hora es el $starts_at.\n$payment_line"},
    "POST /v1/clinics/{clinic_id}/appointments": {"appointment_id": "ap_0Jt5b2Wm", "patient": PATIENT,
                                                  "service_id": "consulta", "starts_at": STARTS_AT,
                                                  "booked_by": "staff"},
    "POST /v1/public/clinics/{clinic_id}/appointments": {
        "patient": {k: v for k, v in PATIENT.items() if k != "id"}, "service_id": "consulta", "starts_at": STARTS_AT},
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/payments": {
        "method": "desk", "amount": {"amount": 17500, "currency": "CLP"}, "note": "Saldo en efectivo"},
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/refunds": {
        "amount": {"amount": 7500, "currency": "CLP"}, "payment_reference": "pi_2vKOKniSGXRhXTKr",
        "reason": "Hora cancelada por la clínica"},
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/cards": {
        "payment_method": "pm_1QxYz2Ab3Cd4Ef5G", "consent": {"granted": True, "text_version": "cards-2026-02",
                                                             "channel": "staff", "granted_by": "Recepción"}},
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/card-requests": {"channels": ["email", "sms"]},
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/charges": {"amount": {"amount": 4000, "currency": "EUR"},
                                                                   "appointment_id": "ap_0Jt5b2Wm",
                                                                   "reason": "no_show"},
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/charges/{charge_id}/refunds": {
        "amount": {"amount": 1500, "currency": "EUR"}, "reason": "requested_by_customer"},
    "POST /v1/public/clinics/{clinic_id}/card-setup": {"patient_token": PATIENT_TOKEN},
    "POST /v1/clinics/{clinic_id}/qr-registers/{qr_id}/amount": {"amount": {"amount": 85000, "currency": "UAH"},
                                                                 "appointment_id": "ap_0Jt5b2Wm"},
    "POST /v1/clinics/{clinic_id}/qr-payments/{payment_id}/refunds": {"amount": {"amount": 30000, "currency": "UAH"},
                                                                      "reason": "Процедуру скасовано"},
    # Webhooks: shaped like the providers' events; the signatures are placeholders, so a handler
    # answers these with 401 unless you re-sign them with the clinic's webhook secret.
    "POST /webhooks/fintoc/{clinic_id}": {
        "id": "evt_2Kd8sQ1pLm", "type": "payment_intent.succeeded", "mode": "test",
        "created_at": "2026-11-23T10:00:00Z",
        "data": {"id": "pi_9Xw2cV7bN", "object": "payment_intent", "amount": 25000, "currency": "CLP",
                 "status": "succeeded", "metadata": {"clinic_id": "cl_7Hc2pQ9xKd", "appointment_id": "ap_0Jt5b2Wm"}}},
    "POST /webhooks/monobank/{clinic_id}": {
        "invoiceId": "2611239Rt4Kz", "status": "success", "amount": 85000, "ccy": 980, "finalAmount": 85000,
        "createdDate": "2026-11-23T10:00:00Z", "modifiedDate": "2026-11-23T10:00:05Z", "reference": "qrp_5Ty7",
        "paymentInfo": {"maskedPan": "444403******1902", "paymentSystem": "visa", "paymentMethod": "monobank"}},
    "POST /webhooks/stripe/{clinic_id}": {
        "id": "evt_1QxYz2Ab3Cd4", "object": "event", "type": "setup_intent.succeeded", "livemode": False,
        "created": 1795428000, "data": {"object": {"id": "seti_1QxYz2Ab3Cd4", "object": "setup_intent",
                                                   "status": "succeeded", "payment_method": "pm_1QxYz2Ab3Cd4Ef5G",
                                                   "metadata": {"clinic_id": "cl_7Hc2pQ9xKd",
                                                                "patient_id": "pat_ana"}}}},
    "POST /webhooks/checkbox/{clinic_id}": {"id": "c3b1f0e2-5d4a-4b8e-9a1c-7f6e5d4c3b2a", "status": "DONE",
                                            "fiscal_code": "TEST-6cK9Qx", "type": "SELL"},
}
# HTML form posts (application/x-www-form-urlencoded), by route key.
FORMS = {
    "POST /cards/setup/{token}": "consent=yes&text_version=cards-2026-02&lang=es",
}
QUERIES = {
    "GET /cards/authentication-complete": "payment_intent=pi_3QxYz2Ab3Cd4&redirect_status=succeeded&lang=es",
    "GET /cards/setup/{token}": "lang=es",

    "GET /v1/clinics/{clinic_id}/appointments": "payment_status=unpaid&from=2026-11-23T00:00:00-03:00"
                                                "&to=2026-11-30T00:00:00-03:00",
    "GET /v1/clinics/{clinic_id}/reports/qr-payments": "from=2026-11-01T00:00:00%2B02:00"
                                                       "&to=2026-12-01T00:00:00%2B02:00&fiscal_status=pending",
}
SIGNATURES = {
    "fintoc": {"Fintoc-Signature": "t=1795428000,v1=<hex hmac-sha256 of '{t}.{body}'>"},
    "monobank": {"X-Sign": "<base64 ecdsa signature of the body>"},
    "stripe": {"Stripe-Signature": "t=1795428000,v1=<hex hmac-sha256 of '{t}.{body}'>"},
    "checkbox": {"x-request-signature": "<signature of the body>"},
}


def _headers(route: template.Route, content_type: str | None) -> dict[str, str]:
    headers = {"Host": HOST, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) clinicpay-sample",
               "X-Forwarded-For": "203.0.113.10", "X-Forwarded-Proto": "https"}
    if content_type:
        headers["Content-Type"] = content_type
    path = route.path
    if path.startswith("/webhooks/"):
        headers.update(SIGNATURES.get(path.split("/")[2], {}))
        headers["User-Agent"] = "provider-webhooks/1.0"
    elif path.startswith("/v1/public/"):
        headers["X-Clinic-Key"] = "cp_pub_5mQ2xR8vT1kLp0"
        headers["Origin"] = "https://clinica-los-andes.example.cl"
    elif path == "/v1/clinics" or path.startswith("/v1/orgs/") or path.endswith("/admin-keys"):
        headers["Authorization"] = "Bearer op_live_operator_key_example"
    elif path.startswith("/cards/"):
        headers["Accept"] = "text/html"
    elif path.startswith("/v1/"):
        headers["Authorization"] = "Bearer cp_admin_Gkj1E9kEx7aomQ"
    if route.method == "POST" and path.startswith("/v1/"):
        headers["Idempotency-Key"] = str(uuid.uuid5(uuid.NAMESPACE_URL, route.route_key))
    return headers


# What the $default route's sample asks for: a path no route has.
DEFAULT_ROUTE_SAMPLE = ("GET", "/v1/no-such-route")


def api_event(route: template.Route, event_name: str) -> dict[str, Any]:
    params = {name: PARAMS.get(name, f"{name}_example") for name in route.pattern.groupindex}
    method, path = (DEFAULT_ROUTE_SAMPLE if route.path == "$default" else (route.method, route.path))
    for name, value in params.items():
        path = path.replace("{" + name + "}", value).replace("{" + name + "+}", value)
    body, content_type = None, None
    if route.route_key in FORMS:
        body, content_type = FORMS[route.route_key].encode(), "application/x-www-form-urlencoded"
    elif route.route_key in BODIES:
        body, content_type = json.dumps(BODIES[route.route_key], ensure_ascii=False).encode(), "application/json"
    elif route.method in ("POST", "PUT", "PATCH") and route.route_key not in _NO_BODY:
        print(f"note: no sample body for {route.route_key}; add one to BODIES in local/make_events.py",
              file=sys.stderr)
    event = apigw.build_event(route, params, method, path, raw_query=QUERIES.get(route.route_key, ""),
                              headers=_headers(route, content_type), body=body, source_ip="203.0.113.10")
    context = event["requestContext"]
    context.update(requestId=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{route.function}/{event_name}")),
                   time=FIXED_TIME, timeEpoch=FIXED_EPOCH_MS, domainName=HOST, domainPrefix=HOST.split(".")[0],
                   accountId="123456789012", apiId=HOST.split(".")[0])
    return event


# Mutating routes that take no body (their sample stays without one).
_NO_BODY = {
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/payment-link",
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/payment-link/send",
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/card-setup",
    "PUT /v1/clinics/{clinic_id}/patients/{patient_id}/cards/{card_id}/default",
    "POST /v1/clinics/{clinic_id}/qr-registers/sync",
    "POST /v1/clinics/{clinic_id}/fiscal/shift/open",
    "POST /v1/clinics/{clinic_id}/fiscal/shift/close",
    "POST /v1/clinics/{clinic_id}/qr-payments/{payment_id}/fiscalize",
    "POST /v1/clinics/{clinic_id}/admin-keys",
    "POST /v1/clinics/{clinic_id}/patient-token-secret",
}


def expected_events() -> dict[Path, dict[str, Any]]:
    """events/<function folder>/<EventName>.json -> its content, for everything in template.yaml."""
    routes = {(r.function, r.method, r.path): r for r in template.routes()}
    functions = template.functions()
    result: dict[Path, dict[str, Any]] = {}
    for logical_id, resource in template.load()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        folder = EVENTS / functions[logical_id].code_uri.name
        for name, event in resource["Properties"].get("Events", {}).items():
            props = event.get("Properties") or {}
            if event["Type"] == "HttpApi":
                default = template.default_route()
                route = (default if "Path" not in props and default else
                         routes[(logical_id, props["Method"].upper(), props["Path"])])
                result[folder / f"{name}.json"] = api_event(route, name)
            elif event["Type"] in ("Schedule", "ScheduleV2"):
                result[folder / f"{name}.json"] = apigw.scheduler_event(json.loads(props["Input"])["job"])
    for mapping in template.event_source_mappings():
        jobs = sorted(job for job, function in template.schedules().items() if function == mapping.function)
        folder = EVENTS / functions[mapping.function].code_uri.name
        result[folder / f"{mapping.queue}.json"] = job_shard_event(mapping.queue, jobs[0], shard=3)
    return result


def job_shard_event(queue: str, job: str, shard: int) -> dict[str, Any]:
    """What the job queue's event source mapping hands the function: one shard of one job."""
    body = json.dumps({"job": job, "shard": shard, "run": "run_bcdfghjkmnpqrstvbcdf",
                       "dispatched_at": "2026-11-23T10:00:00+00:00"})
    return {"Records": [{
        "messageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{queue}/{job}/{shard}")),
        "receiptHandle": "AQEB-sample-receipt-handle", "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(FIXED_EPOCH_MS),
                       "SenderId": "AROAEXAMPLE:clinicpay-dispatcher",
                       "ApproximateFirstReceiveTimestamp": str(FIXED_EPOCH_MS + 40)},
        "messageAttributes": {}, "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's checksum
        "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
        "awsRegion": "us-east-1"}]}


def _is_stale(path: Path, expected: dict[Path, dict[str, Any]]) -> bool:
    """A generated event (API or job) that template.yaml no longer has."""
    if path in expected:
        return False
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return False
    return isinstance(data, dict) and ("routeKey" in data or set(data) == {"job"} or "Records" in data)


def main() -> int:
    expected = expected_events()
    for path, event in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
    removed = [p for p in EVENTS.rglob("*.json") if _is_stale(p, expected)]
    for path in removed:
        path.unlink()
        print(f"removed stale {path.relative_to(template.ROOT)}")
    print(f"wrote {len(expected)} events under {EVENTS.relative_to(template.ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
