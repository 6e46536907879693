"""Fuzz the served OpenAPI document with schemathesis, once per kind of key (`make fuzz`).

    .venv/bin/python -m tests.fuzz.run [--max-examples N] [--kinds none,operator,...] [--phases ...]

Starts the in-process test stack (moto, the local server, the provider sandboxes), creates a clinic
the way an operator and its admin do (keys, a service, Fintoc and Stripe connected), then runs
`st run` from .venv-fuzz against http://127.0.0.1:<port>/openapi.json with each kind of key: none,
operator, admin, staff, publishable. The clinic's and organization's ids are fixed (other ids are
generated), so authenticated runs reach the routes' bodies instead of stopping at a 404. The public
routes' limits are raised for the run (tests/integration/test_public_routes.py tests them), so the
publishable pass reaches the handlers instead of meeting 429s after ten bookings.

The server counts what schemathesis sent and every 5xx it answered; the run fails on any 5xx or any
failed check. Checks: no 5xx; status code, content type, headers and body conform to the document;
invalid data is rejected; undocumented methods are refused (405); auth is not ignored.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "shared" / "python"
if str(LAYER) not in sys.path:
    sys.path.insert(0, str(LAYER))

from local.server import WSGIApp  # noqa: E402
from tests.support.env import OPERATOR_KEY, start_test_stack  # noqa: E402

ST = ROOT / ".venv-fuzz" / "bin" / "st"
KINDS = ("none", "operator", "admin", "staff", "publishable")
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,negative_data_rejection,unsupported_method,ignored_auth,"
          "missing_required_header")
ORG_ID = "org-fuzz"
PATIENT_ID = "pat-1042"  # the patient of the request examples


@dataclass
class Tally:
    """What the server saw from schemathesis (its User-Agent), per kind of key."""

    requests: Counter[str] = field(default_factory=Counter)
    server_errors: dict[str, list[str]] = field(default_factory=dict)
    kind: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def middleware(self, app: WSGIApp) -> WSGIApp:
        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if not environ.get("HTTP_USER_AGENT", "").startswith("schemathesis"):
                return app(environ, start_response)

            def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                with self.lock:
                    self.requests[self.kind] += 1
                    if status.startswith("5"):
                        self.server_errors.setdefault(self.kind, []).append(
                            f"{status} {environ['REQUEST_METHOD']} {environ.get('PATH_INFO')}")
                return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

            return app(environ, start)

        return counted


def _fixtures(stack: Any) -> dict[str, str]:
    """A Chilean clinic in an organization, as its operator and admin would set it up, with a patient
    who has an appointment (its payment link) and a card request (its consent page)."""
    from tests.support.cards import book, connect_stripe
    from tests.support.clinics import add_service, connect_fintoc, create_clinic

    keys = create_clinic(org_id=ORG_ID)
    connect_fintoc(keys, stack.sandbox_url("fintoc"), stack.base_url)
    connect_stripe(keys, stack.sandbox_url("stripe"), stack.base_url)
    add_service(keys, "consulta", 25000, "CLP", online=True, no_show_fee=10000)
    appointment = book(keys, PATIENT_ID)
    setup = keys.staff().post(keys.path(f"/patients/{PATIENT_ID}/card-setup"), json={})
    assert setup.status == 201, setup.body
    # A spare staff key, for the key-revocation route to act on (revoking the key a pass uses would
    # turn the rest of that pass into 401s).
    spare = keys.admin().post(keys.path("/staff-keys"))
    assert spare.status == 201, spare.body
    return {"clinic_id": keys.clinic_id, "operator": OPERATOR_KEY, "admin": keys.admin_key, "staff": keys.staff_key,
            "publishable": keys.publishable_key, "appointment_id": appointment["appointment_id"],
            "pay_token": appointment["payment_link"]["url"].rsplit("/", 1)[1],
            "card_token": setup.json()["url"].split("/cards/setup/", 1)[1].split("?")[0],
            "spare_key_id": spare.json()["key_id"]}


def _headers(kind: str, keys: dict[str, str]) -> list[str]:
    if kind == "none":
        return []
    if kind == "publishable":
        return ["-H", f"X-Clinic-Key: {keys['publishable']}"]
    return ["-H", f"Authorization: Bearer {keys[kind]}"]


def _config(directory: Path, ids: dict[str, str]) -> Path:
    """Ids schemathesis cannot invent: this clinic, its organization, a patient, the two kinds of token."""
    path = directory / "schemathesis.toml"
    path.write_text(f"""[parameters]
"path.clinic_id" = "{ids['clinic_id']}"
"path.org_id" = "{ORG_ID}"
"path.patient_id" = "{PATIENT_ID}"
"path.key_id" = "{ids['spare_key_id']}"

[[operations]]
include-path-regex = "^/(pay/|v1/public/payments/)"
parameters = {{ "path.token" = "{ids['pay_token']}" }}

[[operations]]
include-path-regex = "^/cards/setup/"
parameters = {{ "path.token" = "{ids['card_token']}" }}
""")
    return path


def run(args: argparse.Namespace) -> int:
    if not ST.exists():
        print(f"{ST} is missing: run `make fuzz` (it creates .venv-fuzz)", file=sys.stderr)
        return 2
    report_root = Path(args.report_dir)
    shutil.rmtree(report_root, ignore_errors=True)
    report_root.mkdir(parents=True)
    # The functions log and print metrics to stdout: into a file, so the summary stays readable.
    out = sys.stdout
    sys.stdout = (report_root / "functions.log").open("w")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    tally = Tally()
    os.environ.update({f"PUBLIC_{kind}_PER_{scope}": "1000000" for kind in ("WRITES", "READS")
                       for scope in ("CLIENT", "CLINIC")})
    stack = start_test_stack(middleware=tally.middleware)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    failed: list[str] = []
    started = time.monotonic()
    try:
        keys = _fixtures(stack)
        with tempfile.TemporaryDirectory() as scratch:
            config = _config(Path(scratch), keys)
            for kind in args.kinds.split(","):
                tally.kind = kind
                reports = report_root / kind
                command = [str(ST), "--config-file", str(config), "run", f"{stack.base_url}/openapi.json",
                           "--checks", args.checks, "--phases", args.phases, "--max-examples", str(args.max_examples),
                           "--workers", str(args.workers), "--seed", str(args.seed), "--generation-database", "none",
                           "--request-timeout", "20", "--no-color", "--report", "junit",
                           "--report-dir", str(reports), *_headers(kind, keys)]
                if args.max_time:
                    command += ["--max-time", str(args.max_time)]
                began = time.monotonic()
                result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                        env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
                reports.mkdir(parents=True, exist_ok=True)
                (reports / "output.txt").write_text(result.stdout + result.stderr)
                errors = tally.server_errors.get(kind, [])
                print(f"{kind:12} {tally.requests[kind]:6d} requests  {len(errors):3d} 5xx  "
                      f"exit {result.returncode}  {time.monotonic() - began:5.1f}s", file=out, flush=True)
                if result.returncode != 0 or errors:
                    failed.append(kind)
                    print(_summary(result.stdout), file=out, flush=True)
                    for line in errors[:10]:
                        print(f"    {line}", file=out)
    finally:
        stack.server.stop()
        stack.moto.stop()
        sys.stdout.close()
        sys.stdout = out
    total = sum(tally.requests.values())
    print(f"total        {total:6d} requests in {time.monotonic() - started:.0f}s; "
          f"{'FAILED: ' + ','.join(failed) if failed else 'no 5xx, no failed check'}; output in {report_root}/")
    return 1 if failed else 0


def _summary(output: str) -> str:
    """The failures section of schemathesis' output (the rest is progress)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "FAILURES" in line or "ERRORS" in line), max(0, len(lines) - 40))
    return "\n".join(lines[start:start + 200])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--checks", default=CHECKS)
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("FUZZ_MAX_EXAMPLES", "25")))
    parser.add_argument("--max-time", type=int, default=0, help="seconds per kind of key (0: no limit)")
    # One worker: the local stack answers one request at a time (as one warm Lambda), so a second
    # worker only contends for the CPU (measured: 130 s with 1, 180 s with 2); it also sidesteps a
    # CPython 3.11 race in `ast` that hypothesis trips over with threads ("AST constructor recursion
    # depth mismatch", python/cpython#106905).
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "20260601")))
    parser.add_argument("--report-dir", default=str(ROOT / "schemathesis-report"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
