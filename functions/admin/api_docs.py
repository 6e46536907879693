"""admin's /docs: the page that shows the API document (it fetches /openapi.json); answers without a key."""

from typing import Any

from aws_lambda_powertools.event_handler import Response

from clinicpay.api import docs_page, pages
from clinicpay.api.auth import Access
from clinicpay.api.route_groups import loading_routes
from clinicpay.settings import get_settings

app = loading_routes()


@app.get("/docs", access=Access.NONE, responses=pages.html_responses(200))
def docs() -> Response[Any]:
    page, headers = docs_page.render(get_settings().docs_viewer_url)
    return Response(200, "text/html; charset=utf-8", page, headers=headers)
