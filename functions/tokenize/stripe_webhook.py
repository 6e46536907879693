"""tokenize's Stripe webhook: Stripe's events land here because only this function may read the
cards table. Card events are applied here; payment-link events go to the payments' use case."""

from typing import Annotated, Any

from clinicpay import secrets
from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.errors import ClinicpayError, GatewayNotConfigured, InvalidSignature, NotFound
from clinicpay.observability import logger, metrics, tracer
from clinicpay.providers.stripe.adapter import StripeCardVault, StripeGateway, link_refund_events
from clinicpay.settings import get_settings
from clinicpay.usecases.card_events import apply_card_events

app = loading_routes()
dependencies = function_module(__file__, "dependencies")
Identifier = Annotated[str, dependencies.IDENTIFIER]
PROVIDER = dependencies.PROVIDER


@app.post("/webhooks/stripe/<clinic_id>", access=Access.PROVIDER_SIGNATURE)
@tracer.capture_method
def stripe_webhook(clinic_id: Identifier) -> dict[str, Any]:
    raw, headers = app.raw_body(), {k.lower(): v for k, v in (app.current_event.headers or {}).items()}
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
    card_outcomes = apply_card_events(dependencies.card_deps(clinic_id, vault), clinic_id, card_events)
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
