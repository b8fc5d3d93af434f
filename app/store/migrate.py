"""Apply the Alembic migrations in `migrations/` to a database URL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from app.settings import Settings

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(settings: Settings) -> None:
    """Bring the schema to the newest revision; a no-op when it already is."""
    path = settings.sqlite_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.database_url), "head")


async def upgrade_async(settings: Settings) -> None:
    """`upgrade` from inside a running event loop (Alembic's env starts its own)."""
    await asyncio.to_thread(upgrade, settings)
