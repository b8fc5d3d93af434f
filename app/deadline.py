"""An answer within a bound, even when giving up is itself slow.

`asyncio.timeout` cancels the work and then waits for it to unwind, and some
unwinding waits on the network: SQLAlchemy's asyncpg adapter, cancelled, closes
its connection gracefully (shielded, up to 2 s) over the very link that is
silent. So a caller promised an answer within N seconds runs the work as a task
of its own and stops *waiting* at the bound: the work is left to finish or
fail in the background (its outcome retrieved, so asyncio reports nothing
lost), and the caller gets `TimeoutError` at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def within(seconds: float, work: Awaitable[T]) -> T:
    """`work`'s result, or `TimeoutError` after `seconds` (the work goes on alone)."""
    task = asyncio.ensure_future(work)
    try:
        async with asyncio.timeout(seconds):
            return await asyncio.shield(task)
    except TimeoutError:
        task.add_done_callback(_collect)
        raise


def _collect(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
