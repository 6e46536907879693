"""axe-core in the browser tests: `axe_violations(page)` runs axe on the page as it is now.

axe-core comes from npm at `make` time (local/vendor.py, pinned in tests/e2e/axe_core.json with its
Subresource Integrity hash) and is evaluated through Playwright (the DevTools protocol), so the
page's Content-Security-Policy stays as it is served: nothing is added to the page's own scripts.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pytest

from local import vendor


@lru_cache(maxsize=1)
def _source() -> str:
    pinned = vendor.pin(vendor.AXE_PIN)
    if not vendor.is_current(pinned):
        pytest.skip("axe-core is not in build/vendor: `make vendor` (npm) fetches it")
    return vendor.viewer_path(pinned).read_text()


def axe_violations(page: Any, *, include: str | None = None) -> list[str]:
    """Every axe-core violation, of any impact (WCAG 2.x A and AA and best practices), one line each:
    rule id, impact, and the first nodes' selectors."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_source() + "\n;undefined")
    results = page.evaluate("""async (include) => {
        const context = include ? { include: [include] } : document;
        return await window.axe.run(context, { resultTypes: ['violations'] });
    }""", include)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
            for v in results["violations"]]
