"""Group commit: many concurrent requests, one transaction.

Each request hands its write to `GroupCommit.submit` and waits; a single
task writes everything that queued up meanwhile in one transaction and then
answers every waiter. Under load this turns N commits into one, which is
what lets one process store thousands of figalizations a second; when idle a
batch is one item and costs no extra latency. A request is answered only
after its write is committed, so nothing acknowledged is ever lost.

A waiter may give up after `within` seconds (a link to the database that drops
packets answers nothing, and every request queued behind the stalled batch would
wait with it): an item still queued is withdrawn, never written; an item in the
batch on the wire may still be committed (`Unconfirmed.maybe_written`), so the
caller must not claim it was lost either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")

# Waiters resumed per event-loop turn. Resuming a whole batch at once makes one turn as
# long as all their handlers together (tens of ms for a batch of page renders), and the
# loop accepts about one new connection per turn: a burst of new clients then waited
# seconds. Small groups keep turns short and the server responsive to new connections.
RESUME_AT_ONCE = 16


class Unconfirmed(TimeoutError):
    """The write was not confirmed within the waiter's time."""

    def __init__(self, within: float, *, maybe_written: bool) -> None:
        state = "may still be committed" if maybe_written else "withdrawn, not written"
        super().__init__(f"not committed within {within:g} s ({state})")
        self.maybe_written = maybe_written


class GroupCommit(Generic[Item]):
    def __init__(
        self, write: Callable[[list[Item]], Awaitable[None]], *, max_batch: int = 256
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item, *, within: float | None = None) -> None:
        """Return once `item` is committed; raise what the write raised, or `Unconfirmed`
        after `within` seconds."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (item, future)
        self._pending.append(entry)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        self._wakeup.set()
        # A waiter that is cancelled or gives up leaves the batch alone: it is the writer
        # task's, and the others' write goes on.
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(future)
        except TimeoutError:
            queued = entry in self._pending
            if queued:
                self._pending.remove(entry)
            raise Unconfirmed(within or 0.0, maybe_written=not queued) from None

    async def close(self) -> None:
        """Write what is queued, then stop the writer task."""
        if self._pending and self._task is not None and not self._task.done():
            await asyncio.gather(*(future for _, future in self._pending), return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._write_batch(batch)

    async def _write_batch(self, batch: list[tuple[Item, asyncio.Future[None]]]) -> None:
        try:
            await self._write([item for item, _ in batch])
        except Exception as error:  # every waiter learns why its write failed
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
        else:
            for start in range(0, len(batch), RESUME_AT_ONCE):
                if start:
                    await asyncio.sleep(0)  # let the loop poll its sockets between groups
                for _, future in batch[start : start + RESUME_AT_ONCE]:
                    if not future.done():
                        future.set_result(None)
