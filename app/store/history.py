"""Figalization history, read back: the one SQL implementation for SQLite and PostgreSQL.

`History` is what the service layer reads through; `SqlHistory` answers it
from the tables, and `to_figalization` is the one mapping of a stored row to
the product's `Figalization`. Reads only: storing is `writes.py`'s, a
picture's status `pictures.py`'s, and a database that is away shows up as
`StoreUnavailable` (the `Database`'s rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.figalization import Figalization, ImageStatus
from app.store.database import Database
from app.store.tables import counter_table, figalization_table


class History(Protocol):
    async def get(self, figalization_id: str) -> Figalization | None: ...
    async def page(self, *, limit: int, before: str | None) -> list[Figalization]: ...
    async def latest(self) -> Figalization | None: ...
    async def total(self) -> int: ...
    async def newest_with_result(self, result: str) -> Figalization | None: ...


class SqlHistory:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, figalization_id: str) -> Figalization | None:
        query = figalization_table.select().where(figalization_table.c.id == figalization_id)
        return await self._one(query)

    async def page(self, *, limit: int, before: str | None) -> list[Figalization]:
        """Newest first, strictly older than the figalization `before` (a cursor)."""
        query = figalization_table.select().order_by(figalization_table.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(figalization_table.c.id < before)

        async def rows(connection: AsyncConnection) -> Sequence[Any]:
            return (await connection.execute(query)).mappings().all()

        return [to_figalization(row) for row in await self._database.read(rows)]

    async def latest(self) -> Figalization | None:
        query = figalization_table.select().order_by(figalization_table.c.id.desc()).limit(1)
        return await self._one(query)

    async def total(self) -> int:

        async def value(connection: AsyncConnection) -> Any:
            return await connection.scalar(sa.select(sa.func.sum(counter_table.c.value)))

        return int(await self._database.read(value) or 0)

    async def newest_with_result(self, result: str) -> Figalization | None:
        query = (
            figalization_table.select()
            .where(figalization_table.c.result == result)
            .order_by(figalization_table.c.id.desc())
            .limit(1)
        )
        return await self._one(query)

    async def _one(self, query: sa.Select[Any]) -> Figalization | None:

        async def first(connection: AsyncConnection) -> Any:
            return (await connection.execute(query)).mappings().first()

        row = await self._database.read(first)
        return None if row is None else to_figalization(row)


def to_figalization(row: Any) -> Figalization:
    created_at: datetime = row["created_at"]
    if created_at.tzinfo is None:  # SQLite gives back naive datetimes; they were stored as UTC
        created_at = created_at.replace(tzinfo=UTC)
    return Figalization(
        id=row["id"],
        phrase=row["phrase"],
        scheme=row["scheme"],
        result=row["result"],
        created_at=created_at,
        image_status=ImageStatus(row["image_status"]),
        image_key=row["image_key"],
    )
