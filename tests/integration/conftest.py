"""The SQL store on both backends it supports, for the tests that run on each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.settings import Settings
from app.store.history import SqlHistory
from app.store.migrate import upgrade_async


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def history(database_url: str) -> AsyncIterator[SqlHistory]:
    settings = Settings(database_url=database_url)
    await upgrade_async(settings)
    store = SqlHistory.from_settings(settings)
    yield store
    await store.close()
