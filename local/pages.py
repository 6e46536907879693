"""The local stack's own HTML pages (never deployed): the index at `/` and `/_local`, the jobs with
their Run buttons, the outbox, and the provider sandboxes' root pages.

Everything a page lists is read from what the stack really has: the jobs from template.yaml's
schedules, the demo clinics from local/demo.py, the sandboxes' routes and fault kinds from their
Flask apps. Pages carry the same security headers as the API's pages (resolver.html_security_headers:
inline scripts allowed by their hash only).
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from werkzeug.wrappers import Request, Response

from local import template

# ------------------------------------------------------------------------------------------- layout

_CSS = """
:root { --ink:#1b2430; --muted:#4d5766; --line:#d5dce4; --soft:#f4f6f9; --brand:#14506e; --accent:#0b5cad;
        --ok:#146c2e; --bad:#a3241b; }
* { box-sizing:border-box; }
body { margin:0; font:16px/1.55 system-ui, -apple-system, 'Segoe UI', sans-serif; color:var(--ink); background:#fff; }
a { color:var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible, summary:focus-visible {
outline:3px solid #f0a500; outline-offset:2px; }
header.top { background:var(--brand); color:#fff; }
header.top .wrap { display:flex; flex-wrap:wrap; align-items:center; gap:.25rem 1.25rem; padding:.6rem 1rem; }
header.top .brand { color:#fff; font-weight:700; text-decoration:none; font-size:1.05rem; }
header.top nav ul { display:flex; flex-wrap:wrap; gap:.1rem 1rem; list-style:none; margin:0; padding:0; }
header.top nav a { color:#fff; text-decoration:none; font-size:.95rem; }
header.top nav a:hover, header.top nav a[aria-current] { text-decoration:underline; }
.wrap { max-width:72rem; margin:0 auto; }
main.wrap { padding:1.25rem 1rem 3rem; }
h1 { font-size:1.7rem; margin:.5rem 0 .25rem; line-height:1.2; }
h2 { font-size:1.25rem; margin:2rem 0 .5rem; }
h3 { font-size:1.05rem; margin:1rem 0 .25rem; }
.lead { color:var(--muted); margin:.25rem 0 1rem; max-width:48rem; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(15rem, 1fr));
gap:.75rem; list-style:none; padding:0; margin:0; }
.cards li { border:1px solid var(--line); border-radius:10px; padding:.8rem 1rem; background:#fff; }
.cards a.title { font-weight:650; font-size:1.05rem; }
.cards p { margin:.3rem 0 0; color:var(--muted); font-size:.95rem; }
table { border-collapse:collapse; width:100%; font-size:.95rem; }
th, td { text-align:left; vertical-align:top; padding:.45rem .5rem; border-bottom:1px solid var(--line); }
th { background:var(--soft); font-weight:650; }
.scroll { overflow-x:auto; }
code, pre, kbd { font-family:ui-monospace, 'DejaVu Sans Mono', monospace; font-size:.88em; }
code { background:var(--soft); padding:.05rem .3rem; border-radius:4px; overflow-wrap:anywhere; }
pre { background:var(--soft); padding:.75rem; border-radius:8px; overflow:auto;
white-space:pre-wrap; overflow-wrap:anywhere; margin:.5rem 0; }
button { font:inherit; font-weight:600; background:var(--accent); color:#fff; border:0; border-radius:8px;
         padding:.45rem .9rem; min-height:2.5rem; cursor:pointer; }
button.secondary { background:#fff; color:var(--accent); border:1px solid var(--accent); }
button[disabled] { opacity:.7; cursor:progress; }
form.inline { display:inline; margin:0; }
.result { display:block; margin-top:.4rem; }
.result .status { font-weight:650; }
.result .status.ok { color:var(--ok); }
.result .status.bad { color:var(--bad); }
.muted { color:var(--muted); }
.badge { display:inline-block; border:1px solid var(--line); border-radius:999px; padding:0 .55rem;
font-size:.85rem; background:var(--soft); }
article.message { border:1px solid var(--line); border-radius:10px; margin:.75rem 0; padding:.75rem 1rem; }
article.message h2 { font-size:1.1rem; margin:.1rem 0 .4rem; }
dl.meta { display:grid; grid-template-columns:max-content 1fr; gap:.1rem .75rem; margin:0 0 .5rem; font-size:.93rem; }
dl.meta dt { color:var(--muted); }
dl.meta dd { margin:0; overflow-wrap:anywhere; }
iframe.email { width:100%; min-height:22rem; border:1px solid var(--line); border-radius:8px; background:#fff; }
label { font-weight:600; }
input[type=text], input[type=search] { font:inherit; padding:.4rem .55rem; border:1px solid #7b8796; border-radius:8px;
min-height:2.5rem; min-width:min(20rem, 100%); }
.filter { display:flex; flex-wrap:wrap; gap:.5rem; align-items:center; margin:.5rem 0 1rem; }
footer.bottom { border-top:1px solid var(--line); color:var(--muted); font-size:.9rem; }
footer.bottom .wrap { padding:1rem; }
"""

_NAV = (("/_local", "Home"), ("/demo", "Booking demo"), ("/staff", "Staff pages"), ("/docs", "API docs"),
        ("/_local/outbox", "Outbox"), ("/_local/jobs", "Jobs"), ("/_local#sandboxes", "Sandboxes"))


def page(title: str, body: str, *, current: str = "", script: str = "") -> str:
    """A whole page: the shared header and navigation, `body` in <main>, an optional inline script."""
    marker = ' aria-current="page"'
    links = "".join(f'<li><a href="{href}"{marker if href == current else ""}>{escape(text)}</a></li>'
                    for href, text in _NAV)
    scripts = f"<script>{script}</script>" if script else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · clinicpay local</title>
<style>{_CSS}</style>
</head>
<body>
<header class="top"><div class="wrap">
<a class="brand" href="/_local">clinicpay local</a>
<nav aria-label="Local stack"><ul>{links}</ul></nav>
</div></header>
<main class="wrap" id="main">
{body}
</main>
<footer class="bottom"><div class="wrap">A local stack: the real Lambda handlers from <code>template.yaml</code>, AWS emulated
by moto in this process, provider sandboxes under <code>/_sandbox</code>. All data is in memory and goes when the
stack stops. Never deployed.</div></footer>
{scripts}
</body>
</html>
"""


def html_response(html: str, status: int = 200) -> Response:
    from clinicpay.api.resolver import html_security_headers

    response = Response(html, status=status, mimetype="text/html")
    for name, value in html_security_headers(html).items():
        response.headers[name] = value
    return response


def wants_html(request: Request) -> bool:
    """A browser asking for a page. JSON stays the answer for scripts and tests: `?format=json`,
    `Accept: application/json`, or an Accept header that does not name text/html (curl, requests)."""
    if request.args.get("format") == "json":
        return False
    if request.args.get("format") == "html":
        return True
    accept = request.accept_mimetypes
    return "text/html" in accept.values() and accept.quality("text/html") >= accept.quality("application/json")


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


# --------------------------------------------------------------------------------------------- jobs

# What each scheduled job does, as a developer running it by hand needs to know. A job missing here
# still gets its row (tests/unit/test_local_pages.py asks that every job in template.yaml has a line).
JOB_DESCRIPTIONS = {
    "reminders": "Sends every reminder that is due (each appointment's reminder_hours_before, default 24 h), "
                 "with the payment link while unpaid; the booking confirmation held back while an online patient "
                 "paid, if they did not (10 min); the card reminder of a card-required booking left at the card "
                 "step (30 min). Each is claimed first, so it is sent once.",
    "fiscal-retry": "Retries the fiscal receipts of QR payments whose receipt failed for a passing reason "
                    "(Checkbox down, no open shift), each on its own backoff.",
    "unfiscalized-check": "The daily check: counts QR payments still without a fiscal receipt and raises the "
                          "UnfiscalizedQrPayments metric (its alarm) per clinic.",
    "message-retry": "Sends again the emails and SMS that SES or SNS refused (throttled), from the message outbox.",
    "shift-schedule": "Opens and closes the Checkbox shifts of clinics with a shift schedule, and closes any "
                      "shift before 24 hours.",
    "qr-reconcile": "Asks monobank about every QR invoice and refund still undecided after 3 minutes and applies "
                    "the answer as the webhook would have (for webhooks that never came).",
    "link-reconcile": "Asks Fintoc, monobank and Stripe about every payment-link session whose webhook has not come "
                      "and applies the answer as the webhook would have; then asks them about link "
                      "refunds still pending (a lost answer, a missed event).",
    "card-reconcile": "Asks Stripe about card charges and refunds still undecided (a lost answer, a missed "
                      "event) and settles them as the webhook would have.",
}


def schedule_of(job: str) -> dict[str, str]:
    """The schedule template.yaml gives a job: expression, timezone, the function it invokes."""
    for logical_id, resource in template.load()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] in ("ScheduleV2", "Schedule") and json.loads(event["Properties"]["Input"])["job"] == job:
                props = event["Properties"]
                expression = str(props.get("ScheduleExpression") or props.get("Schedule") or "")
                zone = props.get("ScheduleExpressionTimezone")
                return {"function": logical_id, "schedule": f"{expression} ({zone})" if zone else expression}
    return {"function": "", "schedule": ""}


_JOBS_SCRIPT = """
document.querySelectorAll("form[data-job]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = form.querySelector("button");
    var output = document.getElementById("result-" + form.getAttribute("data-job"));
    var started = performance.now();
    button.disabled = true;
    output.textContent = "Running…";
    fetch(form.action, { method: "POST", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.text().then(function (text) { return { ok: response.ok, status: response.status, text: text }; });
      })
      .then(function (answer) {
        var took = Math.round(performance.now() - started);
        var body;
        try { body = JSON.stringify(JSON.parse(answer.text), null, 2); } catch (e) { body = answer.text; }
        output.textContent = "";
        var status = document.createElement("span");
        status.className = "status " + (answer.ok ? "ok" : "bad");
        status.textContent = (answer.ok ? "Done" : "Failed") + " (HTTP " + answer.status + ", " + took + " ms)";
        var pre = document.createElement("pre");
        pre.textContent = body;
        output.append(status, pre);
      })
      .catch(function (error) { output.textContent = "Could not reach the stack: " + error; })
      .finally(function () { button.disabled = false; });
  });
});
"""


def jobs_table(jobs: Iterable[str]) -> str:
    rows = []
    for job in sorted(jobs):
        info = schedule_of(job)
        description = JOB_DESCRIPTIONS.get(job, "(no description yet: add one to JOB_DESCRIPTIONS in local/pages.py)")
        rows.append(f"""<tr>
<th scope="row">{_code(job)}</th>
<td>{escape(description)}<br><span class="muted">{escape(info['function'])} · {escape(info['schedule'])}</span></td>
<td><form class="inline" method="post" action="/_local/jobs/{escape(job)}" data-job="{escape(job)}">
<button type="submit" aria-describedby="result-{escape(job)}">Run {escape(job)} now</button></form>
<output class="result" id="result-{escape(job)}" aria-live="polite"></output></td>
</tr>""")
    return f"""<div class="scroll" tabindex="0" role="region" aria-label="Scheduled jobs"><table>
<caption class="muted" style="text-align:left;caption-side:bottom;padding-top:.4rem">Each button sends
<code>POST /_local/jobs/&lt;job&gt;</code>: the job runs now, as EventBridge Scheduler would run it,
and its result shows here.</caption>
<thead><tr><th scope="col">Job</th><th scope="col">What it does · function · schedule in AWS</th>
<th scope="col">Run</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table></div>"""


def jobs_page() -> str:
    body = f"""<h1>Scheduled jobs</h1>
<p class="lead">Every job in <code>template.yaml</code>'s schedules. In AWS, EventBridge Scheduler runs them; here they run
when you press a button (or <code>curl -X POST /_local/jobs/&lt;job&gt;</code>). JSON of this list:
<a href="/_local/jobs?format=json">/_local/jobs?format=json</a>.</p>
{jobs_table(template.schedules())}"""
    return page("Jobs", body, current="/_local/jobs", script=_JOBS_SCRIPT)


def job_result_page(job: str, status: int, result: Any) -> str:
    """The answer to a job run by a browser without JavaScript (a plain form POST)."""
    verdict = "Done" if status < 400 else "Failed"
    body = f"""<h1>{escape(verdict)}: {escape(job)}</h1>
<p class="lead">HTTP {status}. <a href="/_local/jobs">Back to the jobs</a></p>
<pre>{escape(json.dumps(result, indent=2, ensure_ascii=False, default=str))}</pre>"""
    return page(f"{job}: {verdict}", body, current="/_local/jobs")


# -------------------------------------------------------------------------------------------- index

SANDBOX_SUMMARIES = {
    "fintoc": ("Fintoc", "Chile: bank-transfer checkout sessions, a hosted payment page, webhook endpoints signed "
                         "with Fintoc-Signature (HMAC-SHA256)."),
    "monobank": ("monobank", "Ukraine: acquiring invoices and QR cash registers, hosted pages, webhooks signed with "
                             "X-Sign (ECDSA P-256), the /pubkey rate limit."),
    "stripe": ("Stripe", "Cards on file: customers, SetupIntents, off-session PaymentIntents, Checkout, 3-D Secure "
                         "pages, webhooks signed with Stripe-Signature."),
    "checkbox": ("Checkbox", "Ukraine's fiscal registers (PRRO): cashier sign-in, shifts, sell receipts, the public "
                             "receipt page."),
}


def _demo_rows(clinics: list[dict[str, Any]]) -> str:
    if not clinics:
        return """<p>No demo clinics in this stack (it was started with <code>--no-demo</code>).
<form class="inline" method="post" action="/_local/demo"><button type="submit">Create the demo clinics</button></form></p>"""
    rows = []
    for clinic in clinics:
        demo = f"/demo?clinic={clinic['clinic_id']}&key={clinic['publishable_key']}"
        rows.append(f"""<tr>
<th scope="row">{escape(clinic['name'])}<br><span class="muted">{escape(clinic['summary'])}</span></th>
<td>{_code(clinic['clinic_id'])}</td>
<td>admin {_code(clinic['admin_key'])}<br>publishable {_code(clinic['publishable_key'])}</td>
<td><a href="{escape(demo)}">Book in the widget</a><br><a href="/staff">Staff pages</a></td>
</tr>""")
    return f"""<div class="scroll" tabindex="0" role="region" aria-label="Demo clinics"><table>
<thead><tr><th scope="col">Clinic</th><th scope="col">Id</th><th scope="col">Keys</th><th scope="col">Try</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table></div>
<p class="muted">Sign in to the staff pages with a clinic id and its admin key.
JSON: <a href="/_local/demo">/_local/demo</a>.</p>"""


def index_page(*, demo_clinics: list[dict[str, Any]], jobs: Iterable[str], sandboxes: Iterable[str],
               routes: int, functions: int, extra_tools: Mapping[str, str] | None = None) -> str:
    local_iam = os.environ.get("CLINICPAY_LOCAL_IAM", "on") != "off"
    sandbox_items = "".join(
        f'<li><a class="title" href="/_sandbox/{name}">{escape(SANDBOX_SUMMARIES.get(name, (name, ""))[0])} sandbox</a>'
        f'<p>{escape(SANDBOX_SUMMARIES.get(name, ("", ""))[1])}</p>'
        f'<p>{_code(f"/_sandbox/{name}")}: what it emulates, its fault switches</p></li>'
        for name in sandboxes)
    extra = "".join(f"<li>{html}</li>" for html in (extra_tools or {}).values())
    body = f"""<h1>clinicpay, running on your machine</h1>
<p class="lead">The whole product on one port: {routes} API routes served by {functions} real Lambda handlers, read from
<code>template.yaml</code>; DynamoDB, SES and SNS emulated by moto; four provider sandboxes with their real paths,
signatures and failure modes. Local IAM is <strong>{'on' if local_iam else 'off'}</strong>: each handler may make only the AWS
calls its role allows.</p>

<h2>Start here</h2>
<ul class="cards">
<li><a class="title" href="/demo">Booking widget demo</a><p>A fake clinic site with the widget: pick a demo clinic,
book, pay in a sandbox.</p></li>
<li><a class="title" href="/staff">Staff pages</a><p>Appointments, payment links, cards on file, QR payments and
fiscal shifts, settings.</p></li>
<li><a class="title" href="/docs">API reference</a><p>Every operation with its credential, body, answers and
examples (<a href="/openapi.json">/openapi.json</a>).</p></li>
<li><a class="title" href="/_local/outbox">Outbox</a><p>Every email and SMS the stack sent, rendered, newest first.</p></li>
</ul>

<h2>Demo clinics</h2>
{_demo_rows(demo_clinics)}

<h2>Scheduled jobs</h2>
<p class="lead">Run a job now; its result shows next to its button. (<a href="/_local/jobs">All jobs</a>)</p>
{jobs_table(jobs)}

<h2 id="sandboxes">Provider sandboxes</h2>
<ul class="cards">{sandbox_items}</ul>

<h2>More local tools</h2>
<ul>
<li><a href="/_local/outbox">/_local/outbox</a>: emails and SMS (<code>?to=</code> filters; JSON with
<code>?format=json</code> or <code>Accept: application/json</code>; <code>DELETE</code> clears)</li>
<li><a href="/_local/jobs">/_local/jobs</a>: the scheduled jobs; <code>POST /_local/jobs/&lt;job&gt;</code> runs one</li>
<li><a href="/_local/demo">/_local/demo</a>: the demo clinics as JSON (<code>POST</code> creates them if missing)</li>
<li><a href="/health">/health</a>: the API's health check</li>
{extra}
</ul>"""
    return page("Home", body, current="/_local", script=_JOBS_SCRIPT)


# ------------------------------------------------------------------------------------------- outbox

_LANG_ATTR = re.compile(r"<html[^>]*\slang=[\"']?([A-Za-z-]+)", re.IGNORECASE)


def outbox_page(rows: list[dict[str, Any]], *, to: str | None) -> str:
    newest_first = list(reversed(rows))
    articles = []
    for index, row in enumerate(newest_first):
        channel = row["channel"]
        heading = row.get("subject") if channel == "email" and row.get("subject") else (
            f"SMS to {row['to']}" if channel == "sms" else "(no subject)")
        if channel == "email" and row.get("html"):
            rendered = (f'<iframe class="email" sandbox="" referrerpolicy="no-referrer" loading="lazy" '
                        f'title="Email to {escape(row["to"])}: {escape(heading)}" srcdoc="{escape(row["html"])}"></iframe>'
                        f'<details><summary>Plain-text part</summary><pre>{escape(row.get("text") or "")}</pre></details>')
        else:
            rendered = f"<pre>{escape(row.get('text') or row.get('body') or '')}</pre>"
        links = "".join(f'<li><a href="{escape(link)}">{escape(link)}</a></li>' for link in row.get("links") or [])
        articles.append(f"""<article class="message" aria-labelledby="message-{index}">
<h2 id="message-{index}"><span class="badge">{escape(channel.upper())}</span> {escape(heading)}</h2>
<dl class="meta">
<dt>Kind</dt><dd>{escape(row.get('kind') or 'unknown')}</dd>
<dt>Language</dt><dd>{escape(row.get('language') or 'unknown')}</dd>
<dt>To</dt><dd>{escape(row['to'])}</dd>
{f"<dt>From</dt><dd>{escape(row['from'])}</dd>" if row.get('from') else ''}
<dt>Sent</dt><dd><time datetime="{escape(row['sent_at'])}">{escape(row['sent_at'].replace('T', ' '))}</time></dd>
</dl>
{rendered}
{f'<p class="muted">Links in it:</p><ul>{links}</ul>' if links else ''}
</article>""")
    count = f"{len(rows)} message{'s' if len(rows) != 1 else ''}" + (f" to {to}" if to else "")
    empty = "<p>Nothing sent yet. Book an appointment in the <a href=\"/demo\">widget</a> and come back.</p>"
    body = f"""<h1>Outbox</h1>
<p class="lead">What the stack sent through SES (emails) and SNS (SMS), newest first: {escape(count)}. Emails show
their HTML part in a sandboxed frame when they have one, else their text.</p>
<form class="filter" method="get" action="/_local/outbox" role="search">
<label for="outbox-to">Recipient</label>
<input type="search" id="outbox-to" name="to" value="{escape(to or '')}" placeholder="ana@example.com or +56912345678">
<button type="submit">Filter</button>
{'<a href="/_local/outbox">Show all</a>' if to else ''}
</form>
<form method="post" action="/_local/outbox/clear"><button class="secondary" type="submit">Clear the outbox</button>
<span class="muted">(hides what was sent so far; JSON: <a href="/_local/outbox?format=json">?format=json</a>)</span></form>
{''.join(articles) or empty}"""
    return page("Outbox", body, current="/_local/outbox")


def language_of_html(html: str | None) -> str | None:
    match = _LANG_ATTR.search(html or "")
    return match.group(1) if match else None


# ----------------------------------------------------------------------------------- sandbox roots

# What each /_control route of the sandboxes does, where its view function has no docstring to say it.
CONTROL_DESCRIPTIONS = {
    "/_control/fail-next": "The next `count` API calls fail as `status` says (table above); `seconds` for timeout "
                           "and hang; `path` (where the sandbox takes it) picks the calls it hits. Body: "
                           '{"status": ..., "count": 1, "seconds"?: 5, "path"?: "..."}',
    "/_control/hold": 'While held ({"hold": true}), webhooks are made and stored but not sent; '
                      '{"hold": false} lets new ones go. Send stored ones with /_control/deliver.',
    "/_control/deliver/<event_id>": "One attempt of a stored event to one receiver (body names it: "
                                    '{"endpoint_id"} at Fintoc and Stripe), now; answers when the receiver has.',
    "/_control/deliver/<path:event_id>": 'One attempt of a stored event to one receiver ({"url"}), now; answers '
                                         "when the receiver has.",
    "/_control/redeliver/<event_id>": "Sends a stored event again, now, to every endpoint subscribed to it today "
                                      "(out-of-order and duplicate deliveries).",
    "/_control/redeliver/<path:event_id>": "Sends a stored webhook again, now (out-of-order and duplicate deliveries).",
    "/_control/deliveries": "The webhook delivery log, oldest first: each attempt with the receiver's status "
                            "(filters in the query string).",
    "/_control/events": "The events (or webhook bodies) the sandbox has made, newest last.",
    "/_control/reset": "Forgets everything: objects, accounts, faults, held and scheduled deliveries "
                       "(a delivery under way stops).",
    "/_control/calls": "Counts the API calls made to the sandbox (?path=&method=&credential=): how tests see how "
                       "often we call out.",
    "/_control/sessions/<session_id>/expire-now": "The checkout session expires now (checkout_session.expired is sent).",
    "/_control/checkout/sessions/<session_id>/expire-now": "The Checkout session expires now "
                                                           "(checkout.session.expired is sent).",
    "/_control/rotate-key": "monobank rotates its webhook signing key: webhooks are signed with a new key, and "
                            "/api/merchant/pubkey publishes it.",
    "/_control/licenses/<license_key>": "The cash register of a licence key: its shift and state.",
    "/_control/clear-faults": "Drops every pending fault.",
    "/_control/token-ttl": 'How long cashier tokens live ({"seconds": n}): a short one tests the sign-in again.',
    "/_control/release": "Lets every request held by a `hold` fault run now.",
}

# What each kind of /_control/fail-next fault does.
FAULT_DESCRIPTIONS = {
    "timeout": "the call IS processed, but its answer comes `seconds` late (default 5): the client times out on "
               "a change that was made",
    "hang": "the call is held `seconds` (default 600, or until reset) and then refused: a provider that never answers",
    "hold": "the call is in flight for `seconds` (or until /_control/release), then runs; meanwhile a request with "
            "the same Idempotency-Key gets 409 idempotency_key_in_use",
    "500": "answers 500",
    "500_unapplied": "the endpoint starts and fails before applying anything; the 500 is stored under the key",
    "409": "answers 409 (a conflict, e.g. a request with the same key still in flight)",
}


def _view_doc(app: Any, endpoint: str) -> str:
    doc = inspect.getdoc(app.view_functions.get(endpoint)) or ""
    return " ".join(doc.split("\n\n")[0].split())


def control_routes(module: Any) -> list[dict[str, str]]:
    """Every /_control route of a sandbox with its methods and what it does."""
    found = []
    for rule in module.app.url_map.iter_rules():
        if not rule.rule.startswith("/_control"):
            continue
        methods = ", ".join(sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS")))
        description = _view_doc(module.app, rule.endpoint) or CONTROL_DESCRIPTIONS.get(rule.rule, "")
        found.append({"methods": methods, "path": rule.rule, "description": description})
    return sorted(found, key=lambda r: r["path"])


def provider_routes(module: Any) -> list[dict[str, str]]:
    """The provider's own paths the sandbox serves (its API and hosted pages)."""
    found = []
    for rule in module.app.url_map.iter_rules():
        if rule.rule.startswith("/_control") or rule.endpoint == "static" or rule.rule == "/":
            continue
        methods = ", ".join(sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS")))
        found.append({"methods": methods, "path": rule.rule})
    return sorted(found, key=lambda r: r["path"])


def fault_kinds(module: Any) -> list[tuple[str, str]]:
    faults = getattr(module, "FAULTS", None)
    kinds: tuple[str, ...] = tuple(getattr(faults, "kinds", ()) or ())
    described = []
    for kind in kinds:
        text = FAULT_DESCRIPTIONS.get(kind)
        if text is None and kind.isdigit():
            text = f"refused with HTTP {kind} in the provider's error shape before the endpoint runs: nothing happens"
        described.append((kind, text or "see the module's notes below"))
    return described


def sandbox_page(name: str, module: Any, base: str) -> str:
    title, summary = SANDBOX_SUMMARIES.get(name, (name, ""))
    faults = getattr(module, "FAULTS", None)
    default_kind = getattr(faults, "default_kind", "")
    fault_rows = "".join(
        f'<tr><th scope="row">{_code(kind)}{" (default)" if kind == default_kind else ""}</th><td>{escape(text)}</td></tr>'
        for kind, text in fault_kinds(module))
    see_notes = '<span class="muted">(see the notes below)</span>'
    controls = "".join(
        f'<tr><td>{escape(r["methods"])}</td><th scope="row">{_code(base + r["path"])}</th>'
        f'<td>{escape(r["description"]) or see_notes}</td></tr>'
        for r in control_routes(module))
    provider = "".join(f"<li>{escape(r['methods'])} {_code(base + r['path'])}</li>" for r in provider_routes(module))
    example = (f"curl -X POST {base}/_control/fail-next -H 'Content-Type: application/json' "
               f"-d '{{\"status\": \"timeout\", \"count\": 1, \"seconds\": 10}}'")
    notes = inspect.getdoc(module) or ""
    body = f"""<h1>{escape(title)} sandbox</h1>
<p class="lead">{escape(summary)} It follows the provider's contract (paths, fields, units, statuses, error shapes,
signature scheme), not our client's: point <code>{escape(name.upper())}_API_BASE</code> at
<code>{escape(base)}</code> (the local stack does). Routes under <code>{escape(base)}/_control</code> are test
controls, not the provider's; they answer JSON.</p>

<h2>Fault switches: <code>POST {escape(base)}/_control/fail-next</code></h2>
<p>The next <code>count</code> API calls fail as <code>status</code> says:</p>
<div class="scroll" tabindex="0" role="region" aria-label="Fault kinds">
<table><thead><tr><th scope="col">status</th><th scope="col">what the client meets</th></tr></thead>
<tbody>{fault_rows}</tbody></table></div>
<pre>{escape(example)}</pre>

<h2>Controls</h2>
<div class="scroll" tabindex="0" role="region" aria-label="Controls">
<table><thead><tr><th scope="col">Method</th><th scope="col">Path</th>
<th scope="col">What it does</th></tr></thead>
<tbody>{controls}</tbody></table></div>

<h2>The provider's paths it serves</h2>
<ul>{provider}</ul>

<h2>Notes (from <code>local/sandboxes/{escape(name)}.py</code>)</h2>
<pre>{escape(notes)}</pre>"""
    return page(f"{title} sandbox", body, current="/_local#sandboxes")
