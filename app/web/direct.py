"""The hottest plain-ASGI routes, reached without Litestar's router.

The create route, the two live polls and the page with its form are plain
ASGI handlers already (`api.create_figalization`, `fragments`, `pages`; the
page inside its CSRF middleware, the same instance its router uses, so one
secret signs every token): for them Litestar's own layers — the
exception middleware's wrapped `send`, the router's host check and path
lookup, the route's guard check and scope copy — cost about as much as
their work. `direct` looks their exact path up in a dict and calls the
handler; every other path goes through Litestar as before. What Litestar
would have done for these routes is done here too: the route template is set
for the metrics, the host header is checked, and an error raised before the
answer started is rendered by the app's own exception handlers
(`errors.exception_handlers`), so a 400, 405 or 413 looks the same whichever
way it came. With rate limiting on (`FIGA_RATE_LIMIT_PER_MINUTE`), whose
middleware must see the create route's POSTs, nothing is taken directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request
from litestar._asgi.utils import is_valid_host  # the check its router makes
from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.handlers import ASGIRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.web.errors import exception_handlers


def plain(*handlers: ASGIRouteHandler) -> dict[str, ASGIApp]:
    """The exact paths of plain-ASGI route handlers and their functions, for `direct`."""
    return {path: handler.fn for handler in handlers for path in handler.paths}


def direct(app: ASGIApp, routes: Mapping[str, ASGIApp]) -> ASGIApp:
    """`app` with `routes` (an exact path each, and what answers it: a plain-ASGI handler,
    maybe inside its route's own middleware) called directly."""
    routes = dict(routes)
    render = exception_handlers()[Exception]

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        handler = routes.get(path) if scope["type"] == ScopeType.HTTP else None
        if handler is None:
            await app(scope, receive, send)
            return
        scope["path_template"] = path
        started = False

        async def send_watched(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            if not _host_ok(scope):
                raise ClientException("Invalid host header")
            await handler(scope, receive, send_watched)
        except Exception as error:
            if started:
                raise  # the server ends the connection: half an answer cannot be mended
            request: Request[Any, Any, Any] = Request(scope, receive)
            response = render(request, error).to_asgi_response(None, request)
            await response(scope, receive, send)

    return dispatch


def _host_ok(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"host":
            return bool(is_valid_host(value))
    return True
