"""Protections against abuse: CSRF on the form, a rate limit on figalizing, a body limit.

The JSON APIs are cross-origin by contract and carry no cookies, so CSRF
covers the HTML form only. Rate limiting covers every way to figalize: a
route says it figalizes by carrying `FIGALIZES` in its `opt` (set where the
route is defined), so no list of paths here can drift from the routes. No
request body may be larger than `MAX_BODY_BYTES`. (The security headers and
CSP are defined where they are applied: `envelope`.)
"""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.middleware.rate_limit import RateLimitConfig

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
    )
    return DefineMiddleware(CSRFMiddleware, config=config)


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
