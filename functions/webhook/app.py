"""webhook: Fintoc, monobank and Checkbox events. The signature is checked on the raw bytes before
anything is parsed; each verified event is applied exactly once. (Stripe's go to `tokenize`.)"""


from clinicpay import coldstart  # first: the garbage collector waits while this module loads

# isort: split
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from clinicpay.api.auth import Access
from clinicpay.api.resolver import make_resolver
from clinicpay.deadline import lambda_deadline
from clinicpay.domain.errors import GatewayNotConfigured, InvalidSignature, NotFound
from clinicpay.observability import logger, metrics, tracer

app = make_resolver()


def _headers() -> dict[str, str]:
    return {k.lower(): v for k, v in (app.current_event.headers or {}).items()}


@app.post("/webhooks/fintoc/<clinic_id>", access=Access.PROVIDER_SIGNATURE)
@tracer.capture_method
def fintoc(clinic_id: str) -> dict[str, Any]:
    # Each provider's route loads its own code on first use (cold start: bench/import_time.py).
    from clinicpay import secrets
    from clinicpay.domain.clinic import Provider
    from clinicpay.providers.registry import build_link_gateway, link_gateway
    from clinicpay.settings import get_settings
    from clinicpay.usecases.payment_events import apply_payment_events

    body, headers = app.raw_body(), _headers()
    try:
        gateway = link_gateway(clinic_id, Provider.FINTOC)
    except GatewayNotConfigured:
        raise NotFound("No such clinic.") from None
    try:
        events = gateway.parse_webhook(body, headers)
    except InvalidSignature:
        # The secret may have just been rotated: read it afresh (once a minute at most) before refusing.
        fresh = secrets.reread_after_bad_signature(clinic_id, Provider.FINTOC.value)
        if fresh is None:
            raise
        events = build_link_gateway(Provider.FINTOC, fresh, get_settings()).parse_webhook(body, headers)
    outcomes = apply_payment_events(clinic_id, events)
    metrics.add_metric(name="WebhookApplied", unit="Count", value=outcomes.count("applied"))
    return {"received": len(events), "outcomes": outcomes}


@app.post("/webhooks/monobank/<clinic_id>", access=Access.PROVIDER_SIGNATURE)
@tracer.capture_method
def monobank(clinic_id: str) -> dict[str, Any]:
    from clinicpay.usecases import monobank_webhook

    return monobank_webhook.handle(clinic_id, app.raw_body(), _headers())


@app.post("/webhooks/checkbox/<clinic_id>", access=Access.PROVIDER_SIGNATURE)
@tracer.capture_method
def checkbox(clinic_id: str) -> dict[str, Any]:
    from clinicpay.usecases import checkbox_webhook

    return checkbox_webhook.handle(clinic_id, app.raw_body(), _headers())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
@lambda_deadline
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)


coldstart.loaded()
