"""Builds the Powertools resolver every HTTP function uses, with the contract's error shape.

A request goes through, in this order:
1. the bytes alone (`edge_refusal`): a body over the size limit is a 413; one that is not UTF-8 or is
   nested deeper than any of our documents is a 400; then card data is refused (422). Nothing has
   parsed the body yet, so nothing can overflow or store it.
2. routing: an unknown path is a 404 and a known path with another method a 405, in the error shape.
3. the route's declared credential (`access=` on every route, see `api.auth`): 401/403/404 before
   any field rule is revealed. One key read at most (KeysTable, behind the per-container key cache).
   A public route's limits (`limit=`, see `api.public`) are counted next: after authentication, so
   a stranger cannot spend a clinic's budget, and before any other work (429).
4. the body's media type (415) and JSON syntax (400), then Powertools' validation (422).
5. the route. Every answer leaves with `harden`: security headers on HTML, `Retry-After` on a 503.

Every error leaves as {"error": {"code", "message", "details"}}. Validation details name the field
and the rule, never the input value (it might be a card number or a secret).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from importlib import resources
from typing import Any, Literal, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder, Route
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from clinicpay.api.auth import Access, Caller, authenticate, require_signature_header
from clinicpay.api.card_guard import card_data_refusal_reason
from clinicpay.api.route_groups import RouteGroups, collector_paused
from clinicpay.domain.errors import (
    BadRequest,
    CardDataNotAccepted,
    ClinicpayError,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from clinicpay.observability import logger

F = TypeVar("F", bound=Callable[..., Any])
LimitKind = Literal["read", "write"]

ACCESS_EXTENSION = "x-clinicpay-access"  # the route's declared credential, kept on its OpenAPI operation
LIMIT_EXTENSION = "x-clinicpay-rate-limit"  # a public route's limit kind ("read" or "write"), likewise

# Our largest body is a message template (5,300 characters, at most 4 bytes each); providers' event
# payloads run to tens of kilobytes. API Gateway itself stops at 10 MB, Lambda at 6 MB.
MAX_BODY_BYTES = 64 * 1024
MAX_WEBHOOK_BODY_BYTES = 1024 * 1024
# Our deepest request is 3 levels (appointment -> patient -> ...); providers' events reach about 8.
MAX_JSON_DEPTH = 32
DEFAULT_RETRY_AFTER_SECONDS = 30


def error_response(status: int, code: str, message: str, details: list[Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return Response(status_code=status, content_type="application/json", body=json.dumps(body), headers=headers)


def error_dict(error: ClinicpayError) -> dict[str, Any]:
    return {"statusCode": error.status, "headers": {"Content-Type": "application/json"}, "isBase64Encoded": False,
            "body": json.dumps({"error": {"code": error.code, "message": error.message, "details": error.details}})}


def _domain_error(error: ClinicpayError) -> Response:
    headers = {}
    if error.status in (429, 503):
        # Every 429 and 503 says when to come back, in the header and (for clients that only read
        # bodies) the details; an error that already names its wait (RateLimited) keeps the one it has.
        retry_after = int(getattr(error, "retry_after", DEFAULT_RETRY_AFTER_SECONDS))
        headers["Retry-After"] = str(retry_after)
        if not any(isinstance(d, dict) and "retry_after" in d for d in error.details):
            error.details = [*error.details, {"retry_after": retry_after}]
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ", ".join(error.allowed)
    if error.status == 422:
        error.details = with_field_paths(error.details)
    if error.status >= 500:
        logger.warning("request failed", extra={"error_code": error.code, "error_class": type(error).__name__})
    return error_response(error.status, error.code, error.message, error.details, headers or None)


# pydantic's error types -> the small, stable vocabulary of `kind` a client maps to its own words
# (docs/API.md, "Validation details"). pydantic's `message` stays for developers; it may hold a regex.
_KINDS = {
    "missing": "missing", "string_pattern_mismatch": "pattern", "string_too_short": "too_short",
    "string_too_long": "too_long", "too_short": "too_few", "too_long": "too_many",
    "greater_than": "too_small", "greater_than_equal": "too_small", "less_than": "too_large",
    "less_than_equal": "too_large", "literal_error": "choice", "enum": "choice", "extra_forbidden": "unexpected",
    "string_type": "type", "int_type": "type", "int_parsing": "type", "int_from_float": "type", "bool_type": "type",
    "bool_parsing": "type", "dict_type": "type", "list_type": "type", "model_type": "type", "model_attributes_type": "type",
    "float_type": "type", "float_parsing": "type", "datetime_type": "format", "datetime_parsing": "format",
    "datetime_from_date_parsing": "format", "date_parsing": "format", "date_from_datetime_parsing": "format",
    "time_parsing": "format", "timezone_aware": "format", "value_error": "invalid", "assertion_error": "invalid",
}
# The rule's bound, from pydantic's context: a length or a number, never the value sent.
_LIMITS = ("min_length", "max_length", "ge", "gt", "le", "lt")


def _kind(error_type: str) -> str:
    return _KINDS.get(error_type, "invalid")


def _path(field: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in field.split(".")] if field else []


def field_detail(field: str, message: str, error_type: str = "", context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One validation detail: `field` (dotted), `message` (English, for developers), `type` (as given),
    and for machines `path` (the field's parts, list indexes as integers), `kind` and, for a bound, `limit`."""
    detail: dict[str, Any] = {"field": field, "message": message, "type": error_type, "path": _path(field),
                              "kind": _kind(error_type)}
    for name in _LIMITS:
        value = (context or {}).get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            detail["limit"] = value
            if name in ("gt", "lt"):
                detail["exclusive"] = True
            break
    return detail


def with_field_paths(details: list[Any]) -> list[Any]:
    """Details a use case wrote by hand ({field, message[, type]}) get the same `path` and `kind`."""
    return [field_detail(str(d["field"]), str(d.get("message", "invalid")), str(d.get("type", "")))
            | {k: v for k, v in d.items() if k not in ("path", "kind", "type")}
            if isinstance(d, dict) and "field" in d and "kind" not in d else d for d in details]


def _validation_error(error: RequestValidationError) -> Response:
    details = []
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ())]
        loc = loc[1:] if loc[:1] == ["body"] else loc  # a field may itself be called "body" (a template's)
        error_type = item.get("type", "")
        if error_type in ("too_short", "too_long") and isinstance(item.get("input"), str):
            # A length rule on text a validator wraps (OneLine) comes back in pydantic's words for a
            # list; it is a length in characters, as on any other text.
            error_type = f"string_{error_type}"
        details.append(field_detail(".".join(loc), item.get("msg", "invalid"), error_type, item.get("ctx")))
    missing_body = any(d["type"] == "json_invalid" for d in details)
    if missing_body:
        return error_response(400, "bad_request", "The body is not valid JSON.")
    return error_response(422, "validation_error", "The request did not pass validation.", details)


# ------------------------------------------------------------------ 1. the bytes alone
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def _too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether brackets outside JSON strings nest deeper than `limit`, found without parsing (a
    parser is what a deep document overflows). Any text is scanned: a form could carry JSON too."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in _BRACKET.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > limit:
            return True
    return False


def body_refusal(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """413 over the size limit, 400 for a body that is not UTF-8 (API Gateway hands those over base64
    encoded) or nests deeper than MAX_JSON_DEPTH."""
    raw = event.get("body") or ""
    if not raw:
        return None
    path = str(event.get("rawPath") or "")
    limit = MAX_WEBHOOK_BODY_BYTES if path.startswith("/webhooks/") else MAX_BODY_BYTES
    try:
        data = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode("utf-8")
        if len(data) > limit:
            return error_dict(PayloadTooLarge(details=[{"limit_bytes": limit}]))
        text = data.decode("utf-8") if event.get("isBase64Encoded") else raw
    except (binascii.Error, UnicodeError):
        return error_dict(BadRequest("The body is not valid UTF-8 text."))
    if _too_deep(text):
        return error_dict(BadRequest(f"The body nests deeper than {MAX_JSON_DEPTH} levels."))
    return None


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


def edge_refusal(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """Everything refused on the request's bytes alone, before any parsing, routing or storing."""
    if _edge_checked.get() is event:
        return None
    refused = body_refusal(event) or card_data_refusal(event)
    return harden(refused) if refused else None


@contextmanager
def edge_checked(event: Mapping[str, Any]) -> Iterator[None]:
    """Within it, `event` (found clean by `edge_refusal`) is not checked again: the Idempotency-Key
    wrapper checks before it hashes or stores anything, and the resolver it calls would otherwise
    check the same bytes a second time (about 60 µs a booking: bench/warm_path.py)."""
    token = _edge_checked.set(event)
    try:
        yield
    finally:
        _edge_checked.reset(token)


_edge_checked: ContextVar[Mapping[str, Any] | None] = ContextVar("edge_checked", default=None)


# ------------------------------------------------------------------ 5. every answer
_INLINE_SCRIPT = re.compile(r"<script(?:\s[^>]*)?>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def html_security_headers(html: str, script_sources: tuple[str, ...] = ()) -> dict[str, str]:
    """Headers for a page we serve: nothing external, never framed, no Referer (payment-link and card
    tokens sit in our URLs), inline scripts allowed by their hash only. `script_sources` are the
    script URLs a page names besides (CSP source expressions: one exact URL, or 'self'), e.g. the
    API docs viewer, which its page also pins with Subresource Integrity."""
    hashes = [base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
              for script in _INLINE_SCRIPT.findall(html) if script]
    allowed = [*(repr(f"sha256-{h}") for h in hashes), *script_sources]
    scripts = f"script-src {' '.join(allowed)}; connect-src 'self'; " if allowed else ""
    policy = (f"default-src 'none'; {scripts}style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; "
              "frame-ancestors 'none'")
    return {"Content-Security-Policy": policy, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def harden(response: dict[str, Any]) -> dict[str, Any]:
    """The one place that adds what every answer of a kind must carry (whoever built it)."""
    headers = response.setdefault("headers", {})
    present = {name.lower() for name in headers}

    def default(name: str, value: str) -> None:
        if name.lower() not in present:
            headers[name] = value

    status = int(response.get("statusCode", 200))
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    default("X-Content-Type-Options", "nosniff")
    if content_type.startswith("text/html"):
        body = response.get("body") or ""
        if response.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        for name, value in html_security_headers(body).items():
            default(name, value)
    if 300 <= status < 400:
        default("Referrer-Policy", "no-referrer")  # a redirect away from a page with a token in its URL
    if status in (429, 503):
        default("Retry-After", str(DEFAULT_RETRY_AFTER_SECONDS))
    return response


# ------------------------------------------------------------------ 2. unknown routes
@lru_cache(maxsize=1)
def _documented_paths() -> list[tuple[re.Pattern[str], tuple[str, ...]]]:
    """Every path of the API with its methods, from the OpenAPI document in this layer (for 405s)."""
    try:
        document = json.loads(resources.files("clinicpay.api").joinpath("openapi.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    found = []
    for path, operations in document.get("paths", {}).items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
        found.append((pattern, tuple(sorted(m.upper() for m in operations if m.isalpha()))))
    return found


def allowed_methods(path: str) -> tuple[str, ...]:
    return tuple(sorted({m for pattern, methods in _documented_paths() if pattern.match(path) for m in methods}))


class ClinicpayResolver(APIGatewayHttpResolver):
    """Routes declare the credential they take: `@app.post(path, access=Access.STAFF)`, and a route
    taking the publishable key the limit it counts against: `access=Access.PUBLISHABLE, limit="write"`.
    A route without them is a programming error, caught when the module loads."""

    _route_groups: RouteGroups | None = None

    def __init__(self) -> None:
        # Validation is on for every route, but its middlewares (Powertools' OpenAPI validation, and
        # with it most of pydantic: a third of a bare handler's import, bench/import_time.py) are
        # built by Powertools with the first route it calls, not here: with the first request, or
        # before a SnapStart snapshot (`load_validation`).
        super().__init__(enable_validation=False)
        self._enable_validation = True
        from clinicpay.snapstart import before_snapshot

        before_snapshot(self.load_validation)

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        return edge_refusal(event) or harden(super().resolve(event, context))

    # -------------------------------------------------------------- route groups (api.route_groups)
    def route_groups(self, anchor: str, groups: Mapping[str, tuple[str, ...]]) -> None:
        """The modules next to `anchor` that declare this function's routes, each with the paths it serves."""
        from clinicpay.snapstart import before_snapshot

        self._route_groups = RouteGroups(self, anchor, groups)
        before_snapshot(self._load_and_build)

    def _load_and_build(self) -> None:
        # Before a SnapStart snapshot: every group, then its models built, whatever order the
        # runtime runs the hooks in (domain.model registers its own build of what was loaded).
        from clinicpay.domain.model import build_loaded_models

        self.load_routes()
        build_loaded_models()

    @staticmethod
    def load_validation() -> None:
        """Loads what validating the first request needs (Powertools builds the middlewares from it)."""
        with collector_paused():  # as a route's first call would load it (`_call_route`)
            import aws_lambda_powertools.event_handler.middlewares.openapi_validation  # noqa: F401
            import aws_lambda_powertools.event_handler.openapi.dependant  # noqa: F401

    def load_routes(self, path: str | None = None) -> None:
        """Loads the route groups serving `path`, or all of them."""
        if self._route_groups is not None and self._route_groups.pending:
            self._route_groups.load(path)

    def _resolve(self) -> ResponseBuilder:
        self.load_routes(self._remove_prefix(self.current_event.path))
        return super()._resolve()

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        self.load_routes()
        return super().get_openapi_schema(*args, **kwargs)

    def raw_body(self) -> bytes:
        """The body's bytes as the sender sent them: what a webhook signature is computed over."""
        body = self.current_event.get("body") or ""
        return base64.b64decode(body) if self.current_event.get("isBase64Encoded") else body.encode("utf-8")

    @property
    def caller(self) -> Caller | None:
        """Who the resolver authenticated for this request (None on routes that take no key)."""
        return self.context.get("caller")

    # -------------------------------------------------------------- declaring routes
    def route(self, rule: str, method: Any, *args: Any, access: Access | None = None,  # type: ignore[override]
              limit: LimitKind | None = None, **kwargs: Any) -> Callable[[F], F]:
        if not isinstance(access, Access):
            raise TypeError(f"{method} {rule}: declare the credential the route takes, e.g. access=Access.STAFF")
        if (access is Access.PUBLISHABLE) != (limit in ("read", "write")):
            raise TypeError(f"{method} {rule}: a route taking the publishable key, and only one, declares "
                            'limit="read" or limit="write"')
        extensions = {**(kwargs.pop("openapi_extensions", None) or {}), ACCESS_EXTENSION: access.value}
        if limit:
            extensions[LIMIT_EXTENSION] = limit

        def register(func: F) -> F:
            kwargs.setdefault("operation_id", func.__name__)
            kwargs["openapi_extensions"] = extensions
            return super(ClinicpayResolver, self).route(rule, method, *args, **kwargs)(func)

        return register

    def get(self, rule: str, *args: Any, access: Access | None = None,  # type: ignore[override]
            limit: LimitKind | None = None, **kwargs: Any) -> Callable[[F], F]:
        return self.route(rule, "GET", *args, access=access, limit=limit, **kwargs)

    def post(self, rule: str, *args: Any, access: Access | None = None,  # type: ignore[override]
            limit: LimitKind | None = None, **kwargs: Any) -> Callable[[F], F]:
        return self.route(rule, "POST", *args, access=access, limit=limit, **kwargs)

    def put(self, rule: str, *args: Any, access: Access | None = None,  # type: ignore[override]
            limit: LimitKind | None = None, **kwargs: Any) -> Callable[[F], F]:
        return self.route(rule, "PUT", *args, access=access, limit=limit, **kwargs)

    def patch(self, rule: str, *args: Any, access: Access | None = None,  # type: ignore[override]
              limit: LimitKind | None = None, **kwargs: Any) -> Callable[[F], F]:
        return self.route(rule, "PATCH", *args, access=access, limit=limit, **kwargs)

    def delete(self, rule: str, *args: Any, access: Access | None = None,  # type: ignore[override]
              limit: LimitKind | None = None, **kwargs: Any) -> Callable[[F], F]:
        return self.route(rule, "DELETE", *args, access=access, limit=limit, **kwargs)

    # -------------------------------------------------------------- 3 and 4, before Powertools validates
    def _call_route(self, route: Route, route_arguments: dict[str, str]) -> ResponseBuilder:
        extensions = route.openapi_extensions or {}
        declared = extensions.get(ACCESS_EXTENSION)
        if declared is not None:
            try:
                self._admit(route, Access(declared), route_arguments, extensions.get(LIMIT_EXTENSION))
            except Exception as error:  # noqa: BLE001 - answered by the registered handlers, as a route's would be
                handled = self._call_exception_handler(error, route)
                if handled is None:
                    raise
                return handled
        if not getattr(route, "_middleware_stack_built", True):
            # A route's first call builds its validation (pydantic's schemas of its models).
            with collector_paused():
                return super()._call_route(route, route_arguments)
        return super()._call_route(route, route_arguments)

    def _admit(self, route: Route, access: Access, path: dict[str, str], limit: LimitKind | None) -> None:
        if access is Access.PROVIDER_SIGNATURE:
            require_signature_header(route.path.split("/")[2], self.current_event.headers)
        if access.checked_by_resolver:
            from clinicpay.repositories.clinics import ClinicRepository
            from clinicpay.repositories.keys import KeyRepository
            from clinicpay.settings import get_settings

            settings = get_settings()
            caller = authenticate(access, self.current_event.headers, path, KeyRepository(settings.keys_table),
                                  org_of=lambda clinic_id: ClinicRepository(settings.app_table).get(clinic_id).org_id)
            self.append_context(caller=caller)
            if limit and caller is not None and caller.clinic_id:
                from clinicpay.api.public import client_address, enforce_limits

                enforce_limits(limit, caller.clinic_id, client_address(self))
        if route.dependant.body_params:
            self._check_json_body()

    def _check_json_body(self) -> None:
        event = self.current_event
        media = (event.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if media and media != "application/json":
            raise UnsupportedMediaType(details=[{"accepted": ["application/json"]}])
        try:
            body = event.json_body  # parsed once here (cached), before Powertools reads it
        except (ValueError, RecursionError):
            # Covers bad syntax, integers beyond Python's 4,300 digits and text that is not UTF-8.
            raise BadRequest("The body is not valid JSON.") from None
        if body is not None and not isinstance(body, dict):
            # Every body of ours is an object; Powertools would read `[null]` as "no body" on optional ones.
            raise ValidationFailed(details=[{"field": "", "message": "The body must be a JSON object."}])


def make_resolver() -> ClinicpayResolver:
    app = ClinicpayResolver()

    @app.exception_handler(ClinicpayError)
    def handle_domain_error(error: ClinicpayError) -> Response:
        return _domain_error(error)

    @app.exception_handler(RequestValidationError)
    def handle_validation_error(error: RequestValidationError) -> Response:
        return _validation_error(error)

    @app.exception_handler(RequestUnsupportedContentType)
    def handle_unsupported_media_type(_: RequestUnsupportedContentType) -> Response:
        return _domain_error(UnsupportedMediaType(details=[{"accepted": ["application/json"]}]))

    @app.not_found
    def handle_not_found(_: NotFoundError) -> Response:
        event = app.current_event
        allowed = allowed_methods(event.path)
        if allowed and event.http_method.upper() not in allowed:
            return _domain_error(MethodNotAllowed(allowed))
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
