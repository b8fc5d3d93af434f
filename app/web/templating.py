"""Template rendering shared by pages and fragments: one context shape for both.

A page includes its fragments, so the no-JavaScript render and the htmx swap
come from the same template files with the same context.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template

from app.runtime import Runtime
from app.web.paths import image_path, result_path

HTML = MediaType.HTML  # given, so Litestar does not guess it from the file name per render


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def page(runtime: Runtime, name: str, *, status_code: int = 200, **context: Any) -> Template:
    context.setdefault("schemes", runtime.figalizer.catalogue.schemes)
    context.setdefault("selected_scheme", runtime.figalizer.catalogue.default.id)
    context.setdefault("phrase", "")
    context.setdefault("error", None)
    context.setdefault("result", None)
    context.setdefault("max_length", runtime.settings.max_phrase_length)
    context |= {"live": runtime.live.state, "poll_seconds": runtime.settings.poll_seconds}
    return Template(template_name=name, context=context, status_code=status_code, media_type=HTML)


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
    engine.engine.globals |= {"image_path": image_path, "result_path": result_path}
    engine.engine.auto_reload = False
