"""A clinic's payment and fiscal gateways: an admin stores each provider's credentials (checked with
the provider first, kept in Secrets Manager, never returned) or removes them."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.clinic import Provider
from clinicpay.domain.errors import NotFound
from clinicpay.observability import logger
from clinicpay.usecases import clinics as usecase

app = loading_routes()
stores = function_module(__file__, "stores")

ProviderPath = Annotated[str, Path(json_schema_extra={"enum": [p.value for p in Provider]}, examples=["stripe"])]
CREDENTIALS_DESCRIPTION = ("That provider's credentials: fintoc {secret_key, public_key, webhook_secret}, monobank "
                           "{token}, stripe {secret_key, publishable_key, webhook_secret}, checkbox {license_key, "
                           "pin_code, webhook_secret?}. Stored in Secrets Manager, never returned.")
STRIPE_EXAMPLE = {"secret_key": "sk_test_clinicpay_example", "publishable_key": "pk_test_clinicpay",
                  "webhook_secret": "whsec_clinicpay_example"}


@app.get("/v1/clinics/<clinic_id>/gateways", access=Access.ADMIN)
def list_gateways(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return {"gateways": stores.clinics().list_gateways(clinic_id)}


@app.put("/v1/clinics/<clinic_id>/gateways/<provider>", access=Access.ADMIN)
def put_gateway(clinic_id: Annotated[str, Path()], provider: ProviderPath,
                body: Annotated[dict[str, str], Body(description=CREDENTIALS_DESCRIPTION, examples=[STRIPE_EXAMPLE])],
                ) -> dict[str, Any]:
    # Provider code and Secrets Manager load with the first gateway change, not with the group (an
    # admin reading the list of gateways needs neither).
    from clinicpay import secrets
    from clinicpay.providers.registry import probe_credentials

    chosen = _provider(provider)
    values = usecase.parse_credentials(chosen, body)
    verified = probe_credentials(chosen, values)
    secrets.store_credentials(clinic_id, chosen.value, values)
    masked = usecase.masked(values)
    stores.clinics().put_gateway(clinic_id, chosen.value, masked, verified, usecase.now_iso())
    logger.info("gateway credentials stored", extra={"clinic_id": clinic_id, "provider": chosen.value,
                                                     "verified": verified})
    return {"provider": chosen.value, "masked": masked, "verified": verified}


@app.delete("/v1/clinics/<clinic_id>/gateways/<provider>", access=Access.ADMIN, status_code=204)
def delete_gateway(clinic_id: Annotated[str, Path()], provider: ProviderPath) -> Response[Any]:
    from clinicpay import secrets

    chosen = _provider(provider)
    stores.clinics().delete_gateway(clinic_id, chosen.value)
    secrets.delete_credentials(clinic_id, chosen.value)
    settings = stores.clinics().get_settings(clinic_id)
    if settings.default_gateway == chosen:
        usecase.update_settings(stores.clinics(), clinic_id, {"default_gateway": None})
    return Response(204, None, "")


def _provider(value: str) -> Provider:
    try:
        return Provider(value)
    except ValueError:
        raise NotFound("No such provider.") from None
