"""A relay that cannot publish says why, and how long its oldest job has waited (issue 14).

Against the real Tansu broker, which refuses the idempotent producer
(`InitProducerId` fails and aiokafka reports only `[Error -1] UnknownError`),
an app left with `FIGA_KAFKA_IDEMPOTENCE` on publishes nothing: `/readyz`
and the relay's log must name the cause and the setting to change, the log
once and not at every retry. The age of the oldest unpublished job is in
`/readyz`'s queue entry and a gauge, on SQLite and PostgreSQL: it grows while
the broker is stopped and is 0 again once the broker is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.domain.image_job import JobMessage
from app.jobs.kafka import KafkaQueue
from app.jobs.outbox_age import OldestJob
from app.jobs.relay import OutboxRelay
from app.outages import QueueUnavailable
from app.settings import Settings
from app.store.migrate import upgrade_async
from app.store.outbox import SqlOutbox
from tests.conftest import AppClient, figalize, wait_until
from tests.integration.conftest import WriterFor
from tests.integration.history_samples import make
from tests.services.kafka import KafkaService
from tests.services.ports import LOCALHOST, free_port

THE_CURE = "set FIGA_KAFKA_IDEMPOTENCE=false for brokers without it"
AIOKAFKA_REFUSAL = "Unexpected error during InitProducerIdRequest"
RELAY_PAUSED = "outbox relay cannot publish"
RELAY_BACK = "outbox relay publishes again"
AGE_GAUGE = "figachechnaya_outbox_oldest_job_age_seconds"


def kafka_app_settings(
    database_url: str, kafka: KafkaService, topic: str, tmp_path: Path, **overrides: Any
) -> Settings:
    """The app on this database and the test broker, pictures in a folder (no worker
    runs here: what matters is what leaves the outbox), with an operations port.

    `serve` refuses SQLite or a picture folder beside Kafka (workers elsewhere could not
    reach them); the app started directly does not, which lets the outbox's queries run
    on both databases against a real broker."""
    fields: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka.bootstrap_servers,
        "kafka_topic": topic,
        "kafka_idempotence": kafka.supports_idempotence,
        "image_store_url": str(tmp_path / "images"),
        "metrics_port": free_port(),
        "metrics_host": LOCALHOST,
    }
    return Settings(**(fields | overrides))


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def readiness(client: Any) -> dict[str, Any]:
    answer = await client.get("/readyz")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def scraped_age(settings: Settings) -> float:
    """The age gauge as Prometheus reads it from the app's operations port."""
    async with httpx.AsyncClient(timeout=5) as http:
        exposition = (await http.get(f"http://{LOCALHOST}:{settings.metrics_port}/metrics")).text
    (value,) = [
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == AGE_GAUGE
    ]
    return float(value)


# --- the cause, named -------------------------------------------------------------------


async def test_a_broker_refusing_the_idempotent_producer_is_named_with_the_setting_to_change(
    postgres_url: str,
    kafka_service: KafkaService,
    kafka_topic: str,
    app_client: AppClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if kafka_service.supports_idempotence:
        pytest.skip("an external Kafka accepts the idempotent producer: nothing to diagnose")
    caplog.set_level(logging.INFO)
    refused = kafka_app_settings(
        postgres_url, kafka_service, kafka_topic, tmp_path, kafka_idempotence=True
    )
    await upgrade_async(refused)
    client = await app_client(refused)
    made = await figalize(client, "Велосипед")
    assert made["image"]["status"] == "pending"

    async def the_relay_tried_again_and_again() -> bool:
        return len(messages(caplog, AIOKAFKA_REFUSAL)) >= 5  # the start, then the retries

    await wait_until(the_relay_tried_again_and_again, within=20)
    (logged,) = messages(caplog, RELAY_PAUSED)  # once, not at every retry
    assert "idempotent producer" in logged
    assert "InitProducerId" in logged
    assert THE_CURE in logged

    body = await readiness(client)
    assert body["queue"]["ok"] is False
    assert "the broker refused the idempotent producer" in body["queue"]["detail"]
    assert THE_CURE in body["queue"]["detail"]
    assert body["outbox_backlog"] == 1
    assert body["queue"]["oldest_job_age_seconds"] > 0
    assert await scraped_age(refused) > 0

    # The cure works: an app with the setting changed publishes what the first one could not.
    cured = refused.model_copy(update={"kafka_idempotence": False, "metrics_port": 0})
    await app_client(cured)

    async def the_outbox_is_empty() -> bool:
        body = await readiness(client)
        return body["outbox_backlog"] == 0 and body["queue"]["oldest_job_age_seconds"] == 0

    await wait_until(the_outbox_is_empty, within=15, every=0.25)
    assert await scraped_age(refused) == 0
    assert len(messages(caplog, RELAY_PAUSED)) == 1


async def test_an_unreachable_broker_is_not_called_a_refusal_of_idempotence() -> None:
    nobody = Settings(kafka_bootstrap_servers=f"{LOCALHOST}:{free_port()}", kafka_idempotence=True)
    queue = KafkaQueue(nobody)
    with pytest.raises(QueueUnavailable) as unreachable:
        await queue.ping()
    assert "Unable to bootstrap" in str(unreachable.value)
    assert "idempotent" not in str(unreachable.value)


async def test_the_test_broker_s_refusal_is_named_by_the_queue_itself(
    kafka_service: KafkaService, kafka_topic: str
) -> None:
    if kafka_service.supports_idempotence:
        pytest.skip("an external Kafka accepts the idempotent producer: nothing to diagnose")
    queue = KafkaQueue(
        Settings(
            kafka_bootstrap_servers=kafka_service.bootstrap_servers,
            kafka_topic=kafka_topic,
            kafka_idempotence=True,
        )
    )
    with pytest.raises(QueueUnavailable) as refused:
        await queue.publish([JobMessage("01JD0000", b"{}", "request")])
    assert str(refused.value) == (
        "kafka: the broker refused the idempotent producer (InitProducerId failed): "
        f"{THE_CURE} (the broker answered [Error -1] UnknownError)"
    )
    await queue.close()


# --- the log says it once per change ---------------------------------------------------


class SwitchableQueue:
    """Takes messages, or refuses them with a given reason while `refusing` is set."""

    def __init__(self) -> None:
        self.published: list[JobMessage] = []
        self.refusing: str | None = None
        self.attempts = 0

    async def start(self) -> None:
        return None

    async def publish(self, messages: Sequence[JobMessage]) -> None:
        self.attempts += 1
        if self.refusing:
            raise QueueUnavailable(self.refusing)
        self.published.extend(messages)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_the_relay_logs_each_cause_once_and_its_recovery_once(
    outbox: SqlOutbox, writer_for: WriterFor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.jobs.relay")
    queue = SwitchableQueue()
    relay = OutboxRelay(outbox, queue, idle_seconds=0.05)
    writer = writer_for(relay.handoff)
    queue.refusing = "kafka: broker down"
    task = asyncio.create_task(relay.run())
    try:
        await writer.add(*make(0))

        def retried(times: int) -> Callable[[], Awaitable[bool]]:
            start = queue.attempts

            async def retried_enough() -> bool:
                return queue.attempts >= start + times

            return retried_enough

        await wait_until(retried(4), within=10)  # backoff 0.1, 0.2, 0.4… s
        assert messages(caplog, RELAY_PAUSED) == [
            "outbox relay cannot publish, retrying until it can: kafka: broker down"
        ]
        assert relay.paused_because == "kafka: broker down"

        queue.refusing = "kafka: refused for another reason"  # a new cause is news
        await wait_until(retried(2), within=15)
        assert len(messages(caplog, RELAY_PAUSED)) == 2
        assert "another reason" in messages(caplog, RELAY_PAUSED)[1]

        queue.refusing = None

        async def published() -> bool:
            return len(queue.published) == 1 and await outbox.backlog() == 0

        await wait_until(published, within=15)
        await writer.add(*make(1))  # publishing as usual logs nothing more

        async def published_again() -> bool:
            return len(queue.published) == 2

        await wait_until(published_again, within=5)
        assert len(messages(caplog, RELAY_BACK)) == 1
        assert "another reason" in messages(caplog, RELAY_BACK)[0]
        assert len(messages(caplog, RELAY_PAUSED)) == 2
        assert relay.paused_because is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- the oldest job's age ---------------------------------------------------------------


class Clocks:
    """The wall clock and the monotonic clock of `OldestJob`, moved by the test."""

    def __init__(self) -> None:
        self.wall = datetime.now(UTC)
        self.seconds = 0.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.seconds += seconds


async def test_the_oldest_job_s_age_is_read_from_the_outbox_at_most_once_a_period(
    outbox: SqlOutbox, writer: Any
) -> None:
    clocks = Clocks()
    oldest = OldestJob(
        outbox, read_every_seconds=3, now=lambda: clocks.wall, monotonic=lambda: clocks.seconds
    )
    assert await outbox.oldest_written_at() is None
    assert await oldest.age_seconds() == 0  # the first read: nothing waits
    await writer.add(*make(0))
    written = await outbox.oldest_written_at()
    assert written is not None
    clocks.wall = written + timedelta(seconds=1)
    assert await oldest.age_seconds() == 0  # within the period: not read again

    clocks.advance(3)  # a period later: read, 4 s since the job was written
    assert await oldest.age_seconds() == pytest.approx(4)
    await writer.add(*make(1))  # a younger job changes nothing
    clocks.advance(2)
    assert await oldest.age_seconds() == pytest.approx(6)  # counted on between reads
    assert oldest.known_seconds() == pytest.approx(6)

    await outbox.sweep(SwitchableQueue().publish)  # both published and deleted
    assert await oldest.age_seconds() == pytest.approx(6)  # not read yet
    clocks.advance(1)
    assert await oldest.age_seconds() == 0
    assert oldest.known_seconds() == 0

    await writer.add(*make(2))
    clocks.advance(3)
    assert await oldest.age_seconds() > 0  # read: a job waits
    await outbox.sweep(SwitchableQueue().publish)
    oldest.none_waiting()  # the relay counted the outbox empty: no stale age until the next read
    assert oldest.known_seconds() == 0
    assert await oldest.age_seconds() == 0


async def test_while_the_broker_is_down_the_oldest_job_ages_in_readyz_and_metrics(
    database_url: str,
    kafka_service: KafkaService,
    kafka_topic: str,
    app_client: AppClient,
    tmp_path: Path,
) -> None:
    if not kafka_service.controllable:
        pytest.skip("an external broker cannot be stopped by the test")
    settings = kafka_app_settings(database_url, kafka_service, kafka_topic, tmp_path)
    await upgrade_async(settings)
    client = await app_client(settings)
    await figalize(client, "Машина")  # published at once

    async def nothing_waits() -> bool:
        body = await readiness(client)
        return body["outbox_backlog"] == 0 and body["queue"]["oldest_job_age_seconds"] == 0

    await wait_until(nothing_waits, within=10, every=0.2)
    kafka_service.stop()
    try:
        await figalize(client, "Велосипед")
        ages: list[float] = []

        async def the_age_grows() -> bool:
            age = (await readiness(client))["queue"]["oldest_job_age_seconds"]
            if age is None:  # a check past its 1 s bound (a loaded machine) says "not known"
                return False
            ages.append(age)
            return age >= 2.0

        await wait_until(the_age_grows, within=15, every=0.5)
        assert ages == sorted(ages)  # never younger while nothing goes out
        assert await scraped_age(settings) >= 2.0
        body = await readiness(client)
        assert (body["queue"]["ok"], body["outbox_backlog"]) == (False, 1)
    finally:
        kafka_service.start()
    await kafka_service.create_topic(kafka_topic)  # Tansu forgot it

    async def nothing_waits_and_the_gauge_says_so() -> bool:
        return await nothing_waits() and await scraped_age(settings) == 0

    await wait_until(nothing_waits_and_the_gauge_says_so, within=30, every=0.25)
