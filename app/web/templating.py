"""Template rendering shared by pages and fragments: one context shape for both.

A page includes its fragments, so the no-JavaScript render and the htmx swap
come from the same template files with the same context. Typed handlers
answer a `Template` (`page`, `fragment`); the plain-ASGI page route renders
with the same Jinja environment by hand (`render_page`), and its htmx answer
is `fragments/result.html` prerendered once per shape (`result_answer`,
`prerendered`): the same markup, the same escaping.
"""

from __future__ import annotations

import html
from typing import Any
from weakref import WeakKeyDictionary

from litestar import MediaType
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.types import Scope
from litestar.utils.scope.state import ScopeState

from app.runtime import Runtime
from app.web.asgi_answers import Headers
from app.web.assets import template_globals
from app.web.paths import LIVE_UPDATES, image_path, result_path
from app.web.prerendered import ResultAnswer

HTML = MediaType.HTML  # given, so Litestar does not guess it from the file name per render
HTML_HEADERS: Headers = [(b"content-type", b"text/html; charset=utf-8")]  # as `Template` sends


def page(runtime: Runtime, name: str, *, status_code: int = 200, **context: Any) -> Template:
    return Template(
        template_name=name,
        context=page_context(runtime, context),
        status_code=status_code,
        media_type=HTML,
    )


def page_context(runtime: Runtime, context: dict[str, Any]) -> dict[str, Any]:
    context.setdefault("schemes", runtime.figalizer.catalogue.schemes)
    context.setdefault("selected_scheme", runtime.figalizer.catalogue.default.id)
    context.setdefault("phrase", "")
    context.setdefault("error", None)
    context.setdefault("result", None)
    context.setdefault("max_length", runtime.settings.max_phrase_length)
    context |= {"live": runtime.live.state, "poll_seconds": runtime.settings.poll_seconds}
    return context


def render_page(scope: Scope, runtime: Runtime, name: str, **context: Any) -> bytes:
    """A page for a plain-ASGI route: the context `page` gives, and the CSRF token of
    the scope as Litestar's `Template` hands it to the form (`csrf_input`, `csrf_token()`)."""
    token = ScopeState.from_scope(scope).csrf_token
    token = token if isinstance(token, str) else ""  # Litestar's "no token" is a sentinel
    context = page_context(runtime, context)
    context["csrf_input"] = (
        f'<input type="hidden" name="_csrf_token" value="{html.escape(token)}" />'
    )
    context["csrf_token"] = lambda: token  # the context hides Litestar's global of that name
    return render(scope, name, context)


def render(scope: Scope, name: str, context: dict[str, Any]) -> bytes:
    """A template rendered by the app's Jinja environment (autoescaped), as UTF-8."""
    engine: Any = scope["litestar_app"].template_engine
    text: str = engine.get_template(name).render(context)
    return text.encode()


_ANSWERS: WeakKeyDictionary[Any, ResultAnswer] = WeakKeyDictionary()


def result_answer(scope: Scope) -> ResultAnswer:
    """The form's htmx answer of this app's templates, made on its first use."""
    engine: Any = scope["litestar_app"].template_engine
    prerendered = _ANSWERS.get(engine)
    if prerendered is None:
        template = engine.get_template("fragments/result.html")
        prerendered = _ANSWERS[engine] = ResultAnswer(template)
    return prerendered


def fragment(name: str, *, status_code: int = 200, **context: Any) -> Template:
    return Template(
        template_name=f"fragments/{name}", context=context, status_code=status_code, media_type=HTML
    )


def plural(count: int, one: str, few: str, many: str) -> str:
    """Russian plural form: 1 раз, 2 раза, 5 раз, 21 раз, 11 раз."""
    if count % 10 == 1 and count % 100 != 11:
        return one
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return few
    return many


def thousands(count: int) -> str:
    """12 345 with a narrow no-break space, as Russian typography groups digits."""
    return f"{count:,}".replace(",", "\u202f")


def configure_jinja(engine: JinjaTemplateEngine) -> None:
    """Our filters, and the paths templates link to (spelled once, in `paths`); and
    templates are files of the release, never edited under a running server, so Jinja
    need not stat each one on every render (its `auto_reload`)."""
    engine.engine.filters |= {"plural": plural, "thousands": thousands}
    engine.engine.globals |= {
        "image_path": image_path,
        "result_path": result_path,
        "live_updates_path": LIVE_UPDATES,
    }
    engine.engine.globals |= template_globals()  # hashed asset URLs, the inline stylesheet
    engine.engine.auto_reload = False
