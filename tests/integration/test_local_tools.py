"""The local stack's /_local tools against moto: the outbox sees what SES v2 and SNS really sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from werkzeug.test import Client, TestResponse

from local import template, tools
from local.server import LocalApp
from tests.support import env
from tests.support.env import SENDER, TestStack


@pytest.fixture
def outbox(stack: env.TestStack) -> tools.Outbox:
    return tools.Outbox()


@pytest.fixture
def client(outbox: tools.Outbox) -> Client:
    return Client(LocalApp(tools.routes(outbox)))


def _json(response: TestResponse) -> Any:
    return json.loads(response.get_data())


def _send_email(to: str, subject: str, *, html: bool = True) -> None:
    body = {"Text": {"Data": f"{subject}: https://pay.example/pay/lnk_1"}}
    if html:
        body["Html"] = {"Data": f'<p>{subject}: <a href="https://pay.example/pay/lnk_1?a=1&amp;b=2">pagar</a></p>'}
    boto3.client("sesv2").send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": [to]},
                                     Content={"Simple": {"Subject": {"Data": subject}, "Body": body}})


def _send_sms(to: str, text: str) -> None:
    boto3.client("sns").publish(PhoneNumber=to, Message=text)


def test_outbox_lists_emails_and_sms_in_send_order(outbox: tools.Outbox) -> None:
    _send_email("ana@example.com", "Tu hora")
    _send_sms("+56912345678", "Recordatorio: https://pay.example/pay/lnk_1")
    _send_email("luis@example.com", "Your appointment", html=False)

    rows = outbox.messages()

    assert [(r["channel"], r["to"], r["subject"]) for r in rows] == [
        ("email", "ana@example.com", "Tu hora"),
        ("sms", "+56912345678", None),
        ("email", "luis@example.com", "Your appointment"),
    ]
    assert rows[0]["from"] == SENDER
    assert rows[0]["links"] == ["https://pay.example/pay/lnk_1?a=1&b=2"]
    assert rows[1]["body"] == "Recordatorio: https://pay.example/pay/lnk_1"
    assert rows[2]["body"] == "Your appointment: https://pay.example/pay/lnk_1"
    assert all(r["sent_at"] for r in rows)
    assert [r["sent_at"] for r in rows] == sorted(r["sent_at"] for r in rows)


def test_outbox_reads_raw_mime_emails(outbox: tools.Outbox) -> None:
    raw = ("From: payments@clinicpay.local\r\nTo: Ana <ana@example.com>\r\nSubject: Recibo\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGracias por tu pago\r\n")
    boto3.client("sesv2").send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": ["ana@example.com"]},
                                     Content={"Raw": {"Data": raw.encode()}})

    [row] = outbox.messages(to="ana@example.com")

    assert row["subject"] == "Recibo"
    assert row["body"].strip() == "Gracias por tu pago"


def test_outbox_filters_by_recipient_and_clears(client: Client) -> None:
    _send_email("ana@example.com", "Tu hora")
    _send_sms("+56912345678", "Hola")

    assert [r["channel"] for r in _json(client.get("/_local/outbox?to=ANA@example.com"))] == ["email"]
    assert [r["channel"] for r in _json(client.get("/_local/outbox", query_string={"to": "+56912345678"}))] == ["sms"]
    assert _json(client.delete("/_local/outbox")) == {"cleared": 2}
    assert _json(client.get("/_local/outbox")) == []

    _send_sms("+56912345678", "Otra")
    assert [r["body"] for r in _json(client.get("/_local/outbox"))] == ["Otra"]


def test_unknown_job_is_404_and_get_lists_jobs(client: Client) -> None:
    response = client.post("/_local/jobs/nope")
    assert response.status_code == 404
    assert _json(response)["error"]["code"] == "unknown_job"
    assert set(_json(client.get("/_local/jobs"))["jobs"]) == set(template.schedules()) >= {"reminders"}


def test_web_files_are_served_from_web_folder(client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "demo.html").write_text("<h1>demo</h1>")
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "site.css").write_text("body{}")
    monkeypatch.setattr(tools, "WEB", tmp_path)

    demo = client.get("/demo")
    assert demo.status_code == 200 and demo.headers["content-type"] == "text/html; charset=utf-8"
    assert client.get("/web/css/site.css").text == "body{}"
    assert client.get("/staff").status_code == 404
    assert client.get("/web/../secret").status_code == 404


def test_the_api_answers_cross_origin_calls_like_the_http_apis_cors_configuration(stack: TestStack) -> None:
    # Given the widget on a clinic's own site
    import requests

    origin = {"Origin": "https://clinic.example"}
    # When the browser asks before a booking POST
    preflight = requests.options(f"{stack.base_url}/v1/public/clinics/x/appointments", timeout=10, headers={
        **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-clinic-key"})
    # Then the preflight allows the widget's headers, and real answers carry the origin header
    assert preflight.status_code == 204
    assert "x-clinic-key" in preflight.headers["Access-Control-Allow-Headers"]
    answer = requests.get(f"{stack.base_url}/health", headers=origin, timeout=10)
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_the_root_is_the_local_index_page_with_the_security_headers_of_our_pages(client: Client) -> None:
    # Given a browser opening the stack's root
    response = client.get("/", headers=BROWSER)
    # Then it is the index: HTML, with links to each part of the stack, under a hash-only CSP
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.text
    for href in ('href="/demo"', 'href="/staff"', 'href="/docs"', 'href="/_local/outbox"', 'href="/_sandbox/fintoc"',
                 'href="/_sandbox/checkbox"'):
        assert href in page
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "'sha256-" in policy and "'unsafe-inline'" not in policy.split("style-src")[0]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert client.get("/_local", headers=BROWSER).text == page


def test_jobs_are_listed_as_post_forms_never_as_get_links(client: Client) -> None:
    page = client.get("/_local/jobs", headers=BROWSER).text
    for job in template.schedules():
        assert f'<form class="inline" method="post" action="/_local/jobs/{job}"' in page
        assert f'href="/_local/jobs/{job}"' not in page
    # a GET on a job does not run it
    assert client.get(f"/_local/jobs/{next(iter(template.schedules()))}").status_code == 405


def test_a_job_posted_by_a_browser_form_answers_a_page_with_its_result(client: Client) -> None:
    response = client.post("/_local/jobs/reminders", headers=BROWSER)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "Done: reminders" in response.text
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    # scripts (and the page's own fetch, which asks for JSON) still get the job's JSON result
    assert isinstance(_json(client.post("/_local/jobs/reminders", headers={"Accept": "application/json"})), dict)


def test_the_outbox_is_a_page_for_browsers_and_json_for_tools(client: Client) -> None:
    _send_email("ana@example.com", "Tu hora <pronto>")
    _send_sms("+56912345678", "Recordatorio & link")

    page = client.get("/_local/outbox", headers=BROWSER)
    assert page.mimetype == "text/html"
    text = page.text
    # newest first; the email's HTML part rendered in a sandboxed frame, escaped; the SMS as text
    assert text.index("Recordatorio &amp; link") < text.index("Tu hora &lt;pronto&gt;")
    assert '<iframe class="email" sandbox=""' in text and "srcdoc=\"&lt;p&gt;Tu hora" in text
    assert "<pronto>" not in text
    # the same URL as JSON: by ?format=json, by Accept, or by default (curl, requests)
    for response in (client.get("/_local/outbox?format=json", headers=BROWSER),
                     client.get("/_local/outbox", headers={"Accept": "application/json"}),
                     client.get("/_local/outbox")):
        assert [r["channel"] for r in _json(response)] == ["email", "sms"]
    filtered = client.get("/_local/outbox?to=%2B56912345678", headers=BROWSER).text
    assert "Recordatorio" in filtered and "Tu hora" not in filtered


def test_the_outbox_page_clears_with_a_post_and_comes_back(client: Client) -> None:
    _send_sms("+56912345678", "Hola")
    response = client.post("/_local/outbox/clear", headers=BROWSER)
    assert response.status_code == 303 and response.headers["Location"] == "/_local/outbox"
    assert _json(client.get("/_local/outbox")) == []
    assert "Nothing sent yet" in client.get("/_local/outbox", headers=BROWSER).text


@pytest.mark.parametrize("name", ["fintoc", "monobank", "stripe", "checkbox"])
def test_a_sandbox_root_is_a_page_listing_its_fault_switches(client: Client, name: str) -> None:
    import importlib

    module = importlib.import_module(f"local.sandboxes.{name}")
    controls = [rule.rule for rule in module.app.url_map.iter_rules() if rule.rule.startswith("/_control")]

    response = client.get(f"/_sandbox/{name}", headers=BROWSER)

    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "/_control/fail-next" in controls
    for control in controls:  # every switch the sandbox has is on its page, with a description
        assert f"/_sandbox/{name}{control}".replace("<", "&lt;").replace(">", "&gt;") in response.text
    assert "(see the notes below)" not in response.text
    # below the root, the sandbox answers as the provider would (JSON), not with our page
    below = client.get(f"/_sandbox/{name}/_control/nope", headers=BROWSER)
    assert below.status_code >= 400 and below.mimetype == "application/json"
