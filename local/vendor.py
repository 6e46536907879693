"""Brings pinned npm files into build/vendor at `make` time, from the npm registry: the API docs
viewer for `make run` and the tests (the exact file the deployed /docs page loads from its CDN,
checked against the same Subresource Integrity hash: layers/shared/python/clinicpay/api/docs_viewer.json
pins both), and axe-core for the browser tests' accessibility checks (tests/e2e/axe_core.json).

    .venv/bin/python -m local.vendor          # `make vendor`; does nothing when the file is there and right

`npm pack` fetches the one package tarball (npm checks it against the registry's own integrity);
none of the package's dependencies are installed: the browser build is a single self-contained file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from local import template

PIN = template.ROOT / "layers/shared/python/clinicpay/api/docs_viewer.json"
AXE_PIN = template.ROOT / "tests/e2e/axe_core.json"
PINS = (PIN, AXE_PIN)
VENDOR = template.ROOT / "build" / "vendor"


def pin(path: Path = PIN) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def viewer_path(viewer: dict[str, Any] | None = None) -> Path:
    """Where the viewer's browser build lands: build/vendor/<package>@<version>/<file name>."""
    viewer = viewer or pin()
    folder = f"{viewer['package'].replace('/', '+')}@{viewer['version']}"
    return VENDOR / folder / Path(viewer["file"]).name


def served_url(viewer: dict[str, Any] | None = None) -> str:
    """Where the local stack serves the viewer (local/tools.py serve_vendor): /_local/vendor/<folder>/<file>."""
    return "/_local/vendor/" + viewer_path(viewer).relative_to(VENDOR).as_posix()


def integrity(data: bytes) -> str:
    """The Subresource Integrity value of `data` (sha384, as the docs page's <script integrity=...>)."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def is_current(viewer: dict[str, Any] | None = None) -> bool:
    viewer = viewer or pin()
    path = viewer_path(viewer)
    return path.is_file() and integrity(path.read_bytes()) == viewer["integrity"]


def fetch(viewer: dict[str, Any]) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed: `make vendor` needs Node.js and npm (Debian: apt-get install nodejs npm)")
    with tempfile.TemporaryDirectory(prefix="clinicpay-vendor-") as scratch:
        spec = f"{viewer['package']}@{viewer['version']}"
        subprocess.run([npm, "pack", spec, "--silent", "--pack-destination", scratch], check=True,
                       stdout=subprocess.DEVNULL)
        [tarball] = Path(scratch).glob("*.tgz")
        with tarfile.open(tarball) as archive:
            member = archive.extractfile(f"package/{viewer['file']}")
            if member is None:
                raise SystemExit(f"{spec} has no {viewer['file']}")
            data = member.read()
    found = integrity(data)
    if found != viewer["integrity"]:
        raise SystemExit(f"{spec} {viewer['file']} is {found}, but its pin says {viewer['integrity']}: "
                         "a changed package; update the pin only after reading the release")
    path = viewer_path(viewer)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def main() -> int:
    for pin_file in PINS:
        pinned = pin(pin_file)
        if is_current(pinned):
            continue
        path = fetch(pinned)
        print(f"vendored {pinned['package']}@{pinned['version']} -> {path.relative_to(template.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
