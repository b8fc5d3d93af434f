"""The picture fragment htmx polls after a result until the picture is ready or failed.

(The hint and the counter, polled by every open page, live in `polls.py`.)
"""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath
from litestar.response import Template

from app.domain.figalization import ImageStatus
from app.store.history import StoreUnavailable
from app.web.deps import RuntimeDep
from app.web.templating import fragment
from app.web.views import result_view

STOP_POLLING = 286  # htmx swaps this response, then stops polling


class FragmentController(Controller):
    path = "/fragments"
    include_in_schema = False

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
