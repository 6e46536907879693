"""Builds the one OpenAPI document from every function's resolver (routes, models, validation).

    .venv/bin/python -m local.openapi          # writes layers/shared/python/clinicpay/api/openapi.json
    .venv/bin/python -m local.openapi --check  # exits 1 when the committed document is stale

The admin function serves the file at /openapi.json; generating it at build time keeps the
Lambdas from building schemas at run time.

Powertools gives paths, parameters, bodies (with their examples) and the success status each route
declares. This module adds what the routes' declarations say but Powertools does not write: the
security of each operation (from its `access=`, kept as `x-clinicpay-access`), the error answers
every operation can give in the contract's error shape, `Retry-After` on 503 and 429 (the public
routes' limits, from their `limit=`, kept as `x-clinicpay-rate-limit`), and the links a stateful
client (or fuzzer) follows from a created object to reading it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from clinicpay.api.auth import SIGNATURE_HEADERS
from local import apigw, template
from local.openapi_operations import OPERATIONS, TAGS

OUTPUT = Path(__file__).resolve().parent.parent / "layers/shared/python/clinicpay/api/openapi.json"
ACCESS = "x-clinicpay-access"
RATE_LIMIT = "x-clinicpay-rate-limit"

_ERROR = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {"type": "object", "required": ["code", "message", "details"], "properties": {
        "code": {"type": "string", "pattern": "^[a-z0-9_]+$"}, "message": {"type": "string"},
        "details": {"type": "array", "items": {}}}}},
}

SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "`Authorization: Bearer <key>`: the operator's key, or a clinic's admin or staff key. "
                              "Each operation lists the roles it takes (an admin may do what staff may)."},
    "clinicKey": {"type": "apiKey", "in": "header", "name": "X-Clinic-Key",
                  "description": "The clinic's publishable key, for the booking widget (safe to embed in a page)."},
    **{f"{provider}Signature": {
        "type": "apiKey", "in": "header", "name": header,
        "description": f"Webhooks are signed by {provider.title()} over the raw body with the clinic's secret; "
                       "verified before anything is parsed. No API key is involved."}
       for provider, header in SIGNATURE_HEADERS.items()},
}

_ACCESS_TEXT = {
    "none": "Public: no credential.",
    "link_token": "The unguessable token in the path is the credential (a payment link or card request).",
    "provider_signature": "Signed by the provider (see the security scheme); a missing or bad signature is a 401.",
    "operator": "The operator's key.",
    "org_admin": "The operator's key, or an admin key of a clinic in this organization (another organization: 404).",
    "admin_or_operator": "This clinic's admin key, or the operator's key (another clinic's key: 404; a staff key: 403).",
    "admin": "This clinic's admin key (another clinic's key: 404; a staff key: 403).",
    "staff": "This clinic's staff or admin key (another clinic's key: 404).",
    "publishable": "This clinic's publishable key in X-Clinic-Key (another clinic's key: 404).",
}

# Follow-ups a client can make with what a 2xx answer returned: operationId -> status -> links.
LINKS: dict[str, dict[str, dict[str, tuple[str, dict[str, str]]]]] = {
    "create_clinic": {"201": {
        "GetClinic": ("get_clinic", {"clinic_id": "$response.body#/clinic/clinic_id"}),
        "GetSettings": ("get_settings_route", {"clinic_id": "$response.body#/clinic/clinic_id"})}},
    "create_appointment": {"201": {
        "GetAppointment": ("get_appointment", {"clinic_id": "$request.path.clinic_id",
                                               "appointment_id": "$response.body#/appointment_id"}),
        "GetPaymentLink": ("get_payment_link", {"clinic_id": "$request.path.clinic_id",
                                                "appointment_id": "$response.body#/appointment_id"}),
        "SendPaymentLink": ("send_payment_link", {"clinic_id": "$request.path.clinic_id",
                                                  "appointment_id": "$response.body#/appointment_id"})}},
    "book_online": {"201": {
        "GetAppointment": ("get_appointment", {"clinic_id": "$request.path.clinic_id",
                                               "appointment_id": "$response.body#/appointment/appointment_id"})}},
    "put_service": {"200": {"ListServices": ("list_services", {"clinic_id": "$request.path.clinic_id"})}},
    "put_gateway": {"200": {
        "ListGateways": ("list_gateways", {"clinic_id": "$request.path.clinic_id"}),
        "DeleteGateway": ("delete_gateway", {"clinic_id": "$request.path.clinic_id",
                                             "provider": "$request.path.provider"})}},
    "put_clinic_template": {"200": {"GetClinicTemplate": ("get_clinic_template", {
        "clinic_id": "$request.path.clinic_id", "kind": "$request.path.kind", "channel": "$request.path.channel",
        "locale": "$request.path.locale"})}},
    "put_org_template": {"200": {"GetOrgTemplate": ("get_org_template", {
        "org_id": "$request.path.org_id", "kind": "$request.path.kind", "channel": "$request.path.channel",
        "locale": "$request.path.locale"})}},
    "save_card": {"201": {
        "SetDefaultCard": ("set_default", {"clinic_id": "$request.path.clinic_id",
                                           "patient_id": "$request.path.patient_id",
                                           "card_id": "$response.body#/card_id"}),
        "RemoveCard": ("remove_card", {"clinic_id": "$request.path.clinic_id", "patient_id": "$request.path.patient_id",
                                       "card_id": "$response.body#/card_id"})}},
    "charge": {"201": {"GetCharge": ("get_charge", {"clinic_id": "$request.path.clinic_id",
                                                     "patient_id": "$request.path.patient_id",
                                                     "charge_id": "$response.body#/charge_id"})}},
    "put_amount": {"201": {"ResetAmount": ("reset_amount", {"clinic_id": "$request.path.clinic_id",
                                                            "qr_id": "$request.path.qr_id"})}},
}


def _security(access: str, path: str) -> list[dict[str, list[str]]]:
    from clinicpay.api.auth import Access

    kind = Access(access)
    if kind is Access.PUBLISHABLE:
        return [{"clinicKey": []}]
    if kind is Access.PROVIDER_SIGNATURE:
        provider = path.split("/")[2]
        return [{f"{provider}Signature": []}]
    if kind.roles:
        return [{"bearer": list(kind.roles)}]
    return []  # explicitly none: no credential


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_RETRY_AFTER = {"Retry-After": {"required": True, "description": "Seconds to wait before trying again",
                                "schema": {"type": "string", "pattern": "^[0-9]+$"}}}


def _errors(operation: dict[str, Any], access: str) -> dict[str, str]:
    """The error answers an operation can give (all in the error shape), with what each means here."""
    from clinicpay.api.auth import Access

    kind = Access(access)
    errors: dict[str, str] = {}
    if operation.get("requestBody"):
        errors["400"] = "The body is not JSON, not UTF-8 text, or nests too deeply (`bad_request`)"
    if kind.checked_by_resolver:
        errors["401"] = "No key, or a malformed or unknown one (`unauthorized`)"
        errors["403"] = "A known key that may not do this (`forbidden`)"
    elif kind is Access.PROVIDER_SIGNATURE:
        errors["401"] = "Missing, invalid or stale signature (`invalid_signature`)"
    if any(p["in"] == "path" for p in operation.get("parameters", [])):
        errors["404"] = "No such object, or another clinic's (`not_found`)"
    if kind in (Access.ADMIN, Access.STAFF, Access.PUBLISHABLE):
        errors["409"] = ("The object is not in a state that allows this, or the clinic has not connected the provider "
                         "(`conflict`, `already_paid`, `gateway_not_configured`, ...)")
    if operation.get("requestBody"):
        errors["413"] = "The body is larger than this API accepts (`payload_too_large`)"
        errors["415"] = "The body is not application/json (`unsupported_media_type`)"
    if operation.get("requestBody") or operation.get("parameters"):
        errors["422"] = "A field breaks a rule; details name the field and the rule (`validation_error`)"
    if operation.get(RATE_LIMIT) or "429" in operation.get("responses", {}):
        errors["429"] = ("Over a public route's limit for this client address or clinic (`rate_limited`); "
                         "see Retry-After")
    if kind in (Access.ADMIN, Access.STAFF, Access.PUBLISHABLE):
        errors["502"] = "The provider refused the request (`provider_error`)"
    errors["503"] = "A provider or storage is not answering; nothing changed (see Retry-After)"
    return errors


def _describe(path: str, method: str, operation: dict[str, Any]) -> None:
    """Tag, summary and description from local/openapi_operations.py (a route missing there keeps
    Powertools' "METHOD path" summary; tests/unit/test_openapi_document.py names it)."""
    entry = OPERATIONS.get(f"{method.upper()} {path}")
    if entry is None:
        return
    tag, summary, description = entry
    operation["tags"], operation["summary"] = [tag], summary
    operation["description"] = f"{description}\n\n{operation['description']}" if operation.get("description") else description


def _complete(path: str, method: str, operation: dict[str, Any]) -> None:
    access = operation.get(ACCESS)
    if access is None:
        raise SystemExit(f"{method.upper()} {path} declares no access")
    operation["security"] = _security(access, path)
    _describe(path, method, operation)
    note = _ACCESS_TEXT[access]
    operation["description"] = f"{operation['description']}\n\n{note}" if operation.get("description") else note
    responses: dict[str, Any] = {str(k): v for k, v in operation.get("responses", {}).items()}
    if "HTTPValidationError" in json.dumps(responses.get("422", {})):
        responses.pop("422")  # Powertools' own validation shape; ours is the error shape
    for status, description in _errors(operation, access).items():
        responses.setdefault(status, _error_response(description))
    for status, response in responses.items():
        if status in ("204", "304"):
            response.pop("content", None)
        elif status[0] in "45":  # a route's own error responses are in the error shape too
            response.setdefault("content", {})["application/json"] = {"schema": {"$ref": "#/components/schemas/Error"}}
        if status in ("429", "503"):
            response.setdefault("headers", {}).update(_RETRY_AFTER)
        if status == "303":
            response.setdefault("headers", {})["Location"] = {"required": True, "schema": {"type": "string"}}
    responses["default"] = _error_response("Any other error, in the error shape")
    for status, links in LINKS.get(operation["operationId"], {}).items():
        responses[status]["links"] = {name: {"operationId": target, "parameters": parameters}
                                      for name, (target, parameters) in links.items()}
    operation["responses"] = dict(sorted(responses.items(), key=lambda item: (item[0] == "default", item[0])))


def build() -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "clinicpay", "version": "0.1.0",
                 "description": "Payments for clinic booking software. Money is {amount: integer minor units, "
                                "currency: ISO 4217}. Errors are {error: {code, message, details}}. Each operation "
                                "names the credential it takes; it is checked before the body is. The contract in "
                                "prose, with what this document cannot say: docs/API.md in the repository."},
        "tags": [{"name": name, "description": description} for name, description in TAGS.items()],
        "paths": {}, "components": {"schemas": {"Error": _ERROR}, "securitySchemes": SECURITY_SCHEMES},
    }
    for logical_id, function in sorted(template.functions().items()):
        if not (function.code_uri / "app.py").exists():
            continue
        apigw.handler_for(logical_id)
        module = apigw._modules[logical_id]
        app = getattr(module, "app", None)
        if app is None or not hasattr(app, "get_openapi_schema"):
            continue
        schema = app.get_openapi_schema(title="clinicpay", version="0.1.0").model_dump(
            mode="json", by_alias=True, exclude_none=True)
        for path, operations in schema.get("paths", {}).items():
            document["paths"].setdefault(path, {}).update(operations)
        document["components"]["schemas"].update(schema.get("components", {}).get("schemas", {}))
    operation_ids: set[str] = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation["operationId"] in operation_ids:
                raise SystemExit(f"operationId {operation['operationId']} is used twice: rename a route function")
            operation_ids.add(operation["operationId"])
            _complete(path, method, operation)
    document["paths"] = dict(sorted(document["paths"].items()))
    for unused in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):  # referrers first
        if f'"#/components/schemas/{unused}"' not in json.dumps(document):
            document["components"]["schemas"].pop(unused, None)
    return document


def main() -> int:
    rendered = json.dumps(build(), indent=1, sort_keys=False, ensure_ascii=False) + "\n"
    if "--check" in sys.argv:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != rendered:
            print("openapi.json is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(rendered)
    print(f"wrote {OUTPUT.relative_to(Path.cwd()) if OUTPUT.is_relative_to(Path.cwd()) else OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
