"""Protections against abuse: CSRF on the form, a rate limit on figalizing, a body limit.

The JSON APIs are cross-origin by contract and carry no cookies, so CSRF
covers the HTML form only (Litestar's double-submit token, checked by
`app.web.csrf`). Rate limiting covers every way to figalize: a
route says it figalizes by carrying `FIGALIZES` in its `opt` (set where the
route is defined), so no list of paths here can drift from the routes; the
client is the address uvicorn's proxy-headers rule settles on (the right-most
X-Forwarded-For entry that is not one of `FIGA_FORWARDED_ALLOW_IPS`), never
an entry the client wrote. No request body may be larger than `MAX_BODY_BYTES`.
(The security headers and CSP are defined where they are applied, `envelope`; the inline
stylesheet's hash that its `style-src` allows is given here, `style_sources`.)
"""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig

from app.settings import Settings
from app.web.assets import catalogue
from app.web.csrf import CsrfMiddleware

MAX_BODY_BYTES = 4096  # spec/api.md: bodies over 4 KiB are refused with 413
_FIGALIZES = "figalizes"
FIGALIZES = {_FIGALIZES: True}  # a route handler's `opt`: its POST creates figalizations


def csrf(settings: Settings) -> DefineMiddleware:
    """CSRF for the page's routes only: the form carries a token field and htmx sends it
    as a header. The APIs are cross-origin without cookies and need none."""
    return DefineMiddleware(
        CsrfMiddleware,
        secret=settings.secret_key or secrets.token_urlsafe(32),
        # Behind TLS the cookie must not travel over plain http, where anyone on the
        # way reads it: a public https address means every real client is behind TLS.
        secure_cookie=settings.public_base.startswith("https://"),
        body_limit=MAX_BODY_BYTES,  # a form without the header is read here for its field
    )


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


def style_sources() -> str:
    """The CSP's `style-src`: our origin, and the pages' inline stylesheet by its hash."""
    return f"'self' '{catalogue().style_hash}'"
