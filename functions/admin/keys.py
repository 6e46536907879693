"""A clinic's API keys: admins issue staff keys, the operator admin keys; both list and revoke them
(never seeing a key again after it is shown once)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from clinicpay.api.auth import Access, Caller
from clinicpay.api.route_groups import function_module, loading_routes
from clinicpay.observability import logger
from clinicpay.usecases import clinics as usecase

app = loading_routes()
stores = function_module(__file__, "stores")


def _caller() -> Caller:
    """Who the resolver authenticated (every route calling this declares a key-taking access)."""
    caller = app.caller
    assert caller is not None
    return caller


@app.post("/v1/clinics/<clinic_id>/staff-keys", access=Access.ADMIN, status_code=201)
def create_staff_key(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    return usecase.create_staff_key(stores.clinics(), stores.keys(), clinic_id)


@app.post("/v1/clinics/<clinic_id>/admin-keys", access=Access.OPERATOR, status_code=201)
def create_admin_key(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    """The operator issues a further admin key (shown once), e.g. to replace a revoked one."""
    created = usecase.create_admin_key(stores.clinics(), stores.keys(), clinic_id)
    logger.info("admin key issued", extra={"clinic_id": clinic_id, "key_id": created["key_id"]})
    return created


@app.get("/v1/clinics/<clinic_id>/keys", access=Access.ADMIN_OR_OPERATOR)
def list_keys(clinic_id: Annotated[str, Path()]) -> dict[str, Any]:
    """The clinic's keys (admin of the clinic, or the operator): ids, roles, prefixes, never a key."""
    return {"keys": usecase.list_keys(stores.clinics(), stores.keys(), clinic_id)}


@app.delete("/v1/clinics/<clinic_id>/keys/<key_id>", access=Access.ADMIN_OR_OPERATOR, status_code=204)
def revoke_key(clinic_id: Annotated[str, Path()],
               key_id: Annotated[str, Path(examples=["3f2a9c1b7d4e"])]) -> Response[Any]:
    """An admin revokes its clinic's staff keys; the operator, admin and staff keys of any clinic."""
    caller = _caller()
    usecase.revoke_key(stores.keys(), clinic_id, key_id, revoked_by=caller.role.value, revoker_key_id=caller.key_id)
    logger.info("key revoked", extra={"clinic_id": clinic_id, "key_id": key_id, "by": caller.role.value})
    return Response(204, None, "")
