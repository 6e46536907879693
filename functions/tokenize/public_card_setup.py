"""tokenize's route for the clinic's booking widget: a patient (proved by the clinic site's token)
starts saving a card."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import ConfigDict, Field

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.model import Model
from clinicpay.repositories.patient_tokens import PatientTokenSecrets
from clinicpay.settings import get_settings
from clinicpay.usecases import card_setup
from clinicpay.usecases.patient_tokens import prove_patient

app = loading_routes()
dependencies = function_module(__file__, "dependencies")
Identifier = Annotated[str, dependencies.IDENTIFIER]

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


@app.post("/v1/public/clinics/<clinic_id>/card-setup", access=Access.PUBLISHABLE, limit="write", status_code=201)
def public_card_setup(clinic_id: Identifier, body: Annotated[PublicSetupRequest, Body()]) -> dict[str, Any]:
    deps = dependencies.card_deps(clinic_id)
    proved = prove_patient(PatientTokenSecrets(get_settings().app_table), clinic_id, body.patient_token, deps.clock())
    return card_setup.start_public_setup(deps, clinic_id, proved.patient_id, appointment_id=body.appointment_id)
