"""Starting a card save: staff with the patient's consent, our hosted consent page for patients
(reached from a card-request message, the booking widget or staff), and card-request messages.

The card itself is typed only on the processor's page; here we record the consent (who, when,
channel, text version, and for patients IP and user agent), then send the patient there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from clinicpay.domain.card import CardSetup, Consent, ConsentChannel, ConsentGrant
from clinicpay.domain.card_consent import CONSENT_TEXT_VERSION, LOCALES, consent_text
from clinicpay.domain.errors import NotFound, ValidationFailed
from clinicpay.domain.ids import new_id
from clinicpay.domain.money import Money
from clinicpay.notify.messages import render, resolve_template
from clinicpay.observability import logger
from clinicpay.ports.cards import CardSetupRequest
from clinicpay.ports.messaging import OutgoingMessage
from clinicpay.repositories.card_requests import card_setup_url
from clinicpay.usecases.cards import ConsentRequired, consent_from, customer_for, require_patient
from clinicpay.usecases.cards_ports import CardDeps

# How long a card-request link stays usable. Online-booking links are made by the booking flow.
CARD_REQUEST_TTL = timedelta(days=7)

_CHANNELS = {"online_booking": ConsentChannel.ONLINE_BOOKING, "card_request": ConsentChannel.CARD_REQUEST,
             "staff": ConsentChannel.STAFF}


class ConsentTextChanged(ValidationFailed):
    code, default_message = "consent_text_changed", "The consent text changed; read it again and confirm."


class NoContact(ValidationFailed):
    code, default_message = "no_contact", "The patient has no email address or phone number for those channels."


def _base(deps: CardDeps) -> str:
    return deps.public_base_url.rstrip("/")


def begin_setup(deps: CardDeps, clinic_id: str, patient_id: str, consent: Consent, *, request_token: str,
                locale: str | None) -> tuple[CardSetup, str, datetime | None]:
    """Record the consent, then open the processor's hosted page. Returns the setup, the page's
    URL and when it lapses."""
    vault = deps.vault_for(deps.provider)
    customer = customer_for(deps, vault, clinic_id, patient_id)
    now = deps.clock()
    setup = CardSetup(setup_ref=new_id("setup"), clinic_id=clinic_id, patient_id=patient_id,
                      provider=vault.name, card_id=new_id("card"), consent=consent,
                      customer_ref=customer, request_token=request_token, created_at=now)
    # The consent is stored before the patient leaves for the processor: no consent, no card.
    deps.cards.put_setup(setup)
    session = vault.start_setup(CardSetupRequest(
        clinic_id=clinic_id, patient_id=patient_id, customer_ref=customer, setup_ref=setup.setup_ref,
        success_url=f"{_base(deps)}/cards/setup/{request_token}/done",
        # Back to our consent page, which then says no card was saved (and the patient may try again).
        cancel_url=f"{_base(deps)}/cards/setup/{request_token}?cancelled=1", locale=locale,
        idempotency_key=f"clinicpay-{clinic_id}-setup-{setup.setup_ref}"))
    deps.cards.attach_session(setup, session.session_id, session.setup_id)
    logger.info("card setup started", extra={"clinic_id": clinic_id, "setup_ref": setup.setup_ref,
                                             "channel": consent.channel.value, "session_id": session.session_id})
    return setup, session.url, session.expires_at


def _new_request(deps: CardDeps, clinic_id: str, patient_id: str, channel: str, *,
                 appointment_id: str | None = None) -> tuple[str, datetime]:
    now = deps.clock()
    expires = now + CARD_REQUEST_TTL
    token = deps.card_requests.create(clinic_id, patient_id, channel, now.isoformat(), appointment_id=appointment_id,
                                      expires_at_epoch=int(expires.timestamp()))
    return token, expires


def start_staff_setup(deps: CardDeps, clinic_id: str, patient_id: str, grant: ConsentGrant | None, *,
                      ip: str | None, user_agent: str | None) -> dict[str, Any]:
    """With the consent in hand, straight to the processor's page; without it, to our consent page,
    where the patient (at the desk, on the clinic's tablet) agrees first."""
    patient = require_patient(deps, clinic_id, patient_id)
    token, expires = _new_request(deps, clinic_id, patient_id, "staff")
    if grant is None:
        return {"url": card_setup_url(deps.public_base_url, token), "page": "consent",
                "expires_at": expires.isoformat()}
    consent = consent_from(grant, deps.clock(), ip=ip, user_agent=user_agent)
    locale = patient.get("locale") or deps.clinics.get(clinic_id).locale
    setup, url, session_expires = begin_setup(deps, clinic_id, patient_id, consent, request_token=token,
                                              locale=str(locale))
    return {"url": url, "page": "processor", "provider": setup.provider, "setup_id": setup.setup_ref,
            "expires_at": session_expires.isoformat() if session_expires else None}


def start_public_setup(deps: CardDeps, clinic_id: str, patient_id: str, *,
                       appointment_id: str | None) -> dict[str, Any]:
    """The clinic's site: a link to our consent page for the patient its token proved (whether or
    not we hold a record of them yet: the site vouches for them, and the answer is the same)."""
    if appointment_id:
        appointment = deps.appointments.get(clinic_id, appointment_id)
        if not appointment or (appointment.get("patient") or {}).get("id") != patient_id:
            raise NotFound("No such appointment for this patient.")
    token, expires = _new_request(deps, clinic_id, patient_id, "online_booking", appointment_id=appointment_id)
    return {"url": card_setup_url(deps.public_base_url, token), "page": "consent", "expires_at": expires.isoformat()}


# ---------------------------------------------------------------------------- our consent page
@dataclass
class ConsentPage:
    state: Literal["open", "completed", "expired"]
    clinic_name: str
    locale: str
    text: str
    text_version: str
    timezone: str = "UTC"
    # The booking the card was asked for (an online booking of a card-required service), once the card is
    # saved: what the "done" page names. Read only then, so the consent page costs what it did.
    appointment: dict[str, Any] | None = None
    # On the open consent page of an online booking: the booking the card is asked for, and the
    # no-show fee its service may charge to the card (None when it has none).
    booking: dict[str, Any] | None = None
    no_show_fee: Money | None = None


def _request(deps: CardDeps, token: str) -> dict[str, Any]:
    request = deps.card_requests.get(token)  # NotFound for an unknown token
    ttl = request.get("ttl")
    if isinstance(ttl, int) and ttl < deps.clock().timestamp():
        request["status"] = "expired"
    return request


def _locale(deps: CardDeps, request: dict[str, Any], clinic_locale: str, wanted: str | None) -> str:
    if wanted in LOCALES:
        return str(wanted)
    patient = deps.patients.get(str(request["clinic_id"]), str(request["patient_id"])) or {}
    chosen = patient.get("locale") or clinic_locale
    return str(chosen) if chosen in LOCALES else "en"


def consent_page(deps: CardDeps, token: str, *, lang: str | None = None) -> ConsentPage:
    return _page_for(deps, _request(deps, token), lang)


def _page_for(deps: CardDeps, request: dict[str, Any], lang: str | None) -> ConsentPage:
    clinic = deps.clinics.get(str(request["clinic_id"]))
    locale = _locale(deps, request, clinic.locale.value, lang)
    state: Literal["open", "completed", "expired"] = (
        "completed" if request.get("status") == "completed" else
        "expired" if request.get("status") == "expired" else "open")
    page = ConsentPage(state=state, clinic_name=clinic.name, locale=locale, text=consent_text(locale, clinic.name),
                       text_version=CONSENT_TEXT_VERSION, timezone=clinic.timezone)
    if state == "open" and request.get("appointment_id"):
        _name_the_booking(deps, request, page)
    return page


def _name_the_booking(deps: CardDeps, request: dict[str, Any], page: ConsentPage) -> None:
    """The consent page of an online booking names what the card is for: the appointment (service,
    local date and time) and the no-show fee the patient agrees may be charged. Two reads, only for
    these pages; a booking we cannot read leaves the page as it was."""
    clinic_id = str(request["clinic_id"])
    found = deps.appointments.get(clinic_id, str(request["appointment_id"]))
    if not found or (found.get("patient") or {}).get("id") != request.get("patient_id"):
        return
    page.booking = found
    try:
        page.no_show_fee = deps.clinics.get_service(clinic_id, str(found.get("service_id"))).no_show_fee
    except NotFound:
        page.no_show_fee = None


def done_page(deps: CardDeps, token: str, *, lang: str | None = None) -> ConsentPage:
    """The page after the processor's card page: as the consent page, plus the booking the card was for."""
    request = _request(deps, token)
    page = _page_for(deps, request, lang)
    if page.state == "completed":
        appointment_id = request.get("appointment_id")
        if appointment_id:
            found = deps.appointments.get(str(request["clinic_id"]), str(appointment_id))
            if found and (found.get("patient") or {}).get("id") == request.get("patient_id"):
                page.appointment = found
    return page


def submit_consent(deps: CardDeps, token: str, *, consented: bool, text_version: str | None, ip: str | None,
                   user_agent: str | None, lang: str | None = None) -> str:
    """The patient ticked the box on our page: record that consent and return the processor page's URL."""
    page = consent_page(deps, token, lang=lang)
    if page.state != "open":
        raise NotFound("This card link is no longer open.", code="card_link_closed")
    if not consented:
        raise ConsentRequired()
    if text_version != CONSENT_TEXT_VERSION:
        raise ConsentTextChanged()
    request = _request(deps, token)
    clinic_id, patient_id = str(request["clinic_id"]), str(request["patient_id"])
    channel = _CHANNELS.get(str(request.get("channel")), ConsentChannel.CARD_REQUEST)
    consent = Consent(granted_at=deps.clock(), granted_by="patient", channel=channel, text_version=text_version,
                      ip=ip, user_agent=(user_agent or "")[:512] or None)
    _, url, _ = begin_setup(deps, clinic_id, patient_id, consent, request_token=token, locale=page.locale)
    return url


# ---------------------------------------------------------------------------- card-request messages
def send_card_request(deps: CardDeps, clinic_id: str, patient_id: str, channels: list[str]) -> dict[str, Any]:
    """Email and/or SMS the patient a link to our consent page, in their language, using the
    clinic's template, else the organization's, else the built-in one."""
    assert deps.notifier is not None and deps.templates is not None
    patient = require_patient(deps, clinic_id, patient_id)
    clinic = deps.clinics.get(clinic_id)
    destinations = {"email": patient.get("email"), "sms": patient.get("phone")}
    wanted = [c for c in dict.fromkeys(channels) if destinations.get(c)]
    skipped = [{"channel": c, "reason": "no_email" if c == "email" else "no_phone"}
               for c in dict.fromkeys(channels) if not destinations.get(c)]
    if not wanted:
        raise NoContact(details=skipped)
    token, expires = _new_request(deps, clinic_id, patient_id, "card_request")
    link = card_setup_url(deps.public_base_url, token)
    locale = str(patient.get("locale") or clinic.locale.value)
    sent = []
    for channel in wanted:
        template, source = resolve_template(deps.templates, "card_request", channel, locale, clinic_id, clinic.org_id)
        text = render(template, locale, {"patient_name": str(patient.get("name") or ""), "clinic_name": clinic.name,
                                         "card_link": link})
        message_id = deps.notifier.send(OutgoingMessage(
            channel=channel,  # type: ignore[arg-type]
            to=str(destinations[channel]), subject=(text.subject or None) if channel == "email" else None,
            body=text.body, kind="card_request", clinic_id=clinic_id, locale=locale))
        sent.append({"channel": channel, "message_id": message_id, "template": source})
    logger.info("card request sent", extra={"clinic_id": clinic_id, "channels": [s["channel"] for s in sent]})
    return {"url": link, "expires_at": expires.astimezone(UTC).isoformat(), "sent": sent, "skipped": skipped}
