"""Browser-facing protections: security headers and CSP, CSRF, rate limiting.

The page has no inline script or style (see templates/), so the
Content-Security-Policy can forbid both; pictures may come from the object
store's origin through a redirect, which the policy allows by name. The JSON
APIs are cross-origin by contract and carry no cookies, so CSRF covers the
HTML form only; rate limiting covers every way to figalize, and no request
body may be larger than `MAX_BODY_BYTES`.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.middleware.rate_limit import RateLimitConfig

from app.settings import Settings

FIGALIZING_ROUTES = frozenset({"/", "/api/v2/figalizations", "/api/figalize"})
MAX_BODY_BYTES = 4096  # spec/api.md: bodies over 4 KiB are refused with 413


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
    """Headers every answer carries (HSTS is added per request, only over TLS)."""
    return [
        ("Content-Security-Policy", content_security_policy(settings)),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    ]


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
        route = request.scope.get("path_template") or request.url.path
        return request.method == "POST" and route.rstrip("/") in FIGALIZING_ROUTES | {""}

    return RateLimitConfig(
        rate_limit=("minute", settings.rate_limit_per_minute),
        check_throttle_handler=figalizing,
    )
