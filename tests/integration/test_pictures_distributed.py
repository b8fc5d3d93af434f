"""Pictures in the distributed mode: PostgreSQL, Kafka (Tansu), S3 (moto), worker processes.

The app runs in the test's event loop; workers are real `figachechnaya worker`
processes, so they can be killed. Each test has its own database, topic and bucket.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from app.settings import Settings
from tests.conftest import AppClient, figalize, wait_until
from tests.distributed import process_env, settings_env
from tests.services.kafka import KafkaService
from tests.services.s3 import S3Service

FIGACHECHNAYA = str(Path(sys.executable).with_name("figachechnaya"))


@dataclass
class Stack:
    settings: Settings
    kafka: KafkaService
    s3: S3Service
    bucket: str
    tmp_path: Path

    def env(self, **overrides: str) -> dict[str, str]:
        return process_env(self.settings, self.s3, **overrides)

    def objects(self) -> list[str]:
        filesystem = self.s3.filesystem(use_listings_cache=False)
        return sorted(filesystem.find(f"{self.bucket}/pictures"))

    def object_bytes(self, path: str) -> bytes:
        data: bytes = self.s3.filesystem().cat_file(path)
        return data


@pytest.fixture
def stack(
    stack_settings: Settings,
    kafka_service: KafkaService,
    s3_service: S3Service,
    s3_bucket: str,
    tmp_path: Path,
) -> Stack:
    return Stack(stack_settings, kafka_service, s3_service, s3_bucket, tmp_path)


class Workers:
    """`figachechnaya worker` processes with their output in files, all stopped at the end."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        log = self._stack.tmp_path / f"worker-{len(self.processes)}.log"
        process = subprocess.Popen(
            [FIGACHECHNAYA, "worker"],
            env=self._stack.env(**env),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.processes.append((process, log))
        return process

    def log(self) -> str:
        return "".join(path.read_text(errors="replace") for _, path in self.processes)

    def stop_all(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(stack: Stack) -> Iterator[Workers]:
    pool = Workers(stack)
    yield pool
    pool.stop_all()


async def statuses(client: Any, ids: list[str]) -> list[str]:
    answers = await asyncio.gather(*(client.get(f"/api/v2/figalizations/{i}") for i in ids))
    return [answer.json()["image"]["status"] for answer in answers]


async def wait_for_pictures(client: Any, ids: list[str], *, within: float = 60) -> None:
    async def all_done() -> bool:
        return "pending" not in await statuses(client, ids)

    await wait_until(all_done, within=within, every=0.25)


def test_the_web_app_of_the_distributed_mode_does_not_load_pillow() -> None:
    """Only a process that draws pictures pays for Pillow; built with Kafka, the app never
    imports it (nothing is contacted: the addresses below are never dialled)."""
    nowhere = Settings(
        database_url="postgresql+asyncpg://figa@127.0.0.1:9/figa",
        kafka_bootstrap_servers="127.0.0.1:9",
        image_store_url="s3://pictures/figa",
    )
    program = "import sys; import app.main; print(sorted(m for m in sys.modules if 'PIL' in m))"
    loaded = subprocess.run(
        [sys.executable, "-c", program],
        env={**os.environ, **settings_env(nowhere)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert loaded.stdout.strip() == "[]", loaded.stderr


async def test_50_figalizations_become_50_png_objects_of_1200_by_630(
    stack: Stack, workers: Workers, app_client: AppClient
) -> None:
    client = await app_client(stack.settings)
    assert (await client.get("/readyz")).status_code == 200  # no worker yet: the app is ready
    workers.start()
    workers.start()
    ids = [(await figalize(client, f"Велосипед номер {n}"))["id"] for n in range(50)]
    await wait_for_pictures(client, ids)
    assert await statuses(client, ids) == ["ready"] * 50
    objects = stack.objects()
    assert [Path(path).name for path in objects] == sorted(f"{i}.png" for i in ids)
    for path in objects:
        picture = Image.open(io.BytesIO(stack.object_bytes(path)))
        assert (picture.format, picture.size) == ("PNG", (1200, 630))
    download = await client.get(f"/api/v2/figalizations/{ids[0]}/image", follow_redirects=False)
    assert download.status_code == 302  # to a presigned URL of the bucket
    location = download.headers["location"]
    assert location.startswith(f"{stack.s3.endpoint_url}/{stack.bucket}/pictures/{ids[0]}.png?")
    picture = stack.s3.filesystem().cat_file(f"{stack.bucket}/pictures/{ids[0]}.png")
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(location)).content == picture


async def test_jobs_made_while_the_broker_is_down_arrive_once_it_is_back(
    stack: Stack, workers: Workers, app_client: AppClient
) -> None:
    if not stack.kafka.controllable:
        pytest.skip("an external broker cannot be stopped by the test")
    stack.kafka.stop()
    client = await app_client(stack.settings)
    ids = [(await figalize(client, f"кот номер {n}"))["id"] for n in range(10)]
    ready = (await client.get("/readyz")).json()
    assert ready["queue"]["ok"] is False
    assert ready["outbox_backlog"] == 10
    stack.kafka.start()  # Tansu comes back empty: the operator recreates the topic
    await stack.kafka.create_topic(stack.settings.kafka_topic, partitions=4)
    workers.start()
    await wait_for_pictures(client, ids)
    assert await statuses(client, ids) == ["ready"] * 10
    assert len(stack.objects()) == 10
    for figalization_id in ids:  # every picture drawn exactly once
        assert workers.log().count(f"picture {figalization_id} ready") == 1


async def test_a_worker_killed_mid_job_leaves_it_to_another_which_finishes_it(
    stack: Stack, workers: Workers, app_client: AppClient
) -> None:
    if not stack.s3.controllable:
        pytest.skip("an external object store cannot be stopped by the test")
    client = await app_client(stack.settings)
    stack.s3.stop()  # the first worker gets stuck retrying the upload…
    first = workers.start(FIGA_IMAGE_MAX_ATTEMPTS="1000")
    figalization_id = (await figalize(client, "Велосипед"))["id"]

    async def stuck_in_the_middle() -> bool:
        return f"storing picture {figalization_id} failed" in workers.log()

    await wait_until(stuck_in_the_middle, within=60)
    first.kill()  # …and dies without committing
    first.wait()
    stack.s3.start()
    stack.s3.filesystem().makedirs(stack.bucket, exist_ok=True)  # an empty store needs it back
    workers.start()
    await wait_for_pictures(client, [figalization_id])
    assert await statuses(client, [figalization_id]) == ["ready"]
    assert [Path(p).name for p in stack.objects()] == [f"{figalization_id}.png"]


async def test_storage_failing_marks_the_picture_failed_and_does_not_block_the_partition(
    stack: Stack, workers: Workers, app_client: AppClient
) -> None:
    if not stack.s3.controllable:
        pytest.skip("an external object store cannot be stopped by the test")
    topic = f"{stack.settings.kafka_topic}-single"
    await stack.kafka.create_topic(topic, partitions=1)
    stack.settings = stack.settings.model_copy(update={"kafka_topic": topic})
    client = await app_client(stack.settings)
    stack.s3.stop()
    ready = await client.get("/readyz")
    assert ready.status_code == 200  # ready all the same: pictures wait, the page serves
    assert ready.json()["images"]["ok"] is False
    workers.start(FIGA_IMAGE_MAX_ATTEMPTS="2")
    doomed = (await figalize(client, "Велосипед"))["id"]
    await wait_for_pictures(client, [doomed])
    assert await statuses(client, [doomed]) == ["failed"]
    assert "attempt 2/2" in workers.log()
    stack.s3.start()
    stack.s3.filesystem().makedirs(stack.bucket, exist_ok=True)
    fine = (await figalize(client, "Машина"))["id"]
    await wait_for_pictures(client, [fine])
    assert await statuses(client, [fine]) == ["ready"]
    await stack.kafka.delete_topic(topic)


async def test_a_bad_message_is_marked_failed_and_skipped(
    stack: Stack, workers: Workers, app_client: AppClient
) -> None:
    from aiokafka import AIOKafkaProducer

    client = await app_client(stack.settings)
    figalization_id = (await figalize(client, "Велосипед"))["id"]
    workers.start()
    await wait_for_pictures(client, [figalization_id])
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            stack.settings.kafka_topic, b"{not json", key=figalization_id.encode()
        )
    finally:
        await producer.stop()

    async def marked_failed() -> bool:
        return await statuses(client, [figalization_id]) == ["failed"]

    await wait_until(marked_failed, within=30)
    after = (await figalize(client, "Машина"))["id"]
    await wait_for_pictures(client, [after])
    assert await statuses(client, [after]) == ["ready"]
