"""The system on separate test hosts: servers, app and workers each in a namespace of its own.

One `Cluster` a test module: PostgreSQL, the broker and S3 start once in their
namespaces; each test gets a fresh database, topic and bucket and starts its own
`figachechnaya serve` / `figachechnaya worker` processes (with the commands and
environment a deployment gives them) on the app and worker hosts. The test talks
to every host from the root namespace, whose view is never cut.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.settings import Settings
from app.store.migrate import upgrade_async
from tests.distributed import distributed_settings, process_env
from tests.services.kafka import KafkaService
from tests.services.netns import TestHosts
from tests.services.postgres import PostgresService
from tests.services.processes import ServerProcess
from tests.services.s3 import S3Service

FIGACHECHNAYA = str(Path(sys.executable).with_name("figachechnaya"))
SERVER_HOSTS = ("pg", "kafka", "s3")
PROCESS_HOSTS = ("app", "app-b", "worker-a", "worker-b")
APP_PORT = 8000
METRICS_PORT = 9101
WORKER_METRICS_PORT = 9100


@dataclass
class Process:
    """One `figachechnaya` process on a test host: its URL and its log."""

    host: str
    url: str
    server: ServerProcess

    def log(self) -> str:
        return self.server.log_path.read_text(errors="replace")

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples with these labels, from its operations port."""
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"{self.url}/metrics")).text
        total = 0.0
        for line in text.splitlines():
            match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
            if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
                total += float(match.group(2))
        return total


@dataclass
class Cluster:
    hosts: TestHosts
    postgres: PostgresService
    kafka: KafkaService
    s3: S3Service
    workdir: Path
    processes: list[Process] = field(default_factory=list)
    settings: Settings | None = None
    _spawned: Iterator[int] = field(default_factory=itertools.count)

    async def new_site(self, **overrides: Any) -> Settings:
        """A fresh database (migrated), topic and bucket; the settings every process gets."""
        database = await self.postgres.create_database()
        topic = f"t-{uuid.uuid4().hex}"
        await self.kafka.create_topic(topic, partitions=4)
        bucket = self.s3.create_bucket()
        self.settings = distributed_settings(
            database_url=self.postgres.url_for(database),
            kafka=self.kafka,
            topic=topic,
            s3=self.s3,
            bucket=bucket,
            **overrides,
        )
        await upgrade_async(self.settings)
        return self.settings

    def _env(self, host: str, **overrides: str) -> dict[str, str]:
        assert self.settings is not None, "call new_site() first"
        address = self.hosts[host].address
        return process_env(
            self.settings,
            self.s3,
            FIGA_METRICS_HOST=address,
            FIGA_METRICS_PORT=str(METRICS_PORT),
            FIGA_WORKER_METRICS_HOST=address,
            FIGA_WORKER_METRICS_PORT=str(WORKER_METRICS_PORT),
            FIGA_LOG_FORMAT="json",
            **overrides,
        )

    def start_app(self, host: str = "app", **env: str) -> Process:
        """`figachechnaya serve` on `host`, ready (its /readyz answers)."""
        address = self.hosts[host].address
        argv = [FIGACHECHNAYA, "serve", "--host", address, "--port", str(APP_PORT)]
        process = self._spawn(host, argv, self._env(host, **env), f"http://{address}:{APP_PORT}")
        process.server.wait_ready(
            lambda: _answers(f"{process.url}/readyz"), timeout=30, what="answering /readyz"
        )
        return process

    def start_worker(self, host: str = "worker-a", **env: str) -> Process:
        """`figachechnaya worker` on `host`; its /healthz answers once it runs."""
        address = self.hosts[host].address
        process = self._spawn(
            host,
            [FIGACHECHNAYA, "worker"],
            self._env(host, **env),
            f"http://{address}:{WORKER_METRICS_PORT}",
        )
        process.server.wait_ready(
            lambda: _answers(f"{process.url}/healthz"), timeout=30, what="answering /healthz"
        )
        return process

    def app_metrics(self, app: Process) -> Process:
        """The app's operations port, as a `Process` whose `metric()` reads it."""
        return Process(
            app.host, f"http://{self.hosts[app.host].address}:{METRICS_PORT}", app.server
        )

    def _spawn(self, host: str, argv: list[str], env: dict[str, str], url: str) -> Process:
        log = self.workdir / f"{host}-{next(self._spawned)}.log"
        server = ServerProcess(
            f"figachechnaya on {host}", argv, log, env=env, namespace=self.hosts[host].namespace
        )
        server.spawn()
        process = Process(host, url, server)
        self.processes.append(process)
        return process

    def stop_processes(self) -> None:
        for process in self.processes:
            process.server.stop(timeout=20)
        self.processes.clear()

    async def scalar(self, statement: str) -> Any:
        """One value from the site's database, read from the test's own (never cut) host."""
        assert self.settings is not None
        engine = create_async_engine(self.settings.database_url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                return (await connection.execute(sa.text(statement))).scalar_one()
        finally:
            await engine.dispose()

    def objects(self) -> list[str]:
        assert self.settings is not None
        bucket_prefix = self.settings.image_store_url.removeprefix("s3://")
        filesystem = self.s3.filesystem(use_listings_cache=False)
        return sorted(filesystem.find(bucket_prefix))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False


def start_cluster(workdir: Path) -> Iterator[Cluster]:
    """The servers on their hosts for one module; everything removed afterwards."""
    hosts = TestHosts([*SERVER_HOSTS, *PROCESS_HOSTS])
    postgres = PostgresService(host=hosts["pg"].address, namespace=hosts["pg"].namespace)
    kafka = KafkaService(host=hosts["kafka"].address, namespace=hosts["kafka"].namespace)
    s3 = S3Service(host=hosts["s3"].address, namespace=hosts["s3"].namespace)
    cluster = Cluster(hosts, postgres, kafka, s3, workdir)
    try:
        for service in (postgres, kafka, s3):
            service.start()
        yield cluster
    finally:
        cluster.stop_processes()
        for service in (s3, kafka, postgres):
            service.close()
        hosts.close()


async def wait_for(condition: Any, *, within: float, every: float = 0.25) -> None:
    """Poll an async condition; fail with its name when it never holds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{condition.__name__} did not hold within {within}s")
        await asyncio.sleep(every)
