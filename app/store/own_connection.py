"""One asyncpg connection kept by one task, outside SQLAlchemy's pool.

The statements that run with every batch of figalizations (the group commit's
insert, the relay's delete of published jobs) are one statement each, a
transaction by itself; through the pool each cost a pre-ping, BEGIN and COMMIT
and a few hundred microseconds of Python, which at thousands a second was a
large part of the app's CPU. Each such task keeps its own connection here. The
connection is made inside the `Database`'s outage guard, so its failures
count as outages by the same rule as any other's; one that failed is thrown
away (its state is unknown) and made again for the next statement. asyncpg
runs one operation at a time per connection, so statements wait their turn
(an uncontended lock: one task uses each instance in practice).
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.store.database import Database


class OwnConnection:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._connection: Any = None  # asyncpg.Connection, made on first use
        self._turn = asyncio.Lock()

    async def fetch(self, sql: str, *arguments: object) -> list[Any]:
        """Run one statement (prepared once per connection: asyncpg caches by text)."""
        async with self._turn:
            return await self._fetch(sql, arguments)

    async def _fetch(self, sql: str, arguments: tuple[object, ...]) -> list[Any]:
        with self._database.guard():
            connection = await self._connected()
            try:
                return list(await connection.fetch(sql, *arguments))
            except BaseException:
                self._connection = None
                connection.terminate()  # in an unknown state (or gone): never reuse it
                raise

    async def prepare(self, sql: str) -> None:
        """Connect and prepare `sql` before it is first needed (several round trips)."""
        async with self._turn:
            with self._database.guard():
                connection = await self._connected()
                await connection.prepare(sql)  # kept in the connection's statement cache

    async def _connected(self) -> Any:
        connection = self._connection
        if connection is None or connection.is_closed():
            connection = self._connection = await self._database.connect_directly()
        return connection

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            await connection.close(timeout=2)
