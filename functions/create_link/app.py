"""create_link: appointments, their payment links, `/pay/{token}`, online booking, reminders."""


from clinicpay import coldstart  # first: the garbage collector waits while this module loads

# isort: split
import json
from datetime import UTC, datetime
from functools import partial
from html import escape
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from pydantic import ConfigDict, Field, JsonValue

from clinicpay import fanout
from clinicpay.api import pages
from clinicpay.api.auth import Access
from clinicpay.api.calendar_file import appointment_calendar
from clinicpay.api.idempotency import idempotent_http
from clinicpay.api.public import client_address, enforce_limits
from clinicpay.api.resolver import header, make_resolver
from clinicpay.deadline import lambda_deadline, provider_seconds_left
from clinicpay.domain.appointment import BookedBy, BookingStatus, PatientDetails, PaymentStatus, PublicPatientDetails
from clinicpay.domain.clinic import Clinic
from clinicpay.domain.errors import ClinicpayError, Conflict, GatewayNotConfigured, NotFound
from clinicpay.domain.model import Model
from clinicpay.domain.moments import Moment
from clinicpay.domain.money import Money, PositiveMoney
from clinicpay.domain.text import OneLine
from clinicpay.notify.sender import AwsNotifier
from clinicpay.observability import logger, metrics, tracer
from clinicpay.providers.registry import link_gateway, refunding_gateway
from clinicpay.repositories.appointments import AppointmentRepository, StoredAppointment
from clinicpay.repositories.card_requests import CardRequestRepository
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.repositories.ledger import LedgerRepository
from clinicpay.repositories.patient_tokens import PatientTokenSecrets
from clinicpay.repositories.patients import PatientRepository
from clinicpay.repositories.templates import TemplateRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import appointment_list, desk_payments, refunds
from clinicpay.usecases import appointments as booking
from clinicpay.usecases.payment_links import PayDeps, open_link, receipt, to_collect
from clinicpay.usecases.receipts import send_refund_message
from clinicpay.usecases.reminders import ReminderDeps, send_due_reminders

app = make_resolver()


_PATIENT_EXAMPLE: dict[str, JsonValue] = {"id": "pat-1042", "name": "Ana Rojas", "email": "ana@example.cl",
                                           "phone": "+56912345678", "locale": "es"}


class CreateAppointmentRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"patient": _PATIENT_EXAMPLE, "service_id": "consulta", "starts_at": "2031-03-14T10:30:00-03:00",
         "booked_by": "staff"}]})

    appointment_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{3,64}$")
    patient: PatientDetails
    service_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    starts_at: Moment
    booked_by: BookedBy = BookedBy.STAFF
    price: Money | None = None


class OnlineBookingRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        # A new patient: the widget sends no patient id (a returning one is proved by a patient token).
        {"patient": {k: v for k, v in _PATIENT_EXAMPLE.items() if k != "id"}, "service_id": "consulta",
         "starts_at": "2031-03-14T11:30:00-03:00"}]})

    patient: PublicPatientDetails
    service_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    starts_at: Moment
    patient_token: str | None = Field(default=None, min_length=1, max_length=4096, description=(
        "A returning patient's token, signed by the clinic's site (docs/API.md, Returning patients). "
        "Without it the booking is for a new patient record."))


class PaymentLinkRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"purpose": "balance"}]})

    purpose: Literal["balance"] | None = Field(default=None, description=(
        "`balance`: from now on the link collects everything still due (a new provider session at the "
        "patient's next click), e.g. after a deposit; the link then never expires."))


class RefundRequestBody(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": {"amount": 10000, "currency": "CLP"}, "payment_reference": "pi_2Vb9Qk3nT8sLm4Xa",
         "reason": "Consulta cancelada por la clínica"}, {}]})

    amount: PositiveMoney | None = Field(default=None, description="Default: everything left on the payment.")
    payment_reference: str | None = Field(default=None, min_length=1, max_length=255,
                                          pattern=r"^[A-Za-z0-9_\-.:]+$", description=(
        "Which payment (`reference` in GET .../payments). Default: the latest online payment with "
        "something left, else the latest desk payment."))
    reason: OneLine | None = Field(default=None, max_length=500)


class DeskPaymentRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"method": "desk", "amount": {"amount": 15000, "currency": "CLP"}, "note": "Saldo pagado en recepción"}]})

    method: Literal["desk"]
    amount: PositiveMoney
    note: OneLine | None = Field(default=None, max_length=500)


def _deps() -> booking.AppointmentDeps:
    settings = get_settings()
    return booking.AppointmentDeps(
        appointments=AppointmentRepository(settings.app_table), clinics=ClinicRepository(settings.app_table),
        patients=PatientRepository(settings.app_table), card_requests=CardRequestRepository(settings.app_table),
        templates=TemplateRepository(settings.app_table), notifier=AwsNotifier(settings.email_sender),
        public_base_url=settings.public_base_url, token_secrets=PatientTokenSecrets(settings.app_table))


def _refund_deps() -> refunds.RefundDeps:
    settings = get_settings()
    repo = AppointmentRepository(settings.app_table)
    notify = partial(send_refund_message, repo, TemplateRepository(settings.app_table),
                     AwsNotifier(settings.email_sender))
    return refunds.RefundDeps(appointments=repo, ledger=LedgerRepository(settings.app_table),
                              gateway_for=refunding_gateway, notify=notify)


def _idempotency_key() -> str | None:
    key = header(app, "idempotency-key")
    return (key.strip() or None) if isinstance(key, str) else None


# ------------------------------------------------------------------ staff
@app.post("/v1/clinics/<clinic_id>/appointments", access=Access.STAFF, status_code=201)
@tracer.capture_method
def create_appointment(clinic_id: Annotated[str, Path()], body: Annotated[CreateAppointmentRequest, Body()]) -> dict[str, Any]:
    deps = _deps()
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
    deps = _deps()
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
    deps = _deps()
    return booking.view(deps.appointments.get(clinic_id, appointment_id), deps.public_base_url)


@app.post("/v1/clinics/<clinic_id>/appointments/<appointment_id>/payment-link", access=Access.STAFF)
def get_payment_link(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()],
                     body: Annotated[PaymentLinkRequest | None, Body()] = None) -> dict[str, Any]:
    deps = _deps()
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
    return {"sent": booking.send_payment_link(_deps(), clinic_id, appointment_id,
                                              purpose=body.purpose if body else None)}


class CancelRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "El paciente avisó por teléfono"}, {}]})

    reason: OneLine | None = Field(default=None, max_length=500)


@app.post("/v1/clinics/<clinic_id>/appointments/<appointment_id>/cancel", access=Access.STAFF,
          responses={200: {"description": "The appointment, cancelled (the same answer when it already was)"}})
@tracer.capture_method
def cancel_appointment(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()],
                       body: Annotated[CancelRequest | None, Body()] = None) -> dict[str, Any]:
    deps = _deps()
    stored, changed = booking.cancel_appointment(deps, clinic_id, appointment_id, body.reason if body else None)
    if changed:
        metrics.add_metric(name="AppointmentCancelled", unit="Count", value=1)
        logger.info("appointment cancelled", extra={"clinic_id": clinic_id, "appointment_id": appointment_id})
    return booking.view(stored, deps.public_base_url)


# ------------------------------------------------------------------ the ledger: payments and refunds
@app.get("/v1/clinics/<clinic_id>/appointments/<appointment_id>/payments", access=Access.STAFF)
def list_payments(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()]) -> dict[str, Any]:
    settings = get_settings()
    stored = AppointmentRepository(settings.app_table).get(clinic_id, appointment_id, consistent=True)
    payments = LedgerRepository(settings.app_table).payments_of(stored)
    shown = stored.appointment.model_dump(mode="json", include={"amount_paid", "amount_refunded", "balance_due",
                                                                 "payment_status", "price", "deposit"})
    return {**shown, "payments": [p.view() for p in payments]}


@app.post("/v1/clinics/<clinic_id>/appointments/<appointment_id>/payments", access=Access.STAFF, status_code=201,
          responses={201: {"description": "The desk payment, recorded, and the appointment"},
                     200: {"description": "The same Idempotency-Key again: the payment it recorded, unchanged"}})
@tracer.capture_method
def take_desk_payment(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()],
                      body: Annotated[DeskPaymentRequest, Body()]) -> Response[Any]:
    settings = get_settings()
    deps = desk_payments.DeskDeps(appointments=AppointmentRepository(settings.app_table),
                                  ledger=LedgerRepository(settings.app_table))
    payment, stored, created = desk_payments.take_desk_payment(deps, clinic_id, appointment_id, body.amount,
                                                               note=body.note, idempotency_key=_idempotency_key())
    result = {"payment": payment.view(), "appointment": booking.view(stored, settings.public_base_url)}
    return Response(201 if created else 200, "application/json", json.dumps(result))


@app.post("/v1/clinics/<clinic_id>/appointments/<appointment_id>/refunds", access=Access.STAFF, status_code=201,
          responses={201: {"description": "The refund, asked of the provider: succeeded, pending (the provider "
                                          "is still deciding; its event or our asking settles it) or failed"},
                     200: {"description": "The same Idempotency-Key again: that refund as it is now"}})
@tracer.capture_method
def create_refund(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()],
                  body: Annotated[RefundRequestBody | None, Body()] = None) -> Response[Any]:
    ask = body or RefundRequestBody()
    refund, created = refunds.request_refund(_refund_deps(), clinic_id, appointment_id, refunds.RefundAsk(
        amount=ask.amount, payment_reference=ask.payment_reference, reason=ask.reason,
        idempotency_key=_idempotency_key()))
    logger.info("refund asked", extra={"clinic_id": clinic_id, "appointment_id": appointment_id,
                                       "refund_id": refund.refund_id, "status": refund.status, "new_refund": created})
    return Response(201 if created else 200, "application/json", json.dumps(refund.view()))


@app.get("/v1/clinics/<clinic_id>/appointments/<appointment_id>/refunds", access=Access.STAFF)
def list_refunds(clinic_id: Annotated[str, Path()], appointment_id: Annotated[str, Path()]) -> dict[str, Any]:
    return {"refunds": [r.view() for r in refunds.list_refunds(_refund_deps(), clinic_id, appointment_id)]}


# ------------------------------------------------------------------ booking widget
@app.post("/v1/public/clinics/<clinic_id>/appointments", access=Access.PUBLISHABLE, limit="write", status_code=201)
def book_online(clinic_id: Annotated[str, Path()], body: Annotated[OnlineBookingRequest, Body()]) -> dict[str, Any]:
    deps = _deps()
    stored, card_url = booking.book_online(deps, clinic_id, booking.OnlineBooking(
        patient=body.patient.model_dump(mode="json", exclude_none=True), service_id=body.service_id,
        starts_at=body.starts_at, patient_token=body.patient_token))
    metrics.add_metric(name="OnlineBooking", unit="Count", value=1)
    return {"appointment": booking.view(stored, deps.public_base_url),
            "next_action": booking.next_action(stored, card_url, deps.public_base_url)}


@app.get("/v1/public/payments/<token>", access=Access.LINK_TOKEN,
         responses={200: {"description": "The status of that link's payment"},
                    429: {"description": "Over the public reads' limit (counted for the link's clinic)"}})
def payment_status(token: Annotated[str, Path()]) -> dict[str, Any]:
    """What the patient holding the link may know: the status of that one payment."""
    repo = AppointmentRepository(get_settings().app_table)
    found = repo.find_link(token)
    # Counted for the link's clinic (or, for a token that is no link, under "none").
    enforce_limits("read", found[0] if found else "none", client_address(app))
    if not found:
        raise NotFound("No such payment link.")
    stored = repo.get(*found, consistent=True)
    collect = to_collect(stored)
    return {"payment_status": stored.appointment.payment_status, "status": stored.appointment.status,
            "amount": stored.appointment.price.model_dump(), "starts_at": stored.appointment.starts_at.isoformat(),
            "amount_due": collect[0].model_dump() if collect else None}


# ------------------------------------------------------------------ the link itself
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


# ------------------------------------------------------------------ scheduled (clinicpay.fanout)
def run_reminders(shard: int) -> dict[str, Any]:
    settings = get_settings()
    deps = ReminderDeps(appointments=AppointmentRepository(settings.app_table),
                        clinics=ClinicRepository(settings.app_table), templates=TemplateRepository(settings.app_table),
                        notifier=AwsNotifier(settings.email_sender), public_base_url=settings.public_base_url,
                        # A reminder's own calls are AWS calls; the provider reserve is what they need.
                        has_time=lambda: provider_seconds_left() > 0)
    return send_due_reminders(deps, shard)


def run_message_retry(shard: int) -> dict[str, Any]:
    from clinicpay.notify.sender import AwsTransport
    from clinicpay.repositories.message_outbox import MessageOutbox
    from clinicpay.usecases.message_retry import MessageRetryDeps
    from clinicpay.usecases.message_retry import run_message_retry as retry

    settings = get_settings()
    deps = MessageRetryDeps(outbox=MessageOutbox(settings.app_table), transport=AwsTransport(settings.email_sender),
                            has_time=lambda: provider_seconds_left() > 0, gave_up=_message_given_up)
    return retry(deps, shard)


def run_link_reconcile(shard: int) -> dict[str, Any]:
    """Ask the providers about link sessions whose webhook has not come (usecases/link_reconcile.py),
    then about refunds still pending for want of an answer (usecases/refunds.reconcile_refunds)."""
    from datetime import UTC, datetime

    from clinicpay.repositories.link_watches import LinkWatchRepository
    from clinicpay.usecases.link_reconcile import LinkReconcileDeps
    from clinicpay.usecases.link_reconcile import run_link_reconcile as reconcile
    from clinicpay.usecases.payment_events import apply_payment_events

    settings = get_settings()
    repo = AppointmentRepository(settings.app_table)
    deps = LinkReconcileDeps(watches=LinkWatchRepository(settings.app_table), appointments=repo,
                             gateway_for=link_gateway, apply=lambda cid, events: apply_payment_events(cid, events, repo),
                             # each ask is a provider call and its writes: stop while they still fit
                             has_time=lambda: provider_seconds_left() > 0)
    now = datetime.now(UTC)
    counts = reconcile(deps, shard, now)
    # and the shard's refunds whose provider answer or event never came (usecases/refunds.py)
    counts["refunds"] = refunds.reconcile_refunds(_refund_deps(), shard, now,
                                                  has_time=lambda: provider_seconds_left() > 0)
    return counts


def _message_given_up(kept: Any, why: str) -> None:
    # Summed over every service by the MessageGivenUp alarm; the log line names the clinic.
    metrics.add_metric(name="MessageGivenUp", unit="Count", value=1)


jobs = fanout.Jobs({"reminders": run_reminders, "message-retry": run_message_retry,
                    "link-reconcile": run_link_reconcile},
                   queue_url=lambda: get_settings().create_link_jobs_queue_url)


_http = idempotent_http(app.resolve)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
@lambda_deadline
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if fanout.is_job_event(event):
        return jobs.handle(event, context)
    return _http(event, context)


coldstart.loaded()
