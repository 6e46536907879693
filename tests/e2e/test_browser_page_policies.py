"""Our pages still work in a real browser under their Content-Security-Policy: the inline scripts
run (allowed by their hash), fetch their data (connect-src 'self'), and nothing is blocked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import LocalStack
from tests.e2e.conftest_browser_helpers import Clinic

pytest_plugins = ["tests.e2e.conftest_browser"]
pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def _violations(page: Any) -> list[str]:
    found: list[str] = []
    page.on("console", lambda message: found.append(message.text)
            if "Content Security Policy" in message.text or "Refused to" in message.text else None)
    return found


def test_the_api_docs_page_renders_under_its_policy(open_page: Callable[..., Any], local_stack: LocalStack) -> None:
    page = open_page()
    violations = _violations(page)
    response = page.goto(f"{local_stack.base_url}/docs")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.wait_for_selector("#paths section")  # built by the page's script from /openapi.json
    assert "/v1/clinics/{clinic_id}/appointments" in page.inner_text("#paths")
    assert violations == []


def test_the_payment_result_page_polls_under_its_policy(open_page: Callable[..., Any],
                                                       clinic_factory: Callable[..., Clinic]) -> None:
    clinic = clinic_factory()
    clinic.put_service("consulta", "Consulta", 25000, online=True)
    booked = clinic.book({"id": "p-1", "name": "Ana Rojas", "email": "ana@example.cl"}, "consulta")
    page = open_page()
    violations = _violations(page)
    with page.expect_response(lambda r: "/v1/public/payments/" in r.url and r.status == 200):
        page.goto(f"{booked['payment_link']['url']}/result")
    assert page.get_attribute("#status", "data-status") == "waiting"
    assert violations == []
