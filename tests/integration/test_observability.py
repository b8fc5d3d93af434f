"""Observability (issue 4): metrics that move, dashboards and alerts on real names, request ids.

After real traffic through a distributed stack (the app in the test's event
loop on PostgreSQL, Kafka and S3, one real `figachechnaya worker` process),
the app's and the worker's operations ports (`/metrics`, apart from the public
port, which serves no metrics under any spelling) are scraped and parsed with
prometheus-client's own parser: every metric the Grafana dashboard and the
alert rules name must be among the exposed samples, and the counters must have
moved by exactly what the test did. Logs are read as a log collector reads
them: one JSON object per line, the request id on the worker's lines of that
request's job, and no phrase (user input) above DEBUG.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from app.asgi import create_app
from app.settings import Settings
from app.store.migrate import upgrade_async
from tests.conftest import AppClient, figalize, wait_until
from tests.distributed import process_env, settings_env
from tests.services.ports import LOCALHOST, free_port
from tests.services.s3 import S3Service

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "figachechnaya.json"
RULES = REPO / "deploy" / "prometheus" / "rules" / "figachechnaya.yml"
PROMETHEUS_RULE = REPO / "k8s" / "base" / "prometheusrule.yaml"
SCRAPE_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
FIGACHECHNAYA = str(Path(sys.executable).with_name("figachechnaya"))
METRIC_NAME = re.compile(r"\bfigachechnaya_[a-z0-9_]+")
JOB_LABEL = re.compile(r'\bjob=~?"([^"]+)"')

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


# --- what the dashboard and the rules refer to -------------------------------------------


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def rule_expressions(groups: list[dict[str, Any]]) -> list[str]:
    return [str(rule["expr"]) for group in groups for rule in group["rules"]]


def referenced_expressions() -> dict[str, list[str]]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    prometheus_rule = yaml.safe_load(PROMETHEUS_RULE.read_text(encoding="utf-8"))
    return {
        DASHBOARD.name: dashboard_expressions(),
        RULES.name: rule_expressions(rules["groups"]),
        PROMETHEUS_RULE.name: rule_expressions(prometheus_rule["spec"]["groups"]),
    }


def referenced_metrics() -> dict[str, set[str]]:
    return {
        source: {name for expr in expressions for name in METRIC_NAME.findall(expr)}
        for source, expressions in referenced_expressions().items()
    }


# --- what the processes expose -------------------------------------------------------------


def parse(exposition: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every series whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, series), v in samples.items() if n == name and wanted <= set(series))


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    """How much a counter moved: the app shares the test process's registry with earlier tests."""
    return total(after, name, **labels) - total(before, name, **labels)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(series)[label] for n, series in samples if n == name and label in dict(series)}


async def scrape(client: Any, url: str) -> Samples:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


# --- the distributed stack -----------------------------------------------------------------


@dataclass
class Stack:
    settings: Settings
    s3: S3Service
    tmp_path: Path

    def env(self, **overrides: str) -> dict[str, str]:
        return process_env(self.settings, self.s3, **overrides)


@pytest.fixture
def stack(stack_settings: Settings, s3_service: S3Service, tmp_path: Path) -> Stack:
    return Stack(stack_settings, s3_service, tmp_path)


def with_metrics_port(settings: Settings) -> tuple[Settings, str]:
    """The settings with a free operations port, and the URL of its `/metrics`."""
    port = free_port()
    settings = settings.model_copy(update={"metrics_port": port, "metrics_host": LOCALHOST})
    return settings, f"http://{LOCALHOST}:{port}/metrics"


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_url: str

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def start_worker(stack: Stack) -> Iterator[Any]:
    """Start `figachechnaya worker` processes with a metrics port each; all stopped afterwards."""
    started: list[Worker] = []

    def start(**env: str) -> Worker:
        port = free_port()
        log_path = stack.tmp_path / f"worker-{len(started)}.log"
        process = subprocess.Popen(
            [FIGACHECHNAYA, "worker"],
            env=stack.env(
                FIGA_WORKER_METRICS_PORT=str(port), FIGA_WORKER_METRICS_HOST=LOCALHOST, **env
            ),
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        worker = Worker(process, log_path, f"http://{LOCALHOST}:{port}/metrics")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
        try:
            worker.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


@pytest.fixture
async def stack_http() -> AsyncIterator[Any]:
    """An HTTP client for the operations ports (made on demand, closed after the test)."""
    clients: list[httpx.AsyncClient] = []

    async def make() -> httpx.AsyncClient:
        clients.append(httpx.AsyncClient(timeout=10))
        return clients[-1]

    yield make
    for made in clients:
        await made.aclose()


async def statuses(client: Any, ids: list[str]) -> list[str]:
    return [(await client.get(f"/api/v2/figalizations/{i}")).json()["image"]["status"] for i in ids]


async def wait_for_pictures(client: Any, ids: list[str]) -> None:
    async def every_picture_ready() -> bool:
        return await statuses(client, ids) == ["ready"] * len(ids)

    await wait_until(every_picture_ready, within=60, every=0.25)


# --- the dashboard and the rules, on their own ---------------------------------------------


def test_dashboard_and_rules_name_only_figachechnaya_metrics_and_real_scrape_jobs() -> None:
    referenced = referenced_metrics()
    for source, metric_names in referenced.items():
        assert len(metric_names) >= 5, source
    scrape_jobs = {
        job["job_name"]
        for job in yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))["scrape_configs"]
    }
    for source, expressions in referenced_expressions().items():
        for expr in expressions:
            for job_matcher in JOB_LABEL.findall(expr):
                assert set(job_matcher.split("|")) <= scrape_jobs, (source, expr)


# --- metrics after real traffic --------------------------------------------------------------


async def test_after_real_traffic_every_charted_metric_is_exposed_and_has_moved(
    stack: Stack, start_worker: Any, app_client: AppClient, stack_http: Any
) -> None:
    settings, app_metrics = with_metrics_port(stack.settings)
    client = await app_client(settings)
    worker = start_worker()
    schemes = [s["id"] for s in (await client.get("/api/v2/schemes")).json()][:2]
    http = await stack_http()
    before = await scrape(http, app_metrics)

    made = Counter({schemes[0]: 4, schemes[1]: 2})
    ids = [
        (await figalize(client, f"Велосипед номер {n}", scheme=scheme))["id"]
        for scheme, count in made.items()
        for n in range(count)
    ]
    refused = {"not_russian": "hello", "empty": "   ", "too_long": "а" * 1000}
    for phrase in refused.values():
        assert (await client.post("/api/v2/figalizations", json={"phrase": phrase})).is_client_error
    unknown = await client.post(
        "/api/v2/figalizations", json={"phrase": "кот", "scheme": "no-such-scheme"}
    )
    assert unknown.status_code == 422
    assert (await client.get(f"/r/{ids[0]}")).status_code == 200
    await wait_for_pictures(client, ids)

    async def worker_reported_every_picture_and_no_lag_left() -> bool:
        exposed = await scrape(http, worker.metrics_url)
        done = total(exposed, "figachechnaya_image_jobs_total", outcome="ready")
        lag = "figachechnaya_consumer_lag"
        return done == len(ids) and lag in names(exposed) and total(exposed, lag) == 0

    await wait_until(worker_reported_every_picture_and_no_lag_left, within=20)
    from_worker = await scrape(http, worker.metrics_url)

    async def app_measured_an_empty_outbox() -> bool:  # the relay measures once a second,
        exposed = await scrape(http, app_metrics)  # the oldest job's age every 3 s
        waiting = ("figachechnaya_outbox_backlog", "figachechnaya_outbox_oldest_job_age_seconds")
        return all(name in names(exposed) and total(exposed, name) == 0 for name in waiting)

    await wait_until(app_measured_an_empty_outbox, within=10)
    after = await scrape(http, app_metrics)

    # Every name the dashboard and both rule files use is exposed by the app or the worker.
    exposed = names(after) | names(from_worker)
    for source, metric_names in referenced_metrics().items():
        assert metric_names <= exposed, f"{source} names unexposed {metric_names - exposed}"

    # The web tier: figalizations by scheme, refusals by code, routes by template and status.
    for scheme, count in made.items():
        assert delta(after, before, "figachechnaya_figalizations_total", scheme=scheme) == count
    assert delta(after, before, "figachechnaya_figalizations_total", stored="false") == 0
    for code in [*refused, "unknown_scheme"]:
        assert delta(after, before, "figachechnaya_rejected_inputs_total", code=code) == 1, code
    requests = "figachechnaya_http_requests_total"
    post = {"method": "POST", "route": "/api/v2/figalizations"}
    assert delta(after, before, requests, status="201", **post) == len(ids)
    assert delta(after, before, requests, status="422", **post) == len(refused) + 1
    assert delta(after, before, requests, route="/r/{figalization_id}", status="200") == 1
    assert delta(after, before, requests, route="/api/v2/figalizations/{figalization_id}") > 0
    routes = label_values(after, requests, "route")
    assert not [route for route in routes if any(i in route for i in ids)], routes
    histogram = "figachechnaya_http_request_duration_seconds_count"
    assert delta(after, before, histogram, **post) == len(ids) + len(refused) + 1
    in_flight = "figachechnaya_http_requests_in_flight"
    assert total(after, in_flight) == total(before, in_flight)  # no request leaked in flight
    assert delta(after, before, "figachechnaya_outbox_relayed_total") == len(ids)

    # The worker: a fresh process, so its counters are this test's alone.
    assert total(from_worker, "figachechnaya_image_jobs_consumed_total") == len(ids)
    assert total(from_worker, "figachechnaya_image_jobs_total", outcome="ready") == len(ids)
    assert total(from_worker, "figachechnaya_image_jobs_total", outcome="failed") == 0
    for histogram in ("end_to_end", "render", "upload"):
        count = total(from_worker, f"figachechnaya_image_{histogram}_seconds_count")
        assert count == len(ids), histogram
    assert total(from_worker, "figachechnaya_image_last_success_timestamp_seconds") > 0
    partitions = label_values(from_worker, "figachechnaya_consumer_lag", "partition")
    assert partitions, "the worker reports no lag"
    assert partitions <= {"0", "1", "2", "3"}  # the test topic's partitions
    assert total(from_worker, "figachechnaya_worker_assigned_partitions") == 4  # all, alone


async def test_a_scrape_is_not_a_request_of_the_public_port(
    local_settings: Settings, app_client: AppClient, stack_http: Any
) -> None:
    settings, app_metrics = with_metrics_port(local_settings)
    client = await app_client(settings)
    http = await stack_http()
    before = await scrape(http, app_metrics)
    assert (await client.get("/healthz")).status_code == 200
    after = await scrape(http, app_metrics)
    assert total(after, "figachechnaya_http_requests_in_flight") == 0
    requests = "figachechnaya_http_requests_total"
    assert delta(after, before, requests) == 1  # the /healthz, and no scrape
    assert delta(after, before, requests, route="/healthz", status="200") == 1


def operations_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("operations-port-")]


async def test_apps_started_one_after_another_reuse_the_metrics_port_and_leave_no_thread(
    local_settings: Settings, stack_http: Any
) -> None:
    """The operations port lives exactly as long as the app's lifespan."""
    settings, app_metrics = with_metrics_port(local_settings)
    http = await stack_http()
    threads_before = len(operations_threads())
    for _ in range(3):
        async with AsyncTestClient(app=create_app(settings)) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert "figachechnaya_http_requests_total" in names(await scrape(http, app_metrics))
        assert len(operations_threads()) == threads_before
        with pytest.raises(httpx.ConnectError):
            await http.get(app_metrics)


async def test_an_app_whose_metrics_port_is_taken_does_not_start(local_settings: Settings) -> None:
    settings, _ = with_metrics_port(local_settings)
    taken = socket.create_server((LOCALHOST, settings.metrics_port))
    try:
        with pytest.raises(ExceptionGroup) as refused:  # the test client's task group
            async with AsyncTestClient(app=create_app(settings)):
                pass
        assert refused.group_contains(OSError, match="in use")
    finally:
        taken.close()


async def test_the_outbox_backlog_gauge_counts_jobs_waiting_for_an_unreachable_broker(
    postgres_url: str, app_client: AppClient, tmp_path: Path, stack_http: Any
) -> None:
    settings = Settings(
        database_url=postgres_url,
        kafka_bootstrap_servers=f"{LOCALHOST}:{free_port()}",  # nobody listens there
        kafka_idempotence=False,
        image_store_url=str(tmp_path / "images"),
    )
    await upgrade_async(settings)
    settings, app_metrics = with_metrics_port(settings)
    client = await app_client(settings)
    http = await stack_http()
    for n in range(3):
        await figalize(client, f"Машина номер {n}")
    assert (await client.get("/readyz")).json()["outbox_backlog"] == 3

    async def gauge_shows_the_backlog() -> bool:
        return total(await scrape(http, app_metrics), "figachechnaya_outbox_backlog") == 3

    await wait_until(gauge_shows_the_backlog, within=5)


# --- request ids through Kafka into the worker's JSON logs -------------------------------------


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a log as the collector parses it; a line that is not JSON fails."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"log line {number} is not JSON: {line!r}")
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message", "request_id"} <= set(entry), line
        entries.append(entry)
    return entries


async def kafka_headers(settings: Settings, figalization_id: str) -> dict[str, bytes]:
    """The headers of the job message for one figalization, read from the topic's start."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(settings.kafka_topic, p)
            for p in consumer.partitions_for_topic(settings.kafka_topic) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        batches = await consumer.getmany(*partitions, timeout_ms=5000)
    finally:
        await consumer.stop()
    for message in (m for batch in batches.values() for m in batch):
        if message.key == figalization_id.encode():
            return {name: bytes(value) for name, value in message.headers}
    pytest.fail(f"no job message for {figalization_id}")


async def test_a_request_id_follows_its_job_through_kafka_into_the_worker_json_log(
    stack: Stack, start_worker: Any, app_client: AppClient
) -> None:
    client = await app_client(stack.settings)
    worker = start_worker(FIGA_LOG_FORMAT="json")
    request_id = f"trace-{uuid.uuid4().hex}"
    phrase = "Фигачечная следит за журналом"
    response = await client.post(
        "/api/v2/figalizations", json={"phrase": phrase}, headers={"X-Request-ID": request_id}
    )
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == request_id
    figalization_id = response.json()["id"]
    await wait_for_pictures(client, [figalization_id])

    headers = await kafka_headers(stack.settings, figalization_id)
    assert headers["x-request-id"] == request_id.encode()

    async def worker_logged_the_picture() -> bool:
        return f"picture {figalization_id} ready" in worker.log()

    await wait_until(worker_logged_the_picture, within=10)
    entries = json_lines(worker.log())
    (picture,) = [e for e in entries if e["message"] == f"picture {figalization_id} ready"]
    assert picture["request_id"] == request_id
    assert picture["level"] == "info"
    assert not [e for e in entries if phrase in json.dumps(e, ensure_ascii=False)]


# --- the served app's JSON log -----------------------------------------------------------------


@dataclass
class ServedLog:
    entries: list[dict[str, Any]]
    request_ids: list[str]
    phrases: list[str]
    drawn: str  # the figalization whose picture the in-process worker drew


def serve_once(tmp_path: Path) -> ServedLog:
    """`figachechnaya serve` in the single-process mode, some requests, SIGTERM; its log."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'figachechnaya.sqlite3'}",
        image_store_url=str(tmp_path / "images"),
        log_format="json",
        log_level="INFO",
        metrics_port=0,
    )
    port = free_port()
    log_path = tmp_path / "serve.log"
    process = subprocess.Popen(
        [FIGACHECHNAYA, "serve", "--port", str(port)],
        env={**os.environ, **settings_env(settings)},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    request_ids = [f"trace-{uuid.uuid4().hex}" for _ in range(2)]
    phrases = ["Фигачечная пишет журнал", "hello journal"]
    try:
        with httpx.Client(base_url=f"http://{LOCALHOST}:{port}", timeout=10) as http:
            wait_for_health(http, process)
            stored = http.post(
                "/api/v2/figalizations",
                json={"phrase": phrases[0]},
                headers={"X-Request-ID": request_ids[0]},
            )
            assert stored.status_code == 201, stored.text
            refused = http.post(
                "/api/v2/figalizations",
                json={"phrase": phrases[1]},
                headers={"X-Request-ID": request_ids[1]},
            )
            assert refused.status_code == 422
            figalization_id = stored.json()["id"]
            for _ in range(100):  # the in-process worker draws the picture
                picture = http.get(f"/api/v2/figalizations/{figalization_id}").json()["image"]
                if picture["status"] != "pending":
                    break
                time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    entries = json_lines(log_path.read_text(encoding="utf-8"))
    return ServedLog(entries, request_ids, phrases, figalization_id)


def wait_for_health(http: httpx.Client, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        assert process.poll() is None, "figachechnaya serve exited at start"
        try:
            if http.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("figachechnaya serve did not answer /healthz within 30 s")


@pytest.fixture(scope="module")
def served_log(tmp_path_factory: pytest.TempPathFactory) -> ServedLog:
    return serve_once(tmp_path_factory.mktemp("serve"))


def test_the_served_app_logs_json_lines_and_no_phrase_above_debug(served_log: ServedLog) -> None:
    assert served_log.entries, "the app logged nothing"
    above_debug = [e for e in served_log.entries if e["level"] != "debug"]
    for phrase in served_log.phrases:
        leaked = [e for e in above_debug if phrase in json.dumps(e, ensure_ascii=False)]
        assert not leaked, leaked


def test_the_served_app_logs_each_figalization_with_its_request_id(served_log: ServedLog) -> None:
    stored_request_id = served_log.request_ids[0]
    assert stored_request_id in {e["request_id"] for e in served_log.entries}


def test_the_in_process_worker_logs_the_picture_with_its_request_id(served_log: ServedLog) -> None:
    (picture,) = [
        e for e in served_log.entries if e["message"] == f"picture {served_log.drawn} ready"
    ]
    assert picture["request_id"] == served_log.request_ids[0]


# --- the served app's two ports: metrics never on the public one ------------------------------

# What a proxy that blocks only the exact path `/metrics` lets through, and the path itself.
METRICS_SPELLINGS = ["/metrics", "/metrics/", "//metrics", "/metrics?x=1", "/METRICS"]


@dataclass
class ServedPorts:
    public: int
    metrics: int


def status_of(port: int, raw_path: str) -> tuple[int, str]:
    """GET with the path sent byte for byte (an HTTP client library would normalize it)."""
    connection = http.client.HTTPConnection(LOCALHOST, port, timeout=10)
    try:
        connection.request("GET", raw_path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


@pytest.fixture(scope="module")
def served_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedPorts]:
    """`figachechnaya serve` (single-process mode) with its operations port on a free port."""
    folder = tmp_path_factory.mktemp("ports")
    ports = ServedPorts(public=free_port(), metrics=free_port())
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder / 'figachechnaya.sqlite3'}",
        image_store_url=str(folder / "images"),
        metrics_port=ports.metrics,
        metrics_host=LOCALHOST,
    )
    process = subprocess.Popen(
        [FIGACHECHNAYA, "serve", "--host", LOCALHOST, "--port", str(ports.public)],
        env={**os.environ, **settings_env(settings)},
        stdout=(folder / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://{LOCALHOST}:{ports.public}", timeout=10) as http:
            wait_for_health(http, process)
        yield ports
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.parametrize("raw_path", METRICS_SPELLINGS)
def test_the_public_port_serves_no_metrics_under_any_spelling(
    served_ports: ServedPorts, raw_path: str
) -> None:
    status, body = status_of(served_ports.public, raw_path)
    assert status == 404, body
    assert "figachechnaya_" not in body


@pytest.mark.parametrize("raw_path", METRICS_SPELLINGS)
def test_the_metrics_port_serves_the_metrics(served_ports: ServedPorts, raw_path: str) -> None:
    status, body = status_of(served_ports.metrics, raw_path)
    assert status == 200
    assert "figachechnaya_http_requests_total" in names(parse(body))


def test_the_metrics_port_serves_nothing_else(served_ports: ServedPorts) -> None:
    for raw_path in ("/", "/healthz", "/readyz", "/api/v2/schemes"):
        assert status_of(served_ports.metrics, raw_path)[0] == 404, raw_path
