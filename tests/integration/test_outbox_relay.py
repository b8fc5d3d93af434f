"""The relay on both backends: hand-off from memory, the sweep, and what happens on failure."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from typing import Any

import pytest

from app.domain.image_job import ImageJob, JobMessage
from app.jobs.relay import PUBLISH_EVERY_SECONDS, OutboxRelay
from app.outages import QueueUnavailable
from app.store.outbox import SqlOutbox
from app.store.writes import FigalizationWriter
from tests.conftest import wait_until
from tests.integration.conftest import WriterFor
from tests.integration.history_samples import make


class RecordingQueue:
    """A queue that keeps what it accepted, and refuses while `down`."""

    def __init__(self) -> None:
        self.published: list[JobMessage] = []
        self.down = False

    async def start(self) -> None:
        return None

    async def publish(self, messages: Sequence[JobMessage]) -> None:
        if self.down:
            raise QueueUnavailable("broker down")
        self.published.extend(messages)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @property
    def keys(self) -> list[str]:
        return [message.key for message in self.published]


def relay_for(
    outbox: SqlOutbox, queue: RecordingQueue, writer_for: WriterFor, **options: Any
) -> tuple[OutboxRelay, FigalizationWriter]:
    """A relay, and a writer that hands it each committed batch."""
    relay = OutboxRelay(outbox, queue, **options)
    return relay, writer_for(relay.handoff)


async def test_committed_jobs_are_published_from_memory_and_their_rows_deleted(
    outbox: SqlOutbox, writer_for: WriterFor
) -> None:
    queue = RecordingQueue()
    relay, writer = relay_for(outbox, queue, writer_for)
    await asyncio.gather(*(writer.add(*make(n)) for n in range(5)))  # one or more batches
    assert await outbox.backlog() == 5
    assert await relay.drain() == 5
    assert sorted(queue.keys) == [make(n)[0].id for n in range(5)]
    first = next(m for m in queue.published if m.key == make(0)[0].id)
    assert (first.request_id, ImageJob.decode(first.payload)) == ("request-0", make(0)[1])
    assert await outbox.backlog() == 0


async def test_the_sweep_leaves_young_rows_to_whoever_holds_them(
    outbox: SqlOutbox, writer_for: WriterFor
) -> None:
    queue = RecordingQueue()
    relay = OutboxRelay(outbox, queue, handoff_grace_seconds=0.5)
    writer = writer_for(lambda _: None)  # another replica's writer
    assert await relay.drain() == 0  # the start-up sweep (everything) finds nothing
    for n in range(2):  # committed, but handed to nobody here: another replica's, in flight
        await writer.add(*make(n))
    assert await relay.drain() == 0
    await asyncio.sleep(0.6)  # older than the grace: that replica must have died
    assert await relay.drain() == 2
    assert queue.keys == [make(0)[0].id, make(1)[0].id]  # in outbox order
    assert await outbox.backlog() == 0


async def test_a_failed_hand_off_is_swept_at_once_when_the_queue_is_back(
    outbox: SqlOutbox, writer_for: WriterFor
) -> None:
    queue = RecordingQueue()
    relay, writer = relay_for(outbox, queue, writer_for, handoff_grace_seconds=3600)
    await relay.drain()
    queue.down = True
    for n in range(3):
        await writer.add(*make(n))
    with pytest.raises(QueueUnavailable):
        await relay.drain()
    assert await outbox.backlog() == 3  # nothing lost: the rows stay
    queue.down = False
    assert await relay.drain() == 3  # young, but this relay knows it dropped them
    assert queue.keys == [make(n)[0].id for n in range(3)]
    assert await outbox.backlog() == 0


async def test_a_hand_off_beyond_the_memory_bound_is_left_to_the_sweep(
    outbox: SqlOutbox, writer_for: WriterFor
) -> None:
    queue = RecordingQueue()
    relay, writer = relay_for(
        outbox, queue, writer_for, handoff_grace_seconds=3600, max_handed_over=2
    )
    await relay.drain()
    for n in range(4):
        await writer.add(*make(n))  # one at a time: the third and fourth overflow
    assert await relay.drain() == 4
    assert sorted(queue.keys) == [make(n)[0].id for n in range(4)]
    assert await outbox.backlog() == 0


async def test_the_running_relay_publishes_and_empties_the_outbox_by_itself(
    outbox: SqlOutbox, writer_for: WriterFor
) -> None:
    queue = RecordingQueue()
    relay, writer = relay_for(outbox, queue, writer_for)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.gather(*(writer.add(*make(n)) for n in range(20)))

        async def all_published_and_deleted() -> bool:
            return len(queue.published) == 20 and await outbox.backlog() == 0

        await wait_until(all_published_and_deleted, within=5)
        assert len(set(queue.keys)) == 20  # each once
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_rows_left_by_an_earlier_run_are_swept_at_start(
    outbox: SqlOutbox, writer_for: WriterFor
) -> None:
    last_run = writer_for(lambda _: None)
    for n in range(3):
        await last_run.add(*make(n))  # committed by "the last run", which never published them
    queue = RecordingQueue()
    relay = OutboxRelay(outbox, queue, handoff_grace_seconds=3600)
    assert await relay.drain() == 3
    assert queue.keys == [make(n)[0].id for n in range(3)]


async def test_through_a_failure_and_recovery_no_job_goes_out_twice(
    outbox: SqlOutbox, writer_for: WriterFor
) -> None:
    queue = RecordingQueue()
    relay, writer = relay_for(outbox, queue, writer_for, handoff_grace_seconds=3600)
    queue.down = True
    for n in range(3):
        await writer.add(*make(n))
    with pytest.raises(QueueUnavailable):
        await relay.drain()
    for n in range(3, 5):
        await writer.add(*make(n))  # while the relay is not holding: the sweep's
    queue.down = False
    assert await relay.drain() == 5
    for n in range(5, 7):
        await writer.add(*make(n))  # holding again: published from memory
    assert await relay.drain() == 2
    assert sorted(queue.keys) == [make(n)[0].id for n in range(7)]  # each exactly once
    assert await outbox.backlog() == 0


class TimedQueue(RecordingQueue):
    """A recording queue that also notes when each publish began, and its size."""

    def __init__(self) -> None:
        super().__init__()
        self.publishes: list[tuple[float, int]] = []

    async def publish(self, messages: Sequence[JobMessage]) -> None:
        self.publishes.append((time.monotonic(), len(messages)))
        await super().publish(messages)


async def test_under_a_stream_of_commits_the_relay_publishes_at_most_every_50_ms(
    outbox: SqlOutbox, writer_for: WriterFor
) -> None:
    """One commit every ~5 ms for 0.6 s: the hand-offs gather into publishes at least
    `PUBLISH_EVERY_SECONDS` apart (a publish costs per partition, whatever it carries),
    and every job still goes out once."""
    queue = TimedQueue()
    relay, writer = relay_for(outbox, queue, writer_for)
    task = asyncio.create_task(relay.run())
    try:
        started = time.monotonic()
        count = 0
        while time.monotonic() - started < 0.6:
            await writer.add(*make(count))
            count += 1
            await asyncio.sleep(0.005)

        async def all_published() -> bool:
            return len(queue.published) == count and await outbox.backlog() == 0

        await wait_until(all_published, within=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(queue.keys) == sorted(make(n)[0].id for n in range(count))  # each once
    moments = [moment for moment, _ in queue.publishes]
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert PUBLISH_EVERY_SECONDS == 0.05  # the rule this test is named after
    assert min(gaps) >= 0.04  # a timer may fire a tick early
    assert max(size for _, size in queue.publishes) > 1  # gathered: commits share a publish
