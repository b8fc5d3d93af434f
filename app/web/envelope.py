"""The one ASGI wrapper every answer passes through: request id, metrics, headers, CORS, HEAD.

Several concerns, one wrapper: each extra ASGI layer costs a closure and a
`send` indirection per message, and this runs for every request, polls
included. It takes the request id from `X-Request-ID` (or makes one), sets it
for log lines, counts and times the request by route template and status,
and adds the security headers (CSP, nosniff, frame and referrer policies,
HSTS behind TLS) and `X-Request-ID` to the answer. Under `/api/` it also
answers CORS, as the original service did: any origin, no credentials, and
preflights answered here without reaching a handler.

It wraps the whole application (`install`), outside Litestar's router and its
app-level exception handler, not as a route middleware: the answers made
outside a route — an unmatched 404/405, and the errors raised by the CSRF
and rate-limit middleware (403, 429), which Litestar renders above the route's
middleware — then carry the same headers and are counted with their real
status. Metrics labels stay bounded: a request no route matched counts as
route `unmatched`, an unknown method as `OTHER`. A client that hung up
before the answer, as far as the app can tell (the server handed it an
`http.disconnect` while it read the request), counts as status 499, nginx's
"client closed request", not as the 500 that was never sent to anyone.

HEAD is answered wherever GET is (RFC 9110 § 9.3.2: same headers, no body):
Litestar routes HEAD only to handlers that name it, so the request is passed
on as a GET and the answer's body is dropped here.

The headers are defined here, where they are applied. The page has no inline
script and one inline stylesheet (see templates/), so the Content-Security-Policy
forbids inline scripts and allows that stylesheet by its hash alone
(`security.style_sources`); pictures may come from the object store's origin
through a redirect, which the policy allows by name. (CSRF, rate limits and the body limit are
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

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from app.logs import request_id_var
from app.metrics import HTTP_DURATION, HTTP_IN_FLIGHT, HTTP_REQUESTS
from app.settings import Settings
from app.web import paths
from app.web.asgi_answers import answer
from app.web.security import style_sources

CLIENT_CLOSED = 499  # nginx's status for a client that closed the connection before the answer
UNMATCHED = "unmatched"  # the route label of every request no route matched (404, 405)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"})
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"X-Request-ID, Retry-After"),
]
_API_HEADERS = frozenset({b"x-content-type-options", b"referrer-policy"})
_PREFLIGHT = [
    *_CORS,
    (b"access-control-allow-methods", b"GET, HEAD, POST, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type, X-Request-ID"),
    (b"access-control-max-age", b"86400"),
    (b"vary", b"Origin"),
]


def install(app: Litestar, settings: Settings) -> None:
    """Put the envelope around everything the app answers, its router and its app-level
    exception handler included (see the module doc)."""
    app.asgi_handler = envelope_middleware(settings)(app.asgi_handler)


def envelope_middleware(settings: Settings) -> Any:
    page_headers = [(k.lower().encode(), v.encode()) for k, v in security_headers(settings)]
    # JSON is never rendered as a document: CSP and framing rules mean nothing there, and
    # every header costs the server a Python loop turn on the hottest routes. (/api/docs,
    # Swagger UI, is the one HTML page there; its initializer is an inline script, which
    # the page's CSP would block, and it shows no user text.)
    api_headers = [h for h in page_headers if h[0] in _API_HEADERS] + _CORS
    names = {b"x-request-id", _HSTS[0]}
    api_names = frozenset(name for name, _ in api_headers) | names
    page_names = frozenset(name for name, _ in page_headers) | names
    api_prefix = paths.API_PREFIX  # a closure variable: the cheapest lookup per request
    in_flight = [0]  # read by the gauge at each scrape: a Gauge's inc/dec lock twice per request
    HTTP_IN_FLIGHT.set_function(lambda: in_flight[0])

    def wrap(app: ASGIApp) -> ASGIApp:
        async def envelope(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            method = scope["method"]
            api = scope["path"].startswith(api_prefix)
            if api and method == "OPTIONS":
                await answer(send, 204, _PREFLIGHT)
                return
            head = method == "HEAD"
            if head:  # a copy: the server reads the method of its own scope to send no body
                scope = {**scope, "method": "GET"}
            request_id = _request_id(scope)
            scope.setdefault("state", {})["request_id"] = request_id
            extra = [
                *(api_headers if api else page_headers),
                (b"x-request-id", request_id.encode()),
            ]
            if scope.get("scheme") == "https":  # HSTS only means something over TLS
                extra.append(_HSTS)
            extra_names = api_names if api else page_names
            status = 0  # nothing sent yet

            async def send_enveloped(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    if status != CLIENT_CLOSED:
                        status = message["status"]
                    sent = message.get("headers", ())
                    present = {name for name, _ in sent}
                    if present.isdisjoint(extra_names):  # nearly always: no header to keep out
                        headers = [*sent, *extra]
                    else:
                        headers = [*sent, *(header for header in extra if header[0] not in present)]
                    message["headers"] = _allowing_head(headers) if status == 405 else headers
                elif head and message["type"] == "http.response.body":
                    message["body"] = b""
                await send(message)

            async def receive_watched() -> ReceiveMessage:
                nonlocal status
                message = await receive()
                if message["type"] == "http.disconnect" and status == 0:
                    status = CLIENT_CLOSED  # whatever the app answers now, nobody reads it
                return message

            token = request_id_var.set(request_id)
            started = time.perf_counter()
            in_flight[0] += 1
            try:
                await app(scope, receive_watched, send_enveloped)
            finally:
                request_id_var.reset(token)
                in_flight[0] -= 1
                # Read after routing: only the router knows the template.
                route = scope.get("path_template") or UNMATCHED
                duration, requests = _series(
                    method if method in _METHODS else "OTHER", route, status or 500
                )  # no answer at all: the server sends a 500
                duration.observe(time.perf_counter() - started)
                requests.inc()

        return envelope

    return wrap


def _allowing_head(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A 405's `Allow` names HEAD wherever it names GET: the envelope answers both."""
    allowing = []
    for name, value in headers:
        if name == b"allow" and b"GET" in value and b"HEAD" not in value:
            value += b", HEAD"
        allowing.append((name, value))
    return allowing


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
            f"style-src {style_sources()}",
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
