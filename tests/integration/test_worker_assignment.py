"""Each worker tells operators which partitions it holds (issue 14), on the real Tansu broker.

Real `figachechnaya worker` processes join one consumer group. After every
rebalance each logs what was revoked and what it was assigned (topic and
partitions), and its operations port's `figachechnaya_worker_assigned_partitions`
says how many partitions it holds: over the group they add up to the topic's
partitions, and a worker left without any shows 0 and says so in its log.
"""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from tests.conftest import wait_until
from tests.distributed import settings_env
from tests.services.kafka import KafkaService
from tests.services.ports import LOCALHOST, free_port
from tests.services.processes import ServerProcess

FIGACHECHNAYA = str(Path(sys.executable).with_name("figachechnaya"))
GAUGE = "figachechnaya_worker_assigned_partitions"
ASSIGNED = re.compile(r"rebalance: partitions assigned: (\S+) \[([\d, ]*)\]")


@dataclass
class Worker:
    process: ServerProcess
    metrics_url: str

    def log(self) -> str:
        return self.process.log_path.read_text(encoding="utf-8", errors="replace")

    def last_assignment(self, topic: str) -> set[int]:
        """The partitions of `topic` in the worker's last "assigned" log line."""
        lines = [m for m in ASSIGNED.finditer(self.log()) if m.group(1) == topic]
        assert lines, f"no assignment logged:\n{self.log()}"
        return {int(number) for number in lines[-1].group(2).split(",")}


StartWorker = Callable[[str], Worker]


@pytest.fixture
async def start_worker(
    postgres_url: str, kafka_service: KafkaService, tmp_path: Path
) -> AsyncIterator[StartWorker]:
    """Start workers on a topic, in the group of that topic; all stopped afterwards."""
    started: list[Worker] = []

    def start(topic: str) -> Worker:
        settings = Settings(
            database_url=postgres_url,
            kafka_bootstrap_servers=kafka_service.bootstrap_servers,
            kafka_topic=topic,
            kafka_group_id=f"{topic}-workers",
            kafka_idempotence=kafka_service.supports_idempotence,
            kafka_session_timeout_ms=kafka_service.group_timeouts["session_timeout_ms"],
            kafka_heartbeat_interval_ms=kafka_service.group_timeouts["heartbeat_interval_ms"],
            # No job comes: the pictures' place only has to pass the worker's start checks.
            image_store_url=str(tmp_path / "images"),
            image_public_base_url="http://127.0.0.1:9/pictures",
            worker_metrics_port=free_port(),
            worker_metrics_host=LOCALHOST,
        )
        log_path = tmp_path / f"worker-{len(started)}.log"
        process = ServerProcess(
            "worker", [FIGACHECHNAYA, "worker"], log_path, env=settings_env(settings)
        )
        process.spawn()
        port = settings.worker_metrics_port
        started.append(Worker(process, f"http://{LOCALHOST}:{port}/metrics"))
        return started[-1]

    yield start
    await asyncio.gather(*(asyncio.to_thread(w.process.stop, 30) for w in started))


async def held(workers: list[Worker]) -> list[int | None]:
    """Each worker's gauge as scraped from its operations port (None: not answering yet)."""
    values: list[int | None] = []
    async with httpx.AsyncClient(timeout=2) as http:
        for worker in workers:
            assert worker.process.running, worker.log()
            try:
                exposition = (await http.get(worker.metrics_url)).text
            except httpx.TransportError:
                values.append(None)
                continue
            (value,) = [
                sample.value
                for family in text_string_to_metric_families(exposition)
                for sample in family.samples
                if sample.name == GAUGE
            ]
            values.append(int(value))
    return values


def holding(workers: list[Worker], expected: list[int]) -> Callable[[], Awaitable[bool]]:
    """The condition "every worker has joined the group, and their gauges are `expected`
    in any order" (a worker that has not joined yet holds nothing either)."""

    async def the_gauges_show_the_assignment() -> bool:
        if not all("worker joined group" in worker.log() for worker in workers):
            return False
        return sorted(v if v is not None else -1 for v in await held(workers)) == expected

    return the_gauges_show_the_assignment


async def test_two_workers_share_four_partitions_and_a_third_takes_its_part(
    start_worker: StartWorker, kafka_topic: str
) -> None:
    first, second = start_worker(kafka_topic), start_worker(kafka_topic)
    await wait_until(holding([first, second], [2, 2]), within=30, every=0.25)
    assignments = [w.last_assignment(kafka_topic) for w in (first, second)]
    assert assignments[0] | assignments[1] == {0, 1, 2, 3}
    assert not assignments[0] & assignments[1]

    third = start_worker(kafka_topic)
    workers = [first, second, third]
    await wait_until(holding(workers, [1, 1, 2]), within=30, every=0.25)
    assignments = [w.last_assignment(kafka_topic) for w in workers]
    assert set().union(*assignments) == {0, 1, 2, 3}
    assert sum(len(a) for a in assignments) == 4  # no partition in two hands
    for earlier in (first, second):  # each gave its partitions back for the rebalance
        assert f"rebalance: partitions revoked: {kafka_topic} [" in earlier.log()


async def test_a_worker_holding_no_partition_shows_0_and_says_so(
    start_worker: StartWorker, kafka_service: KafkaService
) -> None:
    topic = f"t-{uuid.uuid4().hex}"
    await kafka_service.create_topic(topic, partitions=1)
    try:
        workers = [start_worker(topic), start_worker(topic)]
        await wait_until(holding(workers, [0, 1]), within=30, every=0.25)
        idle = next(w for w, n in zip(workers, await held(workers), strict=True) if n == 0)
        busy = next(w for w in workers if w is not idle)
        assert busy.last_assignment(topic) == {0}
        last_line = [line for line in idle.log().splitlines() if "rebalance:" in line][-1]
        assert f"no partition of {topic} assigned: this worker gets no jobs" in last_line
    finally:
        await kafka_service.delete_topic(topic)
