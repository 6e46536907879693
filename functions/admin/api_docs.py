"""admin's API document (/openapi.json, generated at build time by local/openapi.py) and the page
that shows it (/docs); both answer without a key."""

from importlib import resources
from typing import Any

from aws_lambda_powertools.event_handler import Response

from clinicpay.api import docs_page, pages
from clinicpay.api.auth import Access
from clinicpay.api.route_groups import loading_routes
from clinicpay.settings import get_settings

app = loading_routes()


@app.get("/openapi.json", access=Access.NONE)
def openapi() -> Response[Any]:
    document = resources.files("clinicpay.api").joinpath("openapi.json").read_text()
    return Response(200, "application/json", document)


@app.get("/docs", access=Access.NONE, responses=pages.html_responses(200))
def docs() -> Response[Any]:
    page, headers = docs_page.render(get_settings().docs_viewer_url)
    return Response(200, "text/html; charset=utf-8", page, headers=headers)
