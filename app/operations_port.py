"""The operations port: `GET /metrics` (and the worker's `/healthz`) apart from the public port.

Metrics are for Prometheus inside the cluster, never for the internet, so they
are served on a port of their own, which only the Service's `metrics` port and
the NetworkPolicy for Prometheus reach; the public port has no metrics route
under any spelling. The app and the worker both run one `OperationsPort`.

It is the standard library's threading HTTP server in a daemon thread, so a
scrape or a liveness probe is answered even while the event loop is stuck —
which is exactly when the worker's `/healthz` must say so. It reads only
thread-safe things (prometheus-client's registry, a `Check` such as the
worker's heartbeat) and never touches the event loop. `stop()` closes the
socket and joins the thread, so tests that start many apps leak neither.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

METRICS = "/metrics"
HEALTHZ = "/healthz"

# A liveness check: (alive, what to say about it), called on the server's thread.
Check = Callable[[], tuple[bool, dict[str, object]]]


class OperationsPort:
    """`/metrics` from the process's registry, and `/healthz` when given a check."""

    def __init__(self, host: str, port: int, *, healthz: Check | None = None) -> None:
        self._address = (host, port)
        self._healthz = healthz
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the system's pick for 0)."""
        if self._server is None:
            raise RuntimeError("the operations port is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Listen now (an address in use fails here, at start-up) and serve in a thread."""
        server = _Server(self._address, _handler(self._healthz))
        server.daemon_threads = True  # a scrape in progress never holds the exit
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.5},  # how soon stop() is noticed; idle wake-ups cost CPU
            name=f"operations-port-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the thread: the port is free again."""
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None


class _Server(ThreadingHTTPServer):
    def server_bind(self) -> None:
        """Bind without `HTTPServer`'s reverse DNS lookup of the address (`getfqdn`),
        which can hang start-up where DNS is slow; the name is never used here."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


def route(raw_path: str) -> str:
    """The operations port's name for a request path: without the query, repeated or
    trailing slashes, in lower case — it is private, so every spelling is the route."""
    path = raw_path.split("?", 1)[0]  # not urlsplit: it reads `//metrics` as a host name
    parts = [part for part in path.split("/") if part]
    return ("/" + "/".join(parts)).lower()


def _handler(healthz: Check | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "figachechnaya-operations"

        def do_GET(self) -> None:
            path = route(self.path)
            if path == METRICS:
                self._answer(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
            elif path == HEALTHZ and healthz is not None:
                alive, detail = healthz()
                body = json.dumps({"status": "ok" if alive else "stalled", **detail})
                status = HTTPStatus.OK if alive else HTTPStatus.SERVICE_UNAVAILABLE
                self._answer(status, "application/json", body.encode())
            else:
                self._answer(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

        def _answer(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes and probes every few seconds are not worth a log line each."""

    return Handler
