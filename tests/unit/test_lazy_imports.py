"""phonenumbers (~30 ms) and PyJWT (~0.1 s, it loads `cryptography`) are imported on first use, by the
public bookings that carry a phone or a patient token, never when a handler is imported (cold start)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import importlib.util, sys
sys.path.insert(0, {layer!r})
for name in ("create_link", "tokenize", "admin", "webhook", "fiscalize"):
    spec = importlib.util.spec_from_file_location("fn_" + name, {root!r} + "/functions/" + name + "/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
print(sorted(m for m in ("phonenumbers", "jwt") if m in sys.modules))
"""


def test_no_handler_imports_phonenumbers_or_jwt_at_import() -> None:
    env = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "POWERTOOLS_TRACE_DISABLED": "true", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PROGRAM.format(layer=str(ROOT / "layers/shared/python"),
                                                               root=str(ROOT))],
                         capture_output=True, text=True, env=env, check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]"
