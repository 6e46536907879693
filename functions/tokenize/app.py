"""tokenize: cards on file with consent (tokens only), default/remove, off-session charges and
no-show fees, their refunds, card-request messages, our consent page, Stripe's webhook (Stripe's
events land here because only this function may read the cards table), and the reconciliation of
charges and refunds still awaiting Stripe (job `card-reconcile`)."""


from clinicpay import coldstart  # first: the garbage collector waits while this module loads

# isort: split
import base64
import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path as FilePath
from types import ModuleType
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from pydantic import ConfigDict, Field, JsonValue

from clinicpay import fanout, secrets
from clinicpay.api import pages as page_docs
from clinicpay.api.auth import Access
from clinicpay.api.idempotency import idempotent_http
from clinicpay.api.pages import local_time
from clinicpay.api.resolver import header, make_resolver
from clinicpay.deadline import lambda_deadline, provider_seconds_left
from clinicpay.domain.card import ChargeReason, ConsentGrant
from clinicpay.domain.clinic import localized_name
from clinicpay.domain.errors import (
    ClinicpayError,
    GatewayNotConfigured,
    InvalidSignature,
    NotFound,
)
from clinicpay.domain.model import Model
from clinicpay.domain.money import Money
from clinicpay.domain.text import OneLine
from clinicpay.job_events import is_job_event
from clinicpay.notify.sender import AwsNotifier
from clinicpay.observability import logger, metrics, tracer
from clinicpay.ports import CardVault
from clinicpay.providers.stripe.adapter import StripeCardVault, StripeGateway, link_refund_events
from clinicpay.repositories.card_requests import CardRequestRepository
from clinicpay.repositories.cards import CardAppointments, CardRepository
from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.repositories.patient_tokens import PatientTokenSecrets
from clinicpay.repositories.patients import PatientRepository
from clinicpay.repositories.templates import TemplateRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import card_reconcile, card_refunds, card_setup, cards
from clinicpay.usecases.card_events import apply_card_events
from clinicpay.usecases.card_reconcile import ReconcileDeps, reconcile_charges
from clinicpay.usecases.cards_ports import CardDeps
from clinicpay.usecases.patient_tokens import prove_patient


def _sibling(name: str) -> ModuleType:
    # Loaded by path under a unique name: each function folder may have a module called `pages`.
    spec = importlib.util.spec_from_file_location(f"clinicpay_tokenize_{name}", FilePath(__file__).with_name(f"{name}.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pages = _sibling("pages")
app = make_resolver()

PROVIDER = "stripe"
Identifier = Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-.@]{1,64}$")]


# ------------------------------------------------------------------ wiring
def _vault(clinic_id: str, *, fresh: bool = False) -> StripeCardVault:
    return StripeCardVault(secrets.read_credentials(clinic_id, PROVIDER, fresh=fresh), get_settings())


def _deps(clinic_id: str | None, vault: CardVault | None = None) -> CardDeps:
    settings = get_settings()

    def vault_for(provider: str) -> CardVault:
        if provider != PROVIDER or clinic_id is None:
            raise GatewayNotConfigured(f"No card processor {provider!r} for this clinic.")
        return vault or _vault(clinic_id)

    return CardDeps(cards=CardRepository(settings.cards_table), vault_for=vault_for,
                    appointments=CardAppointments(settings.app_table), patients=PatientRepository(settings.app_table),
                    clinics=ClinicRepository(settings.app_table),
                    card_requests=CardRequestRepository(settings.app_table),
                    public_base_url=settings.public_base_url, provider=PROVIDER,
                    notifier=AwsNotifier(settings.email_sender), templates=TemplateRepository(settings.app_table))


def _client() -> tuple[str | None, str | None]:
    """The caller's IP and user agent, kept with a consent."""
    http = app.current_event.request_context.http
    return http.source_ip or None, header(app, "user-agent")


def _html(status: int, body: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status, "text/html; charset=utf-8", body, headers=headers)  # security headers: resolver.harden


# ------------------------------------------------------------------ request bodies
_CONSENT_EXAMPLE: dict[str, JsonValue] = {"granted": True, "text_version": "cards-2026-02", "channel": "staff",
                                           "granted_by": "reception"}


class SaveCardRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"payment_method": "pm_card_visa", "consent": _CONSENT_EXAMPLE}]})

    payment_method: str = Field(pattern=r"^[A-Za-z0-9_]{3,255}$",
                                description="The processor's token (e.g. a Stripe PaymentMethod id), never a card.")
    consent: ConsentGrant


class StaffSetupRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"consent": _CONSENT_EXAMPLE}]})

    consent: ConsentGrant | None = Field(default=None, description="Without it, the link leads to our consent page.")


# The shape of a patient token (an HS256 JWT the clinic's site signs; docs/API.md, Returning patients).
PATIENT_TOKEN_EXAMPLE = ("eyJhbGciOiJIUzI1NiIsImtpZCI6InB0a19ta3FydHoiLCJ0eXAiOiJKV1QifQ."
                         "eyJzdWIiOiJwYXQtMTA0MiIsImNsaW5pYyI6ImNsX2V4YW1wbGUiLCJleHAiOjE5MjQ5OTIwMDB9."
                         "c2lnbmVkLWJ5LXRoZS1jbGluaWNzLXNpdGU")


class PublicSetupRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"patient_token": PATIENT_TOKEN_EXAMPLE}]})

    patient_token: str = Field(min_length=1, max_length=4096, description=(
        "The patient's token, signed by the clinic's site (docs/API.md, Returning patients): the only proof "
        "of who the patient is. The card is saved for the patient it names."))
    patient_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-.@]{1,64}$", deprecated=True,
                                   description="Ignored: the patient is the one the token names.")
    appointment_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")


class CardRequestRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"channels": ["email"]}]})

    channels: list[Literal["email", "sms"]] = Field(min_length=1, max_length=2)


class ChargeRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": {"amount": 25000, "currency": "CLP"}, "reason": "other"}]})

    amount: Money | None = Field(default=None, description="Omitted on a no_show charge: the service's no_show_fee.")
    card_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    appointment_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    reason: ChargeReason


class RefundRequestBody(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": {"amount": 1500, "currency": "EUR"}, "reason": "requested_by_customer"}, {}]})

    amount: Money | None = Field(default=None, description="What to give back; omitted: all that is left to refund.")
    reason: OneLine | None = Field(default=None, min_length=1, max_length=200, description=(
        "Kept with the refund. `requested_by_customer`, `duplicate` and `fraudulent` are also passed to Stripe."))


# ------------------------------------------------------------------ cards (staff)
BASE = "/v1/clinics/<clinic_id>/patients/<patient_id>"
# How long a caller waits before asking again about a charge whose outcome is not known yet.
PROCESSING_RETRY_AFTER = "10"


@app.post(f"{BASE}/cards", access=Access.STAFF, status_code=201)
@tracer.capture_method
def save_card(clinic_id: Identifier, patient_id: Identifier, body: Annotated[SaveCardRequest, Body()]) -> dict[str, Any]:
    ip, agent = _client()
    card = cards.save_card(_deps(clinic_id), clinic_id, patient_id, body.payment_method, body.consent, ip=ip,
                           user_agent=agent)
    return card


@app.get(f"{BASE}/cards", access=Access.STAFF)
def list_cards(clinic_id: Identifier, patient_id: Identifier) -> dict[str, Any]:
    return {"cards": cards.list_cards(_deps(clinic_id), clinic_id, patient_id)}


@app.put(f"{BASE}/cards/<card_id>/default", access=Access.STAFF)
def set_default(clinic_id: Identifier, patient_id: Identifier, card_id: Identifier) -> dict[str, Any]:
    return cards.set_default(_deps(clinic_id), clinic_id, patient_id, card_id)


@app.delete(f"{BASE}/cards/<card_id>", access=Access.STAFF, status_code=204)
@tracer.capture_method
def remove_card(clinic_id: Identifier, patient_id: Identifier, card_id: Identifier) -> Response[Any]:
    cards.remove_card(_deps(clinic_id), clinic_id, patient_id, card_id)
    return Response(204, None, "")


@app.post(f"{BASE}/card-setup", access=Access.STAFF, status_code=201)
@tracer.capture_method
def staff_card_setup(clinic_id: Identifier, patient_id: Identifier,
                     body: Annotated[StaffSetupRequest | None, Body()] = None) -> dict[str, Any]:
    ip, agent = _client()
    return card_setup.start_staff_setup(_deps(clinic_id), clinic_id, patient_id, body.consent if body else None,
                                        ip=ip, user_agent=agent)


@app.post(f"{BASE}/card-requests", access=Access.STAFF, status_code=202)
@tracer.capture_method
def card_request(clinic_id: Identifier, patient_id: Identifier, body: Annotated[CardRequestRequest, Body()]) -> dict[str, Any]:
    return {"card_request": card_setup.send_card_request(_deps(clinic_id), clinic_id, patient_id, list(body.channels))}


@app.post(f"{BASE}/charges", access=Access.STAFF, status_code=201,
          responses={201: {"description": "The charge, decided by Stripe (succeeded, requires_action or failed)"},
                     202: {"description": "Stripe has not said yet: the charge, processing; ask again (Retry-After, "
                                          "Location) or send the same request with the same Idempotency-Key"}})
@tracer.capture_method
def charge(clinic_id: Identifier, patient_id: Identifier, body: Annotated[ChargeRequest, Body()]) -> Response[Any]:
    result = cards.charge_card(_deps(clinic_id), clinic_id, patient_id, reason=body.reason, amount=body.amount,
                               card_id=body.card_id, appointment_id=body.appointment_id,
                               idempotency_key=header(app, "idempotency-key"))
    if result["status"] != "processing":
        return Response(201, "application/json", json.dumps(result))
    # Not known yet (Stripe has not said, or is still processing): 202, the charge as it stands, and
    # where to ask. Not a 5xx: nothing failed, and the caller must not charge again with a new key.
    # The answer carries Retry-After, so it is not remembered under the Idempotency-Key: the same
    # request later asks Stripe again (same Stripe key, the same PaymentIntent).
    location = f"/v1/clinics/{clinic_id}/patients/{patient_id}/charges/{result['charge_id']}"
    return Response(202, "application/json", json.dumps(result),
                    headers={"Retry-After": PROCESSING_RETRY_AFTER, "Location": location})


@app.get(f"{BASE}/charges", access=Access.STAFF)
def list_charges(clinic_id: Identifier, patient_id: Identifier) -> dict[str, Any]:
    return {"charges": cards.list_charges(_deps(clinic_id), clinic_id, patient_id)}


@app.get(f"{BASE}/charges/<charge_id>", access=Access.STAFF)
def get_charge(clinic_id: Identifier, patient_id: Identifier, charge_id: Identifier) -> dict[str, Any]:
    return cards.get_charge(_deps(clinic_id), clinic_id, patient_id, charge_id)


@app.post(f"{BASE}/charges/<charge_id>/refunds", access=Access.STAFF, status_code=201,
          responses={201: {"description": "The refund, decided by Stripe (succeeded, pending at Stripe, or failed)"},
                     202: {"description": "Sent, and Stripe has not said whether it made it: the refund, pending "
                                          "and reserved; ask again (Retry-After, Location)"}})
@tracer.capture_method
def refund_charge(clinic_id: Identifier, patient_id: Identifier, charge_id: Identifier,
                  body: Annotated[RefundRequestBody | None, Body()] = None) -> Response[Any]:
    refund = card_refunds.refund_charge(_deps(clinic_id), clinic_id, patient_id, charge_id,
                                        amount=body.amount if body else None, reason=body.reason if body else None,
                                        idempotency_key=header(app, "idempotency-key"))
    if not refund.get("undecided"):
        return Response(201, "application/json", json.dumps(refund))
    # Sent, and Stripe has not said whether it made it: pending and reserved, 202 like a charge.
    location = f"/v1/clinics/{clinic_id}/patients/{patient_id}/charges/{charge_id}/refunds"
    return Response(202, "application/json", json.dumps(refund),
                    headers={"Retry-After": PROCESSING_RETRY_AFTER, "Location": location})


@app.get(f"{BASE}/charges/<charge_id>/refunds", access=Access.STAFF)
def list_charge_refunds(clinic_id: Identifier, patient_id: Identifier, charge_id: Identifier) -> dict[str, Any]:
    return {"refunds": card_refunds.list_refunds(_deps(clinic_id), clinic_id, patient_id, charge_id)}


# ------------------------------------------------------------------ booking widget
@app.post("/v1/public/clinics/<clinic_id>/card-setup", access=Access.PUBLISHABLE, limit="write", status_code=201)
def public_card_setup(clinic_id: Identifier, body: Annotated[PublicSetupRequest, Body()]) -> dict[str, Any]:
    deps = _deps(clinic_id)
    proved = prove_patient(PatientTokenSecrets(get_settings().app_table), clinic_id, body.patient_token, deps.clock())
    return card_setup.start_public_setup(deps, clinic_id, proved.patient_id, appointment_id=body.appointment_id)


# ------------------------------------------------------------------ our consent page
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
        page = card_setup.consent_page(_deps(None), token, lang=lang)
    except NotFound:
        return _html(404, pages.message_page("clinicpay", "not_found", locale))
    if page.state != "open":
        key = "completed" if page.state == "completed" else "expired"
        return _html(200 if key == "completed" else 410, pages.message_page(page.clinic_name, key, page.locale))
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
    return _html(status, pages.consent_page(clinic_name=page.clinic_name, locale=page.locale, consent_text=page.text,
                                            text_version=page.text_version, error_key=error_key,
                                            notice_key=notice_key, booking=booking))


@app.post("/cards/setup/<token>", access=Access.LINK_TOKEN,
          responses=page_docs.html_responses(303, 200, 404, 410, 422, 503))
@tracer.capture_method
def submit_consent(token: TokenPath) -> Response[Any]:
    form = dict(parse_qsl(app.current_event.decoded_body or "", keep_blank_values=True))
    lang = form.get("lang")
    locale = lang if lang in pages.LOCALES else "en"
    ip, agent = _client()
    try:
        request = CardRequestRepository(get_settings().app_table).get(token)
        url = card_setup.submit_consent(_deps(str(request["clinic_id"])), token, consented=form.get("consent") == "yes",
                                        text_version=form.get("text_version"), ip=ip, user_agent=agent, lang=lang)
    except (card_setup.ConsentRequired, card_setup.ConsentTextChanged) as refused:
        return _consent(token, lang, refused.code, 422)
    except NotFound:
        return _consent(token, lang)
    except GatewayNotConfigured:
        return _html(503, pages.message_page("clinicpay", "unavailable", locale), {"Retry-After": "3600"})
    except ClinicpayError as error:
        if error.status < 500:
            raise
        return _html(503, pages.message_page("clinicpay", "retry", locale,
                                             extra=pages.retry_link(f"/cards/setup/{token}", locale)),
                     {"Retry-After": "30"})
    return Response(303, "text/plain", "", headers={"Location": url, "Cache-Control": "no-store"})


@app.get("/cards/setup/<token>/done", access=Access.LINK_TOKEN, responses=page_docs.html_responses(200, 404))
def setup_done(token: TokenPath, lang: Annotated[str | None, Query()] = None) -> Response[Any]:
    locale = lang if lang in pages.LOCALES else "en"
    try:
        page = card_setup.done_page(_deps(None), token, lang=lang)
    except NotFound:
        return _html(404, pages.message_page("clinicpay", "not_found", locale))
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
        return _html(200, pages.message_page(page.clinic_name, "completed", page.locale, extra=booking,
                                             refresh=refresh))
    # The processor's webhook usually lands within a second or two of the redirect.
    return _html(200, pages.message_page(page.clinic_name, "saving", page.locale, refresh=3))


@app.get("/cards/authentication-complete", access=Access.NONE, responses=page_docs.html_responses(200))
def authentication_complete(lang: Annotated[str | None, Query()] = None,
                            redirect_status: Annotated[str | None, Query()] = None) -> Response[Any]:
    # Display only: the charge itself is settled by the processor's signed webhook, never by this URL.
    locale = lang if lang in pages.LOCALES else "en"
    key = "authenticated" if redirect_status == "succeeded" else "authentication_failed"
    return _html(200, pages.message_page("clinicpay", key, locale))


# ------------------------------------------------------------------ Stripe webhook
def _raw_body() -> bytes:
    event = app.current_event
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


@app.post("/webhooks/stripe/<clinic_id>", access=Access.PROVIDER_SIGNATURE)
@tracer.capture_method
def stripe_webhook(clinic_id: Identifier) -> dict[str, Any]:
    raw, headers = _raw_body(), {k.lower(): v for k, v in (app.current_event.headers or {}).items()}
    try:
        credentials = secrets.read_credentials(clinic_id, PROVIDER)
    except GatewayNotConfigured:
        raise NotFound("No such clinic.") from None
    settings = get_settings()
    vault = StripeCardVault(credentials, settings)
    try:
        card_events = vault.parse_webhook(raw, headers)
    except InvalidSignature:
        # The secret may have just been rotated: read it afresh (once a minute at most) before refusing.
        fresh = secrets.reread_after_bad_signature(clinic_id, PROVIDER)
        if fresh is None:
            raise
        credentials = fresh
        vault = StripeCardVault(credentials, settings)
        card_events = vault.parse_webhook(raw, headers)
    card_outcomes = apply_card_events(_deps(clinic_id, vault), clinic_id, card_events)
    link_events = []
    for event in StripeGateway(credentials, settings).parse_webhook(raw, headers):
        if event.kind == "refunded" and event.refund is None and event.payment_reference:
            # `charge.refunded` names no refund: ask Stripe which, so the appointment ledger sees each
            # (a Dashboard refund of a link payment included). Unanswered: the event is kept as
            # it is, and a later event about the refund settles it.
            try:
                observed = vault.observe_refunds(event.payment_reference)
            except ClinicpayError as error:
                logger.warning("stripe refunds not listed", extra={"clinic_id": clinic_id, "error_code": error.code})
                observed = []
            link_events += link_refund_events(event, observed) or [event]
        elif event.kind != "ignored":
            link_events.append(event)
    payment_outcomes: list[str] = []
    if link_events:
        from clinicpay.usecases.payment_events import apply_payment_events

        payment_outcomes = apply_payment_events(clinic_id, link_events)
    metrics.add_metric(name="StripeWebhookApplied", unit="Count",
                       value=(card_outcomes + payment_outcomes).count("applied"))
    return {"received": len(card_events), "card_outcomes": card_outcomes, "payment_outcomes": payment_outcomes}


# ------------------------------------------------------------------ jobs
RECONCILE_JOB = "card-reconcile"
RECONCILE_ITEM_SECONDS = 2.0


def _reconcile_deps() -> ReconcileDeps:
    settings = get_settings()
    return ReconcileDeps(cards=CardRepository(settings.cards_table), deps_for=_deps,
                         # An item takes a call or two to Stripe; none starts without time for them.
                         has_time=lambda: provider_seconds_left() > RECONCILE_ITEM_SECONDS)


def run_card_reconcile(shard: int) -> dict[str, Any]:
    """One shard of `card-reconcile` (clinicpay.fanout): ask Stripe about its due charges and refunds."""
    return card_reconcile.run_card_reconcile(_reconcile_deps(), shard, datetime.now(UTC))


def run_job(event: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """By hand (and for tests at a chosen moment): `{"job": "card-reconcile", "shard": k}` runs one
    shard, without "shard" every shard one after another, with "clinic_id" one clinic's items.
    The deployed path is the fan-out below (schedule -> dispatcher -> one message per shard)."""
    if event.get("job") != RECONCILE_JOB:
        raise ValueError("unknown job")
    shard, clinic_id = event.get("shard"), event.get("clinic_id")
    result = reconcile_charges(_reconcile_deps(), now=now or datetime.now(UTC),
                               shard=int(shard) if shard is not None else None,
                               clinic_id=str(clinic_id) if clinic_id else None)
    return {"job": RECONCILE_JOB, **result}


jobs = fanout.Jobs({RECONCILE_JOB: run_card_reconcile}, queue_url=lambda: get_settings().tokenize_jobs_queue_url)


_http = idempotent_http(app.resolve)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
@lambda_deadline
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_job_event(event):
        return jobs.handle(event, context)
    return _http(event, context)


coldstart.loaded()
