"""Accessibility: axe-core finds no violations on any state a visitor can reach.

axe-core (from the PyPI package axe-playwright-python) runs its default rule
set — WCAG 2.x A and AA plus best practices — inside Chromium, after htmx has
swapped what it swaps, so the checked DOM is the one a screen reader meets.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, Route, expect

from tests.browser.conftest import (
    NewContext,
    open_figalizer,
    unique_phrase,
    wait_for_picture,
)

pytestmark = pytest.mark.browser

AXE = Axe()


def readable(violations: list[dict[str, Any]]) -> str:
    """Rule, impact, help and every offending element, one block per rule."""
    blocks = []
    for violation in violations:
        lines = [
            f"{violation['id']} ({violation['impact']}): {violation['help']}",
            f"  {violation['helpUrl']}",
        ]
        for node in violation["nodes"]:
            lines.append(f"  - {' '.join(map(str, node['target']))}")
            lines.append(f"    {node['html'][:240]}")
            summary = node.get("failureSummary") or ""
            lines.extend(f"    {line}" for line in summary.splitlines())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


async def assert_no_violations(page: Page) -> None:
    results = await AXE.run(page)
    violations = results.response["violations"]
    assert not violations, (
        f"axe-core found {len(violations)} violated rule(s) on {page.url}:\n\n"
        + readable(violations)
    )


async def submit(page: Page, phrase: str) -> None:
    await page.get_by_label("Слово или фраза").fill(phrase)
    await page.get_by_role("button", name="Отфигачить").click()


async def test_the_figalizer_page(page: Page) -> None:
    await open_figalizer(page)
    await assert_no_violations(page)


async def test_the_figalizer_page_with_a_result_and_its_picture(page: Page) -> None:
    await open_figalizer(page)
    await submit(page, unique_phrase())
    await wait_for_picture(page)
    await assert_no_violations(page)


async def test_the_figalizer_page_while_the_picture_is_drawn(page: Page) -> None:
    async def never_answer(route: Route) -> None:  # the placeholder stays, deterministically
        await route.abort()

    await page.route("**/fragments/image/**", never_answer)
    await open_figalizer(page)
    await submit(page, unique_phrase())
    await expect(page.get_by_text("Рисуем картинку…")).to_be_visible()
    await assert_no_violations(page)


async def test_the_figalizer_page_with_an_error_shown_by_htmx(page: Page) -> None:
    await open_figalizer(page)
    await submit(page, "Hello")
    await expect(page.locator("#phrase-error")).to_have_text(
        "Пишите по-русски: у нас заведение культурное"
    )
    await assert_no_violations(page)


async def test_the_error_page_of_a_form_sent_without_javascript(new_context: NewContext) -> None:
    """The server's 422 page; htmx is kept away instead of all JavaScript, which axe needs."""
    page = await (await new_context()).new_page()

    async def no_htmx(route: Route) -> None:
        await route.abort()

    await page.route("**/static/htmx.*.js", no_htmx)
    await page.goto("/")
    async with page.expect_response(lambda response: response.request.method == "POST") as sent:
        await submit(page, "Hello")
    assert (await sent.value).status == 422
    await expect(page.locator("#phrase-error")).to_have_text(
        "Пишите по-русски: у нас заведение культурное"
    )
    await assert_no_violations(page)


async def test_the_permanent_page_of_a_result(page: Page, api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v2/figalizations", json={"phrase": unique_phrase()})
    assert created.status_code == 201, created.text
    figalization_id = created.json()["id"]

    await page.goto(f"/r/{figalization_id}")
    download = page.get_by_role("link", name="Скачать картинку (PNG)")
    for _ in range(20):  # the page is static: reload until the picture is drawn
        if await download.count():
            break
        await page.wait_for_timeout(250)
        await page.reload()
    await expect(download).to_be_visible()
    await assert_no_violations(page)


async def test_the_not_found_page(page: Page) -> None:
    response = await page.goto("/r/no-such-figalization")
    assert response is not None
    assert response.status == 404
    await assert_no_violations(page)


async def test_axe_itself_reports_a_violation_planted_in_the_page(page: Page) -> None:
    """Guards the harness: zero violations must mean axe ran, not that it could not."""
    await open_figalizer(page)
    await page.evaluate(
        "() => document.querySelector('main').append(Object.assign("
        "document.createElement('img'), {src: '/assets/favicon.svg'}))"
    )
    results = await AXE.run(page)
    assert "image-alt" in [violation["id"] for violation in results.response["violations"]]
