"""The distributed mode on one machine, as the benchmark and the soak run it.

PostgreSQL and the Tansu broker come from `tests.services` (real servers, no
Docker); the object store is Debian's nginx (`bench.sink`: moto's CPU per PUT
would be taken from the workers being measured). The app and the workers are the
real console script, `figachechnaya serve` (uvicorn, uvloop, httptools, one
process: the production server settings of `app/cli.py`) and
`figachechnaya worker`, each in its own process group that dies with us.
Workers run under `nice -n 10`: pictures are background work and must not
take the web tier's CPU on a small machine. Each worker is held to one core
(`taskset`, worker i on core i mod n), as its pod is by its CPU limit of 1
(k8s/base/worker-deployment.yaml): one worker's rate is then one core's, and
more workers show what more pods would add.

A `Site` is one isolated world inside the shared servers (a database, a
topic, a consumer group and a bucket prefix), so one phase's backlog never
leaks into another's numbers. Only 127.0.0.1 is ever used.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy import make_url

from app.settings import Settings
from bench.cpu import tree_cpu_seconds
from bench.sink import ObjectSink
from tests.distributed import settings_env
from tests.services.kafka import KafkaService
from tests.services.ports import LOCALHOST, free_port
from tests.services.postgres import PostgresService
from tests.services.processes import ServerProcess, make_workdir

FIGACHECHNAYA = str(Path(sys.executable).with_name("figachechnaya"))
PARTITIONS = 12  # as in production: up to 12 workers share a topic
START_SECONDS = 60.0


class Process:
    """One process of ours: a server with a port and a log, its CPU time and memory."""

    def __init__(
        self, name: str, argv: list[str], *, env: dict[str, str], log: Path, metrics_url: str = ""
    ) -> None:
        self.name = name
        self.metrics_url = metrics_url  # its operations port's /metrics, when it has one
        self._server = ServerProcess(name, argv, log, stop_signal=signal.SIGTERM, env=env)

    @property
    def pid(self) -> int:
        pid = self._server.pid
        if pid is None:
            raise RuntimeError(f"{self.name} is not running.\n{self._server.describe_log()}")
        return pid

    @property
    def log_path(self) -> Path:
        return self._server.log_path

    def start(self, ready_url: str) -> None:
        """Spawn, then wait until `ready_url` answers 200."""
        self.spawn()
        self.wait_ready(ready_url)

    def spawn(self) -> None:
        self._server.spawn()

    def wait_ready(self, url: str) -> None:
        self._server.wait_ready(lambda: _answers(url), timeout=START_SECONDS, what=url)

    def stop(self) -> None:
        """SIGTERM (graceful: the app drains, a worker commits and leaves its group)."""
        self._server.stop(timeout=25.0)

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the process and any children it runs (its
        process tree, `bench.cpu`)."""
        return tree_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        """Resident memory now (/proc/PID/status VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for {self.name}")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Site:
    """One isolated world: database, topic, consumer group and bucket prefix."""

    name: str
    settings: Settings
    stack: Stack

    @property
    def dsn(self) -> str:
        url = make_url(self.settings.database_url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    @asynccontextmanager
    async def database(self) -> AsyncIterator[asyncpg.Connection]:
        connection = await asyncpg.connect(self.dsn)
        try:
            yield connection
        finally:
            await connection.close()

    async def scalar(self, sql: str) -> int:
        async with self.database() as connection:
            return int(await connection.fetchval(sql))

    async def image_statuses(self) -> dict[str, int]:
        """Rows by picture status: pending, ready, failed."""
        async with self.database() as connection:
            rows = await connection.fetch(
                "SELECT image_status, count(*) FROM figalization GROUP BY image_status"
            )
        return {row[0]: int(row[1]) for row in rows}

    def stored_pictures(self) -> int:
        bucket = self.stack.bucket
        return self.stack.s3.count(f"{bucket}/{self.name}")


class Stack:
    """The shared servers, and the app, worker and ceiling processes started on them."""

    def __init__(self) -> None:
        self.workdir = make_workdir("bench")  # logs; a killed run's are removed next time
        self._keep_logs = False
        self.postgres = PostgresService()
        self.kafka = KafkaService()
        self.s3 = ObjectSink()
        self.bucket = ""
        self._processes: list[Process] = []

    def start(self) -> None:
        self.postgres.start()
        self.kafka.start()
        self.s3.start()
        self.bucket = self.s3.create_bucket()

    def close(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        for service in (self.s3, self.kafka, self.postgres):
            service.close()

    async def new_site(self, name: str, **overrides: Any) -> Site:
        """A fresh database (migrated), topic and group; settings as in production."""
        database = await self.postgres.create_database()
        topic = f"bench-{name}-{os.getpid()}"
        await self.kafka.create_topic(topic, partitions=PARTITIONS)
        timeouts = self.kafka.group_timeouts
        settings = Settings(
            database_url=self.postgres.url_for(database),
            kafka_bootstrap_servers=self.kafka.bootstrap_servers,
            kafka_topic=topic,
            kafka_group_id=f"bench-{name}",
            kafka_idempotence=self.kafka.supports_idempotence,
            kafka_topic_partitions=PARTITIONS,
            kafka_session_timeout_ms=timeouts["session_timeout_ms"],
            kafka_heartbeat_interval_ms=timeouts["heartbeat_interval_ms"],
            image_store_url=f"s3://{self.bucket}/{name}",
            s3_endpoint_url=self.s3.endpoint_url,
            log_level="WARNING",
            rate_limit_per_minute=0,
        )
        settings = Settings(**(settings.model_dump() | overrides))
        migrate = await asyncio.create_subprocess_exec(
            FIGACHECHNAYA,
            "migrate",
            env=self.env(settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(migrate.communicate(), 120)
        if migrate.returncode != 0:
            raise RuntimeError(f"figachechnaya migrate failed:\n{output.decode()}")
        return Site(name, settings, self)

    def env(self, settings: Settings, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            **settings_env(settings),
            **self.s3.credentials_environment(),
            "FIGA_METRICS_PORT": "0",
            "FIGA_WORKER_METRICS_PORT": "0",
            **extra,
        }

    def start_app(self, site: Site) -> tuple[Process, str]:
        """`figachechnaya serve` on a free port, its metrics on another (the app's
        `metrics_url`); returns it and its base URL once ready."""
        port, metrics_port = free_port(), free_port()
        argv = [FIGACHECHNAYA, "serve", "--host", LOCALHOST, "--port", str(port)]
        env = self.env(
            site.settings, FIGA_METRICS_PORT=str(metrics_port), FIGA_METRICS_HOST=LOCALHOST
        )
        metrics_url = f"http://{LOCALHOST}:{metrics_port}/metrics"
        process = self._spawn(f"app-{site.name}", argv, env, metrics_url=metrics_url)
        base_url = f"http://{LOCALHOST}:{port}"
        process.start(f"{base_url}/readyz")
        process.wait_ready(metrics_url)
        return process, base_url

    def start_workers(self, site: Site, count: int) -> list[tuple[Process, str]]:
        """`count` workers spawned together (one group join), then awaited."""
        workers = [self.spawn_worker(site, index) for index in range(count)]
        for process, metrics_url in workers:
            process.wait_ready(metrics_url)
        return workers

    def spawn_worker(self, site: Site, index: int = 0) -> tuple[Process, str]:
        """`nice -n 10 taskset -c <core> figachechnaya worker` with its metrics on a free port
        (not awaited): worker `index` on core `index` mod the cores there are."""
        port = free_port()
        nice = shutil.which("nice") or "/usr/bin/nice"
        taskset = shutil.which("taskset") or "/usr/bin/taskset"
        cores = sorted(os.sched_getaffinity(0))
        core = cores[index % len(cores)]
        env = self.env(
            site.settings,
            FIGA_WORKER_METRICS_PORT=str(port),
            FIGA_WORKER_METRICS_HOST=LOCALHOST,
            FIGA_LOG_LEVEL="INFO",  # a line per picture, as in production
        )
        argv = [nice, "-n", "10", taskset, "-c", str(core), FIGACHECHNAYA, "worker"]
        metrics_url = f"http://{LOCALHOST}:{port}/metrics"
        process = self._spawn(f"worker-{site.name}-{index}", argv, env, metrics_url=metrics_url)
        process.spawn()
        return process, metrics_url

    def start_hello(self) -> tuple[Process, str]:
        """The ceiling: a bare Litestar route under the same uvicorn settings."""
        port = free_port()
        argv = [sys.executable, "-m", "bench.hello", "--host", LOCALHOST, "--port", str(port)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
        process = self._spawn("hello", argv, env)
        base_url = f"http://{LOCALHOST}:{port}"
        process.start(f"{base_url}/")
        return process, base_url

    def service_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far of PostgreSQL (postmaster and backends) and the broker, when
        they are ours (an external server's is not counted)."""
        found = {}
        for name, server in (
            ("postgres", getattr(self.postgres, "_server", None)),
            ("kafka", getattr(self.kafka, "_broker", None)),
            ("s3", self.s3),
        ):
            pid = server.pid if server is not None else None
            if pid is not None:
                found[name] = tree_cpu_seconds(pid)
        return found

    def stop(self, process: Process) -> None:
        process.stop()
        if process in self._processes:
            self._processes.remove(process)

    def keep_logs(self) -> None:
        """The servers' logs stay after the run: it saw something they may explain."""
        self._keep_logs = True

    def forget_logs(self) -> None:
        if not self._keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], *, metrics_url: str = ""
    ) -> Process:
        log = self.workdir / f"{name}.log"
        process = Process(name, argv, env=env, log=log, metrics_url=metrics_url)
        self._processes.append(process)
        return process


@contextmanager
def running_stack(command: str) -> Iterator[Stack]:
    """A stack whose servers all stop at the end; on failure their logs stay, and say where."""
    stack = Stack()
    try:
        yield stack
    except BaseException:
        print(f"{command}: failed; server logs kept in {stack.workdir}", file=sys.stderr)
        raise
    finally:
        stack.close()
    stack.forget_logs()
