"""Browser-test fixtures: Debian chromium through Playwright (sync API) against the local stack.

Loaded by the browser test modules with `pytest_plugins = ["tests.e2e.conftest_browser"]`; adds
fixtures with distinct names (`chromium_browser`, `open_page`, `shots`, `clinic_factory`) next to
`local_stack` from tests/e2e/conftest.py. Helpers live in conftest_browser_helpers.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LocalStack
from tests.e2e.conftest_browser_helpers import CHROMIUM, CHROMIUM_ARGS, PHONE, SCREENSHOTS, TIMEOUT, Clinic, Http


@pytest.fixture
def clinic_factory(local_stack: LocalStack) -> Callable[..., Clinic]:
    def make(*, name: str = "Clínica Browser", country: str = "CL", currency: str = "CLP",
             timezone: str = "America/Santiago", locale: str = "es", org_id: str | None = None) -> Clinic:
        operator = Http(local_stack.base_url, {"Authorization": f"Bearer {local_stack.operator_key}"})
        body: dict[str, Any] = {"name": name, "country": country, "currency": currency, "timezone": timezone,
                                "locale": locale}
        if org_id:
            body["org_id"] = org_id
        created = operator.post("/v1/clinics", json=body, expect=201).json()
        clinic_id = created["clinic"]["clinic_id"]
        admin = Http(local_stack.base_url, {"Authorization": f"Bearer {created['admin_key']}"})
        staff_key = admin.post(f"/v1/clinics/{clinic_id}/staff-keys", expect=201).json()["key"]
        return Clinic(local_stack.base_url, clinic_id, name, created["admin_key"], staff_key, created["publishable_key"],
                      timezone, currency)

    return make


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Debian chromium ({CHROMIUM}) is not installed: `make chromium` installs it with apt")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(chromium_browser: Any) -> Iterator[Callable[..., Any]]:
    """open_page(url, size=PHONE, locale="es-CL") -> a Page in a fresh context. Any uncaught page
    error fails the test at teardown."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_(url: str | None = None, *, size: dict[str, int] | None = None, locale: str = "es-CL") -> Any:
        context = chromium_browser.new_context(viewport=size or PHONE, locale=locale, accept_downloads=True)
        context.set_default_timeout(TIMEOUT * 1000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        if url:
            page.goto(url)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture(scope="session")
def shots() -> Callable[[Any, str], Path]:
    """shots(page, "widget-form-phone") writes docs/screenshots/widget-form-phone.png (overwritten each run)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str, *, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.wait_for_load_state("networkidle")
        page.evaluate("window.scrollTo(0, 0)")  # a sticky header would otherwise sit mid-page
        page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
        return path

    return take


