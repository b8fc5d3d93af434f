"""Issue 16 items 3–4: live updates as a screen-reader user and a keyboard user meet them.

What a screen reader announces by itself is what changes inside a live region
(`aria-live`, or the roles `status`, `alert` and `log`, which imply it). The
page records those changes the way assistive technology notices them — a
MutationObserver on the whole document, each change attributed to the live
region around it — while another visitor's figalizations arrive by three
polls; Playwright's aria snapshot (the accessibility tree) shows that the hint
and the counter did change for everyone who looks, and nothing was announced.
Then the visitor's own result is: that, and only that, is the status message.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import pytest
from playwright.async_api import Page, Request, expect

from tests.browser.conftest import NewContext, open_figalizer, unique_phrase
from tests.browser.test_figalizer_in_chromium import focused_name, submit

pytestmark = pytest.mark.browser

LIVE = '[aria-live]:not([aria-live="off"]), [role="status"], [role="alert"], [role="log"]'
RECORD_ANNOUNCEMENTS = """live => {
    window.announced = [];
    const regionOf = node =>
        (node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement)?.closest(live);
    new MutationObserver(mutations => {
        const regions = new Set();
        for (const mutation of mutations) {
            for (const node of [mutation.target, ...mutation.addedNodes]) {
                const region = regionOf(node);
                if (region) regions.add(region);
            }
        }
        for (const region of regions) {
            const text = region.textContent.replace(/\\s+/g, ' ').trim();
            if (text) window.announced.push({region: region.id || region.className, text});
        }
    }).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


async def announced(page: Page) -> list[dict[str, str]]:
    said: list[dict[str, str]] = await page.evaluate("() => window.announced")
    return said


async def live_regions(page: Page) -> list[dict[str, Any]]:
    regions: list[dict[str, Any]] = await page.evaluate(
        """live => [...document.querySelectorAll(live)].map(region => ({
            id: region.id, role: region.getAttribute('role'),
            live: region.getAttribute('aria-live'), text: region.textContent.trim()}))""",
        LIVE,
    )
    return regions


async def trees(page: Page) -> tuple[str, list[str]]:
    """The aria snapshot of the whole page, and of the hint and the counter."""
    polled = [await page.locator(f"#{name}").aria_snapshot() for name in ("hint", "total")]
    return await page.locator("body").aria_snapshot(), polled


async def another_visitor_figalizes(other: Page, word: str) -> str:
    phrase = unique_phrase(word)
    await submit(other, phrase)
    await expect(other.locator("#result .result-from")).to_contain_text(phrase)
    return phrase


async def test_three_polls_announce_nothing_and_the_visitors_own_result_is_announced(
    page: Page, new_context: NewContext
) -> None:
    await open_figalizer(page)
    await page.evaluate(RECORD_ANNOUNCEMENTS, LIVE)
    regions = await live_regions(page)
    assert [(r["id"], r["role"], r["live"]) for r in regions] == [
        ("phrase-error", "alert", None),  # the visitor's own error
        ("result", "status", None),  # the visitor's own result
    ]
    tree_before, polled_before = await trees(page)
    total = int(re.sub(r"\D", "", await page.locator("#total strong").inner_text()))

    other = await (await new_context()).new_page()
    await open_figalizer(other)
    for word in ("Самовар", "Фонарь", "Карандаш"):
        phrase = await another_visitor_figalizes(other, word)
        await expect(page.locator("#hint")).to_contain_text(phrase)  # a poll brought it
    await expect(page.locator("#total strong")).to_have_text(  # and one the counter
        re.compile(rf"^{total + 3:,}$".replace(",", "\u202f"))
    )

    tree_after, polled_after = await trees(page)
    for before, after in zip(polled_before, polled_after, strict=True):
        assert before != after, f"a polled paragraph did not change: {before}"
    assert phrase in polled_after[0]
    changed = {
        line[1:].strip()
        for line in difflib.unified_diff(tree_before.splitlines(), tree_after.splitlines(), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    }
    polled_lines = {
        line.strip() for tree in polled_before + polled_after for line in tree.split("\n")
    }
    assert changed, "the tree did not change"
    assert changed <= polled_lines, f"changed elsewhere: {changed - polled_lines}"
    assert await announced(page) == [], "a stranger's figalization was announced"
    assert await live_regions(page) == regions

    await submit(page, "Велосипед")
    await expect(page.locator("#result .result-text")).to_have_text("Стало: Фигосипед")
    said = await announced(page)
    assert said, "the visitor's own result was not announced"
    assert {item["region"] for item in said} == {"result"}
    assert "Велосипед → Стало: Фигосипед" in said[0]["text"]


async def tab_to(page: Page, name: str) -> None:
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await focused_name(page) == name:
            return
    pytest.fail(f"Tab never reached {name!r}")


async def test_the_keyboard_pauses_the_live_updates_for_the_visit_and_resumes_them(
    page: Page, new_context: NewContext
) -> None:
    await open_figalizer(page)
    mine: list[str] = []

    def count_poll(request: Request) -> None:
        if "/fragments/hint" in request.url or "/fragments/total" in request.url:
            mine.append(request.url)

    page.on("request", count_poll)
    await tab_to(page, "button Остановить обновления")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Возобновить обновления")).to_be_focused()
    await expect(page.locator("#live-state")).to_have_text("Подсказка и счётчик на паузе.")
    hint = await page.locator("#hint").inner_text()
    total = await page.locator("#total").inner_text()
    mine.clear()

    # The clock: another visitor's page, which still polls, shows the news and then
    # polls twice more — time enough for ours to have polled several times.
    other = await (await new_context()).new_page()
    await open_figalizer(other)
    phrase = await another_visitor_figalizes(other, "Самовар")
    await expect(other.locator("#hint")).to_contain_text(phrase)
    for _ in range(2):
        async with other.expect_request(lambda request: "/fragments/" in request.url):
            pass
    assert mine == [], "a paused page polled"
    assert await page.locator("#hint").inner_text() == hint
    assert await page.locator("#total").inner_text() == total

    await page.reload()  # remembered for the visit
    await page.wait_for_function("() => window.htmx !== undefined")
    await expect(page.get_by_role("button", name="Возобновить обновления")).to_be_visible()
    await expect(page.locator("#hint")).to_contain_text(phrase)  # the page is current
    assert await page.locator("#hint").get_attribute("hx-trigger") is None

    await tab_to(page, "button Возобновить обновления")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Остановить обновления")).to_be_focused()
    newer = await another_visitor_figalizes(other, "Фонарь")
    await expect(page.locator("#hint")).to_contain_text(newer)  # polling again


async def test_without_javascript_the_pause_control_works_by_page_loads(
    new_context: NewContext,
) -> None:
    page = await (await new_context(java_script_enabled=False)).new_page()
    await page.goto("/")
    async with page.expect_response(lambda response: response.request.method == "POST") as sent:
        await page.get_by_role("button", name="Остановить обновления").click()
    assert (await sent.value).status == 303
    await expect(page.get_by_role("button", name="Возобновить обновления")).to_be_visible()
    assert await page.locator("#total").get_attribute("hx-get") is None
