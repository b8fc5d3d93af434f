"""The shared steps of the deployment rehearsals (issue 11): run a container as its
manifest describes it, call its probes, figalize and see the picture, scrape.

`test_k8s_rehearsal.py` reads the containers from the rendered Kustomize
overlays, `test_compose_rehearsal.py` from compose.yaml; what differs from
the manifests, and why, is listed there and in `OVERRIDES` here.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services.s3 import S3Service

Objects = list[dict[str, Any]]


def settings_of(objects: Objects) -> dict[str, str]:
    """The `FIGA_*` settings of a rendered overlay: its settings ConfigMap's data."""
    (config_map,) = [
        o for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("figachechnaya-settings")
    ]  # fmt: skip
    data: dict[str, str] = config_map["data"]
    return data


LOOPBACK = "127.0.0.1"
ALL_ADDRESSES = "0.0.0.0"  # noqa: S104 - a value read from the manifests, nothing bound
VENV_BIN = Path(sys.executable).parent  # stands for the image's /opt/venv/bin
PICTURE_SECONDS = 90.0  # Tansu's group join alone may take 18 s
OVERRIDES = {
    "FIGA_KAFKA_SECURITY_PROTOCOL": (
        "PLAINTEXT",
        "Tansu has no SASL_SSL listener",
    ),
    "FIGA_KAFKA_IDEMPOTENCE": ("false", "Tansu refuses the idempotent producer"),
}


@dataclass(frozen=True)
class Image:
    """What the Dockerfile's runtime stage gives every container."""

    entrypoint: list[str]
    command: list[str]
    env: dict[str, str]


def image_of(dockerfile: Path) -> Image:
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    runtime = re.split(r"^FROM .*$", text, flags=re.MULTILINE)[-1]
    found: dict[str, Any] = {"ENTRYPOINT": [], "CMD": [], "ENV": {}}
    for line in runtime.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword in ("ENTRYPOINT", "CMD"):
            found[keyword] = json.loads(rest)
        elif keyword == "ENV":
            found["ENV"] |= dict(pair.split("=", 1) for pair in shlex.split(rest))
    # The base image's LANG; PATH with the image's venv first, as its ENV says.
    env = {**found["ENV"], "LANG": "C.UTF-8", "PATH": f"{VENV_BIN}:/usr/bin:/bin"}
    return Image(found["ENTRYPOINT"], found["CMD"], env)


@dataclass
class Container:
    """One process to start: its argv, environment and named ports, as the manifests say."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)


def rehearsed(container: Container, replacements: Mapping[str, str]) -> Container:
    """The overrides of the module docstring; each replaces what the manifests set."""
    env = dict(container.env)
    for name, (value, _why) in OVERRIDES.items():
        env[name] = value  # what the test broker can do, whatever the file says
    for name, value in replacements.items():
        assert name in env, f"{container.name}: the override of {name} would add a variable"
        env[name] = value
    for name, value in env.items():
        if name.startswith("FIGA_") and name.endswith("_HOST") and value == ALL_ADDRESSES:
            env[name] = LOOPBACK
    argv = [LOOPBACK if arg == ALL_ADDRESSES else arg for arg in container.argv]
    return Container(container.name, argv, env, container.ports, container.spec)


class Processes:
    """The started containers' processes, their output in files, all stopped at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def _popen(self, container: Container) -> subprocess.Popen[bytes]:
        executable = shutil.which(container.argv[0], path=container.env["PATH"])
        assert executable, f"{container.name}: {container.argv[0]} is not on the image's PATH"
        cwd = self.workdir / f"{container.name}-workdir"  # the image's WORKDIR
        cwd.mkdir(exist_ok=True)
        return subprocess.Popen(
            [executable, *container.argv[1:]],
            env=container.env,
            cwd=cwd,
            stdout=(self.workdir / f"{container.name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run(self, container: Container, *, timeout: float) -> int:
        process = self._popen(container)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"{container.name} ran longer than {timeout}s\n{self.log(container.name)}")

    def start(self, container: Container) -> None:
        self.running[container.name] = self._popen(container)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def check_alive(self, name: str) -> None:
        code = self.running[name].poll()
        if code is not None:
            pytest.fail(f"{name} exited with {code}:\n{self.log(name)}")

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(30)  # terminationGracePeriodSeconds
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running.clear()


def require_free(ports: Mapping[str, int], owner: str) -> None:
    for name, port in ports.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                pytest.fail(
                    f"port {port} ({owner}'s `{name}`) is taken: the rehearsal keeps the"
                    " manifests' ports, so it must run alone; stop what listens there"
                )


async def answers(url: str, *, within: float, processes: Processes, name: str) -> httpx.Response:
    """The first answer below 400 (Kubernetes' probe success) within `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    last = "no answer"
    async with httpx.AsyncClient(timeout=3) as http:
        while asyncio.get_running_loop().time() < deadline:
            processes.check_alive(name)
            try:
                response = await http.get(url)
                if response.status_code < 400:
                    return response
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.TransportError as error:
                last = repr(error)
            await asyncio.sleep(0.25)
    pytest.fail(f"{name}: {url} did not succeed within {within}s ({last})\n{processes.log(name)}")


async def probe(container: Container, kind: str, processes: Processes) -> httpx.Response:
    """A container's probe as the kubelet calls it, with the patience Kubernetes has."""
    spec = container.spec[kind]
    get = spec["httpGet"]
    port = container.ports[get["port"]] if isinstance(get["port"], str) else get["port"]
    patience = spec.get("initialDelaySeconds", 0) + spec.get("periodSeconds", 10) * spec.get(
        "failureThreshold", 3
    )
    url = f"http://{LOOPBACK}:{port}{get['path']}"
    return await answers(url, within=patience, processes=processes, name=container.name)


async def figalize_and_see_the_picture(
    base_url: str, bucket_path: str, s3: S3Service, processes: Processes
) -> str:
    """POST a figalization, wait for its picture to be `ready`, find its object in S3."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        created = await http.post("/api/v2/figalizations", json={"phrase": "Велосипед"})
        assert created.status_code == 201, created.text
        figalization_id = str(created.json()["id"])
        deadline = asyncio.get_running_loop().time() + PICTURE_SECONDS
        status = "pending"
        while status == "pending" and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.5)
            for name in processes.running:
                processes.check_alive(name)
            answer = await http.get(f"/api/v2/figalizations/{figalization_id}")
            status = answer.json()["image"]["status"]
        logs = "\n".join(processes.log(name) for name in processes.running)
        assert status == "ready", f"picture {status} after {PICTURE_SECONDS}s\n{logs}"
    objects = s3.filesystem(use_listings_cache=False).find(bucket_path)
    assert f"{bucket_path}/{figalization_id}.png" in objects, objects
    return figalization_id


async def scrape(url: str, processes: Processes, name: str) -> None:
    response = await answers(url, within=10, processes=processes, name=name)
    assert response.headers["content-type"].startswith("text/plain"), url
    assert "figachechnaya_" in response.text, f"{url} has no metrics of ours"


def stand_in_kafka_ca() -> str:
    """A PEM CA certificate standing in for the managed Kafka's root CA, which
    terraform/ puts into the ConfigMap figachechnaya-kafka-ca."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "rehearsal root CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def bucket_path(store_url: str) -> str:
    match = re.fullmatch(r"s3://(.+)", store_url)
    assert match, store_url
    return match.group(1).rstrip("/")
