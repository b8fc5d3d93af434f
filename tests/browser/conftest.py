"""Browser tests' fixtures: one real server and one Debian Chromium per session.

The server is `figachechnaya serve` in a child process (single-process mode:
SQLite file, in-process worker, picture folder) with fast polling, so "updates
within the poll interval" takes a second, not minutes. Chromium is the system
package (`apt-get install chromium`), driven by Playwright through
`executable_path`; Playwright never downloads a browser here. Without it the
tests fail with the install command — CI installs it, a skip would hide that.

Tests share the server and its database: each one uses its own phrases and
reads counts relative to what it saw first, never absolute numbers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.services.ports import LOCALHOST, free_port
from tests.services.processes import ServerProcess

REPOSITORY = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium dials Google's services at
# start, and this closed network refuses those connections.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POLL_SECONDS = 0.5
LIVE_REFRESH_SECONDS = 0.2
# Long enough for a picture to be drawn and for several polls; short enough
# that a broken page fails fast.
TIMEOUT_MS = 10_000
DESKTOP = {"width": 1280, "height": 800}

NewContext = Callable[..., Awaitable[BrowserContext]]


@dataclass(frozen=True)
class Server:
    url: str
    process: ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`figachechnaya serve` on a free port, stopped when the session ends."""
    folder = tmp_path_factory.mktemp("browser-server")
    with serving(
        folder,
        FIGA_POLL_SECONDS=str(POLL_SECONDS),
        FIGA_LIVE_REFRESH_SECONDS=str(LIVE_REFRESH_SECONDS),
    ) as started:
        yield started


@contextlib.contextmanager
def serving(folder: Path, **settings: str) -> Iterator[Server]:
    """`figachechnaya serve` in `folder` with these settings over the tests' own."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("FIGA_")}
    env |= {
        "FIGA_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'db.sqlite3'}",
        "FIGA_IMAGE_STORE_URL": str(folder / "images"),
        "FIGA_RATE_LIMIT_PER_MINUTE": "0",  # every page here comes from one address
        "FIGA_METRICS_PORT": "0",  # no fixed port: another test's server may hold 9101
        **settings,
    }
    command = Path(sys.executable).with_name("figachechnaya")
    process = ServerProcess(
        "figachechnaya serve",
        [str(command), "serve", "--host", LOCALHOST, "--port", str(port)],
        folder / "server.log",
        env=env,
    )
    url = f"http://{LOCALHOST}:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    process.spawn()
    try:
        process.wait_ready(healthy, timeout=30.0, what="GET /healthz answered 200")
        yield Server(url, process)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def server_url(server: Server) -> str:
    return server.url


@pytest.fixture(autouse=True)
def server_keeps_serving(server: Server) -> Iterator[None]:
    """A server that died explains every later failure: say so, with its log."""
    if not server.process.running:
        pytest.fail(f"the server under test has exited.\n{server.process.describe_log()}")
    yield
    if not server.process.running:
        pytest.fail(f"the server under test exited.\n{server.process.describe_log()}")


@pytest_asyncio.fixture(loop_scope="session")
async def api(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the same server, to prepare data without a browser."""
    async with httpx.AsyncClient(base_url=server_url, timeout=10.0) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's Chromium "
            "(apt-get install -y chromium); Playwright's own download cannot work here",
            pytrace=False,
        )
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def new_context(browser: Browser, server_url: str) -> AsyncIterator[NewContext]:
    """Open browser contexts (separate visitors) on the server; all closed after the test."""
    contexts: list[BrowserContext] = []

    async def open_context(**options: Any) -> BrowserContext:
        options.setdefault("viewport", DESKTOP)
        context = await browser.new_context(base_url=server_url, locale="ru-RU", **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(new_context: NewContext) -> Page:
    """A visitor's tab with JavaScript on, at desktop size, nothing opened yet."""
    context = await new_context()
    return await context.new_page()


def unique_phrase(word: str = "Велосипед") -> str:
    """A phrase nobody else in the session submits: the word and a random number."""
    return f"{word} {secrets.randbelow(10**9)}"


async def open_figalizer(page: Page) -> None:
    """Open `/` and wait until htmx has taken over the form."""
    await page.goto("/")
    await page.wait_for_function("() => window.htmx !== undefined")


async def wait_for_picture(page: Page) -> None:
    """Wait until the result's picture replaced the placeholder and has loaded."""
    image = page.locator("#result figure.picture img")
    await expect(image).to_be_visible()
    await expect(page.get_by_text("Рисуем картинку…")).to_have_count(0)
    await page.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=await image.element_handle()
    )
