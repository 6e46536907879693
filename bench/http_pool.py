"""Provider calls per second, sequentially, against a local HTTPS server: the urllib client we had
(a new TCP connection and TLS handshake on every call) next to the pooled one
(clinicpay.providers.http.request, urllib3) and, for the choice, requests with a shared Session.

The benchmark makes a self-signed certificate at run time and trusts it through SSL_CERT_FILE, so
every client verifies TLS as in production. The server (keep-alive, HTTP/1.1) runs in its own
process so it does not share the client's GIL; it counts the connections each client opened.
Rounds interleave the clients, so a noisy moment on this shared machine hits them all alike.

On loopback a handshake costs only CPU; to a real provider it also costs two or three round trips
(tens of milliseconds from a Lambda to Stripe or Fintoc), so the gain here is the smallest it gets.

    PYTHONPATH=layers/shared/python:. .venv/bin/python bench/http_pool.py [--calls 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BODY = {"amount": 25000, "currency": "CLP", "metadata": {"appointment_id": "ap_bench"}}
ANSWER = json.dumps({"id": "cs_bench", "object": "checkout_session", "status": "created",
                     "redirect_url": "https://pay.example/cs_bench"}).encode()


# --- the server (its own process) --------------------------------------------------------------

def serve(cert: str, key: str) -> None:
    connections = 0

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive unless the client says close

        def setup(self) -> None:
            nonlocal connections
            connections += 1
            super().setup()
            # A real server sends an answer at once; without this, Nagle's algorithm holds the body
            # back until the client's delayed ACK of the headers (40 ms) and every keep-alive call pays it.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._answer(ANSWER)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(json.dumps({"connections": connections}).encode())

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self._headers_buffer.append(b"\r\n" + body)  # headers and body in one write
            self.flush_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- the clients -------------------------------------------------------------------------------

def urllib_client(url: str) -> Callable[[], None]:
    """What providers/http.py did before: urllib.request.urlopen, a new connection per call."""
    data = json.dumps(BODY).encode()
    headers = {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": "clinicpay"}

    def call() -> None:
        req = urllib.request.Request(url, data=data, method="POST", headers=headers)
        with urllib.request.urlopen(req, timeout=8.0) as resp:
            resp.read()

    return call


def pooled_client(url: str) -> Callable[[], None]:
    from clinicpay.providers import http

    def call() -> None:
        http.request("bench", "POST", url, headers={"User-Agent": "clinicpay"}, json_body=BODY, timeout=8.0)

    return call


def requests_client(url: str) -> Callable[[], None]:
    import requests
    from requests.adapters import HTTPAdapter

    class SystemTrust(HTTPAdapter):
        # requests trusts certifi's bundle, not the system's (SSL_CERT_FILE), so hand it the same
        # context the other clients use.
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = ssl.create_default_context()
            super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.mount("https://", SystemTrust())
    data = json.dumps(BODY).encode()
    headers = {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": "clinicpay"}

    def call() -> None:
        response = session.post(url, data=data, headers=headers, timeout=8.0, allow_redirects=False)
        response.content  # noqa: B018 - read the body, as the others do

    return call


def connections(base: str) -> int:
    with urllib.request.urlopen(base + "/stats", timeout=8.0) as resp:
        return int(json.loads(resp.read())["connections"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200, help="sequential calls per client per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", nargs=2, metavar=("CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return

    sys.path[:0] = [str(ROOT / "layers/shared/python"), str(ROOT)]
    from tests.support.tls import self_signed

    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "bench")
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed(Path(tmp))
        os.environ["SSL_CERT_FILE"] = str(cert)  # both clients verify TLS against this certificate
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(cert), str(key)], stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert server.stdout is not None
            base = f"https://localhost:{server.stdout.readline().strip()}"
            url = base + "/v1/checkout_sessions"
            clients = {"urllib, new connection per call (before)": urllib_client(url),
                       "urllib3 pooled (providers/http.py now)": pooled_client(url),
                       "requests, shared Session": requests_client(url)}
            rates: dict[str, list[float]] = {name: [] for name in clients}
            opened: dict[str, int] = dict.fromkeys(clients, 0)
            for call in clients.values():  # warm up: imports, the first handshake
                call()
            for _ in range(args.rounds):
                for name, call in clients.items():
                    before = connections(base)
                    started = time.perf_counter()
                    for _ in range(args.calls):
                        call()
                    rates[name].append(args.calls / (time.perf_counter() - started))
                    opened[name] += connections(base) - before - 1  # less the /stats call's own
        finally:
            server.terminate()
            server.wait()
    before = statistics.median(rates["urllib, new connection per call (before)"])
    print(f"sequential HTTPS POSTs to a local keep-alive server, {args.calls} calls x {args.rounds} interleaved rounds "
          f"(Python {sys.version.split()[0]})")
    print(f"{'':<42} {'calls/s':>9} {'vs before':>10} {'connections opened (after a warm-up call)':>43}")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<42} {rate:9.0f} {rate / before:9.2f}x {opened[name]:43d}")


if __name__ == "__main__":
    main()
