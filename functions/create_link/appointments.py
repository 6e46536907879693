"""create_link's staff routes for appointments: book, list (JSON or CSV), read, the payment link
(and sending it) and cancelling. A route group (api/route_groups.py): loaded by the first request
to one of its paths."""

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import ConfigDict, Field

from clinicpay.api.auth import Access
from clinicpay.api.resolver import header
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.appointment import BookedBy, BookingStatus, PatientDetails, PaymentStatus
from clinicpay.domain.errors import Conflict, NotFound
from clinicpay.domain.model import Model
from clinicpay.domain.moments import Moment
from clinicpay.domain.money import Money
from clinicpay.domain.text import OneLine
from clinicpay.observability import logger, metrics, tracer
from clinicpay.usecases import appointment_list
from clinicpay.usecases import appointments as booking
from clinicpay.usecases.payment_links import to_collect

app = loading_routes()
dependencies = function_module(__file__, "dependencies")


class CreateAppointmentRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"patient": dependencies.PATIENT_EXAMPLE, "service_id": "consulta",
         "starts_at": "2031-03-14T10:30:00-03:00", "booked_by": "staff"}]})

    appointment_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{3,64}$")
    patient: PatientDetails
    service_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    starts_at: Moment
    booked_by: BookedBy = BookedBy.STAFF
    price: Money | None = None


class PaymentLinkRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"purpose": "balance"}]})

    purpose: Literal["balance"] | None = Field(default=None, description=(
        "`balance`: from now on the link collects everything still due (a new provider session at the "
        "patient's next click), e.g. after a deposit; the link then never expires."))



@app.post("/v1/clinics/<clinic_id>/appointments", access=Access.STAFF, status_code=201)
@tracer.capture_method
def create_appointment(clinic_id: Annotated[str, Path()], body: Annotated[CreateAppointmentRequest, Body()]) -> dict[str, Any]:
    deps = dependencies.appointment_deps()
    stored, card_url = booking.create_appointment(deps, clinic_id, booking.NewAppointment(**dict(body)))
    metrics.add_metric(name="AppointmentCreated", unit="Count", value=1)
    logger.info("appointment created", extra={"clinic_id": clinic_id,
                                              "appointment_id": stored.appointment.appointment_id})
    result = booking.view(stored, deps.public_base_url)
    if card_url:
        result["next_action"] = {"type": "save_card", "url": card_url}
    return result


_LIST_RESPONSES = {200: {"description": "A page of appointments as JSON (`next_cursor` while more follow), or every "
                                         "matching appointment as CSV with `Accept: text/csv` or `format=csv`",
                          "content": {"application/json": {"schema": {"type": "object", "required": ["appointments"]}},
                                      "text/csv": {"schema": {"type": "string"}}}},
                   400: {"description": "invalid_cursor: a cursor of another clinic, of other filters, or edited"}}


@app.get("/v1/clinics/<clinic_id>/appointments", access=Access.STAFF, responses=_LIST_RESPONSES)
def list_appointments(clinic_id: Annotated[str, Path()],
                      payment_status: Annotated[PaymentStatus | None, Query()] = None,
                      from_: Annotated[Moment | None, Query(alias="from")] = None,
                      to: Annotated[Moment | None, Query()] = None,
                      q: Annotated[str | None, Query(max_length=100, description=(
                          "Part of the patient's name or email (case and accents ignored, every word must "
                          "appear), or of their phone number (digits only count)"))] = None,
                      sort: Annotated[Literal["upcoming", "starts_at", "-starts_at"], Query(description=(
                          "`upcoming` (default): from now on, soonest first, then the past, latest first; "
                          "`starts_at` / `-starts_at`: by start time"))] = "upcoming",
                      limit: Annotated[int, Query(ge=1, le=appointment_list.MAX_LIMIT)] = appointment_list.DEFAULT_LIMIT,
                      cursor: Annotated[str | None, Query(max_length=512, description=(
                          "`next_cursor` of the previous page, with the same filters"))] = None,
                      format_: Annotated[Literal["json", "csv"] | None, Query(alias="format")] = None,
                      status: Annotated[BookingStatus | None, Query(description=(
                          "The booking's status: confirmed, awaiting_card (waiting for the patient's card) "
                          "or cancelled"))] = None) -> Response[Any]:
    deps = dependencies.appointment_deps()
    query = appointment_list.ListQuery(clinic_id=clinic_id, payment_status=payment_status.value if payment_status else None,
                                       starts_from=from_, starts_to=to, q=q, sort=sort,
                                       status=status.value if status else None)
    now = datetime.now(UTC)
    if format_ == "csv" or (format_ is None and "text/csv" in (header(app, "accept") or "").lower()):
        rows, complete = appointment_list.export_rows(deps.appointments.read_for_clinic, query, now=now)
        try:
            timezone = deps.clinics.get(clinic_id).timezone
        except NotFound:
            timezone = "UTC"
        headers = {"Content-Disposition": f'attachment; filename="appointments-{clinic_id}.csv"',
                   "X-Complete": "true" if complete else "false"}
        return Response(200, "text/csv; charset=utf-8", appointment_list.to_csv([r.appointment for r in rows], timezone),
                        headers=headers)
    page = appointment_list.list_page(deps.appointments.read_for_clinic, query, limit=limit, cursor=cursor, now=now)
    base = deps.public_base_url
    shown = [booking.view(stored, base) for stored in page.appointments]
    return Response(200, "application/json", json.dumps({"appointments": shown, "next_cursor": page.next_cursor,
                                                         "complete": page.complete}))


@app.get("/v1/clinics/<clinic_id>/appointments/<appointment_id>", access=Access.STAFF)
def get_appointment(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()]) -> dict[str, Any]:
    deps = dependencies.appointment_deps()
    return booking.view(deps.appointments.get(clinic_id, appointment_id), deps.public_base_url)


@app.post("/v1/clinics/<clinic_id>/appointments/<appointment_id>/payment-link", access=Access.STAFF)
def get_payment_link(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()],
                     body: Annotated[PaymentLinkRequest | None, Body()] = None) -> dict[str, Any]:
    deps = dependencies.appointment_deps()
    if body is not None and body.purpose == "balance":
        stored = booking.request_balance(deps, clinic_id, appointment_id)
    else:
        stored = deps.appointments.get(clinic_id, appointment_id)
    shown = booking.view(stored, deps.public_base_url)
    if "payment_link" not in shown:
        raise Conflict("This appointment's service does not take online payment.", code="no_payment_required")
    collect = to_collect(stored)
    return {"payment_link": shown["payment_link"], "payment_status": shown["payment_status"],
            "amount_due": collect[0].model_dump() if collect else None,
            "purpose": collect[1] if collect else None, "balance_due": shown["balance_due"]}


@app.post("/v1/clinics/<clinic_id>/appointments/<appointment_id>/payment-link/send", access=Access.STAFF,
          status_code=202)
def send_payment_link(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()],
                      body: Annotated[PaymentLinkRequest | None, Body()] = None) -> dict[str, Any]:
    return {"sent": booking.send_payment_link(dependencies.appointment_deps(), clinic_id, appointment_id,
                                              purpose=body.purpose if body else None)}


class CancelRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "El paciente avisó por teléfono"}, {}]})

    reason: OneLine | None = Field(default=None, max_length=500)


@app.post("/v1/clinics/<clinic_id>/appointments/<appointment_id>/cancel", access=Access.STAFF,
          responses={200: {"description": "The appointment, cancelled (the same answer when it already was)"}})
@tracer.capture_method
def cancel_appointment(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()],
                       body: Annotated[CancelRequest | None, Body()] = None) -> dict[str, Any]:
    deps = dependencies.appointment_deps()
    stored, changed = booking.cancel_appointment(deps, clinic_id, appointment_id, body.reason if body else None)
    if changed:
        metrics.add_metric(name="AppointmentCancelled", unit="Count", value=1)
        logger.info("appointment cancelled", extra={"clinic_id": clinic_id, "appointment_id": appointment_id})
    return booking.view(stored, deps.public_base_url)

