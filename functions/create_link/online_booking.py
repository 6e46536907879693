"""create_link's online booking: the clinic's booking widget books for a patient
(`/v1/public/clinics/{clinic_id}/appointments`, the publishable key). A route group
(api/route_groups.py): loaded by the first request to its path."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import ConfigDict, Field

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.appointment import PublicPatientDetails
from clinicpay.domain.model import Model
from clinicpay.domain.moments import Moment
from clinicpay.observability import metrics
from clinicpay.usecases import appointments as booking

app = loading_routes()
dependencies = function_module(__file__, "dependencies")


class OnlineBookingRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        # A new patient: the widget sends no patient id (a returning one is proved by a patient token).
        {"patient": {k: v for k, v in dependencies.PATIENT_EXAMPLE.items() if k != "id"}, "service_id": "consulta",
         "starts_at": "2031-03-14T11:30:00-03:00"}]})

    patient: PublicPatientDetails
    service_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    starts_at: Moment
    patient_token: str | None = Field(default=None, min_length=1, max_length=4096, description=(
        "A returning patient's token, signed by the clinic's site (docs/API.md, Returning patients). "
        "Without it the booking is for a new patient record."))



@app.post("/v1/public/clinics/<clinic_id>/appointments", access=Access.PUBLISHABLE, limit="write", status_code=201)
def book_online(clinic_id: Annotated[str, Path()], body: Annotated[OnlineBookingRequest, Body()]) -> dict[str, Any]:
    deps = dependencies.appointment_deps()
    stored, card_url = booking.book_online(deps, clinic_id, booking.OnlineBooking(
        patient=body.patient.model_dump(mode="json", exclude_none=True), service_id=body.service_id,
        starts_at=body.starts_at, patient_token=body.patient_token))
    metrics.add_metric(name="OnlineBooking", unit="Count", value=1)
    return {"appointment": booking.view(stored, deps.public_base_url),
            "next_action": booking.next_action(stored, card_url, deps.public_base_url)}
