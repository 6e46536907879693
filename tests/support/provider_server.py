"""A local HTTP(S) server that misbehaves on cue, for the provider transport's tests.

Each request takes the next scripted behaviour (or answers 200 `{}` when the script is empty):
answer with a status, hang until released, reset the connection after reading the request, or cut
the answer off mid-body. It records every request and counts the connections it accepted, so tests
can see retries, idempotency keys and connection reuse. Keep-alive (HTTP/1.1) like a real provider.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_LIMIT_SECONDS = 30.0  # a hung request is released by then at the latest


@dataclass
class Behaviour:
    kind: str  # "answer", "hang", "reset", "cut"
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int  # which accepted connection carried it (1, 2, ...)


class Handler(BaseHTTPRequestHandler):
    """Serves one connection of a ProviderServer (its `owner`), request after request."""

    protocol_version = "HTTP/1.1"

    @property
    def owner(self) -> ProviderServer:
        return self.server.owner  # type: ignore[attr-defined, no-any-return]

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.owner._lock:
            self.owner.connections += 1
            self.number = self.owner.connections

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    do_POST = do_DELETE = do_GET  # noqa: N815

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.owner._lock:
            self.owner.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body, self.number))
            behaviour = self.owner.script.pop(0) if self.owner.script else Behaviour("answer")
        getattr(self, f"_{behaviour.kind}")(behaviour)

    def _answer(self, behaviour: Behaviour) -> None:
        payload = json.dumps(behaviour.body).encode()
        self.send_response(behaviour.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in behaviour.headers.items():
            self.send_header(name, value)
        self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]  # one write
        self.flush_headers()

    def _hang(self, _: Behaviour) -> None:
        self.owner.released.wait(HANG_LIMIT_SECONDS)
        self.close_connection = True

    def _reset(self, _: Behaviour) -> None:
        # SO_LINGER 0: close() sends RST, what a crashed server or a dropped NAT mapping does.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _cut(self, _: Behaviour) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":")
        self.wfile.flush()
        self._reset(_)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the connection was reset on purpose

    def log_message(self, *args: Any) -> None:
        pass


class ProviderServer:
    """Started with start(), stopped with stop() (which also releases every hung request)."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.script: list[Behaviour] = []
        self.seen: list[Seen] = []
        self.connections = 0
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.owner = self  # type: ignore[attr-defined]
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> ProviderServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/v1/things", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def then(self, kind: str, status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
             times: int = 1) -> ProviderServer:
        for _ in range(times):
            self.script.append(Behaviour(kind, status, {} if body is None else body, headers or {}))
        return self
