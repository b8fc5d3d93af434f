"""The fragments htmx polls: the newest-figalization hint, the counter, the picture.

A poll carries the version the client shows (`v`); when nothing changed the
answer is 204, which htmx treats as "leave the page alone", and it is decided
from memory (`LiveFeed`) without touching the database.
"""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from litestar.status_codes import HTTP_204_NO_CONTENT

from app.domain.figalization import ImageStatus
from app.store.history import StoreUnavailable
from app.web.deps import RuntimeDep
from app.web.templating import fragment, live_context
from app.web.views import result_view

STOP_POLLING = 286  # htmx swaps this response, then stops polling


class FragmentController(Controller):
    path = "/fragments"
    include_in_schema = False

    @get("/hint", name="hint")
    async def hint(self, runtime: RuntimeDep, v: FromQuery[str] = "") -> Template | Response[None]:
        live = runtime.live.state
        if v == live.hint_version:
            return Response(None, status_code=HTTP_204_NO_CONTENT)
        return fragment("hint.html", **live_context(runtime, live))

    @get("/total", name="total")
    async def total(self, runtime: RuntimeDep, v: FromQuery[str] = "") -> Template | Response[None]:
        live = runtime.live.state
        if v == live.total_version:
            return Response(None, status_code=HTTP_204_NO_CONTENT)
        return fragment("total.html", **live_context(runtime, live))

    @get("/image/{figalization_id:str}", name="image-status")
    async def image(self, runtime: RuntimeDep, figalization_id: FromPath[str]) -> Template:
        try:
            figalization = await runtime.history.get(figalization_id)
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
