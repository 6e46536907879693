"""Builds the Powertools resolver every HTTP function uses, with the contract's error shape.

Every error leaves as {"error": {"code", "message", "details"}}. Validation details name the field
and the rule, never the input value (it might be a card number or a secret).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from clinicpay.domain.card_numbers import contains_card_number
from clinicpay.domain.errors import CardDataNotAccepted, ClinicpayError, ProviderUnavailable
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
    if error.status >= 500:
        logger.warning("request failed", extra={"error_code": error.code, "error_class": type(error).__name__})
    return error_response(error.status, error.code, error.message, error.details, headers)


def _validation_error(error: RequestValidationError) -> Response:
    details = []
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ()) if part != "body"]
        details.append({"field": ".".join(loc), "message": item.get("msg", "invalid"), "type": item.get("type", "")})
    missing_body = any(d["type"] == "json_invalid" for d in details)
    if missing_body:
        return error_response(400, "bad_request", "The body is not valid JSON.")
    return error_response(422, "validation_error", "The request did not pass validation.", details)


def _refuse_card_numbers(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    """Runs before routing and validation so a card number is never parsed, stored or logged."""
    event = app.current_event
    raw = event.decoded_body or ""
    query = unquote_plus(event.raw_query_string or "")
    if contains_card_number(raw) or contains_card_number(query) or contains_card_number(event.raw_path or ""):
        logger.warning("refused a request that carried card data", extra={"path": event.route_key})
        error = CardDataNotAccepted()
        return error_response(error.status, error.code, error.message)
    return next_middleware(app)


def make_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    app.use(middlewares=[_refuse_card_numbers])

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
