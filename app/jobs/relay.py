"""Background loops that move image jobs from the database to the queue.

`OutboxRelay` publishes image jobs two ways. The fast way: the history hands
over each committed batch (`handoff`: the jobs and their outbox row numbers),
the relay publishes them from memory and then deletes their rows, one
statement for many batches. Nothing is read back, which at thousands of
figalizations a second was most of what relaying cost. The sure way: every
second it sweeps the outbox for rows nobody will hand over, and publishes
those. A row is swept when it is older than `HANDOFF_GRACE_SECONDS` (its
replica died or lost it), older than this process (the last run's), or one
this relay let go: a hand-off whose publishing failed or that would overflow
`MAX_HANDED_OVER`. After a failure the relay stops holding hand-offs until a
sweep has emptied the outbox, so the two ways never race for a row. A job can
still go out twice (a crash between publishing and deleting; another replica
sweeping a row this one is slow to publish); the worker is idempotent.

`Reconciler` re-queues pictures that are still pending long after their job
was sent: the broker may have lost it (the database, not the broker, is the
record of every job). Both back off while a dependency is down and never let
an error end the loop.
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
from app.jobs.queue import JobQueue, Message, QueueUnavailable
from app.metrics import JOBS_RELAYED, JOBS_REQUEUED, OUTBOX_BACKLOG
from app.store.history import StoreUnavailable
from app.store.outbox import SqlOutbox

log = logging.getLogger(__name__)

BATCH = 500
MAX_BACKOFF_SECONDS = 5.0
HANDOFF_GRACE_SECONDS = 30.0  # > the queue's send timeout: a handed-over job is in flight
MAX_HANDED_OVER = 20_000  # jobs held in memory at most; beyond, the sweep takes them
FORGET_EVERY_SECONDS = 0.05  # published rows are deleted in batches at most this often


class OutboxRelay:
    def __init__(
        self,
        outbox: SqlOutbox,
        queue: JobQueue,
        *,
        idle_seconds: float = 1.0,
        handoff_grace_seconds: float = HANDOFF_GRACE_SECONDS,
        max_handed_over: int = MAX_HANDED_OVER,
    ) -> None:
        self._outbox = outbox
        self._queue = queue
        self._idle_seconds = idle_seconds
        self._grace_seconds = handoff_grace_seconds
        self._max_handed_over = max_handed_over
        self._started_at = datetime.now(UTC)  # older rows were never handed to this process
        self._wakeup = asyncio.Event()
        self._handed_seqs: list[int] = []
        self._handed_jobs: list[Message] = []
        self._published_seqs: list[int] = []
        self._let_go_up_to = 0  # rows up to this seq are not held here: the sweep takes them
        self._holding = True  # False after a failure, until a sweep has emptied the outbox
        self._forgotten_at = 0.0
        self._swept_at = 0.0
        self._backlog_measured_at = 0.0

    def wake(self) -> None:
        self._wakeup.set()

    def handoff(self, seqs: list[int], jobs: list[Message]) -> None:
        """Committed jobs to publish from memory (`SqlHistory.hand_committed_jobs_to`).

        One writer commits the batches one after another, so a later hand-off has
        higher row numbers: "up to this seq" describes exactly what was let go."""
        if self._holding and len(self._handed_jobs) + len(jobs) <= self._max_handed_over:
            self._handed_seqs.extend(seqs)
            self._handed_jobs.extend(jobs)
        elif seqs:
            self._let_go_up_to = max(self._let_go_up_to, max(seqs))
        self._wakeup.set()

    async def run(self) -> None:
        backoff = 0.1
        while True:
            # Published rows wait at most FORGET_EVERY_SECONDS to be deleted.
            wait = FORGET_EVERY_SECONDS if self._published_seqs else self._idle_seconds
            try:
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            try:
                await self._publish_handed_over()
                if time.monotonic() - self._swept_at >= self._idle_seconds:
                    await self.drain()
                elif time.monotonic() - self._forgotten_at >= FORGET_EVERY_SECONDS:
                    await self._forget_published()
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
        """Publish what was handed over, then sweep until no sweepable row is left;
        return how many jobs were sent."""
        total = await self._publish_handed_over()
        await self._forget_published()
        self._swept_at = time.monotonic()
        while True:
            let_go_up_to = self._let_go_up_to
            cutoff = max(_ago(self._grace_seconds), self._started_at)
            sent = await self._outbox.relay(
                self._queue.publish, limit=BATCH, created_before=cutoff, or_seq_up_to=let_go_up_to
            )
            total += sent
            JOBS_RELAYED.inc(sent)
            if sent < BATCH:
                break
        if self._let_go_up_to == let_go_up_to:  # nothing let go meanwhile: all of it was seen
            self._let_go_up_to = 0
            self._holding = True
        await self._measure_backlog()
        return total

    async def _publish_handed_over(self) -> int:
        seqs, jobs = self._handed_seqs, self._handed_jobs
        if not jobs:
            return 0
        self._handed_seqs, self._handed_jobs = [], []
        try:
            await self._queue.publish(jobs)
        except BaseException:
            # The rows stay; stop holding, and let the sweep have these and any held since.
            self._holding = False
            self._let_go_up_to = max(self._let_go_up_to, *seqs, *self._handed_seqs)
            self._handed_seqs, self._handed_jobs = [], []
            raise
        self._published_seqs.extend(seqs)
        JOBS_RELAYED.inc(len(jobs))
        return len(jobs)

    async def _forget_published(self) -> None:
        """Delete the rows of published jobs: one statement for many hand-offs."""
        self._forgotten_at = time.monotonic()
        seqs, self._published_seqs = self._published_seqs, []
        if not seqs:
            return
        try:
            await self._outbox.forget(seqs)
        except BaseException:
            self._published_seqs.extend(seqs)  # published already: deleting can wait
            raise

    async def _measure_backlog(self) -> None:
        """At most once a second: a count of the outbox is cheap, but not per request."""
        now = time.monotonic()
        if now - self._backlog_measured_at >= 1.0:
            self._backlog_measured_at = now
            with contextlib.suppress(StoreUnavailable):  # a down database is logged already
                OUTBOX_BACKLOG.set(await self._outbox.backlog())


def _ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


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
