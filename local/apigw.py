"""API Gateway HTTP API (payload format 2.0) emulation: match a route, build the event, invoke the
real handler in-process, translate its answer. Used by the local server and the handler tests."""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

from local import iam, template

_TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded", "application/xml")
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's own limit for HTTP APIs; larger requests never reach a Lambda


@dataclass
class LambdaContext:
    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:local"
    deadline: float = field(default_factory=lambda: time.time() + 30)

    @classmethod
    def for_function(cls, logical_id: str, timeout: float | None = None) -> LambdaContext:
        """The context Lambda would give an invocation starting now: its deadline is the function's
        Timeout from template.yaml (Globals included), or `timeout` when a test wants a shorter one."""
        seconds = template.functions()[logical_id].timeout if timeout is None else timeout
        return cls(function_name=logical_id, deadline=time.time() + seconds)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


_modules: dict[str, ModuleType] = {}
_lock = threading.Lock()
# Powertools keeps the request being resolved on a class attribute (BaseRouter.current_event), which
# is safe in Lambda, where a container runs one request at a time, but not in one process serving
# threads. Invocations therefore take turns, as if there were a single warm container; concurrency
# between requests still happens where it matters for correctness, in DynamoDB and the sandboxes.
_one_at_a_time = threading.Lock()


def handler_for(logical_id: str) -> Any:
    """Import functions/<name>/app.py once under a unique module name (like one warm container)."""
    with _lock:
        module = _modules.get(logical_id)
        if module is None:
            function = template.functions()[logical_id]
            module_name, attr = function.handler.rsplit(".", 1)
            path = function.code_uri / f"{module_name}.py"
            spec = importlib.util.spec_from_file_location(f"clinicpay_fn_{logical_id}", path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _modules[logical_id] = module
        handler = getattr(module, template.functions()[logical_id].handler.rsplit(".", 1)[1])

    @functools.wraps(handler)  # keeps what the handler's decorators mark on it (e.g. `clinicpay_deadline`)
    def as_function(event: Any, context: Any) -> Any:
        with iam.invoking(logical_id):  # its AWS calls are checked against its role (local/iam.py)
            return handler(event, context)

    return as_function


def match(method: str, path: str) -> tuple[template.Route, dict[str, str]] | None:
    """The route API Gateway would pick. Like API Gateway, `path` is already percent-decoded (an
    encoded slash in an id is a slash here), and a request no route matches goes to `$default`."""
    for route in template.routes():
        if route.method != method.upper():
            continue
        found = route.pattern.match(path)
        if found:
            return route, dict(found.groupdict())
    default = template.default_route()
    return (default, {}) if default else None


def build_event(route: template.Route, path_params: dict[str, str], method: str, path: str, *,
                raw_query: str = "", headers: dict[str, str] | None = None, body: bytes | None = None,
                source_ip: str = "127.0.0.1") -> dict[str, Any]:
    lowered: dict[str, str] = {}
    for name, value in (headers or {}).items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    content_type = lowered.get("content-type", "")
    is_text = not body or any(content_type.startswith(t) for t in _TEXT_TYPES) or not content_type
    if is_text and body:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            is_text = False  # bytes that are not UTF-8 cannot travel as a JSON string: base64, as for binary
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {"method": method.upper(), "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": lowered.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    if "cookie" in lowered:
        event["cookies"] = [c.strip() for c in lowered["cookie"].split(";")]
    if query:
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = path_params
    if body:
        if is_text:
            event["body"] = body.decode("utf-8")
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def translate(result: Any) -> HttpResult:
    if isinstance(result, dict) and "statusCode" in result:
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        return HttpResult(int(result["statusCode"]), headers, body, list(result.get("cookies") or []))
    return HttpResult(200, {"content-type": "application/json"}, json.dumps(result).encode())


def invoke_http(method: str, path: str, *, raw_query: str = "", headers: dict[str, str] | None = None,
                body: bytes | None = None, source_ip: str = "127.0.0.1", timeout: float | None = None) -> HttpResult:
    """One API Gateway request. The handler's context runs out at the function's template Timeout
    (or `timeout` seconds), counted from when it starts, as in Lambda."""
    if body and len(body) > MAX_PAYLOAD_BYTES:
        return HttpResult(413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
    found = match(method, path)
    if found is None:  # API Gateway's own answer when no route (and no $default) matches
        return HttpResult(404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
    route, params = found
    try:
        event = build_event(route, params, method, path, raw_query=raw_query, headers=headers, body=body,
                            source_ip=source_ip)
        handler = handler_for(route.function)
        with _one_at_a_time:
            result = handler(event, LambdaContext.for_function(route.function, timeout))
        return translate(result)
    except Exception:  # noqa: BLE001 - API Gateway answers an unhandled Lambda error this way
        return HttpResult(500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}')


def scheduler_event(job: str) -> dict[str, Any]:
    """What an EventBridge Scheduler target receives: the schedule's Input, as JSON."""
    return {"job": job}


def invoke_job(job: str, *, timeout: float | None = None) -> Any:
    """A whole scheduled job: its dispatcher, then every shard it enqueued (local/jobqueue.py); each
    invocation's context runs out at the function's Timeout (or `timeout`)."""
    from local import jobqueue

    return jobqueue.run_job(job, timeout=timeout)
