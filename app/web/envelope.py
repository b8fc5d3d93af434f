"""The one ASGI middleware every response passes through: request id, metrics, headers, CORS.

Three concerns, one wrapper: each extra ASGI layer costs a closure and a
`send` indirection per message, and this runs for every request, polls
included. It takes the request id from `X-Request-ID` (or makes one), sets it
for log lines, counts and times the request by route template and status,
and adds the security headers (CSP, nosniff, frame and referrer policies,
HSTS behind TLS) and `X-Request-ID` to the answer. Under `/api/` it also
answers CORS, as the original service did: any origin, no credentials, and
preflights answered here without reaching a handler.

The headers are defined here, where they are applied. The page has no inline
script or style (see templates/), so the Content-Security-Policy can forbid
both; pictures may come from the object store's origin through a redirect,
which the policy allows by name. (CSRF, rate limits and the body limit are
in `security`.)
"""

from __future__ import annotations

import functools
import itertools
import re
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import request_id_var
from app.metrics import HTTP_DURATION, HTTP_IN_FLIGHT, HTTP_REQUESTS
from app.settings import Settings
from app.web import paths
from app.web.asgi_answers import answer

_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"X-Request-ID, Retry-After"),
]
_API_HEADERS = frozenset({b"x-content-type-options", b"referrer-policy"})
_PREFLIGHT = [
    *_CORS,
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type, X-Request-ID"),
    (b"access-control-max-age", b"86400"),
    (b"vary", b"Origin"),
]


def envelope_middleware(settings: Settings) -> Any:
    page_headers = [(k.lower().encode(), v.encode()) for k, v in security_headers(settings)]
    # JSON is never rendered as a document: CSP and framing rules mean nothing there, and
    # every header costs the server a Python loop turn on the hottest routes. (/api/docs,
    # Swagger UI, is the one HTML page there; its initializer is an inline script, which
    # the page's CSP would block, and it shows no user text.)
    api_headers = [h for h in page_headers if h[0] in _API_HEADERS] + _CORS
    api_prefix = paths.API_PREFIX  # a closure variable: the cheapest lookup per request

    def wrap(app: ASGIApp) -> ASGIApp:
        async def envelope(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            api = scope["path"].startswith(api_prefix)
            if api and scope["method"] == "OPTIONS":
                await answer(send, 204, _PREFLIGHT)
                return
            request_id = _request_id(scope)
            scope.setdefault("state", {})["request_id"] = request_id
            route = str(scope.get("path_template") or "unmatched")
            extra = [
                *(api_headers if api else page_headers),
                (b"x-request-id", request_id.encode()),
            ]
            if scope.get("scheme") == "https":  # HSTS only means something over TLS
                extra.append(_HSTS)
            status = 500  # what the server sends if the app dies before answering

            async def send_enveloped(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    present = {name for name, _ in message.get("headers", ())}
                    message["headers"] = [
                        *message.get("headers", ()),
                        *(header for header in extra if header[0] not in present),
                    ]
                await send(message)

            token = request_id_var.set(request_id)
            started = time.perf_counter()
            HTTP_IN_FLIGHT.inc()
            try:
                await app(scope, receive, send_enveloped)
            finally:
                request_id_var.reset(token)
                HTTP_IN_FLIGHT.dec()
                duration, requests = _series(scope["method"], route, status)
                duration.observe(time.perf_counter() - started)
                requests.inc()

        return envelope

    return wrap


@functools.cache
def _series(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The labelled children, looked up once: `labels()` takes a lock on every call."""
    return HTTP_DURATION.labels(method, route), HTTP_REQUESTS.labels(method, route, str(status))


_PROCESS = secrets.token_hex(6)  # unique per process, so ids from replicas never collide
_SEQUENCE = itertools.count()


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            incoming = value.decode("latin-1")
            if _ACCEPTABLE_ID.fullmatch(incoming):
                return incoming
            break
    return f"{_PROCESS}{next(_SEQUENCE):012x}"  # cheaper than uuid4: no syscall per request


def content_security_policy(settings: Settings) -> str:
    images = ["'self'", "data:"]
    for url in (settings.image_public_base_url, settings.s3_endpoint_url):
        if url:
            parts = urlsplit(url)
            images.append(f"{parts.scheme}://{parts.netloc}")
    if settings.image_store_url.startswith("s3://") and not settings.s3_endpoint_url:
        images.append("https://*.amazonaws.com")  # presigned AWS URLs
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {' '.join(images)}",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(settings: Settings) -> list[tuple[str, str]]:
    """Headers every page carries (HSTS is added per request, only over TLS)."""
    return [
        ("Content-Security-Policy", content_security_policy(settings)),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    ]
