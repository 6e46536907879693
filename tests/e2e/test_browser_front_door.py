"""The developer front door in Debian chromium: the index at `/` runs a job from its button, /demo
picks a demo clinic without pasting ids, the outbox renders each email, a sandbox's root page lists
its fault switches. Every page under its Content-Security-Policy, with nothing blocked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.axe import axe_violations
from tests.e2e.conftest import LocalStack
from tests.e2e.conftest_browser_helpers import DESKTOP, PHONE, SCREENSHOTS, Clinic, no_horizontal_scroll, unique_email, wait_for

pytest_plugins = ["tests.e2e.conftest_browser"]
pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def _blocked(page: Any) -> list[str]:
    found: list[str] = []
    page.on("console", lambda message: found.append(message.text)
            if "Content Security Policy" in message.text or "Refused to" in message.text else None)
    return found


def test_the_index_links_everything_and_runs_a_job_from_its_button(open_page: Callable[..., Any],
                                                                    local_stack: LocalStack,
                                                                    shots: Callable[..., Any]) -> None:
    # Given a developer opening the stack's root in a browser
    page = open_page(size=DESKTOP)
    blocked = _blocked(page)
    response = page.goto(f"{local_stack.base_url}/")
    assert response.status == 200 and "default-src 'none'" in response.headers["content-security-policy"]
    nav = page.get_by_role("navigation", name="Local stack")
    for name in ("Booking demo", "Staff pages", "API docs", "Outbox", "Jobs", "Sandboxes"):
        assert nav.get_by_role("link", name=name).count() == 1
    shots(page, "local-index-desktop")
    # When they press the reminders job's button
    with page.expect_response(lambda r: r.url.endswith("/_local/jobs/reminders") and r.request.method == "POST"):
        page.get_by_role("button", name="Run reminders now").first.click()
    # Then the job ran (a POST, not a GET link) and its result shows next to the button
    result = page.locator("#result-reminders").first
    result.get_by_text("Done (HTTP 200").wait_for()
    assert "{" in result.inner_text()
    assert blocked == []


def test_the_index_fits_a_phone(open_page: Callable[..., Any], local_stack: LocalStack) -> None:
    page = open_page(f"{local_stack.base_url}/")
    assert no_horizontal_scroll(page)


def test_demo_offers_the_stacks_clinics_instead_of_asking_for_ids(open_page: Callable[..., Any],
                                                                  local_stack: LocalStack,
                                                                  shots: Callable[..., Any]) -> None:
    # Given the demo page of a stack started with --no-demo
    page = open_page(f"{local_stack.base_url}/demo", size=DESKTOP)
    picker = page.locator("#demo-picker")
    picker.wait_for()
    if page.locator("#demo-create").is_visible():
        # When the developer asks for the demo clinics, they are made and the page comes back
        page.get_by_role("button", name="Create the demo clinics").click()
        page.wait_for_url(f"{local_stack.base_url}/demo")
        picker.wait_for()
    # Then it lists the three demo clinics, each a link to the widget for it; no id to paste
    links = page.locator("#demo-clinics").get_by_role("link")
    wait_for(lambda: links.count() == 3, message="three demo clinics listed")
    names = links.all_inner_texts()
    assert any("Clínica Demo" in n for n in names) and any("Montréal" in n for n in names)
    assert any("Клініка Демо" in n for n in names)
    assert not page.locator("#demo-manual").get_attribute("open")  # the manual form stays folded
    shots(page, "demo-picker-desktop")
    # When they pick the Chilean clinic, the widget loads it, and the other clinics stay one click away
    picker.get_by_role("link", name="Clínica Demo").first.click()
    page.locator("#clinicpay-widget").get_by_role("button").first.wait_for()
    wait_for(lambda: page.inner_text("#site-name") == "Clínica Demo", message="the widget loaded the clinic")
    assert page.locator("#demo-switcher").get_by_role("link", name="Clinique Démo Montréal").count() == 1


def test_the_outbox_renders_each_email_newest_first(open_page: Callable[..., Any], local_stack: LocalStack,
                                                    clinic_factory: Callable[..., Clinic],
                                                    shots: Callable[..., Any]) -> None:
    # Given a clinic that sent a patient the booking confirmation with the payment link
    clinic = clinic_factory()
    clinic.connect_fintoc()
    clinic.put_service("consulta", "Consulta general", 25000, online=True)
    email = unique_email("outbox")
    clinic.book({"id": "p-outbox", "name": "Ana Rojas", "email": email}, "consulta")
    # When the developer opens the outbox filtered to that patient
    page = open_page(size=DESKTOP)
    blocked = _blocked(page)
    page.goto(f"{local_stack.base_url}/_local/outbox?to={email}")
    # Then the email is there, its HTML part rendered in a sandboxed frame, with its link listed
    article = page.locator("article.message").first
    article.wait_for()
    assert email in article.inner_text()
    frame = article.locator("iframe.email")
    assert frame.count() == 1 and frame.get_attribute("sandbox") == ""
    inside = page.frame_locator("iframe.email").first
    assert "Hola Ana Rojas," in inside.locator("body").inner_text()
    assert inside.get_by_role("link").filter(has_text="/pay/").count() == 1
    assert article.get_by_role("link").filter(has_text="/pay/").count() >= 1
    shots(page, "local-outbox-desktop")
    assert axe_violations(page) == []  # with a message in it (the parametrized check may see it empty)
    assert blocked == []
    # And the email itself, as a mail client shows it, at both sizes (its JSON form carries the HTML part)
    [row] = page.request.get(f"{local_stack.base_url}/_local/outbox?format=json&to={email}").json()
    assert row["text"].startswith("Hola Ana Rojas,") and row["html"].startswith("<!doctype html>")
    for size, name in ((DESKTOP, "email-booking-desktop"), (PHONE, "email-booking-phone")):
        mail = open_page(size=size)
        mail.set_content(row["html"])
        assert mail.get_by_role("heading", level=1).inner_text() == row["subject"]
        assert no_horizontal_scroll(mail)
        shots(mail, name)


def test_a_sandbox_root_lists_its_fault_switches(open_page: Callable[..., Any], local_stack: LocalStack) -> None:
    page = open_page(size=DESKTOP)
    blocked = _blocked(page)
    response = page.goto(f"{local_stack.base_url}/_sandbox/stripe")
    assert response.status == 200 and response.headers["content-type"].startswith("text/html")
    assert page.get_by_role("heading", name="Stripe sandbox").count() == 1
    text = page.inner_text("main")
    assert "/_sandbox/stripe/_control/fail-next" in text and "timeout" in text
    assert blocked == []


@pytest.mark.parametrize("path", ["/", "/_local/jobs", "/_local/outbox", "/_sandbox/fintoc", "/_sandbox/monobank",
                                  "/_sandbox/stripe", "/_sandbox/checkbox", "/demo"])
@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_front_door_pages_have_no_axe_violations(open_page: Callable[..., Any], local_stack: LocalStack,
                                                     path: str, size: dict[str, int]) -> None:
    page = open_page(f"{local_stack.base_url}{path}", size=size)
    page.wait_for_load_state("networkidle")
    assert axe_violations(page) == []


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_api_reference_has_no_axe_violations(open_page: Callable[..., Any], local_stack: LocalStack,
                                                 size: dict[str, int]) -> None:
    from local import vendor

    if not vendor.is_current():
        pytest.skip("the /docs viewer is not in build/vendor: `make vendor` (npm) fetches it")
    page = open_page(f"{local_stack.base_url}/docs", size=size)
    page.get_by_role("heading", name="Create a clinic").first.wait_for()
    page.wait_for_timeout(1000)  # the viewer keeps a connection open: "networkidle" never comes
    assert axe_violations(page) == []
    page.screenshot(path=str(SCREENSHOTS / f"api-docs-{'phone' if size == PHONE else 'desktop'}.png"),
                    animations="disabled", caret="hide")
