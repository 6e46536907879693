"""The local stack's one HTTP server: the API (from template.yaml), provider sandboxes, local tools.

    /                          the local index page (the same as /_local)
    /_sandbox/<provider>       a page saying what the sandbox emulates and its fault switches
    /_sandbox/<provider>/...   provider sandboxes (local/sandboxes/<provider>.py, each a WSGI app)
    /_local/...                local-only tools: jobs, outbox (never part of the deployed template)
    everything else            API Gateway emulation -> the real Lambda handlers, in-process
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from local import apigw, template

SANDBOXES = ("fintoc", "monobank", "stripe", "checkbox")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _load_sandboxes() -> dict[str, WSGIApp]:
    apps = {}
    for name in SANDBOXES:
        try:
            module = importlib.import_module(f"local.sandboxes.{name}")
        except ModuleNotFoundError:
            continue
        apps[name] = module.app
    return apps


def _cors() -> dict[str, str]:
    """The HTTP API's CorsConfiguration from template.yaml, as the headers API Gateway would add."""
    resources = template.load()["Resources"]
    config = next((r["Properties"].get("CorsConfiguration") for r in resources.values()
                   if r["Type"] == "AWS::Serverless::HttpApi"), None) or {}
    if not config:
        return {}
    return {"Access-Control-Allow-Origin": ",".join(config.get("AllowOrigins", [])),
            "Access-Control-Allow-Methods": ",".join(config.get("AllowMethods", [])),
            "Access-Control-Allow-Headers": ",".join(config.get("AllowHeaders", [])),
            "Access-Control-Expose-Headers": ",".join(config.get("ExposeHeaders", [])),
            "Access-Control-Max-Age": str(config.get("MaxAge", 0))}


def _api(request: Request) -> Response:
    cors = _cors()
    if request.method == "OPTIONS" and cors and request.headers.get("Access-Control-Request-Method"):
        return Response(status=204, headers=cors)  # API Gateway answers preflights without the Lambda
    result = apigw.invoke_http(request.method, request.path, raw_query=request.query_string.decode(),
                               headers=dict(request.headers.items()), body=request.get_data() or None,
                               source_ip=request.remote_addr or "127.0.0.1")
    response = Response(result.body, status=result.status)
    for name, value in result.headers.items():
        response.headers[name] = value
    for cookie in result.cookies:
        response.headers.add("Set-Cookie", cookie)
    if cors and request.headers.get("Origin"):
        response.headers["Access-Control-Allow-Origin"] = cors["Access-Control-Allow-Origin"]
        response.headers["Access-Control-Expose-Headers"] = cors["Access-Control-Expose-Headers"]
    return response


class LocalApp:
    def __init__(self, extra_routes: dict[str, Callable[[Request], Response]] | None = None):
        self.sandboxes = _load_sandboxes()
        self.local_routes = extra_routes or {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox/"):
            name, _, rest = path[len("/_sandbox/"):].partition("/")
            sandbox = self.sandboxes.get(name)
            if sandbox is not None and not rest and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
                return self._sandbox_root(name, Request(environ))(environ, start_response)
            if sandbox is not None:
                environ = dict(environ)
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + f"/_sandbox/{name}"
                environ["PATH_INFO"] = "/" + rest
                return sandbox(environ, start_response)
        request = Request(environ)
        if path == "/" and "/_local" in self.local_routes:
            return self.local_routes["/_local"](request)(environ, start_response)  # the index page
        for prefix, route in self.local_routes.items():
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return route(request)(environ, start_response)
        return _api(request)(environ, start_response)


    @staticmethod
    def _sandbox_root(name: str, request: Request) -> Response:
        from local import pages

        module = importlib.import_module(f"local.sandboxes.{name}")
        return pages.html_response(pages.sandbox_page(name, module, f"{request.host_url.rstrip('/')}/_sandbox/{name}"))


class LocalServer:
    """The WSGI app on a threaded server in a background thread (tests and `make run`)."""

    def __init__(self, app: WSGIApp, port: int, host: str = "127.0.0.1"):
        self._server = make_server(host, port, app, threaded=True)
        self.base_url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
