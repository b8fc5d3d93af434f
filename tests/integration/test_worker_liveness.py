"""The worker's liveness follows its consume loop (issue 11): stuck → `/healthz` 503, running → 200.

A real `figachechnaya worker` process reaches PostgreSQL through a TCP proxy
written here, which can hold every byte in both directions (the database
"accepts and never answers", as behind a dropped link) or cut and refuse
connections (the database is down). With `FIGA_DB_TIMEOUT_SECONDS` an hour, a
job that records its picture while the proxy holds is truly stuck: the loop
beats no more and `/healthz` on the worker's metrics port turns 503 after
`FIGA_WORKER_STALL_SECONDS`; released, the statement completes, the loop goes
round again and `/healthz` is 200. A database that refuses is different: each
bounded attempt fails and is retried, the loop is alive and waits, so the
worker is not restarted for an outage a restart cannot cure.

Honest limits: the "stuck" here is a statement waiting without a timeout —
what a blackholed link does to a driver without one; in production the
database timeout (2 s by default) turns the same hold into retries, so there
`/healthz` catches the hangs nobody bounded (a deadlock, a blocked event loop,
a call with no timeout), which this test stands for.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

from app.settings import Settings
from tests.conftest import AppClient, figalize, wait_until
from tests.distributed import process_env
from tests.services.ports import LOCALHOST, free_port
from tests.services.processes import ServerProcess
from tests.services.s3 import S3Service

FIGACHECHNAYA = str(Path(sys.executable).with_name("figachechnaya"))
# Above the longest backoff between two retries (5 s), so a worker waiting for a
# refusing database is seen alive; short enough for a quick test.
STALL_SECONDS = 8
WAITING_LINE = "waits for the database"


class DatabaseProxy:
    """127.0.0.1:port → PostgreSQL, switchable between passing, holding and refusing."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refusing = False
        self._clients: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, LOCALHOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def hold(self) -> None:
        """Accept, read, and never pass anything on: every query waits for an answer."""
        self._flowing.clear()

    def refuse(self) -> None:
        """Reset every connection, and every new one at once: the database is down."""
        self._refusing = True
        for client in list(self._clients):
            client.transport.abort()

    def release(self) -> None:
        """Pass traffic again, held bytes first."""
        self._refusing = False
        self._flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for client in list(self._clients):
            client.transport.abort()
        self._flowing.set()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        self._clients.add(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            self._clients.discard(writer)
            return
        try:
            await asyncio.gather(
                self._pump(reader, upstream_writer),
                self._pump(upstream_reader, writer),
                return_exceptions=True,
            )
        finally:
            self._clients.discard(writer)
            upstream_writer.transport.abort()
            writer.transport.abort()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while chunk := await source.read(65536):
            await self._flowing.wait()
            sink.write(chunk)
            await sink.drain()
        sink.transport.abort()  # one side gone: so is the other


@dataclass
class Worker:
    process: ServerProcess
    log_path: Path
    healthz_url: str
    metrics_url: str

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def healthz(self) -> tuple[int, dict[str, object]]:
        assert self.process.running, self.log()
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.get(self.healthz_url)
        return answer.status_code, answer.json()


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[DatabaseProxy]:
    url = make_url(postgres_url)
    running = DatabaseProxy(str(url.host), int(url.port or 5432))
    await running.start()
    yield running
    await running.close()


@pytest.fixture
async def worker(
    stack_settings: Settings, s3_service: S3Service, proxy: DatabaseProxy, tmp_path: Path
) -> AsyncIterator[Worker]:
    """A worker whose database is behind the proxy, with no database timeout to speak of."""
    proxied = make_url(stack_settings.database_url).set(host=LOCALHOST, port=proxy.port)
    port = free_port()
    env = process_env(
        stack_settings,
        s3_service,
        FIGA_DATABASE_URL=proxied.render_as_string(hide_password=False),
        FIGA_DB_TIMEOUT_SECONDS="3600",
        FIGA_WORKER_STALL_SECONDS=str(STALL_SECONDS),
        FIGA_WORKER_METRICS_PORT=str(port),
        FIGA_WORKER_METRICS_HOST=LOCALHOST,
    )
    log_path = tmp_path / "worker.log"
    process = ServerProcess("worker", [FIGACHECHNAYA, "worker"], log_path, env=env)
    process.spawn()
    base = f"http://{LOCALHOST}:{port}"
    yield Worker(process, log_path, f"{base}/healthz", f"{base}/metrics")
    proxy.release()  # a worker stuck in the database could not stop in time
    await asyncio.to_thread(process.stop, 30)


async def status_of(client: Any, figalization_id: str) -> str:
    answer = await client.get(f"/api/v2/figalizations/{figalization_id}")
    return str(answer.json()["image"]["status"])


async def picture_made(client: Any, worker: Worker, phrase: str) -> None:
    """Figalize, and wait for the worker to draw and record the picture."""
    figalization_id = (await figalize(client, phrase))["id"]

    async def ready() -> bool:
        assert worker.process.running, worker.log()
        return await status_of(client, figalization_id) == "ready"

    await wait_until(ready, within=60, every=0.25)


async def started(client: Any, worker: Worker) -> None:
    """The worker joined the group, drew a first picture, and its `/healthz` is 200."""
    await picture_made(client, worker, "Велосипед")

    async def worker_alive() -> bool:
        return (await worker.healthz())[0] == 200

    await wait_until(worker_alive, within=30)


async def test_a_worker_stuck_in_the_database_fails_healthz_and_recovers_when_it_answers(
    stack_settings: Settings, app_client: AppClient, proxy: DatabaseProxy, worker: Worker
) -> None:
    client = await app_client(stack_settings)
    await started(client, worker)

    proxy.hold()
    stuck = (await figalize(client, "Машина"))["id"]

    async def healthz_says_stalled() -> bool:
        return (await worker.healthz())[0] == 503

    await wait_until(healthz_says_stalled, within=STALL_SECONDS + 20, every=0.25)
    _, body = await worker.healthz()
    assert body["status"] == "stalled"
    assert float(str(body["silent_seconds"])) > STALL_SECONDS
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(worker.metrics_url)).status_code == 200  # scrapes still answer
    assert await status_of(client, stuck) == "pending"

    proxy.release()

    async def recovered() -> bool:
        return (await worker.healthz())[0] == 200 and await status_of(client, stuck) == "ready"

    await wait_until(recovered, within=30, every=0.25)
    await picture_made(client, worker, "Самовар")  # and the loop goes on


async def test_a_worker_waiting_for_a_refusing_database_stays_alive(
    stack_settings: Settings, app_client: AppClient, proxy: DatabaseProxy, worker: Worker
) -> None:
    client = await app_client(stack_settings)
    await started(client, worker)

    proxy.refuse()
    waiting = (await figalize(client, "Машина"))["id"]

    async def waits_for_the_database() -> bool:
        return WAITING_LINE in worker.log()

    await wait_until(waits_for_the_database, within=30, every=0.1)
    deadline = asyncio.get_running_loop().time() + STALL_SECONDS * 1.5
    while asyncio.get_running_loop().time() < deadline:  # past the stall limit: still alive
        status, body = await worker.healthz()
        assert status == 200, body
        await asyncio.sleep(0.5)
    assert await status_of(client, waiting) == "pending"

    proxy.release()

    async def recorded() -> bool:
        return await status_of(client, waiting) == "ready"

    await wait_until(recorded, within=30, every=0.25)
