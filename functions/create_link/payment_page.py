"""create_link's payment link pages, what the patient opens: `/pay/{token}` (on to the provider's
checkout, or the link's status), the page the provider sends them back to, and the appointment for
their calendar. A route group (api/route_groups.py): loaded by the first request to one of its paths."""

from datetime import UTC, datetime
from html import escape
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from clinicpay.api import pages
from clinicpay.api.auth import Access
from clinicpay.api.calendar_file import appointment_calendar
from clinicpay.api.route_groups import loading_routes
from clinicpay.domain.appointment import PaymentStatus
from clinicpay.domain.clinic import Clinic
from clinicpay.domain.errors import ClinicpayError, GatewayNotConfigured
from clinicpay.observability import tracer
from clinicpay.providers.registry import link_gateway
from clinicpay.repositories.appointments import AppointmentRepository, StoredAppointment
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.settings import get_settings
from clinicpay.usecases.payment_links import PayDeps, open_link, receipt

app = loading_routes()


@app.get("/pay/<token>", access=Access.LINK_TOKEN, responses=pages.html_responses(303, 200, 404, 409, 410, 503))
@tracer.capture_method
def pay(token: Annotated[str, Path()]) -> Response[Any]:
    settings = get_settings()
    deps = PayDeps(appointments=AppointmentRepository(settings.app_table), clinics=ClinicRepository(settings.app_table),
                   gateway_for=link_gateway, public_base_url=settings.public_base_url)
    locale = "en"
    try:
        outcome = open_link(deps, token)
        locale = outcome.locale
    except GatewayNotConfigured:
        # Not passing: the clinic has to connect a gateway. The page says so; Retry-After says "not soon".
        return _html(503, pages.page("clinicpay", pages.text("unavailable", locale), locale, status_id="unavailable"),
                     {"Retry-After": "3600"})
    except ClinicpayError as error:
        if error.status < 500:
            raise
        retry = f'<a class="button" href="/pay/{escape(token)}">{escape(pages.text("try_again", locale))}</a>'
        return _html(503, pages.page("clinicpay", pages.text("retry", locale), locale, status_id="retry", extra=retry),
                     {"Retry-After": "30"})
    if outcome.kind == "redirect" and outcome.url:
        return Response(303, "text/plain", "", headers={"Location": outcome.url, "Cache-Control": "no-store"})
    if outcome.kind == "paid" and outcome.stored and outcome.clinic:
        return _receipt(token, outcome.stored, outcome.clinic, deps.clinics)
    status = {"paid": 200, "deposit_paid": 200, "expired": 410, "not_found": 404, "no_payment": 409}.get(outcome.kind, 200)
    return _html(status, pages.page(outcome.clinic_name or "clinicpay", pages.text(outcome.kind, outcome.locale),
                                    outcome.locale, status_id=outcome.kind))


@app.get("/pay/<token>/result", access=Access.LINK_TOKEN, responses=pages.html_responses(200, 404))
def pay_result(token: Annotated[str, Path()], cancelled: Annotated[str | None, Query()] = None) -> Response[Any]:
    settings = get_settings()
    repo = AppointmentRepository(settings.app_table)
    found = repo.find_link(token)
    if not found:
        return _html(404, pages.page("clinicpay", pages.text("not_found", "en"), "en", status_id="not_found"))
    stored = repo.get(*found, consistent=True)
    clinics = ClinicRepository(settings.app_table)
    clinic = clinics.get(found[0])
    if stored.appointment.payment_status is PaymentStatus.PAID:
        return _receipt(token, stored, clinic, clinics)
    locale = (stored.appointment.patient.locale or clinic.locale).value
    return _html(200, pages.result_page(token, locale, clinic.name, stored.appointment.payment_status.value,
                                        cancelled is not None, deposit_done=not stored.balance_requested))


@app.get("/pay/<token>/calendar.ics", access=Access.LINK_TOKEN,
         responses={200: {"description": "The appointment as an iCalendar file (RFC 5545)",
                          "content": {"text/calendar": {"schema": {"type": "string"}}}},
                    **pages.html_responses(404, 410)})
def pay_calendar(token: Annotated[str, Path()]) -> Response[Any]:
    """The link's appointment for the patient's calendar, paid or not: the link holder booked it. A
    lapsed online booking (its link expired unpaid) has no appointment to add: 410, like `/pay`."""
    settings = get_settings()
    repo = AppointmentRepository(settings.app_table)
    found = repo.find_link(token)
    if not found:
        return _html(404, pages.page("clinicpay", pages.text("not_found", "en"), "en", status_id="not_found"))
    stored = repo.get(*found)
    clinic = ClinicRepository(settings.app_table).get(found[0])
    appointment = stored.appointment
    locale = (appointment.patient.locale or clinic.locale).value
    lapsed = stored.link_expires_at is not None and stored.link_expires_at <= datetime.now(UTC)
    if lapsed and appointment.payment_status in (PaymentStatus.UNPAID, PaymentStatus.PENDING):
        return _html(410, pages.page(clinic.name, pages.text("expired", locale), locale, status_id="expired"))
    service = appointment.service_name or appointment.service_id
    body = appointment_calendar(
        uid=f"{appointment.appointment_id}.{clinic.clinic_id}@clinicpay", starts_at=appointment.starts_at,
        summary=f"{service} — {clinic.name}",
        description=f"{pages.text('reference', locale)}: {appointment.appointment_id}",
        url=f"{settings.public_base_url.rstrip('/')}/pay/{token}")
    return Response(200, "text/calendar; charset=utf-8", body, headers={
        "Content-Disposition": 'attachment; filename="appointment.ics"', "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer"})


def _receipt(token: str, stored: StoredAppointment, clinic: Clinic, clinics: ClinicRepository) -> Response[Any]:
    # One read more than the old paid page: the clinic's settings, for the link back to its site.
    locale = (stored.appointment.patient.locale or clinic.locale).value
    shown = receipt(stored, clinic, clinics.get_settings(clinic.clinic_id))
    return _html(200, pages.receipt_page(token, shown, locale))


def _html(status: int, body: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status, "text/html; charset=utf-8", body, headers=headers)  # security headers: resolver.harden

