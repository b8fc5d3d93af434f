"""The two polled fragments, answered as plain ASGI: the hottest routes of the service.

Every open page asks for the hint and the counter every `FIGA_POLL_SECONDS`.
The answer is decided from memory (`LiveFeed`): 204 when the client's version
(`?v=`) is current, which htmx treats as "leave the page alone"; otherwise the
fragment, rendered once per version and then served from that copy. Skipping
Litestar's request parsing and dependency injection here is what makes an
unchanged poll cost about as much as the framework's bare "hello" route; the
envelope middleware (request id, metrics, security headers) still applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from litestar import asgi
from litestar.types import Receive, Scope, Send

from app.live import LiveState
from app.runtime import Runtime

_HTML = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]


class RenderedFragment:
    """A fragment of the live state, rendered at most once per version."""

    def __init__(self, template: str, version: Callable[[LiveState], str]) -> None:
        self._template = template
        self._version = version
        self._cached: tuple[str, bytes] = ("", b"")

    async def answer(self, scope: Scope, send: Send) -> None:
        runtime: Runtime = scope["litestar_app"].state.runtime
        live = runtime.live.state
        current = self._version(live)
        if _client_version(scope) == current:
            await _send(send, 204, [], b"")
            return
        cached_version, body = self._cached
        if cached_version != current:
            engine: Any = scope["litestar_app"].template_engine
            html = engine.get_template(self._template).render(
                live=live, poll_seconds=runtime.settings.poll_seconds
            )
            body = html.encode()
            self._cached = (current, body)
        await _send(send, 200, _HTML, body)


_HINT = RenderedFragment("fragments/hint.html", lambda live: live.hint_version)
_TOTAL = RenderedFragment("fragments/total.html", lambda live: live.total_version)


@asgi("/fragments/hint", is_mount=False, copy_scope=False, include_in_schema=False)
async def hint_poll(scope: Scope, receive: Receive, send: Send) -> None:
    await _HINT.answer(scope, send)


@asgi("/fragments/total", is_mount=False, copy_scope=False, include_in_schema=False)
async def total_poll(scope: Scope, receive: Receive, send: Send) -> None:
    await _TOTAL.answer(scope, send)


def _client_version(scope: Scope) -> str:
    query = scope["query_string"]
    if not query:
        return ""
    return parse_qs(query.decode("latin-1")).get("v", [""])[0]


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
