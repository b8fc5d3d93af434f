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
caller must not claim it was lost either. The deadlines are kept by one timer per
writer, armed for the earliest, not by a timeout and a shield around every waiter:
those cost more than the rest of the wait, per request, at thousands a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


@dataclass(eq=False, slots=True)
class _Entry(Generic[Item]):
    item: Item
    future: asyncio.Future[None]
    deadline: float | None  # the loop's clock; None: waits as long as the write takes
    within: float


class GroupCommit(Generic[Item]):
    def __init__(
        self,
        write: Callable[[list[Item]], Awaitable[None]],
        *,
        max_batch: int = 256,
        gather_turns: int = 0,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        # Event-loop turns the writer lets pass before it takes a batch, so that what the
        # other tasks are about to submit joins it. A turn costs nothing on an idle loop and
        # as long as the longest callback on a busy one: the gathering lasts only while
        # there is other work, and an idle loop still writes at once.
        self._gather_turns = gather_turns
        self._pending: list[_Entry[Item]] = []
        self._writing: list[_Entry[Item]] = []  # the batch on the wire
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, item: Item, *, within: float | None = None) -> None:
        """Return once `item` is committed; raise what the write raised, or `Unconfirmed`
        after `within` seconds. A waiter that is cancelled leaves its item to be written:
        the batch is the writer task's, and the others' write goes on."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        deadline = None if within is None else loop.time() + within
        self._pending.append(_Entry(item, future, deadline, within or 0.0))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        self._wakeup.set()
        if deadline is not None and (self._timer is None or deadline < self._timer.when()):
            self._arm(loop, deadline)
        await future

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._expire)

    def _expire(self) -> None:
        """Give up on every waiter past its deadline; re-arm for the next one."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        kept = []
        for entry in self._pending:
            if entry.deadline is not None and entry.deadline <= now:
                if not entry.future.done():  # withdrawn: never written
                    entry.future.set_exception(Unconfirmed(entry.within, maybe_written=False))
            else:
                kept.append(entry)
        self._pending[:] = kept
        for entry in self._writing:
            if entry.deadline is not None and entry.deadline <= now and not entry.future.done():
                entry.future.set_exception(Unconfirmed(entry.within, maybe_written=True))
        waiting = [
            entry.deadline
            for entry in (*self._pending, *self._writing)
            if entry.deadline is not None and not entry.future.done()
        ]
        if waiting:
            self._arm(loop, min(waiting))

    async def close(self) -> None:
        """Write what is queued, then stop the writer task."""
        if self._pending and self._task is not None and not self._task.done():
            futures = [entry.future for entry in self._pending]
            await asyncio.gather(*futures, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            for _ in range(self._gather_turns):
                await asyncio.sleep(0)
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._write_batch(batch)

    async def _write_batch(self, batch: list[_Entry[Item]]) -> None:
        self._writing = batch
        try:
            await self._write([entry.item for entry in batch])
        except Exception as error:  # every waiter learns why its write failed
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(error)
        else:
            for start in range(0, len(batch), RESUME_AT_ONCE):
                if start:
                    await asyncio.sleep(0)  # let the loop poll its sockets between groups
                for entry in batch[start : start + RESUME_AT_ONCE]:
                    if not entry.future.done():
                        entry.future.set_result(None)
        finally:
            self._writing = []
