"""Handing partitions over in a rebalance without making any picture twice.

When a worker joins or leaves, the group takes every partition back and deals
them out again; each new owner starts at the partition's committed offset —
even a worker that gets its own partitions back. A batch being made while that
happens was committed too late: its jobs came again (17 of 300 pictures were
drawn twice when one of two workers left under 20 figalizations/s, measured by
tests/integration/test_rolling_restart.py before this module).

So the consume loop makes and commits each batch inside `Handover.batch`,
entered straight after the poll, and the rebalance listener's revocation waits
for it: the batch in flight is committed (the group still accepts the old
generation's commits while it prepares the rebalance) before the partitions go.
The poll itself stays outside: while a reassignment is in progress aiokafka's
`getmany` waits for the new assignment, and the revocation would be waiting for
that poll — a deadlock that only `wait_seconds` ended (a vanished worker's
partitions reached its neighbour 13.5 s late, measured by
tests/faults/test_worker_links.py). A batch that takes longer than
`wait_seconds` is not waited for: the group moves on, its commit fails, and it
comes again (at least once, as always).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import ConsumerRebalanceListener, TopicPartition

from workers.assignment import AssignmentReport

log = logging.getLogger(__name__)


class Handover(ConsumerRebalanceListener):  # type: ignore[misc]
    """The consume loop's batches and the group's revocations, one at a time."""

    def __init__(self, wait_seconds: float, *, report: AssignmentReport) -> None:
        self._batch = asyncio.Lock()
        self._wait_seconds = wait_seconds
        self._report = report  # aiokafka takes one listener: the assignment's log and gauge

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Make and commit one polled batch inside: no revocation completes meanwhile."""
        async with self._batch:
            yield

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._finish_the_batch()
        self._report.on_partitions_revoked(revoked)

    async def _finish_the_batch(self) -> None:
        if not self._batch.locked():
            return
        log.info("rebalance: the batch in flight is finished and committed first")
        try:
            async with asyncio.timeout(self._wait_seconds):
                await self._batch.acquire()
            self._batch.release()
        except TimeoutError:
            log.warning(
                "rebalance: the batch in flight is not done after %.0f s; it will come again",
                self._wait_seconds,
            )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Only told: the new assignment starts at the committed offsets."""
        self._report.on_partitions_assigned(assigned)
