"""Builds the Powertools resolver every HTTP function uses, with the contract's error shape.

Every error leaves as {"error": {"code", "message", "details"}}. Validation details name the field
and the rule, never the input value (it might be a card number or a secret).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from clinicpay.api.card_guard import card_data_refusal_reason
from clinicpay.domain.errors import CardDataNotAccepted, ClinicpayError, ProviderUnavailable, RateLimited
from clinicpay.observability import logger


def error_response(status: int, code: str, message: str, details: list[Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return Response(status_code=status, content_type="application/json", body=json.dumps(body), headers=headers)


def _domain_error(error: ClinicpayError) -> Response:
    headers = None
    if isinstance(error, ProviderUnavailable):
        headers = {"Retry-After": str(error.retry_after)}
        error.details = [*error.details, {"retry_after": error.retry_after}]
    elif isinstance(error, RateLimited):
        headers = {"Retry-After": str(error.retry_after)}
    if error.status >= 500:
        logger.warning("request failed", extra={"error_code": error.code, "error_class": type(error).__name__})
    return error_response(error.status, error.code, error.message, error.details, headers)


def _validation_error(error: RequestValidationError) -> Response:
    details = []
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ())]
        loc = loc[1:] if loc[:1] == ["body"] else loc  # a field may itself be called "body" (a template's)
        details.append({"field": ".".join(loc), "message": item.get("msg", "invalid"), "type": item.get("type", "")})
    missing_body = any(d["type"] == "json_invalid" for d in details)
    if missing_body:
        return error_response(400, "bad_request", "The body is not valid JSON.")
    return error_response(422, "validation_error", "The request did not pass validation.", details)


def card_data_refusal(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """Card numbers in what a person types (each route's fields: api/card_guard.py) and card-only
    fields such as an expiry or a CVC (in a JSON body to our API) are refused before routing,
    validation or idempotency see the request, so the number is never parsed, stored, echoed or
    logged. Powertools validates before any middleware runs, so this sits in `resolve`, not in a
    middleware."""
    where = card_data_refusal_reason(event)
    if where is None:
        return None
    logger.warning("refused a request that carried card data", extra={"route": event.get("routeKey"), "part": where})
    error = CardDataNotAccepted()
    return {"statusCode": error.status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"error": {"code": error.code, "message": error.message, "details": []}})}


class ClinicpayResolver(APIGatewayHttpResolver):
    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        return card_data_refusal(event) or super().resolve(event, context)


def make_resolver() -> ClinicpayResolver:
    app = ClinicpayResolver(enable_validation=True)

    @app.exception_handler(ClinicpayError)
    def handle_domain_error(error: ClinicpayError) -> Response:
        return _domain_error(error)

    @app.exception_handler(RequestValidationError)
    def handle_validation_error(error: RequestValidationError) -> Response:
        return _validation_error(error)

    @app.not_found
    def handle_not_found(_: NotFoundError) -> Response:
        return error_response(404, "not_found", "No such route.")

    @app.exception_handler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        # Operators get the class and where it was raised; neither the message (it may quote a
        # secret or a body) nor a stack trace reaches a log line or the client.
        frame = error.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        where = f"{frame.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.tb_lineno}" if frame else "?"
        logger.error("unhandled error", extra={"error_class": type(error).__name__, "where": where})
        return error_response(500, "internal_error", "Something went wrong on our side.")

    return app


def header(app: APIGatewayHttpResolver, name: str) -> str | None:
    return app.current_event.headers.get(name.lower()) or app.current_event.headers.get(name)
