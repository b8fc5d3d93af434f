"""JSON API v2 (spec/api.md § JSON API): thin handlers over the service layer.

`POST /api/v2/figalizations` is not here: see `create_route.py`.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect
from litestar.status_codes import HTTP_204_NO_CONTENT

from app.domain.figalization import ImageStatus, image_key
from app.web.deps import RuntimeDep
from app.web.views import ErrorView, FigalizationView, api_view


class SchemeView(msgspec.Struct):
    id: str
    name: str


class HistoryPage(msgspec.Struct):
    items: list[FigalizationView]
    next: str | None


class StatsView(msgspec.Struct):
    total: int


NOT_FOUND = {404: ResponseSpec(data_container=ErrorView, description="No such figalization")}
UNAVAILABLE = {
    503: ResponseSpec(
        data_container=ErrorView, description="The store is down for a moment (Retry-After)"
    )
}


class ApiV2Controller(Controller):
    path = "/api/v2"
    tags = ["figalizations"]  # noqa: RUF012

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
        figalization = await runtime.history.get(figalization_id)
        if figalization is None:
            raise NotFoundException("unknown figalization")
        return api_view(figalization, str(request.base_url))

    @get(
        "/figalizations/{figalization_id:str}/image",
        operation_id="getFigalizationImage",
        responses={
            200: ResponseSpec(
                data_container=bytes, media_type="image/png", description="The picture"
            ),
            302: ResponseSpec(data_container=None, description="To where the store serves it"),
            404: ResponseSpec(data_container=ErrorView, description="Unknown, or not drawn yet"),
            **UNAVAILABLE,
        },
    )
    async def image(
        self, runtime: RuntimeDep, figalization_id: FromPath[str]
    ) -> Response[bytes] | Redirect:
        """The PNG itself from a folder, or a redirect to where the object store serves it."""
        figalization = await runtime.history.get(figalization_id)
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
                "Content-Disposition": f'inline; filename="figachechnaya-{figalization.id}.png"',
            },
        )

    @get("/history", operation_id="listHistory", responses=UNAVAILABLE)
    async def history(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        before: FromQuery[str | None] = None,
    ) -> HistoryPage:
        rows = await runtime.history.page(limit=limit + 1, before=before)
        base = str(request.base_url)
        items = [api_view(f, base) for f in rows[:limit]]
        return HistoryPage(items=items, next=items[-1].id if len(rows) > limit else None)

    @get(
        "/history/latest",
        operation_id="getLatest",
        responses={204: ResponseSpec(data_container=None, description="No figalization yet")}
        | UNAVAILABLE,
    )
    async def latest(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep
    ) -> Response[FigalizationView | None]:
        figalization = await runtime.history.latest()
        if figalization is None:
            return Response(None, status_code=HTTP_204_NO_CONTENT)
        return Response(api_view(figalization, str(request.base_url)))

    @get("/stats", operation_id="getStats", responses=UNAVAILABLE)
    async def stats(self, runtime: RuntimeDep) -> StatsView:
        return StatsView(total=await runtime.history.total())
