"""Background loops that move image jobs from the database to the queue.

`OutboxRelay` publishes image jobs two ways. The fast way: the writer hands
over each committed batch (`handoff`: the jobs and their outbox row numbers),
the relay publishes them from memory and then deletes their rows, one
statement for many batches. Nothing is read back, which at thousands of
figalizations a second was most of what relaying cost. The sure way: every
second it sweeps the outbox for rows nobody will hand over, and publishes
those: rows older than `HANDOFF_GRACE_SECONDS` (their replica died or lost
them), older than this process (the last run's), or let go by this relay (a
hand-off whose publishing failed, or that would overflow `MAX_HANDED_OVER`).
What the relay holds, and the rule that keeps the two ways from racing for a
row, is `handoff.Handoff`; this module is the loop around it. A job can still
go out twice (a crash between publishing and deleting; another replica
sweeping a row this one is slow to publish); the worker is idempotent.

`Reconciler` re-queues pictures that are still pending long after their job
was sent: the broker may have lost it (the database, not the broker, is the
record of every job). Both back off while a dependency is down and never let
an error end the loop. The relay logs why it cannot publish once per cause
(and once when it publishes again), not at every retry, and keeps the age of
the oldest waiting job (`outbox_age.OldestJob`) for `/readyz` and its gauge.
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
from app.jobs.handoff import Handoff
from app.jobs.outbox_age import OldestJob
from app.jobs.queue import JobQueue
from app.metrics import JOBS_RELAYED, JOBS_REQUEUED, OUTBOX_BACKLOG, OUTBOX_OLDEST_JOB_AGE
from app.outages import QueueUnavailable, StoreUnavailable
from app.store.outbox import SqlOutbox
from app.store.writes import Committed

log = logging.getLogger(__name__)

BATCH = 500
MAX_BACKOFF_SECONDS = 5.0
HANDOFF_GRACE_SECONDS = 30.0  # the default of FIGA_OUTBOX_HANDOFF_GRACE_SECONDS
MAX_HANDED_OVER = 20_000  # jobs held in memory at most; beyond, the sweep takes them
DELETE_EVERY_SECONDS = 0.05  # published rows are deleted in batches at most this often
# Hand-offs are published at most this often. A publish costs the app a batch, a future and
# a produce response to decode per partition (twelve in prod), whatever it carries: measured
# alone on the bench machine, ~0.8 ms a publish plus ~4.5 µs a job (20 jobs: 43 µs of CPU a
# job; 100: 10–14; 400: 6). Published at each commit, a job cost the app 3–4 µs more (in-
# process at 12,000 figalizations/s, interleaved); at the bench's ~6,000/s every 50 ms is
# ~300 jobs a publish. The first job after a pause goes at once; under load a picture starts
# at most this much later, against a 1 s end-to-end target.
PUBLISH_EVERY_SECONDS = 0.05


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
        self._state = Handoff(
            started_at=datetime.now(UTC),
            grace=timedelta(seconds=handoff_grace_seconds),
            max_held=max_handed_over,
        )
        self._wakeup = asyncio.Event()
        self._deleted_at = 0.0
        self._published_at = 0.0  # when the last publish of hand-offs began
        self._swept_at = 0.0
        self._backlog_measured_at = 0.0
        self._paused_because: str | None = None  # what the log last said stops the relay
        self.oldest_job = OldestJob(outbox)

    @property
    def paused_because(self) -> str | None:
        """Why the relay cannot publish now, as it logged it; None while it publishes."""
        return self._paused_because

    def wake(self) -> None:
        self._wakeup.set()

    def handoff(self, committed: Committed) -> None:
        """A batch the writer committed, to publish from memory (`FigalizationWriter`'s
        `committed`)."""
        self._state.take(committed)
        self._wakeup.set()

    async def run(self) -> None:
        # The gauge follows the running relay's knowledge, computed at each scrape.
        OUTBOX_OLDEST_JOB_AGE.set_function(self.oldest_job.known_seconds)
        backoff = 0.1
        while True:
            # Published rows wait at most DELETE_EVERY_SECONDS to be deleted.
            wait = DELETE_EVERY_SECONDS if self._state.awaits_delete else self._idle_seconds
            try:
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            try:
                await asyncio.sleep(self._published_at + PUBLISH_EVERY_SECONDS - time.monotonic())
                sent = await self._publish_held()
                if time.monotonic() - self._swept_at >= self._idle_seconds:
                    sent += await self.drain()
                elif time.monotonic() - self._deleted_at >= DELETE_EVERY_SECONDS:
                    await self._delete_published()
            except (StoreUnavailable, QueueUnavailable) as error:
                self._pause(str(error))
                await self._measure_backlog()  # the backlog grows exactly now
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception:  # a bug must not silently end the loop that delivers every job
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(MAX_BACKOFF_SECONDS)
            else:
                backoff = 0.1
                if sent:  # the queue took jobs: whatever stopped the relay is over
                    self._resume()

    def _pause(self, reason: str) -> None:
        """Log the cause when it is new: a retry every few seconds is not news."""
        if reason != self._paused_because:
            log.warning("outbox relay cannot publish, retrying until it can: %s", reason)
            self._paused_because = reason

    def _resume(self) -> None:
        if self._paused_because is not None:
            log.info("outbox relay publishes again (it was stopped by: %s)", self._paused_because)
            self._paused_because = None

    async def drain(self) -> int:
        """Publish what was handed over, then sweep until no sweepable row is left;
        return how many jobs were sent."""
        total = await self._publish_held()
        await self._delete_published()
        self._swept_at = time.monotonic()
        while True:
            scope = self._state.sweep_scope(datetime.now(UTC))
            sent = await self._outbox.sweep(self._queue.publish, scope, limit=BATCH)
            total += sent
            JOBS_RELAYED.inc(sent)
            if sent < BATCH:
                break
        self._state.swept(scope)
        await self._measure_backlog()
        return total

    async def _publish_held(self) -> int:
        batch = self._state.publishing()
        if batch is None:
            return 0
        self._published_at = time.monotonic()
        try:
            await self._queue.publish(batch.jobs)
        except BaseException:
            self._state.publish_failed()  # the rows stay, for the sweep
            raise
        self._state.published()
        JOBS_RELAYED.inc(len(batch.jobs))
        return len(batch.jobs)

    async def _delete_published(self) -> None:
        """Delete the rows of published jobs: one statement for many hand-offs."""
        self._deleted_at = time.monotonic()
        seqs = self._state.deleting()
        if seqs:
            await self._outbox.delete_published(seqs)  # if it fails, they wait for the next
            self._state.deleted(seqs)

    async def _measure_backlog(self) -> None:
        """At most once a second: a count of the outbox is cheap, but not per request
        (the oldest job's age reads the table less often still, see `OldestJob`)."""
        now = time.monotonic()
        if now - self._backlog_measured_at >= 1.0:
            self._backlog_measured_at = now
            with contextlib.suppress(StoreUnavailable):  # a down database is logged already
                backlog = await self._outbox.backlog()
                OUTBOX_BACKLOG.set(backlog)
                if backlog == 0:
                    self.oldest_job.none_waiting()
                else:
                    await self.oldest_job.age_seconds()


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
            jobs = [self._job_for(figalization) for figalization in stale]
            seqs = await self._outbox.requeue(jobs)
            JOBS_REQUEUED.inc(len(stale))
            log.info("re-queued %d pictures still pending", len(stale))
            # Handed over like a fresh write's jobs: published now. A sweep would leave
            # these new rows alone for the hand-off grace (30 s), as another relay's.
            self._relay.handoff(Committed(seqs, [job.message() for job in jobs]))
        return len(stale)
