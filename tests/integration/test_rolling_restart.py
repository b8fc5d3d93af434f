"""Rolling restarts under load (issue 14, §5): SIGTERM to a replica loses no request and no job.

The app: two `figachechnaya serve` processes on PostgreSQL, Kafka (Tansu) and S3
(moto) behind Debian's nginx running deploy/nginx/nginx.conf, its upstream
naming the two ports; a fixed schedule of 50 requests/s (page GETs, v2 POSTs,
form POSTs with their CSRF token, polls) for 15 s, not a closed loop, so a
slow answer does not slow the load down. One replica gets SIGTERM, is started
again, then the other: every answer must be the expected one (no 5xx, no
connection error) and every figalization answered must be in PostgreSQL.

The worker: 20 POSTs/s for 15 s while a second worker joins and the first one
gets SIGTERM (and a replacement starts): no job may come twice
(`figachechnaya_image_jobs_redelivered_total` on every worker's /metrics, and
each "picture … ready" line once in all logs), one object per figalization,
none pending.

Measured on 2026-12-01 (2 shared cores), before the fixes: 112-198 of ~750
requests failed (502 "no live upstreams": nginx skips a replica for 10 s after
one refused connection, so stopping the second one sooner took both away; and
502 on POSTs reset in the stopping app's accept queue), and 17 of 300 pictures
were drawn twice (the surviving worker's batch outlived a rebalance). After:
0 failed, p99 18-61 ms during the restarts; 0 redeliveries.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.ext.asyncio import create_async_engine

from app.cli import GRACE_SECONDS
from app.graceful_stop import FIRST_REQUEST_SECONDS
from app.settings import Settings
from app.store.tables import figalization_table
from tests.conftest import AppClient, wait_until
from tests.distributed import process_env
from tests.services.ports import LOCALHOST, free_port
from tests.services.processes import ServerProcess
from tests.services.s3 import S3Service
from workers.shutdown import GRACE_SECONDS as WORKER_GRACE_SECONDS

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx" / "nginx.conf"
FIGACHECHNAYA = str(Path(sys.executable).with_name("figachechnaya"))
RATE = 50  # requests per second, on a fixed schedule
LOAD_SECONDS = 15.0  # at least; on until both replicas are back
MAX_LOAD_SECONDS = 45.0
FIRST_SIGTERM_AT = 4.0  # seconds into the load; the second follows once the first is back
RESULT_LINK = re.compile(r'<a href="/r/(\w+)">Постоянная ссылка</a>')
CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')


# --- the stack: replicas, nginx, the database --------------------------------------------------


def answers_200(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def sigterm(process: ServerProcess, *, within: float) -> tuple[int | None, float]:
    """SIGTERM, as a rolling restart sends it: (exit status or None, seconds it took)."""
    popen = process._process  # the test's own child
    assert popen is not None, f"{process.name} was never started"
    assert popen.poll() is None, f"{process.name} is not running"
    popen.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    try:
        status = await asyncio.to_thread(popen.wait, within)
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - signalled
    return status, time.monotonic() - signalled


@dataclass
class Replica:
    """One `figachechnaya serve`, its public and metrics ports fixed across restarts."""

    name: str
    port: int
    metrics_port: int
    process: ServerProcess

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    async def start(self) -> None:
        """Spawn it and wait for its /healthz, polling with one client: a new client per
        poll (an SSL context each) would take the CPU the load and the start-up need."""
        self.process.spawn()
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            deadline = time.monotonic() + 30
            while True:
                assert self.process.running, f"{self.name} exited\n{self.process.describe_log()}"
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{self.name} did not start in 30 s"
                await asyncio.sleep(0.1)

    async def sigterm(self) -> tuple[int | None, float]:
        return await sigterm(self.process, within=GRACE_SECONDS + 5)

    def requests_answered(self) -> float:
        """Requests this process (the one running now) has answered, from its /metrics."""
        text = httpx.get(f"http://{LOCALHOST}:{self.metrics_port}/metrics", timeout=5).text
        samples = re.findall(r"^figachechnaya_http_requests_total\{([^}]*)\} (\S+)$", text, re.M)
        return sum(float(value) for labels, value in samples if "/healthz" not in labels)


def substituted(text: str, substitutions: list[tuple[str, str, str]]) -> str:
    """`text` with each (old, new, why) applied; each `old` must occur exactly once."""
    for old, new, why in substitutions:
        assert text.count(old) == 1, f"{old!r} ({why}) is not in nginx.conf once: update the test"
        text = text.replace(old, new)
    return text


def nginx_config(app_ports: list[int], listen: int, s3_netloc: str, pid: Path) -> str:
    """deploy/nginx/nginx.conf as tests/deploy/test_running_configs.py adapts it, but with
    both replicas in the upstream: what `app:8000 resolve` finds in compose. Its JSON access
    log already says which replica answered and how fast (`upstream_addr`, `request_time`)."""
    servers = "\n    ".join(f"server {LOCALHOST}:{port};" for port in app_ports)
    backups = "\n    ".join(f"server {LOCALHOST}:{port} backup max_fails=0;" for port in app_ports)
    return substituted(
        NGINX_CONF.read_text(encoding="utf-8"),
        [
            ("pid /tmp/nginx.pid;", f"pid {pid};", "this test's file"),
            ("resolver 127.0.0.11 valid=10s ipv6=off;", "", "Docker's DNS; no names below"),
            ("server app:8000 resolve;", servers, "the two replicas"),
            ("server app:8000 resolve backup max_fails=0;", backups, "them again, as backups"),
            ("server minio:9000 resolve;", f"server {s3_netloc};", "the test S3 server"),
            ("listen 8080;", f"listen {LOCALHOST}:{listen};", "a free loopback port"),
        ],
    )


@dataclass
class AppStack:
    nginx: str
    replicas: list[Replica]
    nginx_log: Path

    def logs(self) -> str:
        parts = [f"--- nginx\n{self.nginx_log.read_text(errors='replace')[-4000:]}"]
        parts += [f"--- {r.name}\n{r.process.log_tail(30)}" for r in self.replicas]
        return "\n".join(parts)


@pytest.fixture
async def app_stack(
    stack_settings: Settings,
    s3_service: S3Service,
    tmp_path: Path,
) -> AsyncIterator[AppStack]:
    """Two replicas as compose runs them (one shared FIGA_SECRET_KEY), nginx in front."""
    binary = shutil.which("nginx")
    if binary is None:
        pytest.fail("nginx is not installed; apt-get install -y nginx (it runs the proxy's config)")
    env = process_env(
        stack_settings,
        s3_service,
        FIGA_SECRET_KEY=os.urandom(16).hex(),  # CSRF tokens of one replica pass the other
        FIGA_LOG_FORMAT="json",
        FIGA_IMAGE_RETRY_SECONDS="3600",
    )
    replicas = []
    for name in ("app-a", "app-b"):
        port, metrics = free_port(), free_port()
        argv = [FIGACHECHNAYA, "serve", "--host", LOCALHOST, "--port", str(port)]
        process = ServerProcess(
            name, argv, tmp_path / f"{name}.log", env={**env, "FIGA_METRICS_PORT": str(metrics)}
        )
        replicas.append(Replica(name, port, metrics, process))
    listen = free_port()
    config = tmp_path / "nginx.conf"
    config.write_text(
        nginx_config(
            [r.port for r in replicas],
            listen,
            urlsplit(s3_service.endpoint_url).netloc,
            tmp_path / "nginx.pid",
        ),
        encoding="utf-8",
    )
    nginx_log = tmp_path / "nginx.log"
    nginx = ServerProcess("nginx", [binary, "-c", str(config), "-g", "daemon off;"], nginx_log)
    try:
        await asyncio.gather(*(replica.start() for replica in replicas))
        url = f"http://{LOCALHOST}:{listen}"
        nginx.spawn()
        await asyncio.to_thread(
            nginx.wait_ready, lambda: answers_200(f"{url}/healthz"), timeout=10, what="nginx"
        )
        yield AppStack(url, replicas, nginx_log)
    finally:
        await asyncio.to_thread(nginx.stop)
        for replica in replicas:
            await asyncio.to_thread(replica.process.stop, GRACE_SECONDS + 5)


async def stored_ids(database_url: str) -> set[str]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(sa.select(figalization_table.c.id))
    finally:
        await engine.dispose()
    return {row.id for row in rows}


# --- the load: a fixed schedule of requests, what each was answered ----------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    kind: str
    at: float  # seconds into the load when it was sent
    seconds: float  # until the answer (or the error)
    outcome: str  # "201", "200", … or the error's name
    ok: bool


Request = Callable[[httpx.AsyncClient, int], Awaitable[tuple[bool, str]]]


@dataclass
class Load:
    """Requests at fixed times, whatever the earlier ones are doing; every answer kept."""

    client: httpx.AsyncClient
    browser: httpx.AsyncClient | None = None  # with the CSRF cookie, for the form
    answers: list[Answer] = field(default_factory=list)
    created: set[str] = field(default_factory=set)  # figalization ids answered as stored
    started: float = 0.0

    async def run(
        self, mix: list[tuple[str, Request]], rate: float, until: Callable[[float], bool]
    ) -> None:
        """Send `rate` requests a second, the mix in turn, until `until(seconds so far)`."""
        self.started = time.monotonic()
        tasks = []
        for n in itertools.count():
            at = n / rate
            if until(at):
                break
            delay = self.started + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            kind, request = mix[n % len(mix)]
            tasks.append(asyncio.create_task(self._one(kind, request, n)))
        await asyncio.gather(*tasks)

    def now(self) -> float:
        return time.monotonic() - self.started

    async def _one(self, kind: str, request: Request, n: int) -> None:
        sent = time.monotonic()
        try:
            ok, outcome = await request(self.client, n)
        except httpx.HTTPError as error:
            ok, outcome = False, f"{type(error).__name__}: {error}"
        self.answers.append(Answer(kind, sent - self.started, time.monotonic() - sent, outcome, ok))

    # The requests of the mix: each says whether its answer was the expected one.

    async def page(self, client: httpx.AsyncClient, n: int) -> tuple[bool, str]:
        answer = await client.get("/")
        return answer.status_code == 200 and "Отфигачить" in answer.text, str(answer.status_code)

    async def v2_post(self, client: httpx.AsyncClient, n: int) -> tuple[bool, str]:
        answer = await client.post("/api/v2/figalizations", json={"phrase": f"Велосипед {n}"})
        if answer.status_code == 201:
            self.created.add(answer.json()["id"])
        return answer.status_code == 201, str(answer.status_code)

    async def form_post(self, client: httpx.AsyncClient, n: int) -> tuple[bool, str]:
        """A browser without JavaScript: the page (its CSRF token), then the form."""
        browser = self.browser
        assert browser is not None, "a form needs the browser client"
        page = await browser.get("/")
        token = CSRF_INPUT.search(page.text)
        if page.status_code != 200 or token is None:
            return False, f"page {page.status_code}"
        form = {"phrase": f"Машина {n}", "scheme": "", "_csrf_token": token.group(1)}
        answer = await browser.post("/", data=form)
        stored = RESULT_LINK.search(answer.text)
        if answer.status_code == 200 and stored:
            self.created.add(stored.group(1))
        return answer.status_code == 200 and stored is not None, f"form {answer.status_code}"

    async def poll(self, client: httpx.AsyncClient, n: int) -> tuple[bool, str]:
        answer = await client.get("/fragments/total" if n % 2 else "/fragments/hint")
        return answer.status_code == 200, str(answer.status_code)

    async def status_read(self, client: httpx.AsyncClient, n: int) -> tuple[bool, str]:
        if not self.created:
            return await self.poll(client, n)
        answer = await client.get(f"/api/v2/figalizations/{next(iter(self.created))}")
        return answer.status_code == 200, str(answer.status_code)

    def mix(self) -> list[tuple[str, Request]]:
        return [
            ("v2 POST", self.v2_post),
            ("page", self.page),
            ("poll", self.poll),
            ("v2 POST", self.v2_post),
            ("form POST", self.form_post),
            ("status", self.status_read),
            ("v2 POST", self.v2_post),
            ("poll", self.poll),
            ("page", self.page),
            ("status", self.status_read),
        ]


def p99(seconds: list[float]) -> float:
    return statistics.quantiles(seconds, n=100, method="inclusive")[98] if seconds else 0.0


# --- the app's rolling restart -----------------------------------------------------------------


async def test_a_rolling_restart_of_the_app_behind_nginx_fails_no_request_and_loses_no_post(
    app_stack: AppStack, postgres_url: str
) -> None:
    first, second = app_stack.replicas
    restarted_at: list[float] = []  # seconds into the load when both were back

    def over(seconds: float) -> bool:
        """At least LOAD_SECONDS, and on past the restarts for the replica back last."""
        if seconds > MAX_LOAD_SECONDS:
            return True
        return seconds >= LOAD_SECONDS and bool(restarted_at) and seconds >= restarted_at[0] + 2

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with (
        httpx.AsyncClient(base_url=app_stack.nginx, timeout=30, limits=limits) as client,
        httpx.AsyncClient(base_url=app_stack.nginx, timeout=30, limits=limits) as browser,
    ):
        assert (await browser.get("/")).status_code == 200  # its CSRF cookie, once for all forms
        load = Load(client, browser)
        running = asyncio.create_task(load.run(load.mix(), RATE, over))
        await asyncio.sleep(FIRST_SIGTERM_AT)
        restart_began = load.now()
        exits = []
        for replica in (first, second):  # one at a time, each back before the next goes
            status, took = await replica.sigterm()
            back = time.monotonic()
            await replica.start()
            exits.append((replica.name, status, round(took, 2), round(time.monotonic() - back, 1)))
        restarted_at.append(load.now())
        await running

    failed = [a for a in load.answers if not a.ok]
    during = [a.seconds for a in load.answers if restart_began <= a.at <= restarted_at[0]]
    latencies = [a.seconds for a in load.answers]
    report = (
        f"{len(load.answers)} requests in {load.answers and max(a.at for a in load.answers):.1f}s, "
        f"{len(failed)} failed; p99 {p99(latencies) * 1000:.0f} ms overall, "
        f"{p99(during) * 1000:.0f} ms during the restarts "
        f"({restart_began:.1f}–{restarted_at[0]:.1f} s, {len(during)} requests); "
        f"(name, exit status, seconds to exit, seconds to start again): {exits}"
    )
    slowest = sorted(load.answers, key=lambda a: -a.seconds)[:5]
    print(report, *slowest, sep="\n")
    failures = Counter((a.kind, a.outcome) for a in failed)
    assert failed == [], f"{report}\n{failures}\n{app_stack.logs()}"
    assert restarted_at[0] < MAX_LOAD_SECONDS, f"the restarts outlasted the load: {report}"
    for name, status, took, _ in exits:
        assert status == 0, f"{name} exited {status} {took}s after SIGTERM"
    assert await stored_ids(postgres_url) == load.created, "a figalization answered is not stored"
    # The first replica served again after its restart (all the traffic while the second
    # was down): a rolling restart. (nginx skips the second for 10 s after its last refusal.)
    assert first.requests_answered() > 0, f"{first.name} got no traffic after its restart"
    assert p99(during) < 2.0, report  # nginx's proxy_connect_timeout: no request waits it out


# --- the worker's rolling restart --------------------------------------------------------------

WORKER_RATE = 20  # figalizations per second
READY_LINE = re.compile(r"picture (\w+) ready\b")
AGAIN_LINE = re.compile(r"picture (\w+) was ready already")
REDELIVERED = re.compile(r"^figachechnaya_image_jobs_redelivered_total (\S+)$", re.M)


async def statuses(client: Any, ids: list[str]) -> list[str]:
    answers = await asyncio.gather(*(client.get(f"/api/v2/figalizations/{i}") for i in ids))
    return [answer.json()["image"]["status"] for answer in answers]


@dataclass
class Worker:
    """One `figachechnaya worker` with its log and its metrics port."""

    name: str
    metrics_port: int
    process: ServerProcess

    def log(self) -> str:
        return self.process.log_path.read_text(encoding="utf-8", errors="replace")

    def redelivered(self) -> float:
        """figachechnaya_image_jobs_redelivered_total from its /metrics."""
        text = httpx.get(f"http://{LOCALHOST}:{self.metrics_port}/metrics", timeout=5).text
        (value,) = REDELIVERED.findall(text)
        return float(value)


@dataclass
class WorkerPool:
    settings: Settings
    s3: S3Service
    tmp_path: Path
    workers: list[Worker] = field(default_factory=list)

    async def start(self) -> Worker:
        """A worker that has joined the group and serves its metrics."""
        name, port = f"worker-{len(self.workers)}", free_port()
        env = process_env(self.settings, self.s3, FIGA_WORKER_METRICS_PORT=str(port))
        process = ServerProcess(
            name, [FIGACHECHNAYA, "worker"], self.tmp_path / f"{name}.log", env=env
        )
        worker = Worker(name, port, process)
        self.workers.append(worker)
        process.spawn()

        def joined() -> bool:
            return "worker joined group" in worker.log()

        await asyncio.to_thread(process.wait_ready, joined, timeout=30, what="joining the group")
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.process.log_tail(30)}" for w in self.workers)

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.process.stop()


@pytest.fixture
async def worker_pool(
    stack_settings: Settings, s3_service: S3Service, tmp_path: Path
) -> AsyncIterator[WorkerPool]:
    # The reconciler waits out the test: a picture drawn twice came twice from Kafka.
    settings = stack_settings.model_copy(update={"image_retry_seconds": 3600})
    pool = WorkerPool(settings, s3_service, tmp_path)
    yield pool
    await asyncio.to_thread(pool.stop_all)


async def test_a_rolling_restart_of_the_worker_makes_every_picture_exactly_once(
    worker_pool: WorkerPool, app_client: AppClient, s3_bucket: str
) -> None:
    client = await app_client(worker_pool.settings)
    first = await worker_pool.start()
    created: list[str] = []
    failed: list[str] = []

    async def figalize_one(n: int) -> None:
        answer = await client.post("/api/v2/figalizations", json={"phrase": f"Самовар {n}"})
        if answer.status_code == 201:
            created.append(answer.json()["id"])
        else:
            failed.append(f"{answer.status_code} {answer.text[:100]}")

    async def load() -> None:
        started, tasks = time.monotonic(), []
        for n in range(int(WORKER_RATE * LOAD_SECONDS)):
            delay = started + n / WORKER_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(figalize_one(n)))
        await asyncio.gather(*tasks)

    running = asyncio.create_task(load())
    await asyncio.sleep(3)
    second = await worker_pool.start()  # the new replica is up before the old one goes
    await asyncio.sleep(1)
    counted = {first.name: first.redelivered()}
    status, took = await sigterm(first.process, within=WORKER_GRACE_SECONDS + 5)
    replacement = await worker_pool.start()
    await running
    assert failed == []
    assert status == 0, f"{first.name} exited {status} {took:.1f}s after SIGTERM"

    async def all_pictures_made() -> bool:
        return "pending" not in await statuses(client, created)

    await wait_until(all_pictures_made, within=40, every=0.5)
    counted |= {w.name: w.redelivered() for w in (second, replacement)}
    logs = "".join(w.log() for w in worker_pool.workers)
    drawn = Counter(READY_LINE.findall(logs))
    again = AGAIN_LINE.findall(logs)
    report = (
        f"{len(created)} pictures; redeliveries counted {counted}, logged {len(again)}; "
        f"drawn more than once: {sum(1 for c in drawn.values() if c > 1)}; "
        f"{first.name} exited {status} {took:.1f}s after SIGTERM"
    )
    print(report)
    assert again == [], f"{report}\n{worker_pool.logs()}"
    assert set(counted.values()) == {0.0}, report
    assert drawn == Counter(dict.fromkeys(created, 1)), (
        f"every picture drawn exactly once: {report}"
    )
    assert set(await statuses(client, created)) == {"ready"}
    filesystem = worker_pool.s3.filesystem(use_listings_cache=False)
    objects = sorted(Path(p).name for p in filesystem.find(f"{s3_bucket}/pictures"))
    assert objects == sorted(f"{i}.png" for i in created)


# --- what Kubernetes gives the app's stop ------------------------------------------------------

LIFESPAN_CLOSE_SECONDS = 5 + 2  # app/asgi.py `Process.close`: the relay's drain, then closes


def test_the_app_pods_grace_period_covers_the_prestop_and_the_whole_stop() -> None:
    """Kubernetes kills the pod terminationGracePeriodSeconds after it starts stopping it,
    preStop hook included: what the test above proves must fit in, even at its bounds."""
    deployment = yaml.safe_load((REPO / "k8s/base/app-deployment.yaml").read_text("utf-8"))
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command  # the ingress drops the pod before SIGTERM
    stop = float(command[1]) + FIRST_REQUEST_SECONDS + GRACE_SECONDS + LIFESPAN_CLOSE_SECONDS
    assert pod["terminationGracePeriodSeconds"] >= stop
    for overlay in (REPO / "k8s/overlays").rglob("*.yaml"):  # no overlay changes either
        text = overlay.read_text("utf-8")
        assert "terminationGracePeriodSeconds" not in text, overlay
        assert "preStop" not in text, overlay
