"""Background loops that move image jobs from the database to the queue.

`OutboxRelay` publishes outbox rows: at once when this process stored a
figalization (`wake`), and every second anyway for rows other replicas or
earlier outages left behind. `Reconciler` re-queues pictures that are still
pending long after their job was sent: the broker may have lost it (the
database, not the broker, is the record of every job). Both back off while
a dependency is down and never let an error end the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app.domain.figalization import Figalization
from app.domain.image_job import ImageJob
from app.jobs.queue import JobQueue, QueueUnavailable
from app.metrics import JOBS_RELAYED, JOBS_REQUEUED, OUTBOX_BACKLOG
from app.store.history import StoreUnavailable
from app.store.outbox import SqlOutbox

log = logging.getLogger(__name__)

BATCH = 500
MAX_BACKOFF_SECONDS = 5.0


class OutboxRelay:
    def __init__(self, outbox: SqlOutbox, queue: JobQueue, *, idle_seconds: float = 1.0) -> None:
        self._outbox = outbox
        self._queue = queue
        self._idle_seconds = idle_seconds
        self._wakeup = asyncio.Event()
        self._backlog_measured_at = 0.0

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with asyncio.timeout(self._idle_seconds):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            try:
                await self.drain()
            except (StoreUnavailable, QueueUnavailable) as error:
                log.warning("outbox relay paused: %s", error)
                await self._measure_backlog()  # the backlog grows exactly now
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception:  # a bug must not silently end the loop that delivers every job
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(MAX_BACKOFF_SECONDS)
            else:
                backoff = 0.1

    async def drain(self) -> int:
        """Publish until the outbox is empty; return how many were published."""
        total = 0
        while True:
            sent = await self._outbox.relay(self._queue.publish, limit=BATCH)
            total += sent
            JOBS_RELAYED.inc(sent)
            if sent < BATCH:
                await self._measure_backlog()
                return total

    async def _measure_backlog(self) -> None:
        """At most once a second: a count of the outbox is cheap, but not per request."""
        now = time.monotonic()
        if now - self._backlog_measured_at >= 1.0:
            self._backlog_measured_at = now
            with contextlib.suppress(StoreUnavailable):  # a down database is logged already
                OUTBOX_BACKLOG.set(await self._outbox.backlog())


class Reconciler:
    def __init__(
        self,
        outbox: SqlOutbox,
        relay: OutboxRelay,
        job_for: Callable[[Figalization], ImageJob],
        *,
        retry_after_seconds: float,
    ) -> None:
        self._outbox = outbox
        self._relay = relay
        self._job_for = job_for
        self._retry_after = timedelta(seconds=retry_after_seconds)

    async def run(self) -> None:
        period = max(1.0, self._retry_after.total_seconds() / 4)
        while True:
            await asyncio.sleep(period)
            try:
                await self.requeue_stale()
            except StoreUnavailable as error:
                log.warning("reconciler paused: %s", error)
            except Exception:  # keep reconciling whatever one round hit
                log.exception("reconciler round failed")

    async def requeue_stale(self) -> int:
        stale = await self._outbox.stale_pending(
            queued_before=datetime.now(UTC) - self._retry_after, limit=BATCH
        )
        if stale:
            await self._outbox.requeue([self._job_for(figalization) for figalization in stale])
            JOBS_REQUEUED.inc(len(stale))
            log.info("re-queued %d pictures still pending", len(stale))
            self._relay.wake()
        return len(stale)
