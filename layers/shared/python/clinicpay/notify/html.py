"""The HTML part of a patient email, made from its plain-text part (which stays the source of truth:
the wording is written, overridden by clinics and tested once, as text).

Everything from the text is escaped (names, service names and clinics' own templates are user
data); only http(s) addresses on our own hosts (the /pay, card and receipt pages) become links, and
a paragraph that is just such an address becomes a button. Any other address stays text: a patient
name typed as "https://…" in the public widget must not become a button in an email sent in the
clinic's name. Simple tables and inline styles: what mail clients (Gmail, Outlook, Apple Mail) render alike.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from html import escape
from urllib.parse import urlsplit

_URL = re.compile(r"https?://[^\s<>\"']+")
_FONT = "-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
_P = "margin:0 0 16px 0;"
_BUTTON = ("display:inline-block;padding:12px 20px;background:#0b57d0;color:#ffffff;text-decoration:none;"
           "border-radius:6px;font-weight:600;word-break:break-all;")
_CARD = "max-width:560px;background:#ffffff;border:1px solid #e5e7eb;border-radius:8px;"
_LINK = "color:#0b57d0;word-break:break-all;"


def _ours(url: str, hosts: Collection[str]) -> bool:
    try:
        return urlsplit(url).netloc.lower() in hosts
    except ValueError:
        return False


def _linked(line: str, hosts: Collection[str]) -> str:
    """One line of text, escaped, the addresses on our hosts as links."""
    out, at = [], 0
    for found in _URL.finditer(line):
        url = found.group(0).rstrip(".,;:)")
        if not _ours(url, hosts):
            continue
        end = found.start() + len(url)
        out.append(escape(line[at:found.start()]))
        out.append(f'<a href="{escape(url, quote=True)}" style="{_LINK}">{escape(url)}</a>')
        at = end
    out.append(escape(line[at:]))
    return "".join(out)


def _paragraph(block: str, hosts: Collection[str]) -> str:
    lines = block.split("\n")
    stripped = block.strip()
    if len(lines) == 1 and _URL.fullmatch(stripped) and _ours(stripped, hosts):
        return (f'<p style="{_P}"><a href="{escape(stripped, quote=True)}" style="{_BUTTON}">'
                f"{escape(stripped)}</a></p>")
    return f'<p style="{_P}">' + "<br>".join(_linked(line, hosts) for line in lines) + "</p>"


def email_html(subject: str, body: str, locale: str | None, *, link_hosts: Collection[str] = ()) -> str:
    """A whole HTML document for `body` (plain text: paragraphs separated by a blank line); addresses
    on `link_hosts` (host[:port], lower case) are links."""
    hosts = {host.lower() for host in link_hosts}
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", body.strip()) if b.strip()]
    paragraphs = "\n".join(_paragraph(block, hosts) for block in blocks)
    lang = f' lang="{escape(locale, quote=True)}"' if locale else ""
    title = escape(subject)
    return f"""<!doctype html>
<html{lang}>
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title></head>
<body style="margin:0;padding:0;background:#f3f4f6;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background:#f3f4f6;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="{_CARD}">
<tr><td style="padding:24px;font-family:{_FONT};font-size:16px;line-height:1.5;color:#1f2328;">
<h1 style="margin:0 0 16px 0;font-size:20px;line-height:1.3;font-weight:600;color:#111827;">{title}</h1>
{paragraphs}
</td></tr>
</table>
</td></tr>
</table>
</body>
</html>
"""
