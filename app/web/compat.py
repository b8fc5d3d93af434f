"""The original service's v1 API (spec/api.md § Compatibility API), unchanged for its clients.

Its shapes are odd on purpose (catalogue index keys, `{"data": …}` bodies,
history as nested lists): they are what existing clients parse. So every
error of these routes, whatever raised it (a bad body, 413, 429…), is
answered as `{"data": MESSAGE}` too, and bodies are read by
`json_bodies.JsonBodyRequest` (bad bytes, too deep or empty: 400 with a
message that says so). (A method no route here takes is refused by the
router, before any route is chosen, in the v2 shape; the original's clients
never send one.)
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.types import ExceptionHandlersMap

from app.domain.phrase import PhraseError
from app.figalizations import UnknownScheme
from app.logs import request_id_var
from app.outages import StoreUnavailable
from app.web import paths
from app.web.deps import RuntimeDep
from app.web.errors import describe
from app.web.json_bodies import JsonBodyRequest
from app.web.security import FIGALIZES


class CompatFigalizeRequest(msgspec.Struct):
    phrase: str = ""
    schema_id: int | str = 0  # the original page sends its <select>'s string value


class CompatImageRequest(msgspec.Struct):
    phrase: str = ""


class CompatAnswer(msgspec.Struct):
    data: str


def _compat_error(request: Request[Any, Any, Any], error: Exception) -> Response[CompatAnswer]:
    status, detail, headers = describe(request, error)
    return Response(CompatAnswer(detail), status_code=status, headers=headers)


ERRORS: ExceptionHandlersMap = {HTTPException: _compat_error, Exception: _compat_error}


class CompatController(Controller):
    path = paths.API
    tags = ["compatibility (v1)"]  # noqa: RUF012
    request_class = JsonBodyRequest
    exception_handlers = ERRORS

    @get("/getschemas/", operation_id="compatGetSchemas")
    async def schemas(self, runtime: RuntimeDep) -> dict[str, str]:
        return {str(i): s.name for i, s in enumerate(runtime.figalizer.catalogue.schemes)}

    @post(
        "/figalize/",
        operation_id="compatFigalize",
        status_code=200,
        opt=FIGALIZES,
        responses={
            400: ResponseSpec(
                data_container=CompatAnswer, description="A bad phrase or index, or a bad body"
            )
        },
    )
    async def figalize(
        self,
        runtime: RuntimeDep,
        data: JSONBody[CompatFigalizeRequest],
    ) -> Response[CompatAnswer]:
        try:
            scheme_id = scheme_at(runtime, data.schema_id)
            outcome = await runtime.figalizer.figalize(
                data.phrase, scheme_id, request_id=request_id_var.get()
            )
        except (PhraseError, UnknownScheme) as error:
            return Response(CompatAnswer(error.message), status_code=400)
        return Response(CompatAnswer(outcome.figalization.result))

    @get("/gethistory/", operation_id="compatGetHistory")
    async def history(self, runtime: RuntimeDep) -> list[list[int | str]]:
        live = runtime.live.state
        if not live.available or live.latest is None:
            return []
        return [[live.total, live.latest.phrase, live.latest.result]]

    @post(
        "/getimageurl/",
        operation_id="compatGetImageUrl",
        status_code=200,
        responses={
            400: ResponseSpec(data_container=CompatAnswer, description="A bad body"),
            404: ResponseSpec(data_container=CompatAnswer, description="No picture yet"),
            503: ResponseSpec(data_container=CompatAnswer, description="Store down for a moment"),
        },
    )
    async def image_url(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[CompatImageRequest],
    ) -> Response[CompatAnswer]:
        try:
            figalization = await runtime.figalizer.newest_ready_picture(data.phrase.strip())
        except StoreUnavailable:
            return Response(CompatAnswer(""), status_code=503)
        if figalization is None:
            return Response(CompatAnswer(""), status_code=404)
        url = runtime.settings.public_base + paths.image_path(figalization.id)
        return Response(CompatAnswer(url))


def scheme_at(runtime: RuntimeDep, index: int | str) -> str:
    """The scheme id at a catalogue index given as a number or a numeric string."""
    schemes = runtime.figalizer.catalogue.schemes
    try:
        position = int(index)
    except ValueError as error:
        raise UnknownScheme(str(index)) from error
    if not 0 <= position < len(schemes):
        raise UnknownScheme(str(index))
    return schemes[position].id
