"""Static assets under content-hashed URLs, and the stylesheet the pages carry inline.

A browser may keep an asset whose URL names its content for a year without
asking again (`Cache-Control: immutable`): `/static/htmx.3f…e1.js` changes
its name when htmx changes. The catalogue is built once per process from the
package files (htmx from its wheel, our favicon, the font subsets of
`app.fonts`, whose hash is their `version`, known before they are built).

The stylesheet is not a request of its own: the first paint needs all of it
and it is ~2.5 KiB compressed, so every page carries it in a `<style>`
element, and the Content-Security-Policy allows exactly that text by its
SHA-256 (`style_hash`), never `'unsafe-inline'`. Its `@font-face` rules name
the hashed font URLs, so they are written here, not in `site.css`.

An asset asked for under another hash (a page of the previous release during
a rolling update, whose replicas serve both) gets today's bytes with
`no-cache`, never under the immutable promise: what is cached for a year is
always what its name says. The old unhashed URLs (`/assets/…`,
`/vendor/htmx/…`) keep their short cache (see `app.asgi.static_files`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import js_lib_htmx
from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from markupsafe import Markup

from app import fonts
from app.web.compression import ONCE, compress, negotiated

STATIC = "/static"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
_HERE = Path(__file__).parent / "static"
_HTMX = Path(js_lib_htmx.__file__).parent / "static" / "htmx" / "htmx.min.js"
ABOVE_THE_FOLD = "font-black"  # the heading's face: the one preloaded


@dataclass(frozen=True, slots=True)
class Asset:
    stem: str  # the name without hash and extension: "htmx"
    extension: str
    content_type: str
    version: str
    body: Callable[[], bytes]  # blocking: fonts are built on first use

    @property
    def url(self) -> str:
        return f"{STATIC}/{self.stem}.{self.version}.{self.extension}"


def _hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


def _file(stem: str, path: Path, content_type: str) -> Asset:
    body = path.read_bytes()
    return Asset(stem, path.suffix[1:], content_type, _hash(body), lambda: body)


def _font(name: str) -> Asset:
    return Asset(
        f"font-{name}", "woff2", "font/woff2", fonts.version(name), lambda: fonts.woff2(name)
    )


@dataclass(frozen=True, slots=True)
class Catalogue:
    assets: dict[str, Asset]  # by stem
    stylesheet: str

    @property
    def style_hash(self) -> str:
        """The CSP source that allows the inline stylesheet, and only it."""
        digest = hashlib.sha256(self.stylesheet.encode()).digest()
        return f"sha256-{base64.b64encode(digest).decode()}"

    def url(self, stem: str) -> str:
        return self.assets[stem].url


@functools.cache
def catalogue() -> Catalogue:
    """The process's assets (pure function of the package files: shared by every app)."""
    assets = [
        _file("htmx", _HTMX, "text/javascript; charset=utf-8"),
        _file("favicon", _HERE / "favicon.svg", "image/svg+xml"),
        *(_font(name) for name in fonts.FACES),
    ]
    by_stem = {asset.stem: asset for asset in assets}
    faces = "".join(_font_face(name, by_stem[f"font-{name}"].url) for name in fonts.FACES)
    stylesheet = faces + (_HERE / "site.css").read_text()
    return Catalogue(by_stem, stylesheet)


def _font_face(name: str, url: str) -> str:
    ranges = ",".join(f"U+{first:04X}-{last:04X}" for first, last in fonts.RANGES)
    return (
        f'@font-face{{font-family:"{fonts.FAMILY}";src:url("{url}") format("woff2");'
        f"font-weight:{fonts.FACES[name].weight};font-style:normal;font-display:swap;"
        f"unicode-range:{ranges}}}\n"
    )


def template_globals() -> dict[str, Any]:
    """What `base.html` names: asset URLs, the inline stylesheet and the preloaded face."""
    assets = catalogue()
    return {
        "asset_url": assets.url,
        # Our own file, no user text: Jinja must not escape its quotes.
        "inline_stylesheet": Markup(assets.stylesheet),  # noqa: S704  # nosec B704
        "preloaded_font": assets.url(ABOVE_THE_FOLD),
    }


@get(STATIC + "/{name:str}", include_in_schema=False, name="hashed-asset")
async def hashed_asset(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
    """`/static/{stem}.{version}.{extension}`: immutable under its own version; a text asset
    is compressed once, at the best level, and kept (the compression layer lets it pass)."""
    stem, _, rest = name.partition(".")
    version, _, extension = rest.partition(".")
    asset = catalogue().assets.get(stem)
    if asset is None or extension != asset.extension:
        raise NotFoundException("no such asset")
    headers = {"cache-control": IMMUTABLE if version == asset.version else REVALIDATE}
    encoding = None
    if asset.content_type.startswith(("text/", "image/svg+xml")):
        headers["vary"] = "Accept-Encoding"
        accepted = request.headers.get("accept-encoding", "").encode("latin-1")
        encoding = negotiated(accepted, ONCE)
    if encoding is not None:
        headers["content-encoding"] = encoding
    body = await asyncio.to_thread(_encoded, stem, encoding)
    return Response(body, media_type=asset.content_type, headers=headers)


@functools.cache
def _encoded(stem: str, encoding: str | None) -> bytes:
    body = catalogue().assets[stem].body()
    return body if encoding is None else compress(body, encoding, best=True)
