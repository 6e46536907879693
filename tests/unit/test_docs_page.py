"""GET /docs: the pinned viewer, allowed by the page's CSP and nothing else, checked by its SRI hash."""

from __future__ import annotations

import re

from clinicpay.api import docs_page
from local import vendor


def _script_src(policy: str) -> list[str]:
    [directive] = [d.strip() for d in policy.split(";") if d.strip().startswith("script-src ")]
    return directive.split()[1:]


def test_in_aws_the_page_loads_the_pinned_cdn_file_and_the_policy_allows_that_url_only() -> None:
    pinned = docs_page.viewer()
    page, headers = docs_page.render()

    [tag] = re.findall(r"<script src=[^>]*>", page)
    assert f'src="{pinned["cdn"]}"' in tag and f'integrity="{pinned["integrity"]}"' in tag
    assert pinned["cdn"].startswith("https://") and f"@{pinned['version']}/" in pinned["cdn"]
    sources = _script_src(headers["Content-Security-Policy"])
    assert pinned["cdn"] in sources and "'self'" not in sources
    assert all(s == pinned["cdn"] or s.startswith("'sha256-") for s in sources)
    assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"


def test_locally_the_page_loads_the_same_file_from_the_stack() -> None:
    page, headers = docs_page.render(vendor.served_url())

    assert f'src="{vendor.served_url()}"' in page
    assert f'integrity="{docs_page.viewer()["integrity"]}"' in page  # the same bytes, or the browser refuses them
    sources = _script_src(headers["Content-Security-Policy"])
    assert "'self'" in sources and not any(s.startswith("https:") for s in sources)


def test_the_vendored_file_is_where_the_stack_serves_it_and_carries_the_pinned_hash() -> None:
    pinned = vendor.pin()
    assert vendor.viewer_path(pinned).name == pinned["file"].rsplit("/", 1)[1]
    assert vendor.served_url(pinned).startswith("/_local/vendor/")
    # the FIPS 180-2 test vector for SHA-384, base64, as <script integrity> writes it
    assert vendor.integrity(b"abc") == "sha384-ywB1P0WjXou1oD1pmsZQBycsMqsO3tFjGotgWkP/W+2AhgcroefMI1i67KE0yCWn"
