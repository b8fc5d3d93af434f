"""spec/api.md § HTML as a visitor meets it: the figalizer page in a real Chromium.

With htmx the result, the error, the picture, the hint and the counter change
in place; without JavaScript the same form works by full page loads; with the
keyboard alone every control is reachable, operable and visibly focused.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, ElementHandle, Page, expect

from tests.browser.conftest import (
    REPOSITORY,
    NewContext,
    open_figalizer,
    unique_phrase,
    wait_for_picture,
)

pytestmark = pytest.mark.browser

NOT_RUSSIAN = "Пишите по-русски: у нас заведение культурное"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCREENSHOTS = REPOSITORY / "test-artifacts" / "screenshots"
README_SCREENSHOTS = {
    "desktop": REPOSITORY / "docs" / "screenshot.png",
    "mobile": REPOSITORY / "docs" / "screenshot-mobile.png",
}


async def submit(page: Page, phrase: str, scheme: str = "Фигачечная") -> None:
    await page.get_by_label("Слово или фраза").fill(phrase)
    await page.get_by_role("radio", name=scheme).check()
    await page.get_by_role("button", name="Отфигачить").click()


async def mark_the_document(page: Page) -> None:
    """A value on `window` that a page load would wipe."""
    await page.evaluate("() => { window.figaNoReloadMarker = 'still the same document'; }")


async def document_survived(page: Page) -> bool:
    return await page.evaluate("() => window.figaNoReloadMarker === 'still the same document'")


async def shown_total(page: Page) -> int:
    text = await page.locator("#total strong").inner_text()
    return int(re.sub(r"\D", "", text))


async def test_a_figalization_appears_in_place_without_a_page_reload(
    page: Page, server_url: str
) -> None:
    await open_figalizer(page)
    await mark_the_document(page)

    await submit(page, "Велосипед", scheme="Хреначечная")

    await expect(page.locator("#result .result-text")).to_have_text("Стало: Хреносипед")
    await expect(page.locator("#result .result-from")).to_contain_text("Велосипед")
    await expect(page.locator("#result .tag")).to_have_text("Хреначечная")
    assert await document_survived(page), "the page was reloaded"
    assert page.url == f"{server_url}/"


async def test_another_visitors_figalization_updates_the_hint_and_the_counter_by_itself(
    page: Page, new_context: NewContext
) -> None:
    await open_figalizer(page)
    await mark_the_document(page)
    before = await shown_total(page)

    other = await (await new_context()).new_page()
    await open_figalizer(other)
    phrase = unique_phrase("Самовар")
    await submit(other, phrase)
    result = phrase.replace("Самовар", "Фиговар")
    await expect(other.locator("#result .result-text")).to_have_text(f"Стало: {result}")

    # A few poll intervals (0.5 s) plus the server's refresh (0.2 s), with room for a busy CI.
    await expect(page.locator("#hint")).to_have_text(f"Например, {phrase} → {result}", timeout=5000)
    await expect(page.locator("#total")).to_have_text(
        re.compile(rf"^Отфигачено уже {before + 1} раза?$"), timeout=5000
    )
    assert await document_survived(page), "the first visitor's page was reloaded"


async def test_the_picture_replaces_its_placeholder_and_downloads_as_a_png(page: Page) -> None:
    await open_figalizer(page)
    await submit(page, unique_phrase())
    await expect(page.get_by_text("Рисуем картинку…")).to_be_visible()

    await wait_for_picture(page)

    link = page.get_by_role("link", name="Скачать картинку (PNG)")
    await expect(link).to_be_visible()
    download_name = await link.get_attribute("download")
    assert download_name
    assert re.fullmatch(r"figachechnaya-\w+\.png", download_name), download_name
    async with page.expect_download() as pending:
        await link.click()
    download = await pending.value
    assert download.suggested_filename == download_name
    path = await download.path()
    assert path.read_bytes()[:8] == PNG_SIGNATURE


async def test_a_phrase_that_is_not_russian_shows_the_error_at_the_field(page: Page) -> None:
    await open_figalizer(page)
    await mark_the_document(page)
    field = page.get_by_label("Слово или фраза")

    await submit(page, "Hello")

    error = page.locator("form #phrase-error")
    await expect(error).to_have_text(NOT_RUSSIAN)
    await expect(error).to_be_visible()
    assert "phrase-error" in ((await field.get_attribute("aria-describedby")) or "").split()
    await expect(field).to_have_accessible_description(re.compile(NOT_RUSSIAN))
    await expect(page.locator("#result")).to_be_empty()
    assert await document_survived(page)

    await submit(page, "Велосипед")
    await expect(page.locator("#result .result-text")).to_have_text("Стало: Фигосипед")
    await expect(error).to_be_empty()
    await expect(error).to_be_hidden()


async def test_without_javascript_the_form_works_by_full_page_loads(
    new_context: NewContext,
) -> None:
    page = await (await new_context(java_script_enabled=False)).new_page()
    await page.goto("/")
    phrase = unique_phrase()

    async with page.expect_response(lambda response: response.request.method == "POST") as sent:
        await submit(page, phrase, scheme="Хреначечная")
    assert (await sent.value).status == 200
    await expect(page.locator("#result .result-text")).to_have_text(
        "Стало: " + phrase.replace("Велосипед", "Хреносипед")
    )
    await expect(page.get_by_role("radio", name="Хреначечная")).to_be_checked()

    # The picture is drawn after the page was sent: the visitor follows a link to see it.
    await page.get_by_role("link", name="Постоянная ссылка").click()
    await expect(page).to_have_url(re.compile(r"/r/\w+$"))
    download = page.get_by_role("link", name="Скачать картинку (PNG)")
    for _ in range(20):
        if await download.count():
            break
        await page.wait_for_timeout(250)
        await page.reload()
    await expect(download).to_be_visible()
    await expect(page.get_by_role("img", name=re.compile(re.escape(phrase)))).to_be_visible()


async def test_without_javascript_an_error_comes_back_at_the_field(
    new_context: NewContext,
) -> None:
    page = await (await new_context(java_script_enabled=False)).new_page()
    await page.goto("/")

    async with page.expect_response(lambda response: response.request.method == "POST") as sent:
        await submit(page, "Hello")

    assert (await sent.value).status == 422
    await expect(page.locator("form #phrase-error")).to_have_text(NOT_RUSSIAN)
    field = page.get_by_label("Слово или фраза")
    await expect(field).to_have_value("Hello")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(field).to_have_accessible_description(re.compile(NOT_RUSSIAN))
    await expect(field).to_be_focused()


# --- keyboard ---------------------------------------------------------------

# What makes focus visible: the element's own outline or shadow, or, for a
# visually hidden radio, the pill drawn by the <span> right after it.
FOCUS_LOOK = """element => {
    const styled = element.type === 'radio' && getComputedStyle(element).opacity === '0'
        ? element.nextElementSibling : element;
    const style = getComputedStyle(styled);
    return {
        outline: `${style.outlineStyle} ${style.outlineWidth} ${style.outlineColor}`,
        outlineStyle: style.outlineStyle,
        outlineWidth: parseFloat(style.outlineWidth),
        boxShadow: style.boxShadow,
        border: style.borderColor,
        visible: styled.getBoundingClientRect().width > 1 && style.visibility !== 'hidden',
    };
}"""
# A readable name for a Tab stop: its label or its text without aria-hidden parts.
DESCRIBE = """element => {
    const source = element.labels?.[0] ?? element;
    const copy = source.cloneNode(true);
    copy.querySelectorAll('[aria-hidden="true"], input').forEach(part => part.remove());
    const name = element.getAttribute('aria-label') || copy.textContent || '';
    return `${element.tagName.toLowerCase()} ${name.trim().replace(/\\s+/g, ' ')}`;
}"""


async def focused(page: Page) -> ElementHandle:
    handle = await page.evaluate_handle("() => document.activeElement")
    element = handle.as_element()
    assert element is not None
    return element


async def focused_name(page: Page) -> str:
    return str(await (await focused(page)).evaluate(DESCRIBE))


async def tab_cycle(page: Page) -> list[tuple[str, ElementHandle, dict[str, Any]]]:
    """Tab until the focus comes round again: every stop, its name and its focused look."""
    stops: list[tuple[str, ElementHandle, dict[str, Any]]] = []
    for _ in range(40):
        await page.keyboard.press("Tab")
        element = await focused(page)
        if await element.evaluate("e => e === document.body"):
            continue  # past the last control, before wrapping round
        if stops and await element.evaluate("(e, first) => e === first", stops[0][1]):
            return stops
        stops.append(
            (await element.evaluate(DESCRIBE), element, await element.evaluate(FOCUS_LOOK))
        )
    pytest.fail(f"the Tab order never came round: {[name for name, _, _ in stops]}")


async def test_the_keyboard_alone_skips_to_the_form_picks_a_scheme_and_submits(
    page: Page,
) -> None:
    await open_figalizer(page)

    await page.keyboard.press("Tab")
    assert await focused_name(page) == "a К содержимому"
    await expect(page.get_by_role("link", name="К содержимому")).to_be_in_viewport()
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    assert await focused_name(page) == "input Слово или фраза", "the skip link skips nothing"

    await page.keyboard.type("Велосипед")
    await page.keyboard.press("Tab")
    assert await focused_name(page) == "button Отфигачить"
    await page.keyboard.press("Tab")
    assert await focused_name(page) == "input Фигачечная"
    await page.keyboard.press("ArrowRight")
    assert await focused_name(page) == "input Хреначечная"
    await expect(page.get_by_role("radio", name="Хреначечная")).to_be_checked()
    await page.keyboard.press("ArrowLeft")
    await expect(page.get_by_role("radio", name="Фигачечная")).to_be_checked()
    await page.keyboard.press("ArrowRight")

    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Shift+Tab")
    assert await focused_name(page) == "input Слово или фраза"
    await page.keyboard.press("Enter")
    await expect(page.locator("#result .result-text")).to_have_text("Стало: Хреносипед")


async def test_tab_reaches_every_control_and_link_and_shows_where_the_focus_is(
    page: Page,
) -> None:
    await open_figalizer(page)
    await page.get_by_role("radio", name="Хреначечная").check()
    await page.get_by_label("Слово или фраза").press_sequentially("Велосипед")
    await page.keyboard.press("Enter")
    await wait_for_picture(page)
    await expect(page.locator("#hint")).to_contain_text("Велосипед → Хреносипед")

    stops = await tab_cycle(page)
    names = [name for name, _, _ in stops]
    for expected in (
        "a К содержимому",
        "a Фигачечная",
        "a API",
        "input Слово или фраза",
        "button Отфигачить",
        "input Хреначечная",
        "a Постоянная ссылка",
        "a Скачать картинку (PNG)",
        "button Остановить обновления",  # the live updates' pause (WCAG 2.2.2)
    ):
        assert expected in names, f"Tab never reaches {expected!r}; it stops at {names}"
    assert any(name.startswith("a Велосипед → ") for name in names), "the hint link"
    assert "input Фигачечная" not in names, "Tab enters a radio group once, at its checked radio"

    await page.evaluate("() => document.activeElement.blur()")
    for name, element, look in stops:
        unfocused = await element.evaluate(FOCUS_LOOK)
        assert look["visible"], f"{name}: the focused element is invisible"
        shows_outline = look["outlineStyle"] not in ("none", "hidden") and look["outlineWidth"] >= 2
        assert shows_outline or look["boxShadow"] != unfocused["boxShadow"], (
            f"{name}: no visible focus indicator ({look})"
        )
        assert (look["outline"], look["boxShadow"]) != (
            unfocused["outline"],
            unfocused["boxShadow"],
        ), f"{name}: looks the same focused and unfocused ({look})"


# --- the APIs from the page ---------------------------------------------------

FETCH_JSON = """async ([method, path, body]) => {
    const response = await fetch(path, {
        method,
        headers: body === null ? {} : {'Content-Type': 'application/json'},
        body: body === null ? undefined : JSON.stringify(body),
    });
    return {status: response.status, body: await response.json()};
}"""


async def fetch_json(page: Page, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer: dict[str, Any] = await page.evaluate(FETCH_JSON, [method, path, body])
    return answer


async def test_the_compat_and_v2_apis_answer_scripts_on_the_pages_origin(page: Page) -> None:
    await open_figalizer(page)
    stats = await fetch_json(page, "GET", "/api/v2/stats")
    assert stats["status"] == 200
    before = stats["body"]["total"]

    figalized = await fetch_json(
        page, "POST", "/api/figalize/", {"schema_id": "0", "phrase": "кот"}
    )
    assert figalized == {"status": 200, "body": {"data": "фигот"}}
    assert await fetch_json(page, "GET", "/api/getschemas/") == {
        "status": 200,
        "body": {"0": "Фигачечная", "1": "Хреначечная"},
    }
    created = await fetch_json(
        page, "POST", "/api/v2/figalizations", {"phrase": "Велосипед", "scheme": "khren"}
    )
    assert created["status"] == 201
    assert created["body"]["result"] == "Хреносипед"

    assert await fetch_json(page, "GET", "/api/v2/stats") == {
        "status": 200,
        "body": {"total": before + 2},
    }


# --- screenshots and narrow screens -------------------------------------------


async def page_with_a_picture(new_context: NewContext, width: int, height: int) -> Page:
    page = await (await new_context(viewport={"width": width, "height": height})).new_page()
    await open_figalizer(page)
    await submit(page, "Велосипед")
    await wait_for_picture(page)
    await page.evaluate("() => document.fonts.ready")
    return page


async def scroll_width(page: Page) -> int:
    """How wide the page is; wider than the viewport means scrolling sideways."""
    width: int = await page.evaluate("() => document.scrollingElement.scrollWidth")
    return width


@pytest.mark.parametrize(
    ("name", "width", "height"), [("desktop", 1280, 800), ("mobile", 360, 740)]
)
async def test_screenshots_of_the_page_with_a_picture(
    new_context: NewContext, name: str, width: int, height: int
) -> None:
    page = await page_with_a_picture(new_context, width, height)
    await page.mouse.move(0, 0)  # no hover effects in the picture
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"figalizer-{name}-{width}x{height}.png"
    await page.screenshot(path=path, full_page=True, animations="disabled")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert await scroll_width(page) <= width
    if os.environ.get("FIGA_UPDATE_SCREENSHOT") == "1":  # the README's two pictures
        README_SCREENSHOTS[name].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOTS[name])


WIDER_THAN_320 = """() => [...document.body.querySelectorAll('*')]
    .filter(element => element.getBoundingClientRect().right > 320)
    .map(element => `${element.outerHTML.slice(0, 60)}… in #${element.parentElement.id}`)"""


async def test_a_320_pixel_screen_never_scrolls_sideways(new_context: NewContext) -> None:
    page = await page_with_a_picture(new_context, 320, 640)
    assert await scroll_width(page) <= 320


async def test_a_320_pixel_screen_wraps_a_long_word_in_the_result_and_in_the_hint(
    new_context: NewContext,
) -> None:
    """WCAG 1.4.10 Reflow: 35 letters in one word are wider than the phone's column."""
    page = await (await new_context(viewport={"width": 320, "height": 640})).new_page()
    await open_figalizer(page)
    long_word = "Превысокомногорассмотрительствующий"

    await submit(page, long_word)

    await expect(page.locator("#result .result-from")).to_contain_text(long_word)
    await expect(page.locator("#hint")).to_contain_text(long_word)
    overflowing = await page.evaluate(WIDER_THAN_320)
    assert await scroll_width(page) <= 320, f"wider than the screen: {overflowing}"


async def test_the_page_runs_without_script_errors_or_blocked_resources(page: Page) -> None:
    """A Content-Security-Policy violation or a broken script shows up only in the console."""
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))

    await open_figalizer(page)
    await submit(page, unique_phrase())
    await wait_for_picture(page)
    await page.wait_for_timeout(1000)  # two polls of the hint and the counter

    assert problems == []


@pytest.mark.browser
async def test_the_interactive_api_docs_render_from_our_own_assets(page: Page) -> None:
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    await page.goto("/api/docs")
    await page.locator(".swagger-ui .opblock").first.wait_for(timeout=15_000)
    assert await page.locator(".opblock-summary-path", has_text="/api/v2/figalizations").count()
    assert failed == []
