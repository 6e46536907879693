"""admin: clinics, settings, services, gateways, message templates, keys; health and docs.

The routes live in route groups next to this file (api/route_groups.py), each loaded by the first
request to one of its paths: the ones answered without a key (health, the API document and its page,
the booking widget's service list) each load only what they use."""


from clinicpay import coldstart  # first: the garbage collector waits while this module loads

# isort: split
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from clinicpay.api.resolver import make_resolver
from clinicpay.deadline import lambda_deadline
from clinicpay.observability import logger, metrics, tracer

app = make_resolver()
app.route_groups(__file__, {
    # without a key
    "health": ("/health",),
    "openapi_document": ("/openapi.json",),
    "api_docs": ("/docs",),
    "public_services": ("/v1/public/clinics/<clinic_id>/services",),
    # the operator's, admins' and staff's
    "clinics": ("/v1/clinics", "/v1/clinics/<clinic_id>", "/v1/clinics/<clinic_id>/settings",
                "/v1/clinics/<clinic_id>/services", "/v1/clinics/<clinic_id>/services/<service_id>"),
    "keys": ("/v1/clinics/<clinic_id>/staff-keys", "/v1/clinics/<clinic_id>/admin-keys", "/v1/clinics/<clinic_id>/keys",
             "/v1/clinics/<clinic_id>/keys/<key_id>"),
    "gateways": ("/v1/clinics/<clinic_id>/gateways", "/v1/clinics/<clinic_id>/gateways/<provider>"),
    "patient_token_secret": ("/v1/clinics/<clinic_id>/patient-token-secret",),
    "message_templates": ("/v1/clinics/<clinic_id>/message-templates",
                          "/v1/clinics/<clinic_id>/message-templates/<kind>/<channel>/<locale>",
                          "/v1/orgs/<org_id>/message-templates/<kind>/<channel>/<locale>"),
})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
@lambda_deadline
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)


coldstart.loaded()
