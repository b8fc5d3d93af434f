"""The HTML pages: the figalizer at `/`, its form post, and `/r/{id}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Template

from app.domain.phrase import PhraseError
from app.figalizations import UnknownScheme
from app.logs import request_id_var
from app.web import paths
from app.web.deps import RuntimeDep
from app.web.security import FIGALIZES
from app.web.templating import fragment, is_htmx, page
from app.web.views import result_view


@dataclass
class FigalizeForm:
    phrase: str = ""
    scheme: str = ""


class PageController(Controller):
    include_in_schema = False

    @get("/", name="index")
    async def index(self, runtime: RuntimeDep) -> Template:
        return page(runtime, "pages/index.html")

    @post("/", name="figalize-form", status_code=200, opt=FIGALIZES)
    async def figalize(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: Annotated[FigalizeForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template:
        """With htmx, only the result fragment; without, the whole page with the result."""
        htmx = is_htmx(request)
        try:
            outcome = await runtime.figalizer.figalize(
                data.phrase, data.scheme or None, request_id=request_id_var.get()
            )
        except (PhraseError, UnknownScheme) as error:
            message = error.message
            if htmx:  # htmx does not swap 4xx bodies: the error is content of a 200
                return fragment(
                    "result.html", error=message, result=None, oob=True, phrase=data.phrase
                )
            return page(
                runtime,
                "pages/index.html",
                status_code=422,
                phrase=data.phrase,
                selected_scheme=data.scheme,
                error=message,
            )
        result = result_view(runtime.figalizer, outcome.figalization, stored=outcome.stored)
        if htmx:
            return fragment("result.html", error=None, result=result, oob=True, phrase=data.phrase)
        return page(
            runtime,
            "pages/index.html",
            phrase=outcome.figalization.phrase,
            selected_scheme=data.scheme,
            result=result,
        )

    @get(paths.RESULT_PAGES + "/{figalization_id:str}", name="result-page")
    async def result_page(self, runtime: RuntimeDep, figalization_id: FromPath[str]) -> Template:
        figalization = await runtime.figalizer.get(figalization_id)
        if figalization is None:
            raise NotFoundException("Такой фигализации у нас нет")
        result = result_view(runtime.figalizer, figalization, stored=True)
        return page(
            runtime,
            "pages/result.html",
            result=result,
            base_url=runtime.settings.public_base,  # never the Host header: the client's
        )
