"""Protections against abuse: CSRF on the form, a rate limit on figalizing, a body limit.

The JSON APIs are cross-origin by contract and carry no cookies, so CSRF
covers the HTML form only. Rate limiting covers every way to figalize: a
route says it figalizes by carrying `FIGALIZES` in its `opt` (set where the
route is defined), so no list of paths here can drift from the routes; the
client is the address uvicorn's proxy-headers rule settles on (the right-most
X-Forwarded-For entry that is not one of `FIGA_FORWARDED_ALLOW_IPS`), never
an entry the client wrote. No request body may be larger than `MAX_BODY_BYTES`.
(The security headers and CSP are defined where they are applied: `envelope`.)
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.types import ASGIApp, Receive, Scope, Send

from app.settings import Settings

MAX_BODY_BYTES = 4096  # spec/api.md: bodies over 4 KiB are refused with 413
_FIGALIZES = "figalizes"
FIGALIZES = {_FIGALIZES: True}  # a route handler's `opt`: its POST creates figalizations


def csrf(settings: Settings) -> DefineMiddleware:
    """CSRF for the page's routes only: the form carries a token field and htmx sends it
    as a header. The APIs are cross-origin without cookies and need none."""
    config = CSRFConfig(
        secret=settings.secret_key or secrets.token_urlsafe(32),
        cookie_name="figa_csrf",
        header_name="x-csrftoken",
        cookie_samesite="strict",
        cookie_httponly=True,
        # Behind TLS the cookie must not travel over plain http, where anyone on the
        # way reads it: a public https address means every real client is behind TLS.
        cookie_secure=settings.public_base.startswith("https://"),
    )
    return DefineMiddleware(SchemeAwareCSRFMiddleware, config=config)


class SchemeAwareCSRFMiddleware:
    """Litestar's CSRF middleware, with the cookie `Secure` whenever the request came over
    https (its own TLS, or X-Forwarded-Proto from a trusted proxy: the scope's scheme),
    as HSTS is sent then. One token secret, so either instance checks the other's."""

    def __init__(self, app: ASGIApp, config: CSRFConfig) -> None:
        self._as_configured = CSRFMiddleware(app, config)
        self._secure = CSRFMiddleware(app, dataclasses.replace(config, cookie_secure=True))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        over_tls = scope.get("scheme") == "https"
        await (self._secure if over_tls else self._as_configured)(scope, receive, send)


def rate_limit_config(settings: Settings) -> RateLimitConfig | None:
    if not settings.rate_limit_per_minute:
        return None

    def figalizing(request: Request[Any, Any, Any]) -> bool:
        # The plain-ASGI create route takes every method (405 but for POST): only POSTs count.
        return request.method == "POST" and bool(request.route_handler.opt.get(_FIGALIZES))

    return RateLimitConfig(
        rate_limit=("minute", settings.rate_limit_per_minute),
        check_throttle_handler=figalizing,
    )
