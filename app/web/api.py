"""JSON API v2 (spec/api.md § JSON API): thin handlers over the service layer.

All of /api/v2 is here, the create route included. That one, the hottest
write route, is a Litestar ASGI route handler: a typed handler spends about
35 µs a request on generic machinery before and after ours (streaming the
body through an async generator, dependency injection, a signature model,
building a `Response` and converting it), more than a third of the route's
cost. Litestar still routes it, runs the middleware (envelope, rate limit)
and renders its errors through the app's exception handlers, so its answers
are those of every other route; by hand it only reads at most
`MAX_BODY_BYTES`, decodes `FigalizationRequest` with msgspec and encodes the
answer. Litestar cannot describe an ASGI handler, so `document_create_route`
adds its operation to the OpenAPI document, the request schema generated
from the struct itself; the schemathesis run checks that the two agree.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Request, Response, asgi, get
from litestar.exceptions import MethodNotAllowedException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIHeader, OpenAPIType, Reference, Schema
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect
from litestar.status_codes import HTTP_204_NO_CONTENT
from litestar.types import Receive, Scope, Send

from app.domain.figalization import ImageStatus, image_key
from app.domain.phrase import PhraseError
from app.figalizations import UnknownScheme
from app.logs import request_id_var
from app.runtime import Runtime
from app.web import json_bodies, paths
from app.web.asgi_answers import Headers, answer, read_body
from app.web.deps import RuntimeDep
from app.web.openapi import Answer, add_operation
from app.web.security import FIGALIZES, MAX_BODY_BYTES
from app.web.views import ErrorView, FigalizationView, ImageView, api_view, download_name

TAGS = ["figalizations"]


class FigalizationRequest(msgspec.Struct, forbid_unknown_fields=False):
    phrase: Annotated[str, msgspec.Meta(description="Russian words to figalize")]
    scheme: Annotated[
        str | None,
        msgspec.Meta(description="A scheme id from /api/v2/schemes; the default when absent"),
    ] = None


class SchemeView(msgspec.Struct):
    id: str
    name: str


class HistoryPage(msgspec.Struct):
    items: list[FigalizationView]
    next: str | None


class StatsView(msgspec.Struct):
    total: int


# A cursor is a figalization id, a ULID (app.domain.ids): 26 Crockford base32 digits, the
# first at most 7 (128 bits). Anything else (empty, any other text) is refused with 400:
# compared as text with the ids, it would silently answer an empty or the first page.
CURSOR = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"

NOT_FOUND = {404: ResponseSpec(data_container=ErrorView, description="No such figalization")}
UNAVAILABLE = {
    503: ResponseSpec(
        data_container=ErrorView, description="The store is down for a moment (Retry-After)"
    )
}
PICTURE = {
    200: ResponseSpec(data_container=bytes, media_type="image/png", description="The picture"),
    302: ResponseSpec(data_container=None, description="To where the store serves it"),
    404: ResponseSpec(data_container=ErrorView, description="Unknown, or not drawn yet"),
}
NO_FIGALIZATION_YET = {204: ResponseSpec(data_container=None, description="No figalization yet")}


class ApiV2Controller(Controller):
    path = paths.API_V2
    tags = TAGS

    @get("/schemes", operation_id="listSchemes")
    async def schemes(self, runtime: RuntimeDep) -> list[SchemeView]:
        return [SchemeView(s.id, s.name) for s in runtime.figalizer.catalogue.schemes]

    @get(
        "/figalizations/{figalization_id:str}",
        operation_id="getFigalization",
        responses=NOT_FOUND | UNAVAILABLE,
    )
    async def read(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, figalization_id: FromPath[str]
    ) -> FigalizationView:
        figalization = await runtime.figalizer.get(figalization_id)
        if figalization is None:
            raise NotFoundException("unknown figalization")
        return api_view(figalization, runtime.settings.public_base)

    @get(
        "/figalizations/{figalization_id:str}/image",
        operation_id="getFigalizationImage",
        responses=PICTURE | UNAVAILABLE,
    )
    async def image(
        self, runtime: RuntimeDep, figalization_id: FromPath[str]
    ) -> Response[bytes] | Redirect:
        """The PNG itself from a folder, or a redirect to where the object store serves it."""
        figalization = await runtime.figalizer.get(figalization_id)
        if figalization is None or figalization.image_status is not ImageStatus.READY:
            raise NotFoundException("no picture yet")
        key = figalization.image_key or image_key(figalization.id)
        try:
            url = await runtime.images.public_url(key)
            if url is not None:
                return Redirect(url, status_code=302)
            png = await runtime.images.read(key)
        except FileNotFoundError as error:
            raise NotFoundException("picture missing from storage") from error
        return Response(
            png,
            media_type="image/png",
            headers={
                "Cache-Control": "public, max-age=31536000, immutable",
                "Content-Disposition": f'inline; filename="{download_name(figalization.id)}"',
            },
        )

    @get("/history", operation_id="listHistory", responses=UNAVAILABLE)
    async def history(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        before: Annotated[
            str | None,
            QueryParameter(pattern=CURSOR, description="The `next` of the previous page"),
        ] = None,
    ) -> HistoryPage:
        rows = await runtime.figalizer.page(limit=limit + 1, before=before)
        base = runtime.settings.public_base
        items = [api_view(f, base) for f in rows[:limit]]
        return HistoryPage(items=items, next=items[-1].id if len(rows) > limit else None)

    @get(
        "/history/latest",
        operation_id="getLatest",
        responses=NO_FIGALIZATION_YET | UNAVAILABLE,
    )
    async def latest(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep
    ) -> Response[FigalizationView | None]:
        figalization = await runtime.figalizer.latest()
        if figalization is None:
            return Response(None, status_code=HTTP_204_NO_CONTENT)
        return Response(api_view(figalization, runtime.settings.public_base))

    @get("/stats", operation_id="getStats", responses=UNAVAILABLE)
    async def stats(self, runtime: RuntimeDep) -> StatsView:
        return StatsView(total=await runtime.figalizer.total())


_DECODER = msgspec.json.Decoder(FigalizationRequest)
_ENCODER = msgspec.json.Encoder()
_JSON: Headers = [(b"content-type", b"application/json")]
_NOT_STORED: Headers = [*_JSON, (b"x-figalization-stored", b"false")]


@asgi(paths.FIGALIZATIONS, is_mount=False, copy_scope=False, include_in_schema=False, opt=FIGALIZES)
async def create_figalization(scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /api/v2/figalizations`: figalize, store, queue the picture (see the module doc)."""
    if scope.get("method") != "POST":
        raise MethodNotAllowedException(headers={"Allow": "OPTIONS, POST"})
    body = await read_body(scope, receive, limit=MAX_BODY_BYTES)
    if body is None:
        return  # the client went away before sending its body: nothing to answer
    data = _decode(body)
    runtime: Runtime = scope["litestar_app"].state.runtime
    try:
        outcome = await runtime.figalizer.figalize(
            data.phrase, data.scheme, request_id=request_id_var.get()
        )
    except PhraseError as error:
        await answer(send, 422, _JSON, _ENCODER.encode(ErrorView(error.code, error.message)))
        return
    except UnknownScheme as error:
        await answer(send, 422, _JSON, _ENCODER.encode(ErrorView("unknown_scheme", error.message)))
        return
    # A new figalization's picture is pending (or, unstored, failed): never a URL to build.
    view = api_view(outcome.figalization, base_url="")
    if not outcome.stored:  # database down: the answer stands, but nothing was created
        view.image = ImageView(status="failed", url=None)
        await answer(send, 200, _NOT_STORED, _ENCODER.encode(view))
        return
    await answer(send, 201, _JSON, _ENCODER.encode(view))


def _decode(body: bytes) -> FigalizationRequest:
    if not body.strip():
        raise ValidationException('the body must be a JSON object: {"phrase": "…"}')
    return json_bodies.decode(body, _DECODER)  # bad bytes, bad JSON, too deep: 400


def document_create_route(app: Litestar) -> None:
    """Add the create route's operation to the app's OpenAPI document (before it is served)."""
    stored_false: dict[str, OpenAPIHeader | Reference] = {
        "X-Figalization-Stored": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.STRING, const="false"),
            description="Always `false` on this answer",
        )
    }
    add_operation(
        app.openapi_schema,
        paths.FIGALIZATIONS,
        operation_id="createFigalization",
        summary="Figalize a phrase, store it and queue its picture",
        tags=TAGS,
        request=FigalizationRequest,
        answers={
            201: Answer("Created: stored, counted, its picture queued", FigalizationView),
            200: Answer(
                "Figalized while the database is down: not stored, not counted, no picture",
                FigalizationView,
                headers=stored_false,
            ),
            400: Answer(
                "Not a UTF-8 JSON object with a string `phrase`, or nested too deeply"
                " (error invalid_request)",
                ErrorView,
            ),
            413: Answer(f"The body is over {MAX_BODY_BYTES // 1024} KiB", ErrorView),
            422: Answer("A bad phrase (empty, too_long, not_russian) or unknown_scheme", ErrorView),
        },
    )
