"""A rehearsal of the deployment: run the processes the manifests describe (issue 11).

`kubectl kustomize k8s/overlays/{prod,dev}` is rendered, and the migrate Job,
then the app and the worker, are started here exactly as the kubelet would
start their containers: the image's ENTRYPOINT with the container's `args`,
only the environment the manifests give (the image's ENV, then `envFrom` —
the rendered ConfigMap and the Secret, whose keys are the ones
terraform/modules/namespace writes, filled with the test services' addresses
and credentials — then `env`), and the ConfigMap volumes written out as
files. Then every probe is called on its path and (named) port, a phrase is
figalized through the port the Service maps, its picture must become `ready`
and be in the bucket, and the ServiceMonitor's port and path are scraped. A
wrong port, variable name, probe path, command or missing migration fails
here. compose.yaml's migrate, app and worker are run the same way.

What differs from the manifests, each for a reason (`OVERRIDES`, `rehearsed`):
- `--host 0.0.0.0` and `FIGA_*_HOST=0.0.0.0` → 127.0.0.1: nothing here listens
  beyond loopback;
- `FIGA_KAFKA_SECURITY_PROTOCOL` → PLAINTEXT and `FIGA_KAFKA_IDEMPOTENCE` →
  false: Tansu, the test broker, has neither SASL_SSL nor idempotence (the CA
  file is still mounted and loaded into a TLS context, see below);
- `FIGA_S3_ENDPOINT_URL` → moto, and in compose the `postgres`, `kafka` and
  `minio` addresses → the test services;
- a path under a volume's mount (FIGA_SCHEMES_FILE, FIGA_KAFKA_SSL_CAFILE) →
  the same path under the temporary directory that stands for the pod's root.
An address override only replaces a variable the manifests set, never adds one.
The ports are the manifests' own (8000, 9101, 9100): all pods share this
machine's loopback, so the test must run alone (in a parallel run its unit in
`tests/parallel.py` keeps the rehearsals apart) and fails clearly if one is taken.
Not rehearsed: the read-only root file system and the non-root user (the test
runs as whoever runs it), the preStop hook, resource limits, and everything a
real cluster adds (Service IPs, kube-proxy, the NetworkPolicies themselves).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.rehearsal import (
    LOOPBACK,
    Container,
    Image,
    Objects,
    Processes,
    bucket_path,
    figalize_and_see_the_picture,
    image_of,
    probe,
    rehearsed,
    require_free,
    scrape,
    stand_in_kafka_ca,
)
from tests.services.kafka import KafkaService
from tests.services.s3 import S3Service


class Pod:
    """A rendered overlay read as the kubelet reads it for one container."""

    def __init__(self, objects: Objects, image: Image, secret: Mapping[str, str], root: Path):
        self.objects = objects
        self.image = image
        self.secret = secret
        self.root = root  # stands for the pods' file system root
        self.config_maps = {
            o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"
        }
        # Made by terraform/ in the namespace, not by the overlay.
        self.config_maps["figachechnaya-kafka-ca"] = {"ca.crt": stand_in_kafka_ca()}

    def named(self, kind: str, name: str) -> dict[str, Any]:
        (obj,) = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        return obj

    def container(self, kind: str, name: str) -> Container:
        spec = self.named(kind, name)["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        env = dict(self.image.env)
        for source in container.get("envFrom", []):
            assert "prefix" not in source
            if "configMapRef" in source:
                env |= self.config_maps[source["configMapRef"]["name"]]
            else:
                assert source["secretRef"]["name"] == "figachechnaya-secrets"
                env |= self.secret
        for variable in container.get("env", []):
            assert "value" in variable, f"{name}: only literal env values are rehearsed"
            env[variable["name"]] = variable["value"]
        argv = container.get("command", self.image.entrypoint) + container.get(
            "args", [] if "command" in container else self.image.command
        )
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        mounted = Container(name, argv, env, ports, container)
        return self._mount(mounted, spec["volumes"], container.get("volumeMounts", []))

    def _mount(self, container: Container, volumes: Objects, mounts: Objects) -> Container:
        """Write each ConfigMap volume under `root`; point variables naming a file in a
        mount at its copy there (the file must exist: a wrong name fails here)."""
        by_name = {v["name"]: v for v in volumes}
        for mount in mounts:
            volume = by_name[mount["name"]]
            if "configMap" not in volume:
                continue  # the emptyDir /tmp: this machine's /tmp serves
            target = self.root / mount["mountPath"].lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            data = self.config_maps[volume["configMap"]["name"]]
            items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                (target / item["path"]).write_text(data[item["key"]], encoding="utf-8")
            for name, value in container.env.items():
                if value.startswith(mount["mountPath"].rstrip("/") + "/"):
                    copy = self.root / value.lstrip("/")
                    assert copy.is_file(), f"{container.name}: {name}={value} is not mounted"
                    container.env[name] = str(copy)
        return container

    def service_port(self, service: str, port_name: str, container: Container) -> int:
        """The container port a Service's port reaches (its targetPort, by name or number)."""
        ports = self.named("Service", service)["spec"]["ports"]
        (port,) = [p for p in ports if p["name"] == port_name]
        target = port["targetPort"]
        return container.ports[target] if isinstance(target, str) else int(target)


def secret_keys(parse_hcl: Any, repo: Path) -> set[str]:
    """The keys of figachechnaya-secrets as terraform/modules/namespace writes them."""
    module = parse_hcl(repo / "terraform/modules/namespace/main.tf")
    for entry in module["resource"]:
        for block in entry.get("kubernetes_secret_v1", {}).values():
            if block["metadata"][0]["name"] == "figachechnaya-secrets":
                return set(block["data"])
    pytest.fail("terraform/modules/namespace writes no figachechnaya-secrets")


def secret_for(
    keys: set[str], database_url: str, kafka: KafkaService, s3: S3Service
) -> dict[str, str]:
    values = {
        "FIGA_DATABASE_URL": database_url,
        "FIGA_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FIGA_KAFKA_SASL_USERNAME": "figachechnaya",  # unused over PLAINTEXT
        "FIGA_KAFKA_SASL_PASSWORD": "unused-over-plaintext",
        "AWS_ACCESS_KEY_ID": str(s3.key),
        "AWS_SECRET_ACCESS_KEY": str(s3.secret),
        "FIGA_SECRET_KEY": secrets.token_urlsafe(32),
    }
    unknown = keys - set(values)
    assert not unknown, f"terraform writes {unknown}: say here what the rehearsal fills in"
    return {key: values[key] for key in keys}


@pytest.mark.parametrize("env", ["prod", "dev"])
async def test_the_overlay_runs_migrate_then_app_and_worker(
    env: str,
    rendered: dict[str, Objects],
    repo: Path,
    parse_hcl: Any,
    terraform_variables: dict[str, Any],
    postgres_url: str,
    kafka_service: KafkaService,
    s3_service: S3Service,
    processes: Processes,
    tmp_path: Path,
) -> None:
    objects = rendered[env]
    secret = secret_for(secret_keys(parse_hcl, repo), postgres_url, kafka_service, s3_service)
    pod = Pod(objects, image_of(repo / "Dockerfile"), secret, tmp_path / "root")
    endpoint = {"FIGA_S3_ENDPOINT_URL": s3_service.endpoint_url}
    migrate = rehearsed(pod.container("Job", "figachechnaya-migrate"), endpoint)
    app = rehearsed(pod.container("Deployment", "figachechnaya-app"), endpoint)
    worker = rehearsed(pod.container("Deployment", "figachechnaya-worker"), endpoint)
    settings = app.env
    # What terraform/ makes before a release: the topic with its partitions, the bucket.
    topic = settings["FIGA_KAFKA_TOPIC"]
    partitions = terraform_variables["kafka_topics"]["default"][topic]
    await kafka_service.create_topic(topic, partitions=partitions)
    pictures = bucket_path(settings["FIGA_IMAGE_STORE_URL"])
    bucket = pictures.split("/")[0]
    s3_service.filesystem().mkdir(bucket)
    try:
        deadline = pod.named("Job", "figachechnaya-migrate")["spec"]["activeDeadlineSeconds"]
        code = processes.run(migrate, timeout=deadline)
        assert code == 0, f"migrate exited {code}\n{processes.log(migrate.name)}"
        require_free(app.ports, app.name)
        require_free(worker.ports, worker.name)
        processes.start(app)
        processes.start(worker)
        for container in (app, worker):
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                await probe(container, kind, processes)
        the_ca_loads_for_sasl_ssl(app)
        public = pod.service_port("figachechnaya-app", "http", app)
        base_url = f"http://{LOOPBACK}:{public}"
        await figalize_and_see_the_picture(base_url, pictures, s3_service, processes)
        await scrape_the_service_monitor(
            pod, {"figachechnaya-app": app, "figachechnaya-worker": worker}, processes
        )
        async with httpx.AsyncClient(base_url=base_url) as http:
            assert (await http.get("/metrics")).status_code == 404, "the public port has none"
        if env == "prod":
            await degradation_keeps_the_pods_ready(
                app, worker, base_url, processes, kafka_service, s3_service
            )
    finally:
        processes.stop_all()
        kafka_service.ensure_running()
        s3_service.ensure_running()
        await kafka_service.delete_topic(topic)
        s3_service.delete_bucket(bucket)


def the_ca_loads_for_sasl_ssl(app: Container) -> None:
    """With the manifests' own protocol the mounted CA file is what TLS trusts (the
    rehearsal talks PLAINTEXT to Tansu, so this is checked apart)."""
    from app.jobs.kafka import client_options
    from app.settings import Settings

    manifest = dict(app.env, FIGA_KAFKA_SECURITY_PROTOCOL="SASL_SSL")
    options = client_options(Settings.from_env(manifest))
    trusted = options["ssl_context"].get_ca_certs()
    assert [c["subject"] for c in trusted] == [((("commonName", "rehearsal root CA"),),)]


async def scrape_the_service_monitor(
    pod: Pod, containers: Mapping[str, Container], processes: Processes
) -> None:
    """Each endpoint of the ServiceMonitor on each Service it selects, as Prometheus does."""
    (monitor,) = [o for o in pod.objects if o["kind"] == "ServiceMonitor"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        o["metadata"]["name"] for o in pod.objects
        if o["kind"] == "Service"
        and all(o["metadata"]["labels"].get(k) == v for k, v in selector.items())
    ]  # fmt: skip
    assert sorted(services) == sorted(containers)
    for service in services:
        for endpoint in monitor["spec"]["endpoints"]:
            port = pod.service_port(service, endpoint["port"], containers[service])
            url = f"http://{LOOPBACK}:{port}{endpoint['path']}"
            await scrape(url, processes, containers[service].name)


async def degradation_keeps_the_pods_ready(
    app: Container,
    worker: Container,
    base_url: str,
    processes: Processes,
    kafka: KafkaService,
    s3: S3Service,
) -> None:
    """With the broker and the object store gone the app stays ready (the page degrades,
    Kubernetes must not take every pod out of the Service) and the worker stays alive."""
    if not (kafka.controllable and s3.controllable):
        return  # external services are not ours to stop
    kafka.stop()
    s3.stop()
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        created = await http.post("/api/v2/figalizations", json={"phrase": "Молоко"})
        assert created.status_code == 201, created.text
    # Every answer is "ready"; the body says what is down once its 1 s cache expired.
    for _ in range(20):
        body = (await probe(app, "readinessProbe", processes)).json()
        if not body["queue"]["ok"] and not body["images"]["ok"]:
            break
        await asyncio.sleep(0.5)
    assert (body["queue"]["ok"], body["images"]["ok"]) == (False, False), body
    await probe(app, "livenessProbe", processes)
    await asyncio.sleep(3)  # a few rounds of a consume loop that cannot reach its broker
    await probe(worker, "livenessProbe", processes)
