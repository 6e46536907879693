"""GET /docs: the OpenAPI document rendered by Scalar's API reference, a maintained viewer.

The viewer is one pinned file (api/docs_viewer.json: version, URL, Subresource Integrity hash). In
AWS the page loads it from that CDN URL: the browser checks the hash, so the CDN cannot change what
runs, and the Content-Security-Policy allows that one URL and nothing else; the 4.8 MB bundle stays
out of the layer every function loads. The local stack serves the very same file (fetched from npm
at `make` time, checked against the same hash) and sets DOCS_VIEWER_URL to it, so /docs works
offline. Nothing here is imported by another route.
"""

from __future__ import annotations

import json
from functools import lru_cache
from html import escape
from importlib import resources
from typing import Any

from clinicpay.api.resolver import html_security_headers


@lru_cache(maxsize=1)
def viewer() -> dict[str, Any]:
    return dict(json.loads(resources.files("clinicpay.api").joinpath("docs_viewer.json").read_text()))


def script_source(url: str) -> str:
    """The CSP source expression that allows exactly this script: 'self' for a path on our origin."""
    return "'self'" if url.startswith("/") else url


def render(viewer_url: str = "") -> tuple[str, dict[str, str]]:
    """The page and its security headers. `viewer_url` overrides the pinned CDN URL (the local stack)."""
    pinned = viewer()
    url = viewer_url or pinned["cdn"]
    template = resources.files("clinicpay.api").joinpath("docs.html").read_text()
    page = (template.replace("{{viewer_url}}", escape(url))
            .replace("{{viewer_integrity}}", escape(pinned["integrity"]))
            .replace("{{viewer_version}}", escape(f"{pinned['package']} {pinned['version']}")))
    return page, html_security_headers(page, (script_source(url),))
