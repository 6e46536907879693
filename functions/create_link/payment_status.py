"""create_link's public read of one payment link's status (`/v1/public/payments/{token}`), which
the patient's page asks after paying. A route group (api/route_groups.py): loaded by the first
request to its path."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path

from clinicpay.api.auth import Access
from clinicpay.api.public import client_address, enforce_limits
from clinicpay.api.route_groups import loading_routes
from clinicpay.domain.errors import NotFound
from clinicpay.repositories.appointments import AppointmentRepository
from clinicpay.settings import get_settings
from clinicpay.usecases.payment_links import to_collect

app = loading_routes()


@app.get("/v1/public/payments/<token>", access=Access.LINK_TOKEN,
         responses={200: {"description": "The status of that link's payment"},
                    429: {"description": "Over the public reads' limit (counted for the link's clinic)"}})
def payment_status(token: Annotated[str, Path()]) -> dict[str, Any]:
    """What the patient holding the link may know: the status of that one payment."""
    repo = AppointmentRepository(get_settings().app_table)
    found = repo.find_link(token)
    # Counted for the link's clinic (or, for a token that is no link, under "none").
    enforce_limits("read", found[0] if found else "none", client_address(app))
    if not found:
        raise NotFound("No such payment link.")
    stored = repo.get(*found, consistent=True)
    collect = to_collect(stored)
    return {"payment_status": stored.appointment.payment_status, "status": stored.appointment.status,
            "amount": stored.appointment.price.model_dump(), "starts_at": stored.appointment.starts_at.isoformat(),
            "amount_due": collect[0].model_dump() if collect else None}

