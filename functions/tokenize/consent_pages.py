"""tokenize's consent pages, which a patient sees around saving a card: our consent page (before
Stripe's hosted card page) and its "done" page."""

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from clinicpay.api import pages as page_docs
from clinicpay.api.auth import Access
from clinicpay.api.pages import local_time
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.clinic import localized_name
from clinicpay.domain.errors import ClinicpayError, GatewayNotConfigured, NotFound
from clinicpay.observability import tracer
from clinicpay.repositories.card_requests import CardRequestRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import card_setup

app = loading_routes()
pages = function_module(__file__, "pages")
dependencies = function_module(__file__, "dependencies")

TokenPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,128}$")]


@app.get("/cards/setup/<token>", access=Access.LINK_TOKEN, responses=page_docs.html_responses(200, 404, 410))
def consent_page(token: TokenPath, lang: Annotated[str | None, Query()] = None,
                 cancelled: Annotated[str | None, Query(description="Set by the processor's cancel URL: the "
                                                                    "page says no card was saved.")] = None,
                 ) -> Response[Any]:
    return _consent(token, lang, notice_key="setup_cancelled" if cancelled is not None else None)


def _consent(token: str, lang: str | None, error_key: str | None = None, status: int = 200,
             notice_key: str | None = None) -> Response[Any]:
    locale = lang if lang in pages.LOCALES else "en"
    try:
        page = card_setup.consent_page(dependencies.card_deps(None), token, lang=lang)
    except NotFound:
        return pages.html(404, pages.message_page("clinicpay", "not_found", locale))
    if page.state != "open":
        key = "completed" if page.state == "completed" else "expired"
        return pages.html(200 if key == "completed" else 410, pages.message_page(page.clinic_name, key, page.locale))
    booking = ""
    if page.booking:
        booking = pages.booking_summary(
            page.locale, service=localized_name(str(page.booking.get("service_name") or page.booking.get("service_id")),
                                                page.booking.get("service_names"), page.locale),
            starts_at=local_time(datetime.fromisoformat(str(page.booking["starts_at"])), page.timezone, page.locale),
            confirmed=False, to_confirm=True)
        if page.no_show_fee:
            from clinicpay.notify.formatting import format_money

            booking += pages.no_show_line(page.locale, clinic_name=page.clinic_name,
                                          fee=format_money(page.no_show_fee, page.locale))
    return pages.html(status, pages.consent_page(clinic_name=page.clinic_name, locale=page.locale,
                                                 consent_text=page.text, text_version=page.text_version,
                                                 error_key=error_key, notice_key=notice_key, booking=booking))


@app.post("/cards/setup/<token>", access=Access.LINK_TOKEN,
          responses=page_docs.html_responses(303, 200, 404, 410, 422, 503))
@tracer.capture_method
def submit_consent(token: TokenPath) -> Response[Any]:
    form = dict(parse_qsl(app.current_event.decoded_body or "", keep_blank_values=True))
    lang = form.get("lang")
    locale = lang if lang in pages.LOCALES else "en"
    ip, agent = dependencies.client(app)
    try:
        request = CardRequestRepository(get_settings().app_table).get(token)
        url = card_setup.submit_consent(dependencies.card_deps(str(request["clinic_id"])), token,
                                        consented=form.get("consent") == "yes", text_version=form.get("text_version"),
                                        ip=ip, user_agent=agent, lang=lang)
    except (card_setup.ConsentRequired, card_setup.ConsentTextChanged) as refused:
        return _consent(token, lang, refused.code, 422)
    except NotFound:
        return _consent(token, lang)
    except GatewayNotConfigured:
        return pages.html(503, pages.message_page("clinicpay", "unavailable", locale), {"Retry-After": "3600"})
    except ClinicpayError as error:
        if error.status < 500:
            raise
        return pages.html(503, pages.message_page("clinicpay", "retry", locale,
                                                  extra=pages.retry_link(f"/cards/setup/{token}", locale)),
                          {"Retry-After": "30"})
    return Response(303, "text/plain", "", headers={"Location": url, "Cache-Control": "no-store"})


@app.get("/cards/setup/<token>/done", access=Access.LINK_TOKEN, responses=page_docs.html_responses(200, 404))
def setup_done(token: TokenPath, lang: Annotated[str | None, Query()] = None) -> Response[Any]:
    locale = lang if lang in pages.LOCALES else "en"
    try:
        page = card_setup.done_page(dependencies.card_deps(None), token, lang=lang)
    except NotFound:
        return pages.html(404, pages.message_page("clinicpay", "not_found", locale))
    if page.state == "completed":
        booking, refresh = "", None
        if page.appointment:
            found = page.appointment
            confirmed = found.get("status", "confirmed") == "confirmed"
            booking = pages.booking_summary(
                page.locale, service=localized_name(str(found.get("service_name") or found.get("service_id")),
                                                    found.get("service_names"), page.locale),
                starts_at=local_time(datetime.fromisoformat(str(found["starts_at"])), page.timezone, page.locale),
                confirmed=confirmed)
            # The same webhook confirms the booking just after it marks the card saved: look again shortly.
            refresh = None if confirmed else 3
        return pages.html(200, pages.message_page(page.clinic_name, "completed", page.locale, extra=booking,
                                                  refresh=refresh))
    # The processor's webhook usually lands within a second or two of the redirect.
    return pages.html(200, pages.message_page(page.clinic_name, "saving", page.locale, refresh=3))
