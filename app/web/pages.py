"""The HTML pages: the figalizer at `/`, its form post, `/r/{id}`, and the live-updates switch.

`/` is a plain-ASGI route, as the API's create route is (`api`): the form
POST is the figalization people make in a browser, and a typed handler with
a `Template` answer cost about twice the figalization itself in framework
machinery (the signature model and form extractor, the `Template` response
and its conversion). By hand it reads at most `MAX_BODY_BYTES`, parses the
urlencoded form, renders with the app's Jinja environment (autoescaped, the
same templates; the htmx answer prerendered per shape, see `prerendered`)
and sends the bytes. The page router's CSRF middleware
(`security.csrf`) still checks every POST before it arrives here, the rate
limit counts it (`FIGALIZES`) and the app's exception handlers render its
errors. A plain-ASGI route takes every method: GET and HEAD are the page,
OPTIONS says what is allowed, anything else is a 405.

`POST /live` pauses or resumes the page's live updates (WCAG 2.2.2) for the
visit: a session cookie, read when a page is rendered, which then carries
no polling (`live_paused`). Polls themselves never read it (they are the
hottest route); a tab opened before the pause keeps polling until reloaded.
"""

from __future__ import annotations

import codecs
import re
from typing import Annotated, Any

from litestar import Controller, Request, asgi, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import MethodNotAllowedException, NotFoundException, ValidationException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from litestar.types import Receive, Scope, Send

from app.domain.phrase import PhraseError
from app.figalizations import UnknownScheme
from app.logs import request_id_var
from app.runtime import Runtime
from app.web import paths
from app.web.asgi_answers import Headers, answer, read_body
from app.web.deps import RuntimeDep
from app.web.security import FIGALIZES, MAX_BODY_BYTES
from app.web.templating import HTML, HTML_HEADERS, page, page_context, render_page, result_answer
from app.web.views import ResultView, result_view

INDEX = "pages/index.html"
_FIELDS = {b"phrase": "phrase", b"scheme": "scheme"}
_ESCAPES = re.compile("(?:%[0-9A-Fa-f]{2})+")
_ALLOW: Headers = [(b"allow", b"GET, HEAD, OPTIONS, POST")]
LIVE_COOKIE = "figa_live"
_PAUSED = re.compile(rb"(?:^|;)\s*figa_live=paused\s*(?:;|$)")


@asgi("/", name="index", is_mount=False, copy_scope=False, include_in_schema=False, opt=FIGALIZES)
async def figalizer_page(scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /` the page, `POST /` its form (see the module doc); HEAD arrives as GET."""
    method = scope.get("method")
    if method == "POST":
        await _figalize(scope, receive, send)
    elif method == "GET":
        runtime: Runtime = scope["litestar_app"].state.runtime
        html = render_page(scope, runtime, INDEX, paused=live_paused(scope))
        await answer(send, 200, HTML_HEADERS, html)
    elif method == "OPTIONS":
        await answer(send, 204, _ALLOW)
    else:
        raise MethodNotAllowedException(headers={"Allow": "GET, HEAD, OPTIONS, POST"})


async def _figalize(scope: Scope, receive: Receive, send: Send) -> None:
    """With htmx, only the result fragment; without, the whole page with the result."""
    body = await read_body(scope, receive, limit=MAX_BODY_BYTES)
    if body is None:
        return  # the client went away before sending its body: nothing to answer
    phrase, scheme = _form(body)
    runtime: Runtime = scope["litestar_app"].state.runtime
    htmx = (b"hx-request", b"true") in scope["headers"]
    try:
        outcome = await runtime.figalizer.figalize(
            phrase, scheme or None, request_id=request_id_var.get()
        )
    except (PhraseError, UnknownScheme) as error:
        if htmx:  # htmx does not swap 4xx bodies: the error is content of a 200
            await _answer_fragment(scope, send, phrase, error=error.message)
            return
        await _answer_page(scope, send, runtime, 422, phrase, scheme, error=error.message)
        return
    result = result_view(runtime.figalizer, outcome.figalization, stored=outcome.stored)
    if htmx:
        await _answer_fragment(scope, send, phrase, result=result)
        return
    phrase = outcome.figalization.phrase
    await _answer_page(scope, send, runtime, 200, phrase, scheme, result=result)


async def _answer_page(
    scope: Scope,
    send: Send,
    runtime: Runtime,
    status: int,
    phrase: str,
    scheme: str,
    *,
    error: str | None = None,
    result: ResultView | None = None,
) -> None:
    """The whole page with the form's phrase and scheme, and its error or its result."""
    html = render_page(
        scope,
        runtime,
        INDEX,
        phrase=phrase,
        selected_scheme=scheme,
        error=error,
        result=result,
        paused=live_paused(scope),
    )
    await answer(send, status, HTML_HEADERS, html)


async def _answer_fragment(
    scope: Scope,
    send: Send,
    phrase: str,
    *,
    error: str | None = None,
    result: ResultView | None = None,
) -> None:
    html = result_answer(scope).render(phrase=phrase, error=error, result=result)
    await answer(send, 200, HTML_HEADERS, html)


def _form(body: bytes) -> tuple[str, str]:
    """`phrase` and `scheme` of a urlencoded body, parsed as Litestar parses forms (latin-1
    bytes, `+` and UTF-8 %-escapes decoded, blanks kept: `urllib.parse.parse_qsl`), but
    only those two fields are decoded (not the 128-character CSRF token), and in bytes; a
    field given twice is a 400, as Litestar's form model refused it."""
    fields: dict[str, str] = {}
    for pair in body.split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        name = _FIELDS.get(raw_name)
        if name is None:
            if b"%" not in raw_name and b"+" not in raw_name:
                continue
            name = form_value(raw_name)  # an escaped name, decoded as Litestar decodes it
            if name not in _FIELDS.values():
                continue
        if name in fields:
            raise ValidationException(f"{name}: give it once")
        fields[name] = form_value(raw_value)
    return fields.get("phrase", ""), fields.get("scheme", "")


def form_value(raw: bytes) -> str:
    """`urllib.parse.unquote_plus` of the latin-1 text of `raw`: UTF-8, invalid bytes as
    U+FFFD, an ASCII character always ends a sequence. A Cyrillic phrase is nothing but
    escapes, so an ASCII value is decoded in two C calls, its `%XX` rewritten as the `\\xXX`
    of `codecs.escape_decode` (a value with a backslash of its own, or a `%` not followed
    by two hex digits, which that would refuse, takes the run-by-run way)."""
    raw = raw.replace(b"+", b" ")
    if b"%" not in raw:
        return raw.decode("latin-1")
    if raw.isascii() and b"\\" not in raw:
        try:
            return codecs.escape_decode(raw.replace(b"%", b"\\x"))[0].decode("utf-8", "replace")
        except ValueError:
            pass
    return _ESCAPES.sub(_decoded, raw.decode("latin-1"))


def _decoded(escapes: re.Match[str]) -> str:
    return bytes.fromhex(escapes.group().replace("%", "")).decode("utf-8", "replace")


def live_paused(scope: Scope) -> bool:
    """Whether this visitor paused the live updates (`POST /live`)."""
    headers = scope["headers"]
    return any(name == b"cookie" and _PAUSED.search(value) for name, value in headers)


def _local(path: str) -> str:
    """Where to go back after the switch: a path of this site, never another origin."""
    if not path.startswith("/") or path.startswith(("//", "/\\")):
        return "/"
    return path


class PageController(Controller):
    include_in_schema = False

    @post(paths.LIVE_UPDATES, name="live-updates", status_code=200)
    async def live_updates(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        """Pause or resume, for the rest of the visit (a session cookie). With htmx: the
        control and the live paragraphs of the page, out of band; without: back to it."""
        paused = data.get("updates") == "pause"
        here = _local(data.get("next", "/"))
        cookie = Cookie(
            key=LIVE_COOKIE,
            value="paused" if paused else "",
            max_age=None if paused else 0,  # no lifetime: the browser forgets it with the visit
            path="/",
            httponly=True,
            samesite="lax",
            secure=runtime.settings.public_base.startswith("https://"),
        )
        if request.headers.get("hx-request") != "true":
            return Redirect(here, status_code=303, cookies=[cookie])
        context = page_context(runtime, {"paused": paused, "here": here})
        return Template(
            "fragments/live_updates.html", context=context, media_type=HTML, cookies=[cookie]
        )

    @get(paths.RESULT_PAGES + "/{figalization_id:str}", name="result-page")
    async def result_page(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, figalization_id: FromPath[str]
    ) -> Template:
        figalization = await runtime.figalizer.get(figalization_id)
        if figalization is None:
            raise NotFoundException("Такой фигализации у нас нет")
        result = result_view(runtime.figalizer, figalization, stored=True)
        return page(
            runtime,
            "pages/result.html",
            result=result,
            base_url=runtime.settings.public_base,  # never the Host header: the client's
            paused=live_paused(request.scope),
            here=paths.result_path(figalization_id),
        )
