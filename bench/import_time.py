"""Cold-start proxy: time to import each handler module, relative to a bare handler.

The bare handler imports boto3 and builds a Powertools HTTP resolver: what any Lambda behind an
HTTP API pays anyway. Each figure is the median of N fresh interpreter processes, timed inside the
process around the import, measured in one run so the ratios compare like with like. Next to each
function's import: the import plus what the first request of a kind loads (its route group, and the
request validation every routed request needs: Powertools' and pydantic's modules), which is
what that request's cold start pays before its own work. Wall time is
the figure; the process's CPU time is printed next to it because on a shared machine it moves less
with the neighbours' load (an import is CPU-bound: every file is in the page cache after round one).

    .venv/bin/python bench/import_time.py [--runs 9] [--instructions]

`--instructions` counts instead of timing: each program runs once under valgrind (cachegrind, no
cache simulation) and its figure is the instructions it executed less an empty interpreter's. The
count does not move with the neighbours' load (a shared machine's timings move by tenths of a
"x"), so it tells what a change bought; it is not time (cache misses, page faults, I/O are not in it).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers/shared/python"
sys.path.insert(0, str(ROOT))

from local.aws import function_environment  # noqa: E402

FUNCTION_ENVIRONMENT = function_environment()

BARE = """
import time
t, c = time.perf_counter(), time.process_time()
import boto3
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
app = APIGatewayHttpResolver()
print(time.perf_counter() - t, time.process_time() - c)
"""

# The same, plus the Powertools Tracer: its X-Ray SDK builds a botocore client at import, which
# every traced function pays whatever its own code does.
BARE_TRACED = BARE.replace("app = APIGatewayHttpResolver()",
                           "app = APIGatewayHttpResolver()\nfrom aws_lambda_powertools import Tracer\nTracer()")

# The same with the garbage collector paused during the import, as every handler does
# (clinicpay.coldstart): the part of a handler's gain from the pause that the bare imports would get too.
BARE_PAUSED = BARE.replace("import boto3", "import gc\ngc.disable()\nimport boto3").replace(
    "app = APIGatewayHttpResolver()", "app = APIGatewayHttpResolver()\ngc.freeze()\ngc.enable()")

# The pooling library of providers/http.py (urllib3, which botocore already imports) next to the
# one the design first named (requests with a shared Session), each on top of the bare handler.
BARE_URLLIB3 = BARE.replace("app = APIGatewayHttpResolver()",
                            "app = APIGatewayHttpResolver()\nimport urllib3\nurllib3.PoolManager()")
BARE_REQUESTS = BARE.replace("app = APIGatewayHttpResolver()",
                             "app = APIGatewayHttpResolver()\nimport requests\nrequests.Session()")

# What each costs on top of the bare imports, timed inside the process (less noisy than a difference
# of two medians): the first line of output is ignored, the second is the marginal time.
MARGINAL = BARE.replace("print(time.perf_counter() - t, time.process_time() - c)",
                        "t, c = time.perf_counter(), time.process_time()\n{code}\n"
                        "print(time.perf_counter() - t, time.process_time() - c)")
MARGINALS = {"urllib3 PoolManager": "import urllib3\nurllib3.PoolManager()",
             "requests Session": "import requests\nrequests.Session()"}

HANDLER = """
import importlib.util, sys, time
sys.path.insert(0, {layer!r})
t, c = time.perf_counter(), time.process_time()
spec = importlib.util.spec_from_file_location("handler", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
{after}
print(time.perf_counter() - t, time.process_time() - c)
"""

FUNCTIONS = ["create_link", "webhook", "tokenize", "fiscalize", "admin"]

# A function's routes live in route groups (clinicpay.api.route_groups), each loaded by the first
# request to one of its paths: the import figure above is what every container pays, these are the
# import plus what the first request of a kind loads (its group; for webhook, its provider's code),
# without the request's own work. "every route" is what a SnapStart snapshot holds.
FIRST_REQUESTS = {
    "create_link + /pay/<token>": ("create_link", "module.app.load_routes('/pay/abc')"),
    "create_link + public booking": ("create_link", "module.app.load_routes('/v1/public/clinics/c/appointments')"),
    "create_link + staff booking": ("create_link", "module.app.load_routes('/v1/clinics/c/appointments')"),
    "create_link + every route": ("create_link", "module.app.load_routes()"),
    "webhook + Fintoc event": ("webhook", "from clinicpay import secrets\n"
                               "from clinicpay.providers.registry import link_gateway\n"
                               "from clinicpay.usecases.payment_events import apply_payment_events"),
    "tokenize + Stripe webhook": ("tokenize", "module.app.load_routes('/webhooks/stripe/c')"),
    "tokenize + card setup page": ("tokenize", "module.app.load_routes('/cards/setup/abc')"),
    "tokenize + every route": ("tokenize", "module.app.load_routes()"),
    "fiscalize + QR report": ("fiscalize", "module.app.load_routes('/v1/clinics/c/reports/qr-payments')"),
    "fiscalize + every route": ("fiscalize", "module.app.load_routes()"),
    "admin + /health": ("admin", "module.app.load_routes('/health')"),
    "admin + settings": ("admin", "module.app.load_routes('/v1/clinics/c/settings')"),
    "admin + every route": ("admin", "module.app.load_routes()"),
}

# Imported on first use only, never by a handler at import: what the first request that needs each
# pays once per container (a public booking with a phone; a booking or card setup with a patient token).
LAZY = {"+ phonenumbers (lazy)": "phonenumbers", "+ jwt (lazy)": "jwt"}
LAZY_CODE = """
import time
t, c = time.perf_counter(), time.process_time()
import {module}
print(time.perf_counter() - t, time.process_time() - c)
"""

# Babel (notify/formatting.py) is imported when the first message is rendered: what that first
# message pays once per container, the import and the CLDR data of one locale and zone.
FIRST_RENDER = {"+ babel: first message (lazy)": """
import sys, time
sys.path.insert(0, {layer!r})
from datetime import UTC, datetime
from clinicpay.domain.money import Money
from clinicpay.notify.formatting import format_money, format_time
t, c = time.perf_counter(), time.process_time()
format_time(datetime(2026, 12, 1, 13, tzinfo=UTC), "America/Santiago", "es")
format_money(Money(amount=25000, currency="CLP"), "es")
print(time.perf_counter() - t, time.process_time() - c)
""", "+ babel: next locale (lazy)": """
import sys, time
sys.path.insert(0, {layer!r})
from datetime import UTC, datetime
from clinicpay.domain.money import Money
from clinicpay.notify.formatting import format_money, format_time
format_time(datetime(2026, 12, 1, 13, tzinfo=UTC), "America/Santiago", "es")
t, c = time.perf_counter(), time.process_time()
format_time(datetime(2026, 12, 1, 13, tzinfo=UTC), "Europe/Kyiv", "uk")
format_money(Money(amount=25000, currency="UAH"), "uk")
print(time.perf_counter() - t, time.process_time() - c)
"""}


# The environment template.yaml gives every function, and the credentials Lambda always puts in
# it (without them botocore would probe for some).
ENV = {**FUNCTION_ENVIRONMENT, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "bench",
       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_LAMBDA_FUNCTION_NAME": "bench", "POWERTOOLS_SERVICE_NAME": "bench",
       "PATH": "/usr/bin:/bin"}


def once(code: str) -> tuple[float, float]:
    """(wall, cpu) seconds of the timed part of `code` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def instructions(code: str) -> int:
    """Instructions a fresh interpreter executes running `code` (valgrind's count; hashing seeded so
    two runs of one program count alike)."""
    out = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                          sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**ENV, "PYTHONHASHSEED": "0"})
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if found is None:
        raise RuntimeError("valgrind printed no instruction count")
    return int(found.group(1).replace(",", ""))


def count(programs: dict[str, str]) -> None:
    empty = instructions("pass")
    counted = {name: instructions(code) - empty for name, code in programs.items()}
    bare, paused = counted["bare (boto3 + resolver)"], counted["bare, collector paused"]
    print(f"instructions executed, less an empty interpreter's ({empty / 1e6:.0f} M), one run each under valgrind")
    print(f"{'':<28} {'M instr':>8}   {'vs bare':>7}   {'vs bare paused':>14}")
    for name, value in counted.items():
        print(f"{name:<28} {value / 1e6:8.0f}   {value / bare:6.2f}x   {value / paused:13.2f}x")


def _handler_programs() -> dict[str, str]:
    """Each function's import, then each import plus what a first request of a kind loads."""
    programs = {name: HANDLER.format(layer=str(LAYER), path=str(ROOT / "functions" / name / "app.py"), after="")
                for name in FUNCTIONS}
    for name, (function, after) in FIRST_REQUESTS.items():
        # Every routed request is validated: the first one loads Powertools' validation (not the import).
        after = f"module.app.load_validation()\n{after}"
        programs[name] = HANDLER.format(layer=str(LAYER), path=str(ROOT / "functions" / function / "app.py"), after=after)
    return programs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--instructions", action="store_true", help="count instructions (valgrind) instead of timing")
    args = parser.parse_args()
    programs = {"bare (boto3 + resolver)": BARE, "bare, collector paused": BARE_PAUSED,
                "bare + Powertools Tracer": BARE_TRACED,
                "bare + urllib3 PoolManager": BARE_URLLIB3, "bare + requests Session": BARE_REQUESTS}
    programs.update(_handler_programs())
    for name, module in LAZY.items():
        programs[name] = LAZY_CODE.format(module=module)
    for name, code in FIRST_RENDER.items():
        programs[name] = code.replace("{layer!r}", repr(str(LAYER)))
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
        count(programs)
        return
    # Rounds interleave the programs, so a noisy moment on this shared machine hits them all alike.
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in programs}
    for _ in range(args.runs):
        for name, code in programs.items():
            samples[name].append(once(code))

    def medians(values: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)

    bare, bare_cpu = medians(samples["bare (boto3 + resolver)"])
    traced, _ = medians(samples["bare + Powertools Tracer"])
    print(f"import time, median of {args.runs} interleaved rounds of fresh processes (Python {sys.version.split()[0]})")
    print(f"{'':<28} {'wall':>10}   {'vs bare':>7}   {'vs bare+Tracer':>14}   {'cpu':>8}   {'vs bare':>7}")
    for name, values in samples.items():
        took, cpu = medians(values)
        print(f"{name:<28} {took * 1000:7.1f} ms   {took / bare:6.2f}x   {took / traced:13.2f}x   "
              f"{cpu * 1000:5.0f} ms   {cpu / bare_cpu:6.2f}x")
    print("marginal cost on top of the bare imports (same rounds' count, fresh processes)")
    for name, code in MARGINALS.items():
        took, _ = medians([once(MARGINAL.format(code=code)) for _ in range(args.runs)])
        print(f"{name:<28} {took * 1000:7.1f} ms   {took / bare:6.2%} of bare")


if __name__ == "__main__":
    main()
