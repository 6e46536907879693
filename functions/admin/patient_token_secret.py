"""The secret a clinic's site signs patient tokens with (admins rotate, describe or revoke it; it is
shown once, when made)."""

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.observability import logger
from clinicpay.repositories.patient_tokens import PatientTokenSecrets
from clinicpay.settings import get_settings
from clinicpay.usecases import patient_tokens

app = loading_routes()
stores = function_module(__file__, "stores")


def _token_secrets() -> PatientTokenSecrets:
    return PatientTokenSecrets(get_settings().app_table)


@app.get("/v1/clinics/<clinic_id>/patient-token-secret", access=Access.ADMIN)
def get_patient_token_secret(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    """Whether the clinic's site can sign patient tokens, and since when (never the secret)."""
    return patient_tokens.describe(_token_secrets(), clinic_id, datetime.now(UTC))


@app.post("/v1/clinics/<clinic_id>/patient-token-secret", access=Access.ADMIN, status_code=201)
def rotate_patient_token_secret(clinic_id: Annotated[str, Path()]) -> Response[Any]:
    """A new secret for the clinic's site to sign patient tokens with, shown this once; the one it
    replaces is honoured for 24 hours more."""
    stores.clinics().get(clinic_id)
    made = patient_tokens.rotate(_token_secrets(), clinic_id, datetime.now(UTC))
    logger.info("patient token secret rotated", extra={"clinic_id": clinic_id, "kid": made["kid"]})
    return Response(201, "application/json", json.dumps(made), headers={"Cache-Control": "no-store"})


@app.delete("/v1/clinics/<clinic_id>/patient-token-secret", access=Access.ADMIN, status_code=204)
def revoke_patient_token_secret(clinic_id: Annotated[str, Path()]) -> Response[Any]:
    """Every patient token stops working at once (a leaked secret); public bookings go on as new patients."""
    _token_secrets().delete(clinic_id)
    logger.info("patient token secret revoked", extra={"clinic_id": clinic_id})
    return Response(204, None, "")
