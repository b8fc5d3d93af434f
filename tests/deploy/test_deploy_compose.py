"""compose.yaml: the whole distributed stack on one machine (issue 6 § compose).

Validated by Debian's docker-compose (1.29, which checks the file against the
Compose specification's schema and needs no Docker engine for `config`), then
held to what the stack promises: pinned images, two app replicas behind the
proxy, a scalable worker, KRaft Kafka, migrations once before the app,
health-based start order, monitoring wired to the app's and the worker's
operations ports (the public port has no metrics), and pictures a browser can
open at http://localhost:8080/images/… (the proxy serves the bucket's public
prefix; the presigned http://minio:9000 URL would not resolve on the host).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

METRICS = (
    "figachechnaya_http_requests_total",
    "figachechnaya_http_request_duration_seconds",
    "figachechnaya_figalizations_total",
    "figachechnaya_outbox_backlog",
    "figachechnaya_image_jobs_total",
)
BUILT_HERE = {"app", "worker", "migrate"}


def test_docker_compose_accepts_the_file(repo: Path, tool: Any) -> None:
    docker_compose = tool("docker-compose", "apt-get install docker-compose")
    result = subprocess.run(
        [docker_compose, "--file", "compose.yaml", "config", "--quiet"],
        cwd=repo, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_every_image_is_pinned_and_ours_is_built_from_the_dockerfile(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        if name in BUILT_HERE:
            assert service["build"]["dockerfile"] == "Dockerfile", name
            continue
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        assert re.fullmatch(r"[\w.-]*\d[\w.-]*", tag), f"{name}: {image} is not pinned"
        assert tag != "latest", name


def test_two_app_replicas_sit_behind_the_proxy(compose: dict[str, Any], repo: Path) -> None:
    services = compose["services"]
    assert services["app"]["deploy"]["replicas"] == 2
    assert "ports" not in services["app"], "the app is reached through the proxy only"
    assert services["proxy"]["ports"], "the proxy publishes the service"
    assert services["proxy"]["depends_on"]["app"]["condition"] == "service_healthy"
    nginx = (repo / "deploy" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    assert re.search(r"server app:8000 resolve;", nginx), "the proxy follows every app replica"


def test_the_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker, "published ports would clash with --scale"
    assert worker["command"] == ["worker"]


def test_kafka_runs_in_kraft_mode_on_a_protocol_compatible_version(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    # aiokafka 0.14 is proven against the 3.x brokers; Kafka 4 dropped old
    # protocol versions (KIP-896), so the pin stays on the 3.9 line.
    assert re.fullmatch(r"apache/kafka:3\.9\.\d+", kafka["image"])
    environment = kafka["environment"]
    assert "controller" in environment["KAFKA_PROCESS_ROLES"]
    assert not any("ZOOKEEPER" in key for key in environment)
    assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_the_topic_has_as_many_partitions_as_production(
    compose: dict[str, Any], terraform_variables: dict[str, Any]
) -> None:
    command = compose["services"]["kafka-init"]["command"]
    topic = command[command.index("--topic") + 1]
    partitions = int(command[command.index("--partitions") + 1])
    assert topic == compose["x-figachechnaya-env"]["FIGA_KAFKA_TOPIC"]
    assert partitions == terraform_variables["kafka_topics"]["default"][topic]


def test_migrations_run_once_before_app_and_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("app", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        assert depends_on["kafka-init"]["condition"] == "service_completed_successfully", name
        assert depends_on["minio-init"]["condition"] == "service_completed_successfully", name


def test_every_dependency_waits_for_health_or_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert rule["condition"] in ("service_healthy", "service_completed_successfully")
            if rule["condition"] == "service_healthy":
                assert "test" in services[target].get("healthcheck", {}), f"{name} → {target}"


def test_the_bucket_is_created_at_start(compose: dict[str, Any]) -> None:
    store = compose["x-figachechnaya-env"]["FIGA_IMAGE_STORE_URL"]
    bucket = re.fullmatch(r"s3://([^/]+)/.*", store)
    assert bucket is not None
    script = " ".join(compose["services"]["minio-init"]["command"])
    assert f"mc mb --ignore-existing local/{bucket.group(1)}" in script


def test_the_production_defaults_hold_in_the_stack(compose: dict[str, Any]) -> None:
    environment = compose["x-figachechnaya-env"]
    assert environment["FIGA_KAFKA_IDEMPOTENCE"] == "true"
    assert environment["FIGA_LOG_FORMAT"] == "json"
    assert environment["FIGA_DATABASE_URL"].startswith("postgresql+asyncpg://")
    for name in BUILT_HERE:
        assert compose["services"][name]["environment"] == environment, name


def test_prometheus_scrapes_every_app_and_worker_replica_on_its_operations_port(
    compose: dict[str, Any], repo: Path
) -> None:
    config = yaml.safe_load((repo / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    environment = compose["x-figachechnaya-env"]
    app_port = int(environment["FIGA_METRICS_PORT"])
    worker_port = int(environment["FIGA_WORKER_METRICS_PORT"])
    for job, name, port in (
        ("figachechnaya-app", "app", app_port),
        ("figachechnaya-worker", "worker", worker_port),
    ):
        (discovery,) = jobs[job]["dns_sd_configs"]
        assert discovery["names"] == [name]
        assert discovery["port"] == port
        assert discovery["type"] == "A"
        assert jobs[job]["metrics_path"] == "/metrics"
        assert str(port) in compose["services"][name]["expose"], f"{name} exposes {port}"
        assert "internal" in compose["services"][name]["networks"], "Prometheus reaches it"
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    # Reachable from the other containers, not only from inside its own.
    assert environment["FIGA_METRICS_HOST"] == "0.0.0.0"  # noqa: S104 (the container's own network)
    assert environment["FIGA_WORKER_METRICS_HOST"] == "0.0.0.0"  # noqa: S104
    command = compose["services"]["app"]["command"]
    assert int(command[command.index("--port") + 1]) != app_port, "metrics off the public port"


def nginx_block(config: str, opening: str) -> str:
    """The text of the block that starts with `opening` (e.g. `location /images/`)."""
    start = config.index(opening + " {")
    depth = 0
    for position in range(start, len(config)):
        depth += {"{": 1, "}": -1}.get(config[position], 0)
        if config[position] == "}" and depth == 0:
            return config[start : position + 1]
    raise AssertionError(f"unclosed block {opening}")


def nginx_config(repo: Path) -> str:
    text = (repo / "deploy" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_the_proxy_serves_the_pictures_from_the_bucket(compose: dict[str, Any], repo: Path) -> None:
    # The app redirects a browser to FIGA_IMAGE_PUBLIC_BASE_URL/<key>; the object is
    # <bucket>/<prefix>/<key> in MinIO, which the host cannot resolve by name.
    environment = compose["x-figachechnaya-env"]
    store = re.fullmatch(r"s3://([^/]+)/(.+)", environment["FIGA_IMAGE_STORE_URL"])
    assert store is not None
    bucket, prefix = store.groups()
    public = re.fullmatch(
        r"http://localhost:\$\{FIGA_HTTP_PORT:-(\d+)\}(/[^/]+)",
        environment["FIGA_IMAGE_PUBLIC_BASE_URL"],
    )
    assert public is not None, "the public base follows the proxy's published port"
    port, path = public.groups()
    assert compose["services"]["proxy"]["ports"] == [f"${{FIGA_HTTP_PORT:-{port}}}:8080"]
    config = nginx_config(repo)
    location = nginx_block(config, f"location {path}/")
    assert re.search(rf"proxy_pass http://pictures/{bucket}/{prefix}/;", location)
    assert re.search(r"limit_except GET \{\s*deny all;\s*\}", location), "read-only"
    upstream = nginx_block(config, "upstream pictures")
    assert re.search(r"server minio:9000 resolve;", upstream)
    assert set(compose["services"]["proxy"]["networks"]) & set(
        compose["services"]["minio"]["networks"]
    )
    script = " ".join(compose["services"]["minio-init"]["command"])
    assert f"mc anonymous set none local/{bucket}" in script, "the bucket stays private"
    assert f"mc anonymous set download local/{bucket}/{prefix}" in script, "its pictures are public"
    assert script.index(f"set none local/{bucket} ") < script.index("set download")


def test_the_public_base_url_follows_the_published_port(repo: Path, tool: Any) -> None:
    docker_compose = tool("docker-compose", "apt-get install docker-compose")
    result = subprocess.run(
        [docker_compose, "--file", "compose.yaml", "config"],
        cwd=repo, capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "FIGA_HTTP_PORT": "18080"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    (published,) = services["proxy"]["ports"]
    assert int(published["published"]) == 18080
    for name in BUILT_HERE:
        base = services[name]["environment"]["FIGA_IMAGE_PUBLIC_BASE_URL"]
        assert base == "http://localhost:18080/images", name
        # Every absolute link the app writes starts here, never with a client's Host.
        assert services[name]["environment"]["FIGA_PUBLIC_BASE_URL"] == "http://localhost:18080"


def test_the_proxy_blocks_nothing_for_metrics_and_passes_the_request_id(repo: Path) -> None:
    # The app's public port serves no /metrics under any spelling (they are on
    # its operations port), so a path rule here would only pretend to protect.
    config = nginx_config(repo)
    assert "metrics" not in config
    root = nginx_block(config, "location /")
    assert "proxy_pass http://figachechnaya;" in root
    # The client's id when the app would accept it, else nginx's own (issue 12 § 1).
    assert "proxy_set_header X-Request-ID $figa_request_id;" in root
    assert "access_log /dev/stdout figachechnaya;" in config
    assert re.search(r"log_format figachechnaya escape=json", config)


def test_grafana_is_provisioned_with_the_dashboard(compose: dict[str, Any], repo: Path) -> None:
    volumes = compose["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro" in volumes
    provisioning = repo / "deploy" / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources/prometheus.yaml").read_text())[
        "datasources"
    ]
    (provider,) = yaml.safe_load((provisioning / "dashboards/figachechnaya.yaml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    dashboard = json.loads((repo / "deploy/grafana/dashboards/figachechnaya.json").read_text())
    expressions = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in METRICS:
        assert metric in expressions, metric
    for panel in dashboard["panels"]:
        # loki: the Loki datasource (uid loki) of the logs panel, provisioned beside Prometheus.
        assert panel["datasource"]["uid"] in {source["uid"], "loki"}, panel["title"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
