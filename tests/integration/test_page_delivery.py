"""Issue 16 item 1: the page arrives light — compressed, cached for a year under hashed
names, with WOFF2 subsets of its fonts — and the live updates can be paused.

Answers are read raw (`httpx` would decode them silently): each test sends the
`Accept-Encoding` it means, or none.
"""

from __future__ import annotations

import gzip
import io
import re
from typing import Any

import brotli
import pytest
from fontTools.ttLib import TTFont
from litestar.testing import AsyncTestClient

from app import fonts
from app.web.assets import IMMUTABLE, catalogue
from app.web.compression import DYNAMIC, MIN_BYTES, ONCE, negotiated
from tests.conftest import figalize

Client = AsyncTestClient[Any]
BROWSER = "gzip, deflate, br, zstd"  # what Chromium sends


async def raw(client: Client, path: str, encoding: str | None, **kwargs: Any) -> Any:
    """The answer as sent: a stream read without decoding."""
    headers = {"Accept": "text/html", **kwargs.pop("headers", {})}
    headers["Accept-Encoding"] = encoding if encoding is not None else ""
    request = client.build_request("GET", path, headers=headers, **kwargs)
    response = await client.send(request, stream=True)
    body = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return response, body


def decoded(response: Any, body: bytes) -> bytes:
    encoding = response.headers.get("content-encoding")
    if encoding == "br":
        return bytes(brotli.decompress(body))
    if encoding == "gzip":
        return gzip.decompress(body)
    assert encoding is None, encoding
    return body


@pytest.mark.parametrize(
    ("accept", "per_request", "once"),
    [
        (b"gzip, deflate, br, zstd", "gzip", "br"),
        (b"gzip, deflate", "gzip", "gzip"),
        (b"br", "br", "br"),
        (b"br;q=0, gzip", "gzip", "gzip"),
        (b"gzip;q=0.5, br;q=0.8", "br", "br"),
        (b"GZIP;q=1.0, br;q=0.2", "gzip", "gzip"),
        (b"*", "gzip", "br"),
        (b"*;q=0, gzip;q=0", None, None),
        (b"identity", None, None),
        (b"deflate", None, None),
        (b"gzip;q=nonsense", None, None),
        (b"", None, None),
    ],
)
def test_the_encoding_is_the_clients_best_accepted_one(
    accept: bytes, per_request: str | None, once: str | None
) -> None:
    """Among equals, gzip for answers made per request (as small as Brotli at a cost the
    server pays every time: half), Brotli for the assets compressed once at its best."""
    assert negotiated(accept, DYNAMIC) == per_request
    assert negotiated(accept, ONCE) == once


async def test_the_page_is_brotli_or_gzip_as_asked_and_the_same_page_decoded(
    client: Client,
) -> None:
    plain, plain_body = await raw(client, "/", None)
    assert "content-encoding" not in plain.headers
    assert "vary" not in plain.headers  # nothing asked, nothing varies: the hot path untouched
    for accept, encoding in ((BROWSER, "gzip"), ("br", "br")):
        response, body = await raw(client, "/", accept)
        assert response.headers["content-encoding"] == encoding
        assert "Accept-Encoding" in response.headers["vary"]
        assert int(response.headers["content-length"]) == len(body) < len(plain_body) / 2
        assert decoded(response, body) == plain_body
        assert response.headers["content-security-policy"]  # the envelope's headers still come


async def test_fragments_json_and_error_pages_are_compressed_too(client: Client) -> None:
    for word in ("Велосипед", "Самовар", "Фонарь", "Карандаш", "Молоко", "Телефон"):
        await figalize(client, word)
    for path, accept in [
        ("/api/openapi.json", "application/json"),
        ("/api/v2/history", "application/json"),
        ("/r/no-such-figalization", "text/html"),  # the error page of a typed handler
        ("/no/such/path", "text/html"),  # unmatched: answered above the routes
    ]:
        response, body = await raw(client, path, BROWSER, headers={"Accept": accept})
        assert response.headers.get("content-encoding") == "gzip", (path, response.headers)
        assert decoded(response, body), path
    for path in ("/api/v2/stats", "/fragments/hint", "/fragments/total"):  # the hot polls
        tiny, body = await raw(client, path, BROWSER)
        assert tiny.status_code == 200, path
        assert len(body) < MIN_BYTES, path
        assert "content-encoding" not in tiny.headers, path
        assert tiny.headers["vary"] == "Accept-Encoding", path


async def test_the_htmx_form_answer_is_compressed(client: Client) -> None:
    page = (await client.get("/")).text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page)
    assert token
    response = await client.post(
        "/",
        data={"phrase": "Велосипед", "_csrf_token": token.group(1)},
        headers={"HX-Request": "true", "X-CSRFToken": token.group(1), "Accept-Encoding": "br"},
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "br"  # httpx decoded it
    assert "Фигосипед" in response.text


async def test_a_file_sent_in_parts_is_compressed_as_a_stream(client: Client) -> None:
    """The old, unhashed URLs are served by Litestar's static files, in chunks."""
    plain, plain_body = await raw(client, "/vendor/htmx/htmx.min.js", None)
    for accept in ("br", "gzip"):
        response, body = await raw(client, "/vendor/htmx/htmx.min.js", accept)
        assert response.headers["content-encoding"] == accept
        assert decoded(response, body) == plain_body
    assert "immutable" not in plain.headers["cache-control"]  # a fixed name: a short cache


async def test_the_page_links_only_hashed_assets_cached_immutably(client: Client) -> None:
    html = (await client.get("/")).text
    linked = re.findall(r'(?:src|href)="(/[^"]*\.(?:js|css|svg|woff2))"', html)
    linked += re.findall(r'url\("(/[^"]+)"\)', html)
    assert len(linked) == 2 + 3 + 1  # htmx, the favicon, three faces and the preload
    for url in linked:
        assert re.fullmatch(r"/static/[a-z-]+\.[0-9a-f]{16}\.[a-z0-9]+", url), url
        response, body = await raw(client, url, BROWSER)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == IMMUTABLE, url
    js, body = await raw(client, catalogue().url("htmx"), BROWSER)
    assert js.headers["content-encoding"] == "br"
    assert b"htmx" in decoded(js, body)


async def test_an_asset_under_another_hash_is_todays_bytes_without_the_year(
    client: Client,
) -> None:
    """A page of the previous release during a rolling update asks for its own hashes."""
    _, body = await raw(client, catalogue().url("htmx"), None)
    stale, stale_body = await raw(client, "/static/htmx.0000000000000000.js", None)
    assert stale.status_code == 200
    assert stale_body == body
    assert stale.headers["cache-control"] == "no-cache"
    assert (await client.get("/static/nothing.0000000000000000.js")).status_code == 404
    assert (await client.get("/static/htmx.0000000000000000.css")).status_code == 404


async def test_fonts_are_woff2_subsets_that_hold_every_letter_the_pages_show(
    client: Client,
) -> None:
    made = await figalize(client, "Ёжик в тумане, №5 — «ура»… 12 345")
    texts = ""
    for path in ("/", f"/r/{made['id']}"):
        html = (await client.get(path)).text
        body = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html, flags=re.DOTALL)
        texts += re.sub(r"<[^>]+>", "", body)
    texts += "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя\u202f→"
    shown = {ord(c) for c in texts if not c.isspace() or c in "\u00a0\u202f"}
    for name in fonts.FACES:
        response, body = await raw(client, catalogue().url(f"font-{name}"), BROWSER)
        assert response.headers["content-type"] == "font/woff2"
        assert "content-encoding" not in response.headers  # WOFF2 is Brotli inside already
        assert body[:4] == b"wOF2"
        assert len(body) < 20 * 1024, f"{name}: {len(body)} bytes"
        cmap = set(TTFont(io.BytesIO(body)).getBestCmap())
        assert shown - cmap == set(), f"{name} lacks {sorted(map(chr, shown - cmap))}"


def test_a_fonts_version_is_its_bytes_in_every_build() -> None:
    """The URL is known before the build: the same version must be the same bytes (one
    face rebuilt: each costs ~0.4 s, and the three are built the same way)."""
    assert fonts._build.__wrapped__("regular") == fonts.woff2("regular")  # type: ignore[attr-defined]


async def test_every_face_swaps_and_the_heading_face_is_preloaded(client: Client) -> None:
    html = (await client.get("/")).text
    faces = re.findall(r"@font-face\{[^}]*\}", html)
    assert len(faces) == 3
    assert all("font-display:swap" in face for face in faces)
    preloads = re.findall(r'<link rel="preload" href="([^"]+)" as="font"[^>]*crossorigin>', html)
    assert preloads == [catalogue().url("font-black")]
    assert "font-weight:900" in next(face for face in faces if preloads[0] in face)


# --- the live updates' switch -------------------------------------------------------


def token_of(html: str) -> str:
    token = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert token
    return token.group(1)


def polls(html: str) -> list[str]:
    return re.findall(r'id="(hint|total)" hx-get="[^"]+" hx-trigger="every [0-9.]+s"', html)


async def test_the_switch_pauses_for_the_visit_and_resumes_without_javascript(
    client: Client,
) -> None:
    page = (await client.get("/")).text
    assert polls(page) == ["hint", "total"]
    assert "Остановить обновления" in page
    paused = await client.post(
        "/live",
        data={"updates": "pause", "next": "/", "_csrf_token": token_of(page)},
        follow_redirects=False,
    )
    assert paused.status_code == 303
    assert paused.headers["location"] == "/"
    cookie = paused.headers["set-cookie"]
    assert cookie.startswith("figa_live=paused;")
    assert "httponly" in cookie.lower()
    assert "max-age" not in cookie.lower()  # a session cookie: for the visit

    page = (await client.get("/")).text
    assert polls(page) == []
    assert 'id="hint"' in page
    assert 'id="total"' in page
    assert "Возобновить обновления" in page

    resumed = await client.post(
        "/live",
        data={"updates": "resume", "next": "/", "_csrf_token": token_of(page)},
        follow_redirects=False,
    )
    assert resumed.status_code == 303
    assert "max-age=0" in resumed.headers["set-cookie"].lower()
    assert polls((await client.get("/")).text) == ["hint", "total"]


async def test_with_htmx_the_switch_answers_itself_and_the_live_paragraphs_out_of_band(
    client: Client,
) -> None:
    made = await figalize(client, "Самовар")
    token = token_of((await client.get("/")).text)
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    answer = await client.post("/live", data={"updates": "pause", "next": "/"}, headers=headers)
    assert answer.status_code == 200
    html = answer.text
    assert html.lstrip().startswith('<form class="live-control" id="live-control"')
    assert 'value="resume"' in html
    assert re.search(r'<p class="hint" id="hint" hx-swap-oob="true">', html)
    assert re.search(r'<p class="total" id="total" hx-swap-oob="true">', html)
    assert polls(html) == []

    result_page = f"/r/{made['id']}"
    answer = await client.post(
        "/live", data={"updates": "resume", "next": result_page}, headers=headers
    )
    assert 'id="hint"' not in answer.text  # that page has no hint to swap
    assert polls(answer.text) == ["total"]
    assert f'name="next" value="{result_page}"' in answer.text


@pytest.mark.parametrize("elsewhere", ["https://evil.example/", "//evil.example/", "/\\evil"])
async def test_the_switch_never_sends_the_visitor_to_another_site(
    client: Client, elsewhere: str
) -> None:
    token = token_of((await client.get("/")).text)
    answer = await client.post(
        "/live",
        data={"updates": "pause", "next": elsewhere, "_csrf_token": token},
        follow_redirects=False,
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/")


async def test_the_switch_needs_the_csrf_token(client: Client) -> None:
    await client.get("/")
    answer = await client.post("/live", data={"updates": "pause"}, headers={"Accept": "text/html"})
    assert answer.status_code == 403
