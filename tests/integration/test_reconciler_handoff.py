"""The reconciler's re-queued jobs go out at once, on both backends.

Its new outbox rows are handed to the relay like a fresh write's. Before, it only woke
the relay, whose sweep leaves rows younger than the hand-off grace (30 s) to the relay
that wrote them — so every re-queued picture waited 30 s more, and after a restore
(docs/operations.md) the pictures the database lacked came half a minute late.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from app.domain.figalization import Figalization
from app.domain.image_job import ImageJob, JobMessage
from app.jobs.relay import HANDOFF_GRACE_SECONDS, OutboxRelay, Reconciler
from app.store.outbox import SqlOutbox
from app.store.writes import FigalizationWriter
from tests.conftest import wait_until
from tests.integration.history_samples import make


class KeptQueue:
    """A queue that keeps what it accepted."""

    def __init__(self) -> None:
        self.published: list[JobMessage] = []

    async def start(self) -> None:
        return None

    async def publish(self, messages: Sequence[JobMessage]) -> None:
        self.published.extend(messages)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def job_for(figalization: Figalization) -> ImageJob:
    return ImageJob(figalization.id, figalization.phrase, figalization.result, "figa", "Фига")


async def test_a_requeued_picture_is_published_long_before_the_hand_off_grace(
    writer: FigalizationWriter, outbox: SqlOutbox
) -> None:
    figalizations = [make(n) for n in range(3)]
    await writer.add(*figalizations[0])
    await writer.add(*figalizations[1])
    await writer.add(*figalizations[2])

    async def lost(messages: Sequence[JobMessage]) -> None:
        return None  # published to a broker that then lost them

    assert await outbox.sweep(lost) == 3
    queue = KeptQueue()
    relay = OutboxRelay(outbox, queue)  # the production grace: 30 s
    reconciler = Reconciler(outbox, relay, job_for, retry_after_seconds=0.0)
    running = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.05)  # rows older than the relay are swept: these are newer
        assert await reconciler.requeue_stale() == 3

        async def published() -> bool:
            return len(queue.published) == 3

        await wait_until(published, within=HANDOFF_GRACE_SECONDS / 10, every=0.02)

        async def rows_deleted() -> bool:
            return await outbox.backlog() == 0

        await wait_until(rows_deleted, within=2, every=0.02)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert sorted(m.key for m in queue.published) == sorted(f.id for f, _ in figalizations)
