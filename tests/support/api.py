"""A small client for the API: in-process through the API Gateway emulation (handler tests)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from local import apigw
from local.apigw import HttpResult


class ApiClient:
    def __init__(self, headers: dict[str, str] | None = None, source_ip: str = "127.0.0.1"):
        self.headers = headers or {}
        self.source_ip = source_ip

    def with_key(self, key: str) -> ApiClient:
        return ApiClient({**self.headers, "Authorization": f"Bearer {key}"}, self.source_ip)

    def with_headers(self, **headers: str) -> ApiClient:
        return ApiClient({**self.headers, **headers}, self.source_ip)

    def from_address(self, source_ip: str) -> ApiClient:
        """The same caller from another client address (API Gateway's requestContext.http.sourceIp)."""
        return ApiClient(self.headers, source_ip)

    def request(self, method: str, path: str, *, json_body: Any = None, raw: bytes | None = None,
                query: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> HttpResult:
        all_headers = {**self.headers, **(headers or {})}
        body = raw
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        return apigw.invoke_http(method, path, raw_query=urlencode(query or {}), headers=all_headers, body=body,
                                 source_ip=self.source_ip)

    def get(self, path: str, **kwargs: Any) -> HttpResult:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> HttpResult:  # noqa: A002
        return self.request("POST", path, json_body=json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> HttpResult:  # noqa: A002
        return self.request("PUT", path, json_body=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> HttpResult:  # noqa: A002
        return self.request("PATCH", path, json_body=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> HttpResult:
        return self.request("DELETE", path, **kwargs)
