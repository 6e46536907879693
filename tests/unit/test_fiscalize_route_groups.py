"""fiscalize's route groups and jobs.py (api/route_groups.py): a staff request loads only its own group,
never the jobs; with SnapStart, every group, the jobs and the Idempotency-Key wrapper are loaded before
the snapshot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GROUPS = ["qr_registers", "fiscal_shift", "qr_report", "qr_payments"]

PROGRAM = """
import importlib.util, json, sys
sys.path[:0] = {paths!r}
{before}
spec = importlib.util.spec_from_file_location("handler", {app!r})
handler = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handler)
{then}
print(json.dumps({{"loaded": [group.name for group in handler.app._route_groups.groups if group.loaded],
                  "jobs": "clinicpay_function_fiscalize_jobs" in sys.modules,
                  "idempotency": "clinicpay.api.idempotency" in sys.modules, "answer": answer}}))
"""

REQUEST = """
from local.apigw import LambdaContext
path = "/v1/clinics/cl_nobody/reports/qr-payments"
event = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": {},
         "isBase64Encoded": False, "requestContext": {"stage": "$default", "http": {"method": "GET", "path": path,
         "sourceIp": "127.0.0.1"}, "requestId": "r1"}}
answer = handler.lambda_handler(event, LambdaContext(function_name="FiscalizeFunction"))["statusCode"]
"""


def _run(before: str, then: str, tmp_path: Path) -> dict[str, object]:
    program = PROGRAM.format(paths=[str(tmp_path), str(ROOT / "layers/shared/python"), str(ROOT)], before=before,
                             then=then, app=str(ROOT / "functions/fiscalize/app.py"))
    env = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "POWERTOOLS_TRACE_DISABLED": "true", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_staff_request_loads_its_route_group_only(tmp_path: Path) -> None:
    # No key: refused (401) by the route's access, after its group was loaded to find the route.
    assert _run("", REQUEST, tmp_path) == {"loaded": ["qr_report"], "jobs": False, "idempotency": True, "answer": 401}


def test_with_snapstart_every_group_and_the_jobs_are_loaded_before_the_snapshot(tmp_path: Path) -> None:
    # Lambda's managed runtimes ship snapshot_restore_py; this one records what is registered.
    (tmp_path / "snapshot_restore_py.py").write_text("hooks = []\ndef register_before_snapshot(func):\n"
                                                     "    hooks.append(func)\n")
    before_hooks = _run("import snapshot_restore_py", "answer = None", tmp_path)
    assert before_hooks == {"loaded": [], "jobs": False, "idempotency": False, "answer": None}
    after_hooks = _run("import snapshot_restore_py", "for hook in snapshot_restore_py.hooks:\n    hook()\nanswer = None",
                       tmp_path)
    assert after_hooks == {"loaded": GROUPS, "jobs": True, "idempotency": True, "answer": None}
