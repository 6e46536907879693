"""The clinic's services as the booking widget shows them to patients (publishable key)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.phones import calling_code

app = loading_routes()
stores = function_module(__file__, "stores")


@app.get("/v1/public/clinics/<clinic_id>/services", access=Access.PUBLISHABLE, limit="read")
def public_services(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    clinic = stores.clinics().get(clinic_id)
    settings = stores.clinics().get_settings(clinic_id)
    services = [{"service_id": s.service_id, "name": s.name, "names": s.names, "price": s.price.model_dump(),
                 "requires_online_payment": s.requires_online_payment,
                 "requires_card_on_file": s.requires_card_on_file and settings.card_required_for_online_booking}
                for s in stores.clinics().list_services(clinic_id)]
    return {"clinic": {"clinic_id": clinic.clinic_id, "name": clinic.name, "currency": clinic.currency,
                       "locale": clinic.locale, "timezone": clinic.timezone, "country": clinic.country,
                       # texts from public bookings go only to mobiles with this calling code
                       "phone_country_code": calling_code(clinic.country)},
            "services": services}
