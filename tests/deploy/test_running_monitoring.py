"""The compose stack's monitoring, run by Debian's real servers: an alert reaches a person.

One stack per module: compose's `migrate`, `app` and `worker` (their command and
environment, the addresses of postgres/kafka/minio pointed at the test services),
Debian's postgres-exporter with compose's `postgres-exporter` environment, Debian's
Prometheus with deploy/prometheus/prometheus.yml and rules/, and Debian's
Alertmanager started the way compose starts it (deploy/alertmanager/render.sh
renders alertmanager.yml from the environment, then execs Alertmanager), its
webhook receiver pointed at a small HTTP server of this test. What differs from
the files, and why, is listed where it is changed; no rule expression and no
route is changed, only addresses, ports, paths and waiting times.

Then: every query of the Grafana dashboard (the namespace variable resolved by its
own query, Grafana's `$__rate_interval` as 1m) returns series from that Prometheus,
and, once the worker is killed, FigachechnayaNoWorkers reaches the webhook through
the `critical` route with `namespace="compose"`.

Not run here: a Kafka exporter (danielqsj/kafka-exporter is a Go program with no
Debian package, and no Go module download is allowed here); its scrape job stays
pointed at a port nobody listens on, and its three panels are checked to be the
only empty ones.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import yaml
from sqlalchemy import make_url

from tests.deploy.test_running_configs import eventually, running, substituted
from tests.services.kafka import KafkaService
from tests.services.ports import LOCALHOST, free_port
from tests.services.postgres import PostgresService
from tests.services.s3 import S3Service

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_YML = REPO / "deploy" / "prometheus" / "prometheus.yml"
RULES = REPO / "deploy" / "prometheus" / "rules" / "figachechnaya.yml"
ALERTMANAGER_YML = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
RENDER = REPO / "deploy" / "alertmanager" / "render.sh"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "figachechnaya.json"
FIGACHECHNAYA = str(Path(sys.executable).with_name("figachechnaya"))
ENVIRONMENT = "compose"  # the namespace label prometheus.yml gives the stack's series
UNSET = re.compile(r"\$\{(\w+):-([^}]*)\}")  # ${NAME:-default} without an .env: the default
# Grafana's $__rate_interval is at least 4 scrape intervals; 1m spans the whole test.
RATE_INTERVAL = "1m"
FIGALIZED = 'figachechnaya_http_requests_total{route="/api/v2/figalizations"}'
BROKER_METRIC = re.compile(r"\bkafka_[a-z_]+")  # only from the Kafka exporter, not run here


class Webhook:
    """Alertmanager's webhook receiver: every POSTed notification, in arrival order."""

    def __init__(self) -> None:
        self.notifications: queue.Queue[dict[str, Any]] = queue.Queue()
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.put(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet: pytest shows failures
                pass

        self.server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.url = f"http://{LOCALHOST}:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def alerts(self) -> list[tuple[str, dict[str, Any]]]:
        """(receiver, alert) of every notification so far."""
        found = []
        while not self.notifications.empty():
            notification = self.notifications.get_nowait()
            found += [(notification["receiver"], a) for a in notification["alerts"]]
        return found


@dataclass
class Stack:
    app: str
    prometheus: str
    alertmanager: str
    processes: dict[str, Any]
    webhook: Webhook


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    return {name: UNSET.sub(r"\2", str(value)) for name, value in service["environment"].items()}


def with_overrides(env: dict[str, str], replaced: dict[str, str], added: dict[str, str]) -> dict:
    """`env` with `replaced` (each must be set by compose) and `added` (each must not be)."""
    assert set(replaced) <= set(env), set(replaced) - set(env)
    assert not set(added) & set(env), set(added) & set(env)
    return env | replaced | added | {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert answer["status"] == "success", (expr, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@pytest.fixture(scope="module")
def database(postgres_service: PostgresService) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL: its SQLAlchemy URL."""
    postgres_service.ensure_running()
    name = asyncio.run(postgres_service.create_database())
    yield postgres_service.url_for(name)
    postgres_service.ensure_running()
    asyncio.run(postgres_service.drop_database(name))


@pytest.fixture(scope="module")
def topic(kafka_service: KafkaService) -> Iterator[str]:
    kafka_service.ensure_running()
    name = f"monitoring-{uuid.uuid4().hex}"
    asyncio.run(kafka_service.create_topic(name, partitions=2))
    yield name
    kafka_service.ensure_running()
    asyncio.run(kafka_service.delete_topic(name))


@pytest.fixture(scope="module")
def bucket(s3_service: S3Service) -> Iterator[str]:
    s3_service.ensure_running()
    name = s3_service.create_bucket()
    yield name
    s3_service.ensure_running()
    s3_service.delete_bucket(name)


def start_app_and_worker(
    compose: dict[str, Any], tmp: Path, started: Any, services: dict[str, Any]
) -> tuple[str, dict[str, int]]:
    """compose's migrate (to the end), app and worker on the test services."""
    database, topic, bucket, kafka, s3 = (
        services[k] for k in ("db", "topic", "bucket", "kafka", "s3")
    )
    ports = {"app": free_port(), "app-metrics": free_port(), "worker-metrics": free_port()}
    env = compose_env(compose["services"]["app"])
    assert env["FIGA_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    replaced = {
        "FIGA_DATABASE_URL": database,  # compose: postgres:5432
        "FIGA_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,  # compose: kafka:9092
        "FIGA_KAFKA_TOPIC": topic,  # this module's own topic and group
        "FIGA_KAFKA_GROUP_ID": f"{topic}-workers",
        "FIGA_KAFKA_IDEMPOTENCE": "false",  # Tansu refuses the idempotent producer
        "FIGA_IMAGE_STORE_URL": f"s3://{bucket}/images",  # compose: minio's figachechnaya bucket
        "FIGA_S3_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": str(s3.key),
        "AWS_SECRET_ACCESS_KEY": str(s3.secret),
        "FIGA_METRICS_PORT": str(ports["app-metrics"]),  # free ports, not 9101/9100: other
        "FIGA_WORKER_METRICS_PORT": str(ports["worker-metrics"]),  # tests may hold those
        "FIGA_METRICS_HOST": LOCALHOST,  # instead of 0.0.0.0
        "FIGA_WORKER_METRICS_HOST": LOCALHOST,
    }
    added = {  # Tansu answers a group join after half the session timeout: keep it short
        "FIGA_KAFKA_SESSION_TIMEOUT_MS": str(kafka.group_timeouts["session_timeout_ms"]),
        "FIGA_KAFKA_HEARTBEAT_INTERVAL_MS": str(kafka.group_timeouts["heartbeat_interval_ms"]),
    }
    env = with_overrides(env, replaced, added)
    for name in ("migrate", "worker"):
        assert compose_env(compose["services"][name]) == compose_env(compose["services"]["app"])
    migrate = subprocess.run(
        [FIGACHECHNAYA, *compose["services"]["migrate"]["command"]],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    loopback = {"0.0.0.0": LOCALHOST, "8000": str(ports["app"])}  # noqa: S104
    app_argv = [FIGACHECHNAYA, *(loopback.get(a, a) for a in compose["services"]["app"]["command"])]
    app_url = f"http://{LOCALHOST}:{ports['app']}"
    started["app"] = started["enter"](running("app", app_argv, tmp, f"{app_url}/healthz", env=env))
    worker_argv = [FIGACHECHNAYA, *compose["services"]["worker"]["command"]]
    health = f"http://{LOCALHOST}:{ports['worker-metrics']}/healthz"  # compose's healthcheck
    started["worker"] = started["enter"](running("worker", worker_argv, tmp, health, env=env))
    return app_url, ports


def start_postgres_exporter(
    compose: dict[str, Any], tool: Any, tmp: Path, started: Any, database: str
) -> int:
    """Debian's postgres-exporter with compose's environment, on the test database."""
    binary = tool("prometheus-postgres-exporter", "apt-get install -y prometheus-postgres-exporter")
    env = compose_env(compose["services"]["postgres-exporter"])
    url = make_url(database)
    assert env["DATA_SOURCE_URI"] == "postgres:5432/figachechnaya?sslmode=disable"
    env = with_overrides(
        env,
        {
            "DATA_SOURCE_URI": f"{url.host}:{url.port}/{url.database}?sslmode=disable",
            "DATA_SOURCE_USER": str(url.username),  # the test server's trusted admin
            "DATA_SOURCE_PASS": "",
        },
        {},
    )
    port = free_port()
    address = f"{LOCALHOST}:{port}"  # the image listens on :9187
    argv = [binary, f"--web.listen-address={address}"]
    started["enter"](running("postgres-exporter", argv, tmp, f"http://{address}/metrics", env=env))
    return port


def start_alertmanager(
    compose: dict[str, Any], tool: Any, tmp: Path, started: Any, hook: str
) -> str:
    """Alertmanager as compose starts it: render.sh, then the binary, on a loopback port."""
    binary = tool("prometheus-alertmanager", "apt-get install -y prometheus-alertmanager")
    service = compose["services"]["alertmanager"]
    template = tmp / "alertmanager-template.yml"
    # Only the waits: the critical route's group_wait 10s, so the test needs not wait.
    text = substituted(
        ALERTMANAGER_YML.read_text(encoding="utf-8"),
        [("      group_wait: 10s\n", "      group_wait: 1s\n", "the critical route's wait")],
    )
    template.write_text(text, encoding="utf-8")
    port = free_port()
    paths = {
        "/etc/alertmanager/render.sh": str(RENDER),
        "/etc/alertmanager/alertmanager.yml": str(template),
        "/alertmanager/alertmanager.yml": str(tmp / "alertmanager.yml"),
        "/bin/alertmanager": binary,
        "--config.file=/alertmanager/alertmanager.yml": f"--config.file={tmp / 'alertmanager.yml'}",
        "--storage.path=/alertmanager": f"--storage.path={tmp / 'alertmanager-data'}",
        "--web.listen-address=:9093": f"--web.listen-address={LOCALHOST}:{port}",
    }
    argv = [paths.get(a, a) for a in [*service["entrypoint"], *service["command"]]]
    assert not [a for a in argv if a.startswith(("/etc/", "/alertmanager", "/bin/a"))], argv
    argv.append("--cluster.listen-address=")  # one instance: no gossip port (9094) to bind
    env = with_overrides(compose_env(service), {"ALERT_WEBHOOK_URL": hook}, {})
    url = f"http://{LOCALHOST}:{port}"
    started["enter"](running("alertmanager", argv, tmp, f"{url}/-/ready", env=env))
    return url


def start_prometheus(
    compose: dict[str, Any], tool: Any, tmp: Path, started: Any, targets: dict[str, str]
) -> str:
    """Debian's Prometheus with compose's flags and prometheus.yml, for targets and paths."""
    binary = tool("prometheus", "apt-get install -y prometheus")
    config = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]  # compose mounts rules/ there
    # The rules as written but for FigachechnayaNoWorkers' `for: 5m` (1s: no waiting).
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    (no_workers,) = [
        r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "FigachechnayaNoWorkers"
    ]
    no_workers["for"] = "1s"
    (tmp / "rules").mkdir()
    (tmp / "rules" / "figachechnaya.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    config["rule_files"] = [f"{tmp / 'rules'}/*.yml"]
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}  # not 15s
    ((alertmanager,),) = [
        c["targets"] for a in config["alerting"]["alertmanagers"] for c in a["static_configs"]
    ]
    assert alertmanager == "alertmanager:9093"
    config["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [targets[alertmanager]]}
    ]
    for job in config["scrape_configs"]:
        for discovery in job.pop("dns_sd_configs", []):  # Docker's DNS names each replica
            (name,) = discovery["names"]
            job["static_configs"] = [{"targets": [f"{name}:{discovery['port']}"]}]
        ((target,),) = [static["targets"] for static in job["static_configs"]]
        job["static_configs"] = [{"targets": [targets.pop(target)]}]
        job.pop("scrape_interval", None)
    assert not targets, f"targets no longer in prometheus.yml: {targets}"
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    command = compose["services"]["prometheus"]["command"]
    paths = {
        "--config.file=/etc/prometheus/prometheus.yml": f"--config.file={path}",
        "--storage.tsdb.path=/prometheus": f"--storage.tsdb.path={tmp / 'tsdb'}",
    }
    assert set(paths) <= set(command), command
    address = f"{LOCALHOST}:{started['prometheus-port']}"
    argv = [binary, *(paths.get(f, f) for f in command), f"--web.listen-address={address}"]
    started["enter"](running("prometheus", argv, tmp, f"http://{address}/-/ready"))
    return f"http://{address}"


@pytest.fixture(scope="module")
def stack(
    compose: dict[str, Any],
    tool: Any,
    database: str,
    topic: str,
    bucket: str,
    kafka_service: KafkaService,
    s3_service: S3Service,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    from contextlib import ExitStack

    tmp = tmp_path_factory.mktemp("monitoring")
    webhook = Webhook()
    webhook.thread.start()
    with ExitStack() as exits:
        exits.callback(webhook.server.shutdown)
        started: dict[str, Any] = {"enter": exits.enter_context, "prometheus-port": free_port()}
        services = {"db": database, "topic": topic, "bucket": bucket, "kafka": kafka_service}
        app, ports = start_app_and_worker(compose, tmp, started, services | {"s3": s3_service})
        exporter = start_postgres_exporter(compose, tool, tmp, started, database)
        alertmanager = start_alertmanager(compose, tool, tmp, started, webhook.url)
        loopback = {
            "app:9101": f"{LOCALHOST}:{ports['app-metrics']}",
            "worker:9100": f"{LOCALHOST}:{ports['worker-metrics']}",
            "postgres-exporter:9187": f"{LOCALHOST}:{exporter}",
            "kafka-exporter:9308": f"{LOCALHOST}:{free_port()}",  # not run here: nothing listens
            "alertmanager:9093": alertmanager.removeprefix("http://"),
            "localhost:9090": f"{LOCALHOST}:{started['prometheus-port']}",
        }
        prometheus = start_prometheus(compose, tool, tmp, started, loopback)
        yield Stack(app, prometheus, alertmanager, started, webhook)


def dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["datasource"]["uid"] == "prometheus"
        for target in panel["targets"]
    ]


def variable_values(prometheus: str) -> list[str]:
    """The namespace variable's options, by its own `label_values(selector, label)` query."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "namespace"]
    found = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
    assert found, variable
    selector, label = found.groups()
    answer = httpx.get(
        f"{prometheus}/api/v1/label/{label}/values", params={"match[]": selector}, timeout=5
    ).json()
    values: list[str] = answer["data"]
    return values


def assert_has_series(prometheus: str, expr: str) -> None:
    assert query(prometheus, expr), expr


def scraped(prometheus: str, *jobs: str) -> None:
    """Each job's target has been scraped: counters moved after this show up in rates."""

    def answered() -> None:
        up = {r["metric"]["job"]: r["value"][1] for r in query(prometheus, "up")}
        assert {job: up.get(job) for job in jobs} == dict.fromkeys(jobs, "1"), up

    eventually(answered, within=15)


def test_every_dashboard_query_returns_series_from_the_running_stack(stack: Stack) -> None:
    scraped(stack.prometheus, "figachechnaya-app", "figachechnaya-worker", "postgres")
    with httpx.Client(base_url=stack.app, timeout=10) as http:
        # Twice: a labelled series is born at its first request, with 1, and a rate sees
        # only what it counts after Prometheus first saw it.
        for phrase in ("Велосипед", "Велосипед"):
            created = http.post("/api/v2/figalizations", json={"phrase": phrase})
            assert created.status_code == 201, created.text
            assert http.post("/api/v2/figalizations", json={"phrase": "hello"}).status_code == 422
            eventually(lambda: assert_has_series(stack.prometheus, FIGALIZED), within=10)
        figalization = created.json()["id"]

        def drawn() -> None:
            answer = http.get(f"/api/v2/figalizations/{figalization}").json()
            assert answer["image"]["status"] == "ready", answer

        eventually(drawn, within=30)

    def one_environment() -> None:
        assert variable_values(stack.prometheus) == [ENVIRONMENT]

    eventually(one_environment, within=10)
    targets = dashboard_targets()
    assert len(targets) >= 40, "every Prometheus panel's query"
    empty: dict[str, str] = {}

    def every_query_answers() -> None:
        empty.clear()
        for title, expr in targets:
            resolved = expr.replace("$namespace", ENVIRONMENT).replace(
                "$__rate_interval", RATE_INTERVAL
            )
            assert "$" not in resolved, resolved
            values = [float(r["value"][1]) for r in query(stack.prometheus, resolved)]
            if not any(math.isfinite(v) for v in values):
                empty[expr] = title
        # Only the broker's panels are empty: its exporter does not run here.
        unanswered = [f"{t}: {e}" for e, t in empty.items() if not BROKER_METRIC.search(e)]
        assert not unanswered, "\n".join(unanswered)

    eventually(every_query_answers, within=30)
    assert empty, "the Kafka exporter's panels cannot answer here"
    assert all(BROKER_METRIC.search(expr) for expr in empty)


def test_prometheus_evaluates_every_rule_and_records_the_slos(stack: Stack) -> None:
    def healthy() -> None:
        answer = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=5).json()["data"]
        rules = {rule["name"]: rule for group in answer["groups"] for rule in group["rules"]}
        written = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        names = {rule.get("alert") or rule["record"] for g in written for rule in g["rules"]}
        assert set(rules) == names
        assert {name: r["health"] for name, r in rules.items() if r["health"] != "ok"} == {}
        assert rules["FigachechnayaAppDown"]["state"] == "inactive"
        assert rules["FigachechnayaNoWorkers"]["state"] == "inactive"
        for sli in ("figalization_errors", "figalization_slow", "picture_late"):
            (series,) = query(stack.prometheus, f"namespace:{sli}:ratio_rate5m")
            assert series["metric"] == {
                "__name__": f"namespace:{sli}:ratio_rate5m",
                "namespace": ENVIRONMENT,
            }
            assert float(series["value"][1]) == 0, (sli, series)  # fast, no 5xx, in time

    eventually(healthy, within=20)
    up = {r["metric"]["job"]: r["value"][1] for r in query(stack.prometheus, "up")}
    assert up == {
        "figachechnaya-app": "1",
        "figachechnaya-worker": "1",
        "postgres": "1",
        "kafka": "0",  # not run here
        "alertmanager": "1",
        "prometheus": "1",
    }
    labels = {r["metric"]["namespace"] for r in query(stack.prometheus, "up")}
    assert labels == {ENVIRONMENT}


def test_a_killed_worker_pages_through_the_webhook(stack: Stack) -> None:
    # While the worker runs, no notification of it (Alertmanager would have sent one
    # within a second: group_wait 1s in the test copy).
    assert [
        a for _, a in stack.webhook.alerts() if a["labels"]["alertname"] == "FigachechnayaNoWorkers"
    ] == []
    worker = stack.processes["worker"]
    os.kill(worker.pid, signal.SIGKILL)  # a crash: no goodbye, the target just stops answering
    worker.stop()
    paged: list[tuple[str, dict[str, Any]]] = []

    def notified() -> None:
        paged.extend(
            (receiver, alert)
            for receiver, alert in stack.webhook.alerts()
            if alert["labels"]["alertname"] == "FigachechnayaNoWorkers"
        )
        assert paged

    eventually(notified, within=25)
    receiver, alert = paged[0]
    assert receiver == "critical"  # the route of severity="critical"
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "FigachechnayaNoWorkers",
        "namespace": ENVIRONMENT,
        "severity": "critical",
    }
    assert alert["annotations"]["summary"] == "No image worker is running; no picture gets drawn."


def test_the_dashboard_leads_from_a_request_id_to_its_log_lines() -> None:
    """Loki is queried by Grafana, not here: the panel's LogQL and datasource as Grafana
    gets them (the Loki datasource, uid `loki`, is provisioned beside Prometheus)."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["request_id"]["type"] == "textbox"
    (logs,) = [panel for panel in dashboard["panels"] if panel["type"] == "logs"]
    assert logs["datasource"] == {"type": "loki", "uid": "loki"}
    ((target,),) = [logs["targets"]]
    assert target["expr"] == '{app="figachechnaya", namespace="$namespace"} |= "$request_id"'
    (link,) = dashboard["links"]
    path, _, left = link["url"].partition("?left=")
    explore = json.loads(unquote(left))  # Grafana fills $namespace in, then Explore opens
    assert (path, explore["datasource"]) == ("/explore", "loki")
    assert explore["queries"][0]["expr"] == '{app="figachechnaya", namespace="$namespace"}'
    # Every other panel is Prometheus's and filters by the chosen environment.
    for panel in dashboard["panels"]:
        if panel is not logs:
            assert panel["datasource"]["uid"] == "prometheus", panel["title"]
            for query_target in panel["targets"]:
                assert 'namespace="$namespace"' in query_target["expr"], panel["title"]
