"""A rehearsal of compose.yaml (issue 11): its migrate, app and worker services run as
`docker compose` would start them, with the addresses of `postgres`, `kafka` and
`minio` pointed at the test services; the steps are those of
`test_k8s_rehearsal.py` (see `rehearsal.py`)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.rehearsal import (
    LOOPBACK,
    Container,
    Image,
    Processes,
    bucket_path,
    figalize_and_see_the_picture,
    image_of,
    rehearsed,
    require_free,
    scrape,
)
from tests.services.kafka import KafkaService
from tests.services.s3 import S3Service

INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def interpolated(value: object) -> str:
    """A compose value as `docker compose` reads it with no .env file and none of the
    variables set: `${NAME:-default}` → default, `$$` → `$`."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return INTERPOLATION.sub(lambda m: "$" if m.group(0) == "$$" else m["default"] or "", text)


def compose_container(services: Mapping[str, Any], name: str, image: Image) -> Container:
    service = services[name]
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    env = {**image.env, **{k: interpolated(v) for k, v in environment.items()}}
    argv = service.get("entrypoint", image.entrypoint) + service.get("command", image.command)
    return Container(name, [interpolated(a) for a in argv], env, spec=service)


def compose_addresses(
    env: Mapping[str, str], database_url: str, kafka: KafkaService, s3: S3Service
) -> dict[str, str]:
    """The compose services' own addresses (postgres, kafka, minio) → the test services."""
    database = env["FIGA_DATABASE_URL"]
    assert "@postgres:5432/" in database, database
    assert env["FIGA_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["FIGA_S3_ENDPOINT_URL"] == "http://minio:9000"
    return {
        "FIGA_DATABASE_URL": database_url,
        "FIGA_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FIGA_S3_ENDPOINT_URL": s3.endpoint_url,
    }


async def passes_healthcheck(container: Container, processes: Processes) -> None:
    """The service's healthcheck command, run as Docker runs it in the container (same
    environment), retried as its interval, start period and retries allow."""
    check = container.spec["healthcheck"]
    kind, *argv = check["test"]
    assert kind == "CMD", f"{container.name}: only exec-form healthchecks are rehearsed"
    seconds = {k: float(str(check.get(k, "0s")).rstrip("s")) for k in ("interval", "start_period")}
    within = seconds["start_period"] + seconds["interval"] * check.get("retries", 3)
    executable = shutil.which(argv[0], path=container.env["PATH"])
    assert executable, argv[0]
    deadline = asyncio.get_running_loop().time() + within
    while True:
        processes.check_alive(container.name)
        check_process = await asyncio.create_subprocess_exec(
            executable, *argv[1:], env=container.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(check_process.communicate(), timeout=10)
        if check_process.returncode == 0:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{container.name}: healthcheck {argv} fails: {stderr[-500:]!r}")
        await asyncio.sleep(0.5)


def topic_of_kafka_init(services: Mapping[str, Any]) -> tuple[str, int]:
    command = [str(part) for part in services["kafka-init"]["command"]]
    return command[command.index("--topic") + 1], int(command[command.index("--partitions") + 1])


def prometheus_targets(repo: Path) -> dict[str, tuple[int, str]]:
    """compose service → (port, path) that deploy/prometheus/prometheus.yml scrapes."""
    import yaml

    config = yaml.safe_load((repo / "deploy/prometheus/prometheus.yml").read_text())
    targets = {}
    for job in config["scrape_configs"]:
        for discovery in job.get("dns_sd_configs", []):
            for name in discovery["names"]:
                targets[name] = (int(discovery["port"]), job.get("metrics_path", "/metrics"))
    return targets


async def test_compose_runs_migrate_then_app_and_worker(
    compose: dict[str, Any],
    repo: Path,
    postgres_url: str,
    kafka_service: KafkaService,
    s3_service: S3Service,
    processes: Processes,
) -> None:
    """compose.yaml's migrate, app (one of its replicas) and worker, as `docker compose up`
    starts them; the nginx proxy, Prometheus and Grafana are not run here."""
    services = compose["services"]
    image = image_of(repo / "Dockerfile")
    migrate, app, worker = (
        compose_container(services, n, image) for n in ("migrate", "app", "worker")
    )
    addresses = compose_addresses(app.env, postgres_url, kafka_service, s3_service)
    migrate, app, worker = (rehearsed(c, addresses) for c in (migrate, app, worker))
    topic, partitions = topic_of_kafka_init(services)
    assert app.env["FIGA_KAFKA_TOPIC"] == topic
    await kafka_service.create_topic(topic, partitions=partitions)
    pictures = bucket_path(app.env["FIGA_IMAGE_STORE_URL"])
    bucket = pictures.split("/")[0]
    s3_service.filesystem().mkdir(bucket)
    port = int(app.argv[app.argv.index("--port") + 1])
    targets = prometheus_targets(repo)
    try:
        assert processes.run(migrate, timeout=300) == 0, processes.log(migrate.name)
        require_free({"port": port, "metrics": targets["app"][0]}, "app")
        require_free({"metrics": targets["worker"][0]}, "worker")
        assert str(port) in [str(p) for p in services["app"]["expose"]]
        processes.start(app)
        processes.start(worker)
        await passes_healthcheck(app, processes)
        await passes_healthcheck(worker, processes)
        base_url = f"http://{LOOPBACK}:{port}"
        figalization_id = await figalize_and_see_the_picture(
            base_url, pictures, s3_service, processes
        )
        async with httpx.AsyncClient(base_url=base_url) as http:
            picture = await http.get(f"/api/v2/figalizations/{figalization_id}/image")
        public_base = app.env.get("FIGA_IMAGE_PUBLIC_BASE_URL")
        if public_base:  # served by the stack's nginx from the bucket
            assert picture.status_code in (302, 307), picture.text
            assert picture.headers["location"] == f"{public_base}/{figalization_id}.png"
        for name, container in (("app", app), ("worker", worker)):
            target_port, path = targets[name]
            assert str(target_port) in [str(p) for p in services[name]["expose"]], name
            await scrape(f"http://{LOOPBACK}:{target_port}{path}", processes, container.name)
    finally:
        processes.stop_all()
        await kafka_service.delete_topic(topic)
        s3_service.delete_bucket(bucket)
