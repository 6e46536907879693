"""Tracing without the X-Ray SDK at import: the recorder loads on the first traced call of a sampled
invocation, and the trace then shows each DynamoDB call and each provider call as its own subsegment.

Each case runs in a fresh interpreter set up as Lambda would be (LAMBDA_TASK_ROOT, the invocation's
`_X_AMZN_TRACE_ID`), with the recorder's emitter swapped for a list, so patching botocore never
leaks into the other tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import http.server as stdlib_http, json, sys, threading
sys.path.insert(0, {layer!r})

from clinicpay.observability import tracer
loaded_at_import = "aws_xray_sdk.core" in sys.modules

import boto3
from botocore.stub import Stubber
from clinicpay.providers import http

class Quiet(stdlib_http.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(b'{{"ok": true}}')
    def log_message(self, *args):
        pass

server = stdlib_http.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
table = boto3.client("dynamodb", region_name="us-east-1")
stub = Stubber(table)
stub.add_response("get_item", {{"Item": {{"pk": {{"S": "CLINIC#c1"}}}}}})
stub.activate()

sent = []
class Emitter:
    def send_entity(self, entity):
        sent.append(json.loads(entity.serialize()))
    def set_daemon_address(self, address):
        pass

@tracer.capture_method
def handle():
    table.get_item(TableName="AppointmentsTable", Key={{"pk": {{"S": "CLINIC#c1"}}, "sk": {{"S": "PROFILE"}}}})
    http.request("fintoc", "GET", f"http://127.0.0.1:{{server.server_port}}/v1/checkout_sessions/cs_1")

begun = []
if {sampled}:
    # What the first traced call does anyway (load the recorder); done here to catch what it sends
    # and each subsegment it starts (one the SDK throws away is still built).
    from clinicpay.observability import xray
    recorder = xray.recorder()
    recorder.configure(emitter=Emitter())
    begin = recorder.begin_subsegment
    recorder.begin_subsegment = lambda name, *args, **kwargs: begun.append(name) or begin(name, *args, **kwargs)
handle()
print(json.dumps({{"loaded_at_import": loaded_at_import, "loaded": "aws_xray_sdk.core" in sys.modules, "begun": begun,
                  "subsegments": [(s["name"], s.get("namespace"), s.get("annotations", {{}})) for s in sent]}}))
"""


def _run(sampled: bool, **extra_env: str) -> dict:
    env = {**extra_env, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": str(ROOT), "AWS_LAMBDA_FUNCTION_NAME": "webhook",
           "POWERTOOLS_SERVICE_NAME": "webhook", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
           "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
                               f"Sampled={1 if sampled else 0}"}
    out = subprocess.run([sys.executable, "-c", PROGRAM.format(layer=str(ROOT / "layers/shared/python"),
                                                               sampled=sampled)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_sampled_invocation_traces_dynamodb_and_provider_calls_without_the_sdk_at_import() -> None:
    result = _run(sampled=True)
    assert result["loaded_at_import"] is False
    by_name = {name: (namespace, annotations) for name, namespace, annotations in result["subsegments"]}
    assert by_name["dynamodb"][0] == "aws"  # botocore was patched when the recorder loaded
    assert by_name["127.0.0.1"][0] == "remote"
    assert by_name["127.0.0.1"][1] == {"provider": "fintoc", "method": "GET", "status": "200"}
    assert "## __main__.handle" in by_name  # the traced function itself
    assert "## __main__.handle" in result["begun"]


def test_an_unsampled_invocation_never_loads_the_sdk() -> None:
    result = _run(sampled=False)
    assert result == {"loaded_at_import": False, "loaded": False, "begun": [], "subsegments": []}


def test_with_tracing_disabled_a_sampled_invocation_builds_no_subsegment() -> None:
    # What tests, `make run` and the warm-path benchmark run with: Powertools still opens a subsegment
    # per traced call, and nothing should be built for it.
    result = _run(sampled=True, POWERTOOLS_TRACE_DISABLED="true")
    assert result == {"loaded_at_import": False, "loaded": True, "begun": [], "subsegments": []}


# Lambda's runtime runs the hooks last registered first; the outcome must not depend on that order.
@pytest.mark.parametrize("next_hook", ["pop()", "pop(0)"])
def test_with_snapstart_the_recorder_and_the_models_are_ready_before_the_snapshot(tmp_path: Path, next_hook: str) -> None:
    # Lambda's managed runtimes ship snapshot_restore_py; this one records what is registered.
    (tmp_path / "snapshot_restore_py.py").write_text("hooks = []\ndef register_before_snapshot(func):\n"
                                                     "    hooks.append(func)\n")
    program = f"""
import importlib.util, sys
sys.path[:0] = [{str(tmp_path)!r}, {str(ROOT / "layers/shared/python")!r}]
import snapshot_restore_py
spec = importlib.util.spec_from_file_location("handler", {str(ROOT / "functions/create_link/app.py")!r})
handler = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handler)
def staff_routes():  # the route group declaring the model (functions/create_link/appointments.py)
    return [m for name, m in sys.modules.items() if name.startswith("clinicpay_routes_create_link_appointments_")]
before = ["aws_xray_sdk.core" in sys.modules, bool(staff_routes())]
while snapshot_restore_py.hooks:  # one a hook adds included
    snapshot_restore_py.hooks.{next_hook}()
print(*before, "aws_xray_sdk.core" in sys.modules, staff_routes()[0].CreateAppointmentRequest.__pydantic_complete__)
"""
    env = {"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["False", "False", "True", "True"]
