"""One request id from the proxy to the logs (issue 12 § 1), run by Debian's real nginx.

nginx serves deploy/nginx/nginx.conf in front of two `figachechnaya serve`
processes (compose's two `app` replicas, on one SQLite file), with the
substitutions listed at its fixture. Its JSON access log is read line by line:
each line's request_id is the X-Request-ID the answer carries and the id of
the app's own log lines for that request, whichever replica served it; the
real lines of both go through the compose log agent's rules
(tests/deploy/log_pipeline.py), and Grafana's request-id link selects them.

A second nginx runs the cluster's ingress-nginx access-log format
(terraform/modules/platform/values/ingress-nginx.yaml) with the variables the
ingress-nginx template defines (`$req_id`, `$namespace`, …) set as that
template sets them, so the format is proven to be a log_format nginx accepts
that writes JSON the cluster agent's rules label by environment.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.deploy.log_pipeline import Entry, Pipeline, logql_selects
from tests.deploy.test_log_pipeline import (
    CLUSTER_AGENT,
    COMPOSE_AGENT,
    INGRESS_VALUES,
    loki_datasource,
)
from tests.deploy.test_running_configs import (
    answers_ok,
    compose_bucket,
    eventually,
    running,
    service_address,
    substituted,
)
from tests.services.ports import LOCALHOST, free_port
from tests.services.processes import ServerProcess
from tests.services.s3 import S3Service

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx" / "nginx.conf"
BUCKET = "figachechnaya"  # compose: FIGA_IMAGE_STORE_URL=s3://figachechnaya/images
NGINX_REQUEST_ID = re.compile(r"[0-9a-f]{32}")  # nginx's $request_id
COMPOSE_SERVICE = "__meta_docker_container_label_com_docker_compose_service"
APP_LOGGED = re.compile(r"(figalization|picture) (\w+) (stored|ready)")


class App(NamedTuple):
    address: str  # host:port, as nginx's $upstream_addr names it
    process: ServerProcess


class Stack(NamedTuple):
    url: str
    nginx: ServerProcess
    apps: tuple[App, App]
    pictures: S3Service


def json_lines(process: ServerProcess) -> list[dict[str, Any]]:
    """The JSON objects a process wrote, one a line (ServerProcess's own headers skipped)."""
    text = process.log_path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def access_line(stack: Stack, request_id: str) -> dict[str, Any]:
    """nginx's one access-log line with this id (waited for: nginx writes after answering)."""
    found: list[dict[str, Any]] = []

    def written() -> None:
        found[:] = [line for line in json_lines(stack.nginx) if line["request_id"] == request_id]
        assert len(found) == 1, (request_id, found, stack.nginx.log_tail())

    eventually(written, within=10)
    return found[0]


def app_lines(app: App, request_id: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(app.process) if line["request_id"] == request_id]


@pytest.fixture(scope="module")
def bucket(s3_service: S3Service) -> Iterator[S3Service]:
    """Compose's bucket, its images/ readable by anyone, as minio-init sets it up."""
    with compose_bucket(s3_service) as s3:
        yield s3


def app_environment(
    compose: dict[str, Any], pictures: S3Service, nginx_port: int, database: Path, metrics: int
) -> dict[str, str]:
    """Compose's `app` environment (${X:-default} → default) with the overrides listed here."""
    service = compose["services"]["app"]
    unset = re.compile(r"\$\{\w+:-([^}]*)\}")
    env = {name: unset.sub(r"\1", value) for name, value in service["environment"].items()}
    del env["FIGA_KAFKA_BOOTSTRAP_SERVERS"]  # `serve` queues and draws its pictures itself
    overrides = {
        # Both replicas on one SQLite file, as compose's share one PostgreSQL.
        "FIGA_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "FIGA_S3_ENDPOINT_URL": pictures.endpoint_url,  # the test S3 server in MinIO's place
        **pictures.credentials_environment(),
        "FIGA_IMAGE_PUBLIC_BASE_URL": f"http://{LOCALHOST}:{nginx_port}/images",
        "FIGA_PUBLIC_BASE_URL": f"http://{LOCALHOST}:{nginx_port}",
        "FIGA_FORWARDED_ALLOW_IPS": env["FIGA_FORWARDED_ALLOW_IPS"].replace(
            service_address(compose, "proxy", "edge"), LOCALHOST
        ),  # nginx connects from loopback here
        "FIGA_METRICS_PORT": str(metrics),  # a free port instead of 9101
        "FIGA_METRICS_HOST": LOCALHOST,
        "FIGA_WORKER_METRICS_HOST": LOCALHOST,
    }
    assert set(overrides) <= set(env), "an override would add a variable compose does not set"
    return env | overrides | {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture(scope="module")
def stack(
    tool: Any, compose: dict[str, Any], bucket: S3Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """compose's order: `migrate` once, then the two app replicas together, then nginx."""
    binary = tool("nginx", "apt-get install -y nginx (Debian's nginx runs the proxy's config)")
    tmp = tmp_path_factory.mktemp("proxy-logs")
    nginx_port = free_port()
    database = tmp / "figachechnaya.sqlite3"
    figachechnaya = str(Path(sys.executable).parent / "figachechnaya")
    env = app_environment(compose, bucket, nginx_port, database, free_port())
    migrate = [figachechnaya, *compose["services"]["migrate"]["command"]]
    migrated = subprocess.run(migrate, env=env, capture_output=True, timeout=60, check=False)
    assert migrated.returncode == 0, migrated.stderr.decode(errors="replace")
    command = compose["services"]["app"]["command"]  # serve --host 0.0.0.0 --port 8000
    with ExitStack() as started:
        apps = []
        for replica in (1, 2):  # both start at once, as compose starts its replicas
            port = free_port()
            env = app_environment(compose, bucket, nginx_port, database, free_port())
            loopback = {"0.0.0.0": LOCALHOST, "8000": str(port)}  # noqa: S104
            argv = [figachechnaya, *(loopback.get(arg, arg) for arg in command)]
            process = ServerProcess(f"app{replica}", argv, tmp / f"app{replica}.log", env=env)
            started.callback(process.stop)
            process.spawn()
            apps.append(App(f"{LOCALHOST}:{port}", process))
        for app in apps:
            ready = f"http://{app.address}/healthz"
            healthy = functools.partial(answers_ok, ready)
            app.process.wait_ready(healthy, timeout=30, what=f"200 from {ready}")
        s3 = urlsplit(bucket.endpoint_url)
        both = " ".join(f"server {app.address};" for app in apps)
        backups = " ".join(f"server {app.address} backup max_fails=0;" for app in apps)
        config = substituted(
            NGINX_CONF.read_text(encoding="utf-8"),
            [
                ("pid /tmp/nginx.pid;", f"pid {tmp}/nginx.pid;", "this test's file"),
                ("resolver 127.0.0.11 valid=10s ipv6=off;", "", "Docker's DNS; no names below"),
                # Docker's DNS answers app:8000 with every replica; here the two, by address.
                ("server app:8000 resolve;", both, "the two replicas"),
                ("server app:8000 resolve backup max_fails=0;", backups, "them, as backups"),
                ("server minio:9000 resolve;", f"server {s3.netloc};", "the test S3 server"),
                ("listen 8080;", f"listen {LOCALHOST}:{nginx_port};", "a free loopback port"),
            ],
        )  # access_log /dev/stdout (the JSON lines) and error_log /dev/stderr land in nginx.log
        path = tmp / "nginx.conf"
        path.write_text(config, encoding="utf-8")
        url = f"http://{LOCALHOST}:{nginx_port}"
        argv = [binary, "-c", str(path), "-g", "daemon off;"]
        nginx = started.enter_context(running("nginx", argv, tmp, f"{url}/healthz"))
        yield Stack(url, nginx, (apps[0], apps[1]), bucket)


def figalize(http: httpx.Client, **headers: str) -> httpx.Response:
    created = http.post("/api/v2/figalizations", json={"phrase": "Велосипед"}, headers=headers)
    assert created.status_code == 201, created.text
    return created


def test_every_access_line_is_json_with_the_id_the_app_answered_and_logged(stack: Stack) -> None:
    answers = []
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        for _ in range(3):
            answers.append(http.get("/"))
            answers.append(figalize(http))
    replicas = {app.address: app for app in stack.apps}
    served_by = set()
    for answer in answers:
        request_id = answer.headers["x-request-id"]
        assert NGINX_REQUEST_ID.fullmatch(request_id), request_id  # no client id: nginx's own
        line = access_line(stack, request_id)
        assert (line["method"], line["uri"], line["status"]) == (
            answer.request.method, answer.request.url.raw_path.decode(), answer.status_code
        )  # fmt: skip
        assert line["upstream_addr"] in replicas, line
        served_by.add(line["upstream_addr"])
        assert (line["level"], line["logger"]) == ("info", "nginx.access")
        if answer.request.method == "POST":
            figalization_id = answer.json()["id"]
            serving = replicas[line["upstream_addr"]]
            (logged,) = app_lines(serving, request_id)[:1]
            assert logged["message"].startswith(f"figalization {figalization_id} stored"), logged
            (other,) = [app for app in stack.apps if app is not serving]
            assert app_lines(other, request_id) == [], "only the replica that served it logs it"
    assert served_by == set(replicas), "nginx spreads the requests over both replicas"


def test_a_client_chosen_request_id_is_kept_and_an_unacceptable_one_replaced(stack: Stack) -> None:
    chosen = f"support-{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        kept = figalize(http, **{"X-Request-ID": chosen})
        # The app accepts [A-Za-z0-9._:-]{1,64} only; nginx replaces what it would refuse,
        # so nginx's line and the app's never disagree.
        refused = [figalize(http, **{"X-Request-ID": bad}) for bad in ("a b", "x" * 65, 'q"uote')]
    assert kept.headers["x-request-id"] == chosen
    assert access_line(stack, chosen)["status"] == 201
    logged = [line for app in stack.apps for line in app_lines(app, chosen)]
    assert [line["message"].split(" (")[0] for line in logged][:1] == [
        f"figalization {kept.json()['id']} stored"
    ]
    for answer in refused:
        request_id = answer.headers["x-request-id"]
        assert NGINX_REQUEST_ID.fullmatch(request_id), request_id
        line = access_line(stack, request_id)
        replica = next(app for app in stack.apps if app.address == line["upstream_addr"])
        assert app_lines(replica, request_id), "the app logs under nginx's id"


def test_a_url_a_client_writes_quotes_into_stays_one_json_string(stack: Stack) -> None:
    path = '/r/%22%5C"\\x'  # encoded and raw quote and backslash
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        answer = http.get(path)
    line = access_line(stack, answer.headers["x-request-id"])
    assert line["uri"] == answer.request.url.raw_path.decode(), line


def test_metrics_under_any_spelling_pass_to_the_app_which_has_none(stack: Stack) -> None:
    """nginx blocks nothing for /metrics (the public port serves none, they are on the
    operations port): each spelling reaches a replica, is answered 404, and is logged."""
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        for path in ("/metrics", "/metrics/", "//metrics"):
            answer = http.get(f"{stack.url}{path}")  # a full URL: "//metrics" is no host
            assert answer.request.url.raw_path == path.encode()
            assert answer.status_code == 404, f"{path}: {answer.status_code} {answer.text[:200]}"
            assert "figachechnaya_http_requests_total" not in answer.text
            line = access_line(stack, answer.headers["x-request-id"])
            assert (line["uri"], line["status"], line["upstream_status"]) == (path, 404, "404")
            assert line["upstream_addr"] in {app.address for app in stack.apps}


def test_the_picture_path_logs_the_id_it_answers_with(stack: Stack) -> None:
    key = f"check-{uuid.uuid4().hex}.png"
    body = b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes
    filesystem = stack.pictures.filesystem()
    filesystem.pipe_file(f"{BUCKET}/images/{key}", body)
    try:
        with httpx.Client(base_url=stack.url, timeout=10) as http:
            served = http.get(f"/images/{key}")
            refused = http.put(f"/images/{key}", content=b"overwritten")
    finally:
        assert filesystem.cat_file(f"{BUCKET}/images/{key}") == body
        filesystem.rm_file(f"{BUCKET}/images/{key}")
    assert served.status_code == 200
    assert served.content == body
    line = access_line(stack, served.headers["x-request-id"])
    assert line["upstream_addr"] == urlsplit(stack.pictures.endpoint_url).netloc, line
    assert (line["uri"], line["status"]) == (f"/images/{key}", 200)
    assert refused.status_code == 403
    denied = access_line(stack, refused.headers["x-request-id"])
    assert (denied["status"], denied["upstream_addr"]) == (403, ""), "refused by nginx itself"


def test_a_figalization_and_its_picture_are_found_in_loki_by_one_id(stack: Stack) -> None:
    """The whole path: nginx → a replica → its picture job → the picture through nginx;
    every real line through the compose agent's rules; Grafana's request-id link."""
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        created = figalize(http)
        request_id, figalization_id = created.headers["x-request-id"], created.json()["id"]

        def drawn() -> None:
            answer = http.get(f"/api/v2/figalizations/{figalization_id}").json()
            assert answer["image"]["status"] == "ready", answer

        eventually(drawn, within=30)
        redirect = http.get(f"/api/v2/figalizations/{figalization_id}/image")
        assert redirect.status_code == 302, redirect.text
        picture = http.get(redirect.headers["location"])
        assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")
    line = access_line(stack, request_id)
    app = next(app for app in stack.apps if app.address == line["upstream_addr"])
    logged = [APP_LOGGED.match(entry["message"]) for entry in app_lines(app, request_id)]
    events = {found.group() for found in logged if found}
    assert events == {f"figalization {figalization_id} stored", f"picture {figalization_id} ready"}
    pipeline = Pipeline.from_text(COMPOSE_AGENT.read_text(encoding="utf-8"))
    entries: list[Entry] = []
    for service, process in [("proxy", stack.nginx)] + [("app", a.process) for a in stack.apps]:
        labels = pipeline.labels_of({COMPOSE_SERVICE: service})
        assert labels is not None, service
        lines = process.log_path.read_text(encoding="utf-8").splitlines()
        entries += [pipeline.process(raw, labels) for raw in lines if raw.startswith("{")]
    (derived,) = loki_datasource()["jsonData"]["derivedFields"]
    query = derived["url"].replace("${__value.raw}", request_id)
    found = [entry for entry in entries if logql_selects(query, entry)]
    assert {entry.labels["component"] for entry in found} == {"nginx", "app"}
    assert len(found) == len([e for e in entries if e.metadata.get("request_id") == request_id])
    assert all(entry.labels["namespace"] == "compose" for entry in found)
    messages = [json.loads(entry.line)["message"] for entry in found]
    assert "POST /api/v2/figalizations 201" in messages, messages  # nginx's line
    assert any(m.startswith(f"figalization {figalization_id} stored") for m in messages), messages
    assert f"picture {figalization_id} ready" in messages, messages  # the picture job's line


# --- the cluster: ingress-nginx's log-format-upstream --------------------------------------

# What the ingress-nginx template defines for a request (nginx.tmpl): `$req_id` from the
# client's X-Request-ID or a new one, and the Ingress's coordinates per location.
INGRESS_TEMPLATE = """
pid {tmp}/ingress.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
  map $http_x_request_id $req_id {{
    default $http_x_request_id;
    "" $request_id;
  }}
  log_format upstreaminfo {escape} '{format}';
  server {{
    listen {listen};
    access_log /dev/stdout upstreaminfo;
    location / {{
      set $namespace "figachechnaya";
      set $ingress_name "figachechnaya";
      set $service_name "figachechnaya-app";
      proxy_set_header X-Request-ID $req_id;
      proxy_pass http://{app};
    }}
  }}
}}
"""


@pytest.fixture(scope="module")
def ingress(tool: Any, stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = tool("nginx", "apt-get install -y nginx")
    tmp = tmp_path_factory.mktemp("ingress-logs")
    config = yaml.safe_load(INGRESS_VALUES.read_text(encoding="utf-8"))["controller"]["config"]
    assert config["log-format-escape-json"] == "true"  # → log_format … escape=json …
    log_format = config["log-format-upstream"]
    assert "'" not in log_format, "the template quotes the format with '"
    port = free_port()
    path = tmp / "ingress.conf"
    path.write_text(
        INGRESS_TEMPLATE.format(
            tmp=tmp, escape="escape=json", format=log_format, listen=f"{LOCALHOST}:{port}",
            app=stack.apps[0].address,
        ),
        encoding="utf-8",
    )  # fmt: skip
    url = f"http://{LOCALHOST}:{port}"
    argv = [binary, "-c", str(path), "-g", "daemon off;"]
    with running("ingress", argv, tmp, f"{url}/healthz") as nginx:
        yield Stack(url, nginx, stack.apps, stack.pictures)


def test_the_ingress_log_format_is_json_labelled_with_the_environment(ingress: Stack) -> None:
    with httpx.Client(base_url=ingress.url, timeout=10) as http:
        made = figalize(http)
        chosen = figalize(http, **{"X-Request-ID": "ticket-7.1"})
    pipeline = Pipeline.from_text(CLUSTER_AGENT.read_text(encoding="utf-8"))
    controller = {
        "__meta_kubernetes_namespace": "ingress-nginx",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "ingress-nginx",
        "__meta_kubernetes_pod_label_app_kubernetes_io_component": "controller",
    }
    labels = pipeline.labels_of(controller)
    assert labels == {"app": "figachechnaya", "component": "nginx", "namespace": "ingress-nginx"}
    for answer in (made, chosen):
        request_id = answer.headers["x-request-id"]
        line = access_line(ingress, request_id)
        assert line["status"] == 201
        assert (line["namespace"], line["ingress"]) == ("figachechnaya", "figachechnaya")
        assert app_lines(ingress.apps[0], request_id), "the app logged the request under the id"
        written = ingress.nginx.log_path.read_text(encoding="utf-8").splitlines()
        (raw,) = [text for text in written if text.startswith("{") and request_id in text]
        entry = pipeline.process(raw, labels)
        assert entry.labels == labels | {"namespace": "figachechnaya", "level": "info"}
        assert entry.metadata["request_id"] == request_id
    assert NGINX_REQUEST_ID.fullmatch(made.headers["x-request-id"])
    assert chosen.headers["x-request-id"] == "ticket-7.1"
