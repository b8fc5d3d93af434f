"""spec/api.md § HTML: the page with and without htmx, fragments and their polling rules."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from app.settings import Settings
from tests.conftest import AppClient, figalize, post_form, wait_until

Client = AsyncTestClient[Any]


def attribute(html: str, element_id: str, name: str) -> str:
    tag = re.search(rf'<[^>]*\bid="{element_id}"[^>]*>', html)
    assert tag, f"no element #{element_id}"
    value = re.search(rf'\b{name}="([^"]*)"', tag.group())
    assert value, f"#{element_id} has no {name}"
    return value.group(1)


async def test_the_page_has_a_labelled_field_schemes_a_button_hint_and_counter(
    client: Client,
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    html = response.text
    assert '<label class="field-label" for="phrase">' in html
    assert 'name="scheme" value="figa" checked' in html
    assert 'name="scheme" value="khren"' in html
    assert '<button class="button" type="submit">' in html
    assert "Станьте первым" in html
    assert "Отфигачено уже <strong>0</strong> раз" in html
    assert re.search(r'<script src="/static/htmx\.[0-9a-f]{16}\.js" defer>', html)


async def test_the_page_uses_no_inline_scripts_and_only_the_stylesheet_its_policy_hashes(
    client: Client,
) -> None:
    await figalize(client, "кот")
    response = await client.get("/")
    html = response.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert " style=" not in html
    styles = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    assert len(styles) == 1
    assert html.count("<style") == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    style_src = re.search(r"style-src ([^;]*)", response.headers["content-security-policy"])
    assert style_src
    assert style_src.group(1) == f"'self' 'sha256-{digest}'"


async def test_polled_regions_poll_but_only_the_result_is_a_live_region(client: Client) -> None:
    """Issue 16: the visitor's own result is the one status message; the hint and the
    counter change visibly, unannounced (README, «The page and assistive technology»)."""
    html = (await client.get("/")).text
    assert '<div class="hint-region"><p class="hint" id="hint"' in html
    assert '<div class="total-region"><p class="total" id="total"' in html
    assert attribute(html, "hint", "hx-trigger") == "every 2.0s"
    assert attribute(html, "total", "hx-trigger") == "every 2.0s"
    assert re.findall(r"aria-live|role=\"(?:status|alert|log)\"", html) == [
        'role="alert"',  # the field's error, the visitor's own too
        'role="status"',  # the result region
    ]
    assert '<div id="result" class="result-region" role="status">' in html


async def test_the_form_without_javascript_returns_the_whole_page_with_the_result(
    client: Client,
) -> None:
    response = await post_form(client, {"phrase": "Велосипед", "scheme": "khren"})
    assert response.status_code == 200
    assert "<html" in response.text
    assert "Хреносипед" in response.text
    assert 'name="scheme" value="khren" checked' in response.text


async def test_the_form_with_htmx_returns_only_the_result_fragment(client: Client) -> None:
    response = await post_form(client, {"phrase": "Велосипед", "scheme": "figa"}, htmx=True)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert "Фигосипед" in response.text
    assert 'id="phrase-error" role="alert" hx-swap-oob="true"></p>' in response.text


async def test_an_error_without_javascript_is_shown_at_the_field_and_nothing_is_stored(
    client: Client,
) -> None:
    response = await post_form(client, {"phrase": "Hello", "scheme": "figa"})
    assert response.status_code == 422
    html = response.text
    assert 'aria-describedby="phrase-help phrase-error" aria-invalid="true"' in html
    assert "Пишите по-русски: у нас заведение культурное</p>" in html
    assert 'value="Hello"' in html
    assert (await client.get("/api/v2/stats")).json() == {"total": 0}


async def test_an_error_with_htmx_is_a_200_swapped_into_the_field_error(client: Client) -> None:
    response = await post_form(client, {"phrase": "", "scheme": "figa"}, htmx=True)
    assert response.status_code == 200  # htmx does not swap 4xx bodies
    assert 'hx-swap-oob="true">Введите слово или фразу</p>' in response.text
    assert 'aria-invalid="true" hx-swap-oob="true">' in response.text  # the field says so too


async def test_user_text_is_always_escaped(client: Client) -> None:
    response = await post_form(client, {"phrase": '<script>alert("x")</script>'})
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;" in response.text


async def test_the_hint_shows_the_newest_figalization_and_204_when_unchanged(
    client: Client,
) -> None:
    first = await client.get("/fragments/hint")
    version = attribute(first.text, "hint", "hx-get").split("v=")[1]
    assert (await client.get("/fragments/hint", params={"v": version})).status_code == 204
    created = await figalize(client, "Велосипед")
    changed = await client.get("/fragments/hint", params={"v": version})
    assert changed.status_code == 200
    assert "Велосипед → Фигосипед" in changed.text
    assert f'href="/r/{created["id"]}"' in changed.text


async def test_the_counter_updates_and_answers_204_when_unchanged(client: Client) -> None:
    await figalize(client, "кот")
    current = await client.get("/fragments/total")
    assert "Отфигачено уже <strong>1</strong> раз" in current.text
    version = attribute(current.text, "total", "hx-get").split("v=")[1]
    assert (await client.get("/fragments/total", params={"v": version})).status_code == 204
    await figalize(client, "кот")
    assert (
        "<strong>2</strong> раза"
        in (await client.get("/fragments/total", params={"v": version})).text
    )


async def test_the_picture_fragment_polls_until_ready_then_stops_with_286(client: Client) -> None:
    created = await figalize(client, "Велосипед")
    url = f"/fragments/image/{created['id']}"

    async def finished() -> bool:
        return (await client.get(url)).status_code == 286

    await wait_until(finished)
    final = (await client.get(url)).text
    assert "hx-get" not in final
    assert "hx-trigger" not in final
    assert f'download="figachechnaya-{created["id"]}.png"' in final
    assert 'alt="Картинка: Велосипед → Фигосипед"' in final


async def test_a_result_has_a_permanent_page_with_open_graph_tags(client: Client) -> None:
    created = await figalize(client, "Велосипед")

    async def ready() -> bool:
        return (await client.get(f"/api/v2/figalizations/{created['id']}")).json()["image"][
            "status"
        ] == "ready"

    await wait_until(ready)
    page = await client.get(f"/r/{created['id']}")
    assert page.status_code == 200
    assert "Фигосипед" in page.text
    assert '<meta property="og:title" content="Велосипед → Фигосипед">' in page.text
    assert f'/api/v2/figalizations/{created["id"]}/image">' in page.text


async def test_an_unknown_result_page_is_a_friendly_404(client: Client) -> None:
    response = await client.get("/r/nope", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "<html" in response.text


async def test_a_form_post_without_the_csrf_token_is_refused(client: Client) -> None:
    response = await client.post("/", data={"phrase": "кот"}, headers={"Accept": "text/html"})
    assert response.status_code == 403
    assert (await client.get("/api/v2/stats")).json() == {"total": 0}


async def test_pages_carry_a_strict_content_security_policy_and_security_headers(
    client: Client,
) -> None:
    headers = (await client.get("/")).headers
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "strict-transport-security" not in headers  # plain HTTP: HSTS would mean nothing


async def test_each_app_renders_its_own_live_fragments(
    app_client: AppClient, local_settings: Settings, tmp_path: Path
) -> None:
    """The render-once copy belongs to one app's live feed: another app in the same
    process, at the same version, shows its own settings, not the first app's copy."""
    apps = {}
    for seconds in (7.0, 3.0):
        folder = tmp_path / str(seconds)
        apps[seconds] = await app_client(
            Settings(
                **local_settings.model_dump()
                | {
                    "database_url": f"sqlite+aiosqlite:///{folder / 'db.sqlite3'}",
                    "image_store_url": str(folder / "images"),
                    "poll_seconds": seconds,
                }
            )
        )
    for seconds, app in apps.items():
        hint = (await app.get("/fragments/hint")).text
        assert attribute(hint, "hint", "hx-trigger") == f"every {seconds}s"
