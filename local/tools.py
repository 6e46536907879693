"""Local-only routes of the local stack (never part of the deployed template).

    GET  /, /_local              the index page: what runs, demo clinics, jobs with Run buttons, sandboxes
    GET  /_local/jobs            the scheduled jobs in template.yaml (a page; JSON for scripts)
    POST /_local/jobs/{job}      runs one now (as EventBridge Scheduler would) and returns its result
    GET  /_local/outbox[?to=]    emails (SES) and SMS (SNS) sent: a page, newest first, each email rendered;
                                 JSON, newest last, with ?format=json or Accept: application/json (or
                                 any Accept that does not ask for text/html: curl, requests)
    DELETE /_local/outbox        hides everything sent so far (POST /_local/outbox/clear from the page)
    GET  /_local/demo            the demo clinics (JSON); POST creates them when the stack has none
    GET  /_local/vendor/<file>   the API docs viewer fetched at `make` time (build/vendor)
    POST /_local/aws-faults      {"service": "ses"|"sns", "count", "code"?}: the next sends are refused
    DELETE /_local/aws-faults    (local/aws_faults.py), as a throttled SES/SNS refuses them
    /demo, /staff, /widget.js, /web/<file>   static files from web/

A browser (an Accept header preferring text/html) gets pages; everything else keeps getting JSON.

The outbox reads moto's backends directly: moto runs in this process (ThreadedMotoServer), and
its HTTP dashboard (/moto-api/data.json) has no send times.
"""

from __future__ import annotations

import email
import email.policy
import functools
import html
import itertools
import json
import mimetypes
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from werkzeug.security import safe_join
from werkzeug.wrappers import Request, Response

from local import apigw, pages, template

WEB = template.ROOT / "web"
STATIC_PAGES = {"/demo": "demo.html", "/staff": "staff.html", "/widget.js": "widget.js"}
_LINK = re.compile(r"https?://[^\s\"'<>]+")

Route = Callable[[Request], Response]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=str, ensure_ascii=False), status=status, mimetype="application/json")


def error_response(status: int, code: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message, "details": []}}, status)


# ------------------------------------------------------------------------------------------ outbox

_stamps: dict[str, tuple[int, str]] = {}  # message id -> (send order, send time)
_order = itertools.count()
_clock_lock = threading.Lock()


def _stamp(message_id: str) -> tuple[int, str]:
    return _stamps.setdefault(message_id, (next(_order), datetime.now(UTC).isoformat(timespec="milliseconds")))


def install_send_clock() -> None:
    """Stamp each SES/SNS send with the time it happened (moto keeps no send time).

    Wraps the backend methods on their classes, so it survives /moto-api/reset. Idempotent.
    """
    from moto.ses.models import SESBackend
    from moto.sns.models import SNSBackend

    def stamped(method: Callable[..., Any]) -> Callable[..., Any]:
        if getattr(method, "_clinicpay_stamped", False):
            return method

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            message_id = result if isinstance(result, str) else getattr(result, "id", None)
            if message_id:
                _stamp(message_id)
            return result

        wrapper._clinicpay_stamped = True  # type: ignore[attr-defined]
        return wrapper

    with _clock_lock:
        for cls, names in ((SESBackend, ("send_email", "send_raw_email", "send_templated_email")),
                           (SNSBackend, ("publish",))):
            for name in names:
                if hasattr(cls, name):
                    setattr(cls, name, stamped(getattr(cls, name)))


_tags: dict[str, dict[str, str]] = {}  # message id -> what the sender knew: kind, clinic_id, language, text
_tags_by_content: dict[tuple[str, str, str], dict[str, str]] = {}  # (channel, to, HTML or SMS text) -> the same


def install_message_tags() -> None:
    """Remember each message's kind, language and plain-text part by its transport id: SES and SNS
    keep neither kind nor language, and moto keeps only the HTML part of an email sent with both.
    Wraps the functions' transport (what both a first send and the retry job use). Idempotent."""
    try:
        from clinicpay.notify.sender import AwsTransport
    except ImportError:  # the layer is not importable here: rows get what the texts tell
        return
    deliver = AwsTransport.deliver
    if getattr(deliver, "_clinicpay_tagged", False):
        return

    from clinicpay.notify.html import email_html

    @functools.wraps(deliver)
    def tagged(self: Any, message: Any) -> Any:
        language = getattr(message, "locale", None) or getattr(message, "language", None)
        tags = {"kind": str(getattr(message, "kind", "") or ""), "clinic_id": str(getattr(message, "clinic_id", "") or ""),
                "language": str(language or ""), "text": str(getattr(message, "body", "") or "")}
        # Also by content, before the send: moto shows the message as soon as it has it, before
        # the send returns its id here.
        shown = (email_html(message.subject or "", message.body, language) if message.channel == "email"
                 else message.body)
        _tags_by_content[(message.channel, message.to, shown)] = tags
        message_id = deliver(self, message)
        _tags[str(message_id)] = tags
        return message_id

    tagged._clinicpay_tagged = True  # type: ignore[attr-defined]
    with _clock_lock:
        AwsTransport.deliver = tagged  # type: ignore[method-assign]


@functools.lru_cache(maxsize=1)
def _builtin_patterns() -> list[tuple[str, str, str, re.Pattern[str]]]:
    """(kind, channel, locale, pattern) for every built-in text: its fixed words in order, anything
    where a placeholder stands. Tells the kind and language of a message the tags missed."""
    try:
        from clinicpay.notify.builtin import CHANNELS, KINDS, LOCALES, builtin
    except ImportError:
        return []
    found = []
    for kind in KINDS:
        for channel in CHANNELS:
            for locale in LOCALES:
                text = builtin(kind, channel, locale)
                shown = text.subject if channel == "email" else text.body
                words = [w for w in re.split(r"\$\w+", shown) if w.strip()]
                if words:
                    found.append((kind, channel, locale, re.compile(".*?".join(re.escape(w.strip()) for w in words),
                                                                    re.DOTALL)))
    return found


def _recognise(row: dict[str, Any]) -> tuple[str | None, str | None]:
    shown = (row.get("subject") or "") if row["channel"] == "email" else (row.get("body") or "")
    best: tuple[int, str, str] | None = None
    for kind, channel, locale, pattern in _builtin_patterns():
        if channel == row["channel"] and pattern.search(shown):
            score = len(pattern.pattern)
            if best is None or score > best[0]:
                best = (score, kind, locale)
    return (best[1], best[2]) if best else (None, None)


def _email_row(message: Any) -> dict[str, Any]:
    html_part: str | None = None
    language: str | None = None
    if hasattr(message, "raw_data"):  # SES Raw content: parse the MIME message
        parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
        part = parsed.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
        html = parsed.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
        recipients = list(dict.fromkeys(message.destinations)) or [str(parsed["To"] or "")]
        subject: str = str(parsed["Subject"] or "")
        body: str = part.get_content() if part else ""
        html_part = html.get_content() if html is not None else None
        language = str(parsed["Content-Language"] or "") or None
    else:  # Simple content (moto keeps only the HTML part when both are given) or a templated send
        destinations = message.destinations or {}
        recipients = [a for key in ("ToAddresses", "CcAddresses", "BccAddresses") for a in destinations.get(key, [])]
        subject = str(getattr(message, "subject", None) or getattr(message, "template", ""))
        body = str(getattr(message, "body", None) or json.dumps(getattr(message, "template_data", "")))
        if _looks_like_html(body):
            html_part = body
    return {"channel": "email", "id": message.id, "from": message.source, "to": ", ".join(recipients),
            "subject": subject, "body": body, "html": html_part,
            "language": language or pages.language_of_html(html_part)}


def _looks_like_html(text: str) -> bool:
    return bool(re.match(r"\s*(<!doctype html|<html|<(p|div|table|body|h[1-6])[\s>])", text, re.IGNORECASE))


def _text_of(html_text: str) -> str:
    """Readable text of an HTML email (for the JSON's `text` and the page's plain-text view)."""
    text = re.sub(r"(?is)<(script|style)[^>]*>.*?</\1>", "", html_text)
    text = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|h[1-6]|li)>", "\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def _addresses(recipients: str) -> set[str]:
    """'Ana <ana@example.com>, +56911112222' -> {'ana <ana@example.com>', 'ana@example.com', '+56911112222'}"""
    found = set()
    for entry in recipients.split(","):
        entry = entry.strip().lower()
        found |= {entry, parseaddr(entry)[1] or entry}
    return found


class Outbox:
    """What the functions sent through moto's SES and SNS, in the order they sent it."""

    def __init__(self, account_id: str | None = None, region: str | None = None):
        from moto.core import DEFAULT_ACCOUNT_ID

        self.account_id = account_id or DEFAULT_ACCOUNT_ID
        self.region = region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        self._hidden: set[str] = set()
        install_send_clock()
        install_message_tags()

    def _all(self) -> list[dict[str, Any]]:
        from moto.ses.models import ses_backends
        from moto.sns.models import sns_backends

        rows = [_email_row(m) for m in list(ses_backends[self.account_id][self.region].sent_messages)]
        sms = sns_backends[self.account_id][self.region].sms_messages
        rows += [{"channel": "sms", "id": message_id, "from": None, "to": phone, "subject": None, "body": text,
                  "html": None, "language": None}
                 for message_id, (phone, text) in list(sms.items())]
        for row in rows:  # a send the clock missed gets the time it was first seen here
            row["sent_at"] = _stamp(row["id"])[1]
            tags = _tags.get(row["id"]) or _tags_by_content.get(
                (row["channel"], row["to"], row["html"] if row["channel"] == "email" else row["body"])) or {}
            if row["channel"] == "email" and tags.get("text"):  # the plain-text part moto did not keep
                row["body"] = tags["text"]
            row["links"] = [html.unescape(link) for link in _LINK.findall(row["body"] or "")]
            row["text"] = tags.get("text") or (_text_of(row["html"]) if row.get("html") else row["body"])
            kind, language = _recognise(row)
            row["kind"] = tags.get("kind") or kind
            row["language"] = row.get("language") or tags.get("language") or language
            row["clinic_id"] = tags.get("clinic_id") or None
        return sorted(rows, key=lambda r: _stamps[r["id"]][0])

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        rows = [r for r in self._all() if r["id"] not in self._hidden]
        if to:
            wanted = to.strip().lower()
            rows = [r for r in rows if wanted in _addresses(r["to"])]
        return rows

    def clear(self) -> int:
        """Hide everything sent so far (moto's own lists stay as they are). Returns how many."""
        ids = {r["id"] for r in self._all()} - self._hidden
        self._hidden |= ids
        return len(ids)


# ------------------------------------------------------------------------------------------ routes


def _index() -> Response:
    from local import demo
    from local.server import SANDBOXES

    extra = {"aws-faults": ('<code>POST /_local/aws-faults {"service": "ses"|"sns", "count": n}</code>: SES or SNS '
                               "refuses the next sends (throttled); they wait in the outbox for <code>message-retry</code>; "
                               "<code>DELETE</code> clears")}
    functions = {route.function for route in template.routes()}
    return pages.html_response(pages.index_page(
        demo_clinics=[clinic.as_json() for clinic in demo.CLINICS], jobs=template.schedules(), sandboxes=SANDBOXES,
        routes=len(template.routes()), functions=len(functions), extra_tools=extra))


def _run_job(request: Request, job: str) -> Response:
    if job not in template.schedules():
        return error_response(404, "unknown_job", f"No scheduled job {job!r}; known: {sorted(template.schedules())}")
    if request.method != "POST":
        return error_response(405, "method_not_allowed", f"Run a job with POST /_local/jobs/{job}")
    try:
        status, result = 200, apigw.invoke_job(job)
    except Exception as error:  # noqa: BLE001 - report it like a failed Lambda invocation
        print(f"job {job} failed: {type(error).__name__}: {error}", file=sys.stderr)
        status, result = 500, {"error": {"code": "job_failed", "message": f"{job} raised {type(error).__name__}: {error}",
                                         "details": []}}
    if pages.wants_html(request):  # a form posted by a browser without JavaScript
        return pages.html_response(pages.job_result_page(job, status, result), status)
    return json_response(result, status)


def _demo(request: Request) -> Response:
    from local import demo

    if request.method == "POST" and not demo.CLINICS:
        operator_key = os.environ.get("CLINICPAY_OPERATOR_KEY", "")
        demo.bootstrap(request.host_url.rstrip("/"), operator_key, log=lambda line: print(line, file=sys.stderr))
    if request.method == "POST" and pages.wants_html(request):  # back to the page whose form it was
        back = request.form.get("next")
        return Response(status=303, headers={"Location": back if back in ("/demo", "/_local") else "/_local"})
    return json_response({"clinics": [clinic.as_json() for clinic in demo.CLINICS]})


def serve_vendor(request: Request) -> Response:
    """/_local/vendor/<file>: what `make vendor` fetched into build/vendor (the API docs viewer)."""
    from local import vendor

    file = safe_join(str(vendor.VENDOR), request.path[len("/_local/vendor/"):])
    if file is None or not Path(file).is_file():
        return error_response(404, "not_found", f"{request.path} is not in build/vendor: run `make vendor`")
    response = Response(Path(file).read_bytes(), content_type="text/javascript; charset=utf-8")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def _aws_faults(request: Request) -> Response:
    from local import aws_faults

    if request.method == "DELETE":
        aws_faults.clear()
    elif request.method == "POST":
        body = request.get_json(silent=True) or {}
        service, count = body.get("service"), body.get("count", 1)
        if service not in ("ses", "sns") or not isinstance(count, int) or not 1 <= count <= 100:
            return error_response(400, "bad_fault", 'Send {"service": "ses"|"sns", "count": 1..100, "code"?: "..."}')
        aws_faults.refuse_next(service, count, str(body["code"]) if body.get("code") else None)
    return json_response({"pending": aws_faults.pending()})


class LocalTools:
    """Serves /_local and everything below it."""

    def __init__(self, outbox: Outbox):
        self.outbox = outbox

    def __call__(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if path in ("/", "/_local"):
            return _index()
        if path == "/_local/jobs":
            if pages.wants_html(request):
                return pages.html_response(pages.jobs_page())
            return json_response({"jobs": sorted(template.schedules())})
        if path.startswith("/_local/jobs/"):
            return _run_job(request, path[len("/_local/jobs/"):])
        if path == "/_local/aws-faults":
            return _aws_faults(request)
        if path in ("/_local/outbox", "/_local/outbox/clear"):
            return self._outbox(request, clear=path.endswith("/clear"))
        if path == "/_local/demo":
            return _demo(request)
        if path.startswith("/_local/vendor/"):
            return serve_vendor(request)
        return error_response(404, "not_found", f"No local tool at {request.path}; see /_local")


    def _outbox(self, request: Request, *, clear: bool) -> Response:
        if clear and request.method != "POST":
            return error_response(405, "method_not_allowed", "Clear the outbox with POST /_local/outbox/clear")
        if clear or request.method == "DELETE":
            cleared = self.outbox.clear()
            if clear and pages.wants_html(request):
                return Response(status=303, headers={"Location": "/_local/outbox"})
            return json_response({"cleared": cleared})
        to = request.args.get("to")
        if pages.wants_html(request):
            return pages.html_response(pages.outbox_page(self.outbox.messages(to=to), to=to))
        return json_response(self.outbox.messages(to=to))


def serve_web(request: Request) -> Response:
    """/demo, /staff, /widget.js and /web/<file> from the web/ folder, whatever exists there."""
    name = STATIC_PAGES.get(request.path)
    if name is None and request.path.startswith("/web/"):
        name = request.path[len("/web/"):]
    file = safe_join(str(WEB), name) if name else None
    if file is None or not Path(file).is_file():
        return error_response(404, "not_found", f"{request.path} is not in web/ (yet)")
    mimetype = mimetypes.guess_type(file)[0] or "application/octet-stream"
    if mimetype.startswith("text/") or mimetype in ("application/javascript", "application/json"):
        mimetype += "; charset=utf-8"
    response = Response(Path(file).read_bytes(), content_type=mimetype)
    response.headers["Cache-Control"] = "no-store"
    return response


def routes(outbox: Outbox) -> dict[str, Route]:
    """The extra_routes for local.server.LocalApp: path prefix -> handler (`/` is the index page)."""
    return {"/_local": LocalTools(outbox), "/web": serve_web, **dict.fromkeys(STATIC_PAGES, serve_web)}


def access_log(app: Any, stream: Any = None) -> Any:
    """WSGI middleware printing one short line per request (the stack silences werkzeug's log,
    which would also print every call the functions make to moto)."""

    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status: list[str] = []

        def capture(code: str, headers: Any, *args: Any) -> Any:
            status.append(code.split(" ", 1)[0])
            return start_response(code, headers, *args)

        result = app(environ, capture)
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING")
        took = (time.perf_counter() - started) * 1000
        print(f"{environ.get('REQUEST_METHOD')} {path}{'?' + query if query else ''} -> "
              f"{status[0] if status else '?'} ({took:.0f} ms)", file=stream or sys.stderr, flush=True)
        return result

    return logged
