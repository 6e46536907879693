"""tokenize: cards on file with consent (tokens only), default/remove, off-session charges and
no-show fees, their refunds, card-request messages, our consent page, Stripe's webhook (Stripe's
events land here because only this function may read the cards table), and the reconciliation of
charges and refunds still awaiting Stripe (job `card-reconcile`).

The routes live in route groups next to this file (clinicpay.api.route_groups), each loaded by the
first request to one of its paths; the job's code (jobs.py) by the first job event."""


from clinicpay import coldstart  # first: the garbage collector waits while this module loads

# isort: split
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from clinicpay.api.resolver import make_resolver
from clinicpay.api.route_groups import function_module
from clinicpay.deadline import lambda_deadline
from clinicpay.job_events import is_job_event
from clinicpay.observability import logger, metrics, tracer
from clinicpay.snapstart import before_snapshot

app = make_resolver()

PATIENT = "/v1/clinics/<clinic_id>/patients/<patient_id>"
app.route_groups(__file__, {
    # What a patient or Stripe waits on: each loads only its own code.
    "stripe_webhook": ("/webhooks/stripe/<clinic_id>",),
    "consent_pages": ("/cards/setup/<token>", "/cards/setup/<token>/done"),
    "authentication_page": ("/cards/authentication-complete",),
    "public_card_setup": ("/v1/public/clinics/<clinic_id>/card-setup",),
    # Staff
    "cards": (f"{PATIENT}/cards", f"{PATIENT}/cards/<card_id>", f"{PATIENT}/cards/<card_id>/default",
              f"{PATIENT}/card-setup", f"{PATIENT}/card-requests"),
    "charges": (f"{PATIENT}/charges", f"{PATIENT}/charges/<charge_id>", f"{PATIENT}/charges/<charge_id>/refunds"),
})

before_snapshot(lambda: function_module(__file__, "jobs"))  # a restored job container finds its code loaded too


@lru_cache(maxsize=1)
def _http() -> Any:
    # Idempotency-Key handling (api/idempotency.py) loads with the first HTTP request (with SnapStart,
    # before the snapshot): card-reconcile's job invocations never need it.
    from clinicpay.api.idempotency import idempotent_http

    return idempotent_http(app.resolve)


before_snapshot(_http)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
@lambda_deadline
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_job_event(event):
        return function_module(__file__, "jobs").jobs.handle(event, context)
    return _http()(event, context)


coldstart.loaded()
