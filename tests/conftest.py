"""Shared fixtures: a running app per test, on SQLite or on the real services.

Servers (PostgreSQL, Kafka, S3) come from `tests.services.fixtures`, started
once per session (per test process: the suite runs in parallel, see
`tests.parallel`) and only when a test asks for them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings

pytest_plugins = ["tests.services.fixtures", "tests.parallel"]

AppClient = Callable[..., Awaitable[AsyncTestClient[Any]]]


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    """The single-process mode: SQLite file, in-process queue, a picture folder; no
    operations port (tests that scrape metrics give the app a free port)."""
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'figachechnaya.sqlite3'}",
        image_store_url=str(tmp_path / "images"),
        live_refresh_seconds=0.2,
        metrics_port=0,
    )


@pytest.fixture
async def client(local_settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    """An app in the single-process mode with its lifespan running."""
    async with AsyncTestClient(app=create_app(local_settings)) as test_client:
        yield test_client


@pytest.fixture
async def app_client() -> AsyncIterator[AppClient]:
    """Start apps with given settings; all are shut down after the test."""
    clients: list[AsyncTestClient[Any]] = []

    async def start(settings: Settings) -> AsyncTestClient[Any]:
        test_client: AsyncTestClient[Any] = AsyncTestClient(app=create_app(settings))
        await test_client.__aenter__()
        clients.append(test_client)
        return test_client

    yield start
    for test_client in reversed(clients):
        await test_client.__aexit__(None, None, None)


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, within: float = 20.0, every: float = 0.1
) -> None:
    """Poll an async condition; fail the test with a clear message when it never holds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{condition.__name__} did not hold within {within}s")
        await asyncio.sleep(every)


async def figalize(
    client: httpx.AsyncClient | AsyncTestClient[Any], phrase: str, **extra: Any
) -> Any:
    response = await client.post("/api/v2/figalizations", json={"phrase": phrase, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def post_form(
    client: AsyncTestClient[Any], data: dict[str, str], *, htmx: bool = False
) -> httpx.Response:
    """Submit the page's form as a browser would: with the CSRF token the page carried."""
    page = (await client.get("/")).text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page)
    assert token, "the form carries no CSRF token"
    headers = {"HX-Request": "true", "X-CSRFToken": token.group(1)} if htmx else {}
    return await client.post("/", data={**data, "_csrf_token": token.group(1)}, headers=headers)
