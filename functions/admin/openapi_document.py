"""admin's API document, /openapi.json (generated at build time by local/openapi.py): answers without
a key, and loads nothing but the file (an SDK generator or a fuzzer asks for it alone)."""

from importlib import resources
from typing import Any

from aws_lambda_powertools.event_handler import Response

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import loading_routes

app = loading_routes()


@app.get("/openapi.json", access=Access.NONE)
def openapi() -> Response[Any]:
    document = resources.files("clinicpay.api").joinpath("openapi.json").read_text()
    return Response(200, "application/json", document)
