"""Request metrics middleware: count, latency and in-flight by route template and status."""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import HTTP_DURATION, HTTP_IN_FLIGHT, HTTP_REQUESTS

_SKIP = frozenset({"/metrics"})  # scraping must not count itself


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        route = str(scope.get("path_template") or "unmatched")
        if scope["type"] != ScopeType.HTTP or route in _SKIP:
            await app(scope, receive, send)
            return
        method = str(scope.get("method", ""))
        status = 500  # what the server sends if the app dies before answering

        async def send_and_observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        HTTP_IN_FLIGHT.inc()
        try:
            await app(scope, receive, send_and_observe)
        finally:
            HTTP_IN_FLIGHT.dec()
            HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()

    return middleware
