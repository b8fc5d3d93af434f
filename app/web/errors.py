"""Errors as each audience expects them: JSON for the APIs, a page for people.

API errors keep one shape, `{"error": CODE, "message": TEXT}`, whatever raised
them (validation, 403, 404, 413, 405, 429…); the compat API renders the same
`describe` in its own `{"data": TEXT}` (`compat`); a person gets the site's
own error page, never a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from app.outages import ImageStoreUnavailable, StoreUnavailable
from app.web import paths
from app.web.views import ErrorView

log = logging.getLogger(__name__)

CODES = {
    400: "invalid_request",
    403: "csrf_failed",  # the one 403: the form's CSRF check (security.csrf)
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}
TITLES = {
    404: "Такой страницы нет",
    413: "Слишком длинно",
    429: "Помедленнее",
    500: "Что-то сломалось",
}


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith(paths.API_PREFIX) or "text/html" not in request.headers.get(
        "accept", ""
    )


def describe(request: Request[Any, Any, Any], error: Exception) -> tuple[int, str, dict[str, str]]:
    """The status, the message and the headers an error is answered with, whoever renders it
    (an unexpected error is logged here, with its traceback, and said to be "internal")."""
    if isinstance(error, StoreUnavailable | ImageStoreUnavailable):
        log.warning("answering 503 on %s: %s", request.url.path, error)
        return 503, "Хранилище временно недоступно", {"Retry-After": "5"}
    if not isinstance(error, HTTPException):
        log.exception("unhandled error on %s", request.url.path, exc_info=error)
        return HTTP_500_INTERNAL_SERVER_ERROR, "internal error", {}
    status, detail = error.status_code, str(error.detail)
    if isinstance(error, ValidationException) and error.extra:
        detail = (
            "; ".join(
                f"{e.get('key', 'body')}: {e.get('message', '')}"
                for e in error.extra
                if isinstance(e, dict)
            )
            or detail
        )
    headers = dict(error.headers or {})
    if status == 429 and "RateLimit-Reset" in headers:  # Litestar names it; clients read this
        headers["Retry-After"] = headers["RateLimit-Reset"]
    return status, detail, headers


def _handle(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    status, detail, headers = describe(request, error)
    if _wants_json(request):
        code = CODES.get(status, "error")
        return Response(ErrorView(code, detail), status_code=status, headers=headers)
    if status == 503:
        return Template(template_name="pages/unavailable.html", status_code=503, headers=headers)
    return Template(
        template_name="pages/error.html",
        context={"status": status, "title": TITLES.get(status, "Ошибка"), "detail": detail},
        status_code=status,
        headers=headers,
    )


def exception_handlers() -> ExceptionHandlersMap:
    return {HTTPException: _handle, Exception: _handle}
