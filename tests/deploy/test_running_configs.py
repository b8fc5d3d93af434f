"""The compose stack's proxy config, run by Debian's real nginx.

nginx serves deploy/nginx/nginx.conf in front of a real `figachechnaya serve`
(Prometheus, Alertmanager and the exporters with the stack's configs:
test_running_monitoring.py). The config is the project's file with the
substitutions (and reasons) listed at its fixture, the rest as written; the app
is compose's `app` with the overrides listed at its fixture (one process on
SQLite, its pictures in the test S3 server).
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest

from tests.services.ports import LOCALHOST, free_port
from tests.services.processes import ServerProcess
from tests.services.s3 import S3Service

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx" / "nginx.conf"
BUCKET = "figachechnaya"  # compose: FIGA_IMAGE_STORE_URL=s3://figachechnaya/images
NGINX_REQUEST_ID = re.compile(r"[0-9a-f]{32}")  # nginx's $request_id; the app's own ids are 24
NGINX_ADDRESS = LOCALHOST  # where nginx listens and connects to the app from
# Clients on loopback addresses of their own, so the app can tell them from nginx and apart.
CLIENT, OTHER_CLIENT = "127.0.0.2", "127.0.0.3"
RATE_LIMIT = 30  # figalizations per client per minute (compose sets 120)


class App(NamedTuple):
    url: str
    metrics_port: int
    process: ServerProcess


def answers_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running(name: str, argv: list[str], tmp: Path, ready_url: str, **kw: Any) -> Iterator[Any]:
    """A server process, stopped on the way out whatever happened; ready when `ready_url` is 200."""
    server = ServerProcess(name, argv, tmp / f"{name}.log", **kw)
    try:
        server.spawn()
        server.wait_ready(lambda: answers_ok(ready_url), timeout=30, what=f"200 from {ready_url}")
        yield server
    finally:
        server.stop()


def substituted(text: str, substitutions: list[tuple[str, str, str]]) -> str:
    """`text` with each (old, new, why) applied; each `old` must occur exactly once."""
    for old, new, why in substitutions:
        assert text.count(old) == 1, f"{old!r} ({why}) is not in the file once: update the test"
        text = text.replace(old, new)
    return text


def eventually(check: Callable[[], None], within: float = 60.0) -> None:
    """Run `check` until it stops failing; after `within` seconds its failure is the test's."""
    deadline = time.monotonic() + within
    while True:
        try:
            check()
            return
        except (AssertionError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def service_address(compose: dict[str, Any], service: str, network: str) -> str:
    """The fixed address compose gives `service` on `network`."""
    address: str = compose["services"][service]["networks"][network]["ipv4_address"]
    return address


@pytest.fixture
def ports() -> dict[str, int]:
    chosen = {name: free_port() for name in ("app", "metrics", "nginx")}
    assert len(set(chosen.values())) == len(chosen), chosen
    return chosen


@pytest.fixture
def pictures(s3_service: S3Service) -> Iterator[S3Service]:
    with compose_bucket(s3_service) as s3:
        yield s3


@contextmanager
def compose_bucket(s3_service: S3Service) -> Iterator[S3Service]:
    """Compose's bucket on the S3 server, its images/ readable by anyone, as minio-init sets up."""
    s3_service.ensure_running()
    filesystem = s3_service.filesystem()
    created = not filesystem.exists(BUCKET)
    if created:
        filesystem.mkdir(BUCKET)
    # `mc anonymous set download local/figachechnaya/images` (moto would not need it; MinIO does)
    read = {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"]}
    read["Resource"] = [f"arn:aws:s3:::{BUCKET}/images/*"]
    policy = json.dumps({"Version": "2012-10-17", "Statement": [read]})
    filesystem.call_s3("put_bucket_policy", Bucket=BUCKET, Policy=policy)
    try:
        yield s3_service
    finally:
        if created:
            s3_service.delete_bucket(BUCKET)


@pytest.fixture
def app(
    compose: dict[str, Any], pictures: S3Service, ports: dict[str, int], tmp_path: Path
) -> Iterator[App]:
    """`figachechnaya serve` as compose's `app` service runs it (${X:-default} → default)."""
    service = compose["services"]["app"]
    unset = re.compile(r"\$\{\w+:-([^}]*)\}")  # ${NAME:-default} without an .env: the default
    env = {name: unset.sub(r"\1", value) for name, value in service["environment"].items()}
    del env["FIGA_KAFKA_BOOTSTRAP_SERVERS"]  # `serve` queues and draws the pictures itself
    overrides = {
        # One process on SQLite: what nginx and Prometheus see does not depend on it.
        "FIGA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'figachechnaya.sqlite3'}",
        "FIGA_S3_ENDPOINT_URL": pictures.endpoint_url,  # the test S3 server in MinIO's place
        **pictures.credentials_environment(),  # and its credentials
        "FIGA_IMAGE_PUBLIC_BASE_URL": f"http://{LOCALHOST}:{ports['nginx']}/images",
        "FIGA_PUBLIC_BASE_URL": f"http://{LOCALHOST}:{ports['nginx']}",  # nginx's address here
        # nginx connects from loopback here, not from its fixed address on compose's "edge".
        "FIGA_FORWARDED_ALLOW_IPS": env["FIGA_FORWARDED_ALLOW_IPS"].replace(
            service_address(compose, "proxy", "edge"), NGINX_ADDRESS
        ),
        "FIGA_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT),  # one a test exhausts in a second
        "FIGA_METRICS_PORT": str(ports["metrics"]),  # a free port instead of 9101
        "FIGA_METRICS_HOST": LOCALHOST,  # instead of 0.0.0.0
        "FIGA_WORKER_METRICS_HOST": LOCALHOST,  # instead of 0.0.0.0 (`serve` opens none)
    }
    assert set(overrides) <= set(env), "an override would add a variable compose does not set"
    env |= overrides | {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    # ["serve", "--host", "0.0.0.0", "--port", "8000"]: loopback, and a free port.
    loopback = {"0.0.0.0": LOCALHOST, "8000": str(ports["app"])}  # noqa: S104
    argv = [str(Path(sys.executable).parent / "figachechnaya")]
    argv += [loopback.get(arg, arg) for arg in service["command"]]
    url = f"http://{LOCALHOST}:{ports['app']}"
    with running("app", argv, tmp_path, f"{url}/healthz", env=env) as process:
        yield App(url, ports["metrics"], process)


@pytest.fixture
def nginx(
    tool: Any, app: App, pictures: S3Service, ports: dict[str, int], tmp_path: Path
) -> Iterator[str]:
    """Debian's nginx with the proxy's config, run as the image runs it (`daemon off;`)."""
    binary = tool("nginx", "apt-get install -y nginx (Debian's nginx runs the proxy's config)")
    s3 = urlsplit(pictures.endpoint_url)  # nginx.conf proxies to MinIO over plain HTTP
    config = substituted(
        NGINX_CONF.read_text(encoding="utf-8"),
        [
            ("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;", "this test's file"),
            ("resolver 127.0.0.11 valid=10s ipv6=off;", "", "Docker's DNS; no names below"),
            # `resolve` (nginx >= 1.27.3, Debian has 1.22) re-reads Docker's DNS for replicas.
            ("server app:8000 resolve;", f"server {LOCALHOST}:{ports['app']};", "the app"),
            ("app:8000 resolve backup", f"{LOCALHOST}:{ports['app']} backup", "it, as backup"),
            ("server minio:9000 resolve;", f"server {s3.netloc};", "the test S3 server"),
            ("listen 8080;", f"listen {LOCALHOST}:{ports['nginx']};", "a free loopback port"),
        ],
    )  # access_log /dev/stdout and error_log /dev/stderr land in nginx.log of tmp_path
    path = tmp_path / "nginx.conf"
    path.write_text(config, encoding="utf-8")
    url = f"http://{LOCALHOST}:{ports['nginx']}"
    argv = [binary, "-c", str(path), "-g", "daemon off;"]  # the image's CMD, with this file
    with running("nginx", argv, tmp_path, f"{url}/healthz"):  # compose's healthcheck for it
        yield url


def test_nginx_proxies_the_app_with_its_request_id_and_no_metrics(nginx: str, app: App) -> None:
    with httpx.Client(base_url=nginx, timeout=10) as http:
        # A client's own id is kept (issue 12 § 1, tests/deploy/test_running_proxy_logs.py).
        page = http.get("/", headers={"X-Request-ID": "chosen-by-the-client"})
        assert page.status_code == 200, page.text
        assert "Отфигачить" in page.text
        assert page.headers["x-request-id"] == "chosen-by-the-client", page.headers
        created = http.post("/api/v2/figalizations", json={"phrase": "Велосипед"})
        assert created.status_code == 201, created.text
        assert created.json()["result"] == "Фигосипед"
        request_id, figalization_id = created.headers["x-request-id"], created.json()["id"]
        assert NGINX_REQUEST_ID.fullmatch(request_id), request_id
        assert request_id != page.headers["x-request-id"]
        done: dict[str, Any] = {}

        def drawn() -> None:
            done.update(http.get(f"/api/v2/figalizations/{figalization_id}").json())
            assert done["image"]["status"] == "ready", done

        eventually(drawn, within=30)
        assert done["image"]["url"] == f"{nginx}/api/v2/figalizations/{figalization_id}/image"
        redirect = http.get(f"/api/v2/figalizations/{figalization_id}/image")
        assert redirect.status_code == 302, redirect.text
        assert redirect.headers["location"] == f"{nginx}/images/{figalization_id}.png"
        picture = http.get(redirect.headers["location"])  # from the bucket, through nginx
        assert picture.status_code == 200, picture.text
        assert picture.headers["content-type"] == "image/png"
        assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")
        for path in ("/metrics", "/metrics/", "//metrics"):
            answer = http.get(f"{nginx}{path}")
            assert answer.request.url.raw_path == path.encode()
            assert answer.status_code == 404, f"{path}: {answer.status_code} {answer.text[:200]}"
    # The id nginx made is the one the app logs, for the request and for its picture job.
    lines = app.process.log_path.read_text(encoding="utf-8").splitlines()
    ours = [json.loads(x) for x in lines if x.startswith("{") and figalization_id in x]  # json
    ids = {e["message"].split(" (")[0]: e["request_id"] for e in ours}
    stored, ready = f"figalization {figalization_id} stored", f"picture {figalization_id} ready"
    assert ids == {stored: request_id, ready: request_id}, app.process.log_tail()


def test_nginx_serves_the_bucket_images_prefix_read_only(nginx: str, pictures: S3Service) -> None:
    key = f"check-{uuid.uuid4().hex}.png"
    body = b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes
    filesystem = pictures.filesystem()
    filesystem.pipe_file(f"{BUCKET}/images/{key}", body)
    with httpx.Client(base_url=nginx, timeout=10) as http:
        served = http.get(f"/images/{key}")
        assert served.status_code == 200, served.text
        assert served.content == body
        for method in ("PUT", "POST", "DELETE"):
            refused = http.request(method, f"/images/{key}", content=b"overwritten")
            assert refused.status_code == 403, f"{method}: {refused.status_code}"
    assert filesystem.cat_file(f"{BUCKET}/images/{key}") == body
    filesystem.rm_file(f"{BUCKET}/images/{key}")


def client_at(address: str, base_url: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127/8 address is this machine's)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=10)


def test_through_nginx_a_client_cannot_choose_the_address_the_rate_limit_counts(
    nginx: str,
) -> None:
    """issue 14: with `*` trusted, a rotating spoofed X-Forwarded-For got 40× 201 at 30."""
    statuses = []
    with client_at(CLIENT, nginx) as http:
        for i in range(RATE_LIMIT + 10):
            # Both spellings of a lie: a rotating first entry, and a rotating last one.
            spoofed = f"10.4.0.{i}, 198.51.100.7" if i % 2 else f"198.51.100.{i}"
            answer = http.post(
                "/api/v2/figalizations",
                json={"phrase": "Велосипед"},
                headers={"X-Forwarded-For": spoofed},
            )
            statuses.append(answer.status_code)
    assert statuses == [201] * RATE_LIMIT + [429] * 10, statuses
    with client_at(OTHER_CLIENT, nginx) as http:  # another real client is not limited with it
        answer = http.post("/api/v2/figalizations", json={"phrase": "Велосипед"})
        assert answer.status_code == 201, answer.text


def test_through_nginx_a_client_cannot_claim_https(nginx: str) -> None:
    """nginx writes X-Forwarded-Proto from its own connection: plain http stays http
    (no HSTS, a CSRF cookie without Secure on this http-only base URL)."""
    with client_at(CLIENT, nginx) as http:
        page = http.get("/", headers={"X-Forwarded-Proto": "https"})
    assert page.status_code == 200, page.text
    assert "strict-transport-security" not in page.headers
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("figa_csrf="), cookie
    assert "secure" not in cookie.lower(), cookie


def test_through_nginx_absolute_links_name_the_public_base_url_not_the_host(
    nginx: str, app: App
) -> None:
    with httpx.Client(base_url=nginx, timeout=10, headers={"Host": "evil.example"}) as http:
        created = http.post("/api/v2/figalizations", json={"phrase": "Велосипед"})
        assert created.status_code == 201, created.text
        figalization_id = created.json()["id"]

        def drawn() -> None:
            answer = http.get(f"/api/v2/figalizations/{figalization_id}").json()
            assert answer["image"]["status"] == "ready", answer
            assert answer["image"]["url"] == f"{nginx}/api/v2/figalizations/{figalization_id}/image"

        eventually(drawn, within=30)
        page = http.get(f"/r/{figalization_id}", headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text
        assert f'content="{nginx}/api/v2/figalizations/{figalization_id}/image"' in page.text
        assert "evil.example" not in page.text
