"""The picture worker's one write: where a figalization's picture is in its life.

The worker builds a `Database` and `SqlPictureRecords` and nothing more: it
has no business with the group commit, the outbox or the history's reads.
"""

from __future__ import annotations

from typing import Protocol

from app.domain.figalization import ImageStatus
from app.store.database import Database
from app.store.tables import figalization_table


class PictureRecords(Protocol):
    async def record(self, figalization_id: str, status: ImageStatus, key: str | None) -> None:
        """Store the picture's status and object key; `StoreUnavailable` when the
        database is away (the caller decides whether to wait)."""
        ...


class SqlPictureRecords:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def record(self, figalization_id: str, status: ImageStatus, key: str | None) -> None:
        async with self._database.connect(write=True) as connection:
            await connection.execute(
                figalization_table.update()
                .where(figalization_table.c.id == figalization_id)
                .values(image_status=status.value, image_key=key)
            )
