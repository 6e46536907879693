"""tokenize's page a patient lands on after completing an authentication (3-D Secure) for a
charge: display only."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from clinicpay.api import pages as page_docs
from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes

app = loading_routes()
pages = function_module(__file__, "pages")


@app.get("/cards/authentication-complete", access=Access.NONE, responses=page_docs.html_responses(200))
def authentication_complete(lang: Annotated[str | None, Query()] = None,
                            redirect_status: Annotated[str | None, Query()] = None) -> Response[Any]:
    # Display only: the charge itself is settled by the processor's signed webhook, never by this URL.
    locale = lang if lang in pages.LOCALES else "en"
    key = "authenticated" if redirect_status == "succeeded" else "authentication_failed"
    return pages.html(200, pages.message_page("clinicpay", key, locale))
