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


def test_the_api_docs_page_renders_under_its_policy_offline(open_page: Callable[..., Any],
                                                            local_stack: LocalStack) -> None:
    from local import vendor

    if not vendor.is_current():
        pytest.skip("the /docs viewer is not in build/vendor: `make vendor` (npm) fetches it")
    page = open_page(size={"width": 1280, "height": 900})
    violations = _violations(page)
    elsewhere: list[str] = []  # offline: nothing but the stack itself may be asked for anything
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(local_stack.base_url)
               else (elsewhere.append(route.request.url), route.abort()))
    response = page.goto(f"{local_stack.base_url}/docs")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    # Scalar's viewer renders /openapi.json: groups by tag, each operation by its summary in words
    page.get_by_role("heading", name="Create a clinic").first.wait_for()
    text = page.inner_text("body")
    assert "Appointments and payment links" in text and "Cards on file" in text and "Rotate the patient-token" in text
    page.get_by_text("Appointments and payment links").first.click()
    page.get_by_text("Book an appointment").first.wait_for()
    assert violations == [] and elsewhere == []


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
