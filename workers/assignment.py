"""Which partitions of the job topic this worker holds, told at every rebalance.

A worker that holds no partition draws nothing while it looks healthy: its
loop goes round, its `/healthz` is 200. So the consumer group's every
rebalance is logged here (what was revoked, what is assigned, by topic and
partition), and the gauge `figachechnaya_worker_assigned_partitions` says how
many partitions the worker holds now: 0 shows on the dashboard, and summed
over the workers it is the topic's partition count when every partition has
an owner (less during a rebalance, or when a departed member kept its share).

aiokafka calls the listener inside the rebalance, on the consume loop's event
loop; it only logs and sets a gauge, so it never delays the group's join.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from app.metrics import ASSIGNED_PARTITIONS

log = logging.getLogger(__name__)


def described(partitions: Iterable[TopicPartition]) -> str:
    """`topic [0, 2]`, one entry per topic, in a stable order."""
    by_topic: dict[str, list[int]] = defaultdict(list)
    for partition in partitions:
        by_topic[partition.topic].append(partition.partition)
    return "; ".join(f"{topic} {sorted(numbers)}" for topic, numbers in sorted(by_topic.items()))


class AssignmentReport(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Logs each rebalance of this worker's consumer and keeps the gauge of what it holds."""

    def __init__(self, topic: str) -> None:
        self._topic = topic

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        ASSIGNED_PARTITIONS.set(0)  # until the group has given out the new assignment
        if revoked:  # empty at the first join
            log.info("rebalance: partitions revoked: %s", described(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        ASSIGNED_PARTITIONS.set(len(assigned))
        if assigned:
            log.info("rebalance: partitions assigned: %s", described(assigned))
        else:
            log.warning(
                "rebalance: no partition of %s assigned: this worker gets no jobs "
                "(more workers than partitions, or another member still holds them)",
                self._topic,
            )
