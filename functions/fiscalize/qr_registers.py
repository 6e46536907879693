"""Route group: monobank QR registers (sync, list) and the amount each shows (staff)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from clinicpay.api.auth import Access
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.domain.qr import ID_PATTERN, PutAmountRequest
from clinicpay.providers.registry import qr_acquirer
from clinicpay.settings import get_settings
from clinicpay.usecases import qr_registers

app = loading_routes()
dependencies = function_module(__file__, "dependencies")


@app.post("/v1/clinics/<clinic_id>/qr-registers/sync", access=Access.STAFF)
def sync_registers(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    registers = qr_registers.sync_registers(dependencies.qr_store(), qr_acquirer(clinic_id), clinic_id, dependencies.now())
    return {"registers": [r.view() for r in registers]}


@app.get("/v1/clinics/<clinic_id>/qr-registers", access=Access.STAFF)
def list_registers(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return {"registers": [r.view() for r in dependencies.qr_store().list_registers(clinic_id)]}


@app.post("/v1/clinics/<clinic_id>/qr-registers/<qr_id>/amount", access=Access.STAFF, status_code=201)
def put_amount(clinic_id: Annotated[str, Path()], qr_id: Annotated[str, Path(pattern=ID_PATTERN)],
               body: Annotated[PutAmountRequest, Body()]) -> dict[str, Any]:
    store = dependencies.qr_store()
    settings = get_settings()
    result = qr_registers.put_amount(
        store, qr_acquirer(clinic_id), clinic_id, qr_id, body.amount, appointment_id=body.appointment_id,
        description=body.description, webhook_url=f"{settings.public_base_url.rstrip('/')}/webhooks/monobank/{clinic_id}",
        now=dependencies.now(), appointment_exists=lambda appointment_id: store.appointment_exists(clinic_id, appointment_id))
    return result


@app.delete("/v1/clinics/<clinic_id>/qr-registers/<qr_id>/amount", access=Access.STAFF)
def reset_amount(clinic_id: Annotated[str, Path()], qr_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> dict[str, Any]:
    return qr_registers.reset_amount(dependencies.qr_store(), qr_acquirer(clinic_id), clinic_id, qr_id).view()
