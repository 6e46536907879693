"""Builds the one OpenAPI document from every function's resolver (routes, models, validation).

    .venv/bin/python -m local.openapi          # writes layers/shared/python/clinicpay/api/openapi.json
    .venv/bin/python -m local.openapi --check  # exits 1 when the committed document is stale

The admin function serves the file at /openapi.json; generating it at build time keeps the
Lambdas from building schemas at run time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from local import apigw, template

OUTPUT = Path(__file__).resolve().parent.parent / "layers/shared/python/clinicpay/api/openapi.json"

_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message", "details"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "array", "items": {}}}}},
}


def build() -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "clinicpay", "version": "0.1.0",
                 "description": "Payments for clinic booking software. Money is {amount: integer minor units, "
                                "currency: ISO 4217}. Errors are {error: {code, message, details}}."},
        "paths": {}, "components": {"schemas": {"Error": _ERROR}, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "operator, clinic admin or staff key"},
            "clinicKey": {"type": "apiKey", "in": "header", "name": "X-Clinic-Key",
                          "description": "publishable key of the booking widget"}}},
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
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.setdefault("responses", {})["default"] = {
                "description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    document["paths"] = dict(sorted(document["paths"].items()))
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
