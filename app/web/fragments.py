"""The fragments htmx polls: the hint and the counter of every open page, and a picture.

The hint and the counter are the hottest routes of the service: every open
page asks for both every `FIGA_POLL_SECONDS`. They are answered as plain ASGI
from memory (`LiveFeed`): 204 when the client's version (`?v=`) is current,
which htmx treats as "leave the page alone"; otherwise the fragment, rendered
once per version by the live feed and then served from that copy. Skipping
Litestar's request parsing and dependency injection is what makes an
unchanged poll cost about as much as the framework's bare "hello" route; the
envelope middleware (request id, metrics, security headers) still applies.

A plain-ASGI handler takes every method, so the two polls refuse all but GET
with 405 (HEAD arrives as GET: the envelope answers it). The picture
fragment, polled after a result until the picture is ready or failed, is an
ordinary handler: it reads the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Controller, asgi, get
from litestar.exceptions import MethodNotAllowedException
from litestar.params import FromPath
from litestar.response import Template
from litestar.types import Receive, Scope, Send

from app.domain.figalization import ImageStatus
from app.live import LiveState
from app.outages import StoreUnavailable
from app.runtime import Runtime
from app.web import paths
from app.web.asgi_answers import Headers, answer, query_parameter
from app.web.deps import RuntimeDep
from app.web.templating import fragment
from app.web.views import result_view

STOP_POLLING = 286  # htmx swaps this response, then stops polling
_HTML: Headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
_UNCHANGED: Headers = []


class FragmentController(Controller):
    path = paths.FRAGMENTS
    include_in_schema = False

    @get("/image/{figalization_id:str}", name="image-status")
    async def image(self, runtime: RuntimeDep, figalization_id: FromPath[str]) -> Template:
        try:
            figalization = await runtime.figalizer.get(figalization_id)
        except StoreUnavailable:  # keep polling: the picture may be ready when the store is back
            return fragment("image.html", result=None, pending_id=figalization_id)
        if figalization is None:
            return fragment("image.html", result=None, pending_id=None, status_code=STOP_POLLING)
        result = result_view(runtime.figalizer, figalization, stored=True)
        done = figalization.image_status is not ImageStatus.PENDING
        return fragment(
            "image.html",
            result=result,
            pending_id=None if done else figalization_id,
            status_code=STOP_POLLING if done else 200,
        )


@asgi(paths.HINT_POLL, is_mount=False, copy_scope=False, include_in_schema=False)
async def hint_poll(scope: Scope, receive: Receive, send: Send) -> None:
    await _poll(scope, send, "fragments/hint.html", _hint_version)


@asgi(paths.TOTAL_POLL, is_mount=False, copy_scope=False, include_in_schema=False)
async def total_poll(scope: Scope, receive: Receive, send: Send) -> None:
    await _poll(scope, send, "fragments/total.html", _total_version)


def _hint_version(live: LiveState) -> str:
    return live.hint_version


def _total_version(live: LiveState) -> str:
    return live.total_version


async def _poll(
    scope: Scope, send: Send, template: str, version_of: Callable[[LiveState], str]
) -> None:
    """204 when the client shows the current version, else the fragment at that version."""
    if scope.get("method") != "GET":
        raise MethodNotAllowedException(headers={"Allow": "GET, HEAD"})
    runtime: Runtime = scope["litestar_app"].state.runtime
    live = runtime.live.state
    version = version_of(live)
    if query_parameter(scope, "v") == version:
        await answer(send, 204, _UNCHANGED)
        return

    def render() -> str:
        engine: Any = scope["litestar_app"].template_engine
        html: str = engine.get_template(template).render(
            live=live, poll_seconds=runtime.settings.poll_seconds
        )
        return html

    await answer(send, 200, _HTML, runtime.live.rendered(template, version, render))
