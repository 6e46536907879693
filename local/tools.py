"""Local-only routes of the local stack (never part of the deployed template).

    GET  /_local                 a small index of what the stack serves
    GET  /_local/jobs            the scheduled jobs in template.yaml
    POST /_local/jobs/{job}      runs one now (as EventBridge Scheduler would) and returns its result
    GET  /_local/outbox[?to=]    emails (SES) and SMS (SNS) sent, newest last
    DELETE /_local/outbox        hides everything sent so far
    POST /_local/aws-faults      {"service": "ses"|"sns", "count", "code"?}: the next sends are refused
    DELETE /_local/aws-faults    (local/aws_faults.py), as a throttled SES/SNS refuses them
    /demo, /staff, /widget.js, /web/<file>   static files from web/

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

from local import apigw, template

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


def _email_row(message: Any) -> dict[str, Any]:
    if hasattr(message, "raw_data"):  # SES Raw content: parse the MIME message
        parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
        part = parsed.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
        recipients = list(dict.fromkeys(message.destinations)) or [str(parsed["To"] or "")]
        subject: str = str(parsed["Subject"] or "")
        body: str = part.get_content() if part else ""
    else:  # Simple content (moto keeps the HTML part when both are given) or a templated send
        destinations = message.destinations or {}
        recipients = [a for key in ("ToAddresses", "CcAddresses", "BccAddresses") for a in destinations.get(key, [])]
        subject = str(getattr(message, "subject", None) or getattr(message, "template", ""))
        body = str(getattr(message, "body", None) or json.dumps(getattr(message, "template_data", "")))
    return {"channel": "email", "id": message.id, "from": message.source, "to": ", ".join(recipients),
            "subject": subject, "body": body}


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

    def _all(self) -> list[dict[str, Any]]:
        from moto.ses.models import ses_backends
        from moto.sns.models import sns_backends

        rows = [_email_row(m) for m in list(ses_backends[self.account_id][self.region].sent_messages)]
        sms = sns_backends[self.account_id][self.region].sms_messages
        rows += [{"channel": "sms", "id": message_id, "from": None, "to": phone, "subject": None, "body": text}
                 for message_id, (phone, text) in list(sms.items())]
        for row in rows:  # a send the clock missed gets the time it was first seen here
            row["sent_at"] = _stamp(row["id"])[1]
            row["links"] = [html.unescape(link) for link in _LINK.findall(row["body"] or "")]
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
    jobs = "".join(
        f'<li><code>POST <a href="/_local/jobs">/_local/jobs/{html.escape(job)}</a></code></li>'
        for job in sorted(template.schedules())
    )
    page = f"""<!doctype html>
<html lang="en"><meta charset="utf-8"><title>clinicpay local stack</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}}
code{{background:#f3f4f6;padding:0 .25rem;border-radius:3px}}</style>
<h1>clinicpay local stack</h1>
<h2>Pages</h2>
<ul>
<li><a href="/demo">/demo</a> booking widget demo</li>
<li><a href="/staff">/staff</a> staff pages</li>
<li><a href="/widget.js">/widget.js</a> the embeddable widget</li>
<li><a href="/docs">/docs</a> API reference (<a href="/openapi.json">/openapi.json</a>)</li>
<li><a href="/health">/health</a></li>
</ul>
<h2>Local tools</h2>
<ul>
<li><a href="/_local/outbox">/_local/outbox</a> emails and SMS sent (<code>?to=</code> filters,
<code>DELETE</code> clears)</li>
<li><a href="/_local/jobs">/_local/jobs</a> scheduled jobs; run one now (its dispatcher, then every
shard it enqueued) with:<ul>{jobs}</ul></li>
<li><code>POST /_local/aws-faults {{"service": "sns", "count": 2}}</code> SES/SNS refuse the next sends
(throttled); refused messages wait in the outbox for <code>message-retry</code></li>
</ul>
<h2>Provider sandboxes</h2>
<p><code>/_sandbox/fintoc</code>, <code>/_sandbox/monobank</code>, <code>/_sandbox/stripe</code>,
<code>/_sandbox/checkbox</code></p>
</html>
"""
    return Response(page, mimetype="text/html")


def _run_job(request: Request, job: str) -> Response:
    if job not in template.schedules():
        return error_response(404, "unknown_job", f"No scheduled job {job!r}; known: {sorted(template.schedules())}")
    if request.method != "POST":
        return error_response(405, "method_not_allowed", f"Run a job with POST /_local/jobs/{job}")
    try:
        result = apigw.invoke_job(job)
    except Exception as error:  # noqa: BLE001 - report it like a failed Lambda invocation
        print(f"job {job} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return error_response(500, "job_failed", f"{job} raised {type(error).__name__}: {error}")
    return json_response(result)


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
        path = request.path.rstrip("/")
        if path == "/_local":
            return _index()
        if path == "/_local/jobs":
            return json_response({"jobs": sorted(template.schedules())})
        if path.startswith("/_local/jobs/"):
            return _run_job(request, path[len("/_local/jobs/"):])
        if path == "/_local/aws-faults":
            return _aws_faults(request)
        if path == "/_local/outbox":
            if request.method == "DELETE":
                return json_response({"cleared": self.outbox.clear()})
            return json_response(self.outbox.messages(to=request.args.get("to")))
        return error_response(404, "not_found", f"No local tool at {request.path}; see /_local")


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
    """The extra_routes for local.server.LocalApp: path prefix -> handler."""
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
