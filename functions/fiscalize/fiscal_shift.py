"""Route group: the clinic's Checkbox shift, its status, opening and closing it by hand (staff)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.usecases import fiscal_shift

app = loading_routes()
dependencies = function_module(__file__, "dependencies")


@app.get("/v1/clinics/<clinic_id>/fiscal/shift", access=Access.STAFF)
def get_shift(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return fiscal_shift.shift_status(dependencies.shifts(), dependencies.qr_store(), dependencies.register, clinic_id,
                                     dependencies.now)


@app.post("/v1/clinics/<clinic_id>/fiscal/shift/open", access=Access.STAFF)
def open_shift(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return fiscal_shift.open_shift(dependencies.shifts(), dependencies.qr_store(), dependencies.register, clinic_id,
                                   dependencies.now)


@app.post("/v1/clinics/<clinic_id>/fiscal/shift/close", access=Access.STAFF)
def close_shift(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return fiscal_shift.close_shift(dependencies.shifts(), dependencies.register, clinic_id, dependencies.now)
