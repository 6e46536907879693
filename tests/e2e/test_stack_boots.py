"""The local stack starts from the command line and serves the operations routes and its local tools."""

from __future__ import annotations

import pytest
import requests

from local import template
from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

ROUTE_KEYS = {route.route_key for route in template.routes()}


def _needs_route(route_key: str) -> None:
    if route_key not in ROUTE_KEYS:
        pytest.skip(f"{route_key} is not in template.yaml")


def test_health(local_stack: LocalStack) -> None:
    _needs_route("GET /health")
    response = requests.get(f"{local_stack.base_url}/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_openapi_document(local_stack: LocalStack) -> None:
    _needs_route("GET /openapi.json")
    response = requests.get(f"{local_stack.base_url}/openapi.json", timeout=10)
    assert response.status_code == 200, response.text[:500]
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert "/v1/clinics" in document["paths"]


def test_docs_page(local_stack: LocalStack) -> None:
    _needs_route("GET /docs")
    response = requests.get(f"{local_stack.base_url}/docs", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "openapi.json" in response.text


def test_local_index_links_the_tools(local_stack: LocalStack) -> None:
    response = requests.get(f"{local_stack.base_url}/_local", timeout=10)
    assert response.status_code == 200
    for link in ("/_local/outbox", "/_local/jobs", "/demo", "/staff", "/docs"):
        assert f'href="{link}"' in response.text


def test_outbox_starts_empty_and_clears(local_stack: LocalStack) -> None:
    outbox = f"{local_stack.base_url}/_local/outbox"
    assert requests.delete(outbox, timeout=10).status_code == 200
    response = requests.get(outbox, params={"to": "nobody@example.com"}, timeout=10)
    assert response.status_code == 200
    assert response.json() == []


def test_jobs_are_listed_and_unknown_job_is_404(local_stack: LocalStack) -> None:
    listed = requests.get(f"{local_stack.base_url}/_local/jobs", timeout=10).json()["jobs"]
    assert set(listed) == set(template.schedules())
    response = requests.post(f"{local_stack.base_url}/_local/jobs/no-such-job", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_job"


def test_missing_web_file_is_404(local_stack: LocalStack) -> None:
    assert requests.get(f"{local_stack.base_url}/web/no-such-file.js", timeout=10).status_code == 404
    assert requests.get(f"{local_stack.base_url}/web/../template.yaml", timeout=10).status_code == 404


def test_unknown_api_route_is_404(local_stack: LocalStack) -> None:
    response = requests.get(f"{local_stack.base_url}/v1/no-such-route", timeout=10)
    assert response.status_code == 404
