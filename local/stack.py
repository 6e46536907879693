"""The whole product on one port, with no Docker: `python -m local.stack` (or `make run`).

Starts moto in this process (ThreadedMotoServer on a free port, or MOTO_PORT), points boto3 at it,
sets the functions' environment from template.yaml, creates the tables and the SES sender, and
serves the API, the provider sandboxes, the web pages and the /_local tools on
127.0.0.1:${PORT:-3000}. Then it creates the demo clinics (Chile/Fintoc, Canada/Stripe, Ukraine/monobank
QR) through the API (skip with --no-demo).

Environment honoured: PORT, MOTO_PORT, PUBLIC_BASE_URL, CLINICPAY_OPERATOR_KEY, EMAIL_SENDER,
FINTOC_API_BASE, MONOBANK_API_BASE, STRIPE_API_BASE, CHECKBOX_API_BASE, CLINICPAY_LOCAL_IAM (default
on: handlers may make only the AWS calls their role in template.yaml allows; "off" lifts that).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import warnings
from typing import Any

from local import template, vendor

ROOT = template.ROOT
LAYER = ROOT / "layers" / "shared" / "python"
if str(LAYER) not in sys.path:  # the functions import clinicpay from the SharedLayer, as in Lambda
    sys.path.insert(0, str(LAYER))

from local import aws, iam, tools  # noqa: E402 - after the layer is importable
from local.server import SANDBOXES, LocalApp, LocalServer  # noqa: E402

DEFAULT_PORT = 3000
# A fixed development key so curl commands in the README keep working across restarts.
DEV_OPERATOR_KEY = "op_dev_clinicpay_local_operator_key"
LOCAL_SENDER = "payments@clinicpay.local"  # created as a verified SES identity in moto


def configure_environment(port: int) -> dict[str, str]:
    """Set os.environ the way the deployed functions see it, with local endpoints. Returns what it set."""
    env = aws.function_environment()
    base = (os.environ.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{port}").rstrip("/")
    env.update({
        "PUBLIC_BASE_URL": base,
        "CLINICPAY_OPERATOR_KEY": os.environ.get("CLINICPAY_OPERATOR_KEY") or DEV_OPERATOR_KEY,
        "EMAIL_SENDER": os.environ.get("EMAIL_SENDER") or LOCAL_SENDER,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "CARDS_TABLE": "CardsTable",
        # /docs loads its viewer from this stack (build/vendor, `make vendor`), not a CDN: works offline.
        "DOCS_VIEWER_URL": os.environ.get("DOCS_VIEWER_URL") or vendor.served_url(),
    })
    for name in SANDBOXES:
        key = f"{name.upper()}_API_BASE"
        env[key] = os.environ.get(key) or f"{base}/_sandbox/{name}"
    os.environ.update(env)
    return env


def _check_free(port: int, variable: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise SystemExit(f"Cannot listen on 127.0.0.1:{port} ({error.strerror}): "
                             f"set {variable} to a free port, e.g. {variable}={aws.free_port()}") from None


class Stack:
    """moto + the local server, started in this process."""

    def __init__(self, port: int, moto_port: int | None = None):
        _check_free(port, "PORT")
        if moto_port:
            _check_free(moto_port, "MOTO_PORT")
        self.env = configure_environment(port)
        self.moto, self.moto_endpoint = aws.start_moto(moto_port)
        aws.point_boto3_at(self.moto_endpoint)
        aws.create_resources(self.env["EMAIL_SENDER"])
        if os.environ.get("CLINICPAY_LOCAL_IAM", "on") != "off":
            # Handlers may make only the calls their role in template.yaml allows (local/iam.py).
            iam.enforce({"EmailSender": self.env["EMAIL_SENDER"], "PublicBaseUrl": self.env["PUBLIC_BASE_URL"]})
        self.outbox = tools.Outbox()
        self.server = LocalServer(tools.access_log(LocalApp(tools.routes(self.outbox))), port).start()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def operator_key(self) -> str:
        return self.env["CLINICPAY_OPERATOR_KEY"]

    def stop(self) -> None:
        self.server.stop()
        self.moto.stop()


def banner(stack: Stack, clinics: list[Any] | None = None) -> str:
    base, public = stack.base_url, stack.env["PUBLIC_BASE_URL"]
    jobs = "\n".join(f"                 curl -X POST {base}/_local/jobs/{job}" for job in sorted(template.schedules()))
    lines = [
        "",
        "=" * 78,
        f" clinicpay local stack on {base}" + (f" (public URL {public})" if public != base else ""),
        "=" * 78,
        f" API            {base}/v1/...   (routes from template.yaml)",
        f" API docs       {base}/docs   {base}/openapi.json",
        f" Health         {base}/health",
        f" Booking demo   {base}/demo",
        f" Staff pages    {base}/staff",
        f" Local index    {base}/   (start here: links, demo clinics, jobs with Run buttons)",
        f" Outbox         {base}/_local/outbox   (emails + SMS sent, rendered; ?format=json, ?to=, DELETE clears)",
        f" Jobs (run now)\n{jobs}",
        f" Sandboxes      {base}/_sandbox/{{{','.join(SANDBOXES)}}}",
        f" AWS (moto)     {stack.moto_endpoint}   (dashboard: {stack.moto_endpoint}/moto-api/)",
        f" Operator key   {stack.operator_key}",
    ]
    if clinics:
        from local import demo

        lines += ["-" * 78, *demo.describe(base, clinics)]
    if not vendor.is_current():
        lines += ["-" * 78, " /docs needs its viewer: run `make vendor` (npm), then reload /docs."]
    lines += ["=" * 78, " Ctrl-C stops the stack (all data is in memory).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-demo", action="store_true", help="do not create the demo clinics")
    args = parser.parse_args(argv)

    # werkzeug logs every request of both servers, including each call the functions make to moto;
    # tools.access_log prints the API's requests instead.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    port = int(os.environ.get("PORT") or DEFAULT_PORT)
    moto_port = int(os.environ["MOTO_PORT"]) if os.environ.get("MOTO_PORT") else None
    stack = Stack(port, moto_port)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    print(f"clinicpay local stack listening on {stack.base_url} (operator key {stack.operator_key})", flush=True)

    clinics = None
    if not args.no_demo:
        from local import demo

        clinics = demo.bootstrap(stack.base_url, stack.operator_key)
    print(banner(stack, clinics), flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        print("stopping clinicpay local stack", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
