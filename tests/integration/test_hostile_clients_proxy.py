"""Hostile clients (issue 14): what a client writes into X-Forwarded-For, X-Forwarded-Proto
or Host is never believed, and every process of one `serve` checks the others' forms.

The client-address rule is uvicorn's proxy-headers middleware under
`FIGA_FORWARDED_ALLOW_IPS`: the client is the right-most X-Forwarded-For entry that
is not a trusted proxy. It is tested here against a real `figachechnaya serve` with
clients on loopback addresses of their own, and as a rule over the values compose and
Kubernetes ship; through the real nginx config in tests/deploy/test_running_configs.py.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.settings import Settings, SettingsError
from tests.conftest import AppClient, figalize, wait_until
from tests.distributed import settings_env
from tests.services.ports import LOCALHOST, free_port
from tests.services.processes import ServerProcess

REPO = Path(__file__).resolve().parents[2]
FIGACHECHNAYA = str(Path(sys.executable).parent / "figachechnaya")
# Any 127/8 address is this machine's: each client connects from one of its own, and
# the server trusts 127.0.0.1 (the default FIGA_FORWARDED_ALLOW_IPS) as its proxy.
PROXY, CLIENT, OTHER_CLIENT = LOCALHOST, "127.0.0.2", "127.0.0.3"
RATE_LIMIT = 5
CSRF_TOKEN = re.compile(r'name="_csrf_token" value="([^"]+)"')


@contextmanager
def serving(tmp_path: Path, *, workers: int = 1, **variables: str) -> Iterator[str]:
    """A real `figachechnaya serve` on SQLite in `tmp_path`; yields its URL."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "FIGA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'figachechnaya.sqlite3'}",
        "FIGA_IMAGE_STORE_URL": str(tmp_path / "images"),
        "FIGA_METRICS_PORT": "0",
        **variables,
    }
    argv = [FIGACHECHNAYA, "serve", "--host", LOCALHOST, "--port", str(port)]
    server = ServerProcess(
        "serve", [*argv, "--workers", str(workers)], tmp_path / "serve.log", env=env
    )
    url = f"http://{LOCALHOST}:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        server.spawn()
        server.wait_ready(healthy, timeout=30, what="200 from /healthz")
        yield url
    finally:
        server.stop()


def client_at(address: str, base_url: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127/8 address is this machine's)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=10)


# The client address


def test_a_direct_client_spoofing_x_forwarded_for_is_not_believed(tmp_path: Path) -> None:
    """issue 14: rotating X-Forwarded-For entries must not buy a fresh rate limit."""
    with serving(tmp_path, FIGA_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT)) as url:
        with client_at(CLIENT, url) as http:
            statuses = [
                http.post(
                    "/api/v2/figalizations",
                    json={"phrase": "Велосипед"},
                    headers={"X-Forwarded-For": f"10.4.0.{i}, 198.51.100.{i}"},
                ).status_code
                for i in range(RATE_LIMIT + 3)
            ]
        assert statuses == [201] * RATE_LIMIT + [429] * 3
        with client_at(OTHER_CLIENT, url) as http:  # two real clients are told apart
            assert http.post("/api/v2/figalizations", json={"phrase": "кот"}).status_code == 201


def test_a_trusted_proxy_names_the_client_and_its_clients_are_told_apart(
    tmp_path: Path,
) -> None:
    with (
        serving(tmp_path, FIGA_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT)) as url,
        client_at(PROXY, url) as proxy,
    ):

        def through_proxy(client: str) -> int:
            headers = {"X-Forwarded-For": f"10.4.0.1, {client}"}  # a lie, then the proxy's word
            answer = proxy.post("/api/v2/figalizations", json={"phrase": "кот"}, headers=headers)
            return answer.status_code

        first = [through_proxy("203.0.113.5") for _ in range(RATE_LIMIT + 1)]
        assert first == [201] * RATE_LIMIT + [429]
        assert through_proxy("203.0.113.6") == 201


@pytest.mark.parametrize(
    ("where", "peer", "forwarded_for", "client"),
    [
        # compose: nginx at 172.30.80.10 appends the address it sees to what the client sent.
        ("compose", "172.30.80.10", "10.4.0.7, 198.51.100.7, 203.0.113.5", "203.0.113.5"),
        ("compose", "172.30.80.10", "203.0.113.5", "203.0.113.5"),
        # A container beside the proxy on its network is no proxy: its own address counts.
        ("compose", "172.30.80.11", "10.4.0.7, 203.0.113.5", "172.30.80.11"),
        # Kubernetes: an ingress-nginx pod of the pod network sets the address it sees.
        ("k8s", "10.112.3.4", "203.0.113.5", "203.0.113.5"),
        ("k8s", "10.112.3.4", "10.4.0.7, 203.0.113.5", "203.0.113.5"),
        ("k8s", "10.10.0.9", "10.4.0.7", "10.10.0.9"),  # from a VPC subnet: not a proxy
    ],
)
async def test_the_shipped_proxy_settings_take_the_right_most_untrusted_address(
    where: str, peer: str, forwarded_for: str, client: str
) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    trusted = Settings.from_env({"FIGA_FORWARDED_ALLOW_IPS": shipped_proxies(where)})
    middleware = ProxyHeadersMiddleware(app, trusted_hosts=trusted.forwarded_allow_ips)
    headers = [(b"x-forwarded-for", forwarded_for.encode())]
    scope = {"type": "http", "client": (peer, 40000), "scheme": "http", "headers": headers}
    await middleware(scope, None, None)
    assert seen["client"][0] == client


def shipped_proxies(where: str) -> str:
    if where == "compose":
        compose = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
        proxies: str = compose["services"]["app"]["environment"]["FIGA_FORWARDED_ALLOW_IPS"]
        assert compose["services"]["proxy"]["networks"]["edge"]["ipv4_address"] == proxies
        return proxies
    base = yaml.safe_load((REPO / "k8s/base/kustomization.yaml").read_text(encoding="utf-8"))
    (settings,) = [m for m in base["configMapGenerator"] if m["name"] == "figachechnaya-settings"]
    (literal,) = [x for x in settings["literals"] if x.startswith("FIGA_FORWARDED_ALLOW_IPS=")]
    return str(literal.split("=", 1)[1])


@pytest.mark.parametrize("value", ["*", "10.0.0.0/8, *", "10.0.0.1/8", "nginx"])
def test_trusting_every_client_or_a_misspelt_proxy_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="FIGA_FORWARDED_ALLOW_IPS"):
        Settings.from_env({"FIGA_FORWARDED_ALLOW_IPS": value})


# https, as a proxy says or as the public address is


def test_https_from_a_trusted_proxy_means_hsts_and_a_secure_csrf_cookie(tmp_path: Path) -> None:
    with serving(tmp_path) as url:
        for address, over_tls in ((PROXY, True), (CLIENT, False)):
            with client_at(address, url) as http:
                page = http.get("/", headers={"X-Forwarded-Proto": "https"})
            assert page.status_code == 200, page.text
            cookie = page.headers["set-cookie"]
            assert cookie.startswith("figa_csrf="), cookie
            assert ("secure" in cookie.lower().split("; ")) is over_tls, (address, cookie)
            assert ("strict-transport-security" in page.headers) is over_tls, address


async def test_an_https_public_base_url_makes_the_csrf_cookie_secure(
    app_client: AppClient, local_settings: Settings
) -> None:
    for base, secure in (("https://figachechnaya.example", True), ("http://127.0.0.1:8000", False)):
        client = await app_client(local_settings.model_copy(update={"public_base_url": base}))
        cookie = (await client.get("/")).headers["set-cookie"]
        assert cookie.startswith("figa_csrf="), cookie
        assert ("secure" in cookie.lower().split("; ")) is secure, (base, cookie)


# Absolute links


async def test_absolute_links_start_with_the_public_base_url_whatever_the_host_header(
    app_client: AppClient, local_settings: Settings
) -> None:
    base = "https://figachechnaya.example/sub"
    client = await app_client(
        Settings.from_env(env_of(local_settings, FIGA_PUBLIC_BASE_URL=base + "/"))
    )
    client.headers["Host"] = "evil.example"
    created = await figalize(client, "Велосипед")
    picture = f"{base}/api/v2/figalizations/{created['id']}/image"

    async def drawn() -> bool:
        answer = await client.get(f"/api/v2/figalizations/{created['id']}")
        return bool(answer.json()["image"]["status"] == "ready")

    await wait_until(drawn)
    v2 = (await client.get(f"/api/v2/figalizations/{created['id']}")).json()
    assert v2["image"]["url"] == picture
    assert (await client.get("/api/v2/history/latest")).json()["image"]["url"] == picture
    assert (await client.get("/api/v2/history")).json()["items"][0]["image"]["url"] == picture
    compat = await client.post("/api/getimageurl/", json={"phrase": "Фигосипед"})
    assert compat.json() == {"data": picture}
    page = await client.get(f"/r/{created['id']}", headers={"Accept": "text/html"})
    assert f'<meta property="og:image" content="{picture}">' in page.text
    assert "evil.example" not in page.text


def env_of(settings: Settings, **variables: str) -> dict[str, str]:
    return {**settings_env(settings), **variables}


@pytest.mark.parametrize(
    "value",
    ["figachechnaya.ru", "ftp://figachechnaya.ru", "https://figachechnaya.ru/?a=1",
     "https://figachechnaya.ru/#top", "https://user:pw@figachechnaya.ru", "https://"],
)  # fmt: skip
def test_a_public_base_url_that_links_cannot_start_with_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="FIGA_PUBLIC_BASE_URL"):
        Settings.from_env({"FIGA_PUBLIC_BASE_URL": value})


def test_serve_without_a_public_base_url_names_its_own_address(tmp_path: Path) -> None:
    with serving(tmp_path) as url, httpx.Client(base_url=url, timeout=10) as http:
        created = http.post("/api/v2/figalizations", json={"phrase": "Велосипед"}).json()
        read = f"/api/v2/figalizations/{created['id']}"
        deadline = time.monotonic() + 20
        while (answer := http.get(read, headers={"Host": "evil.example"})).json()["image"][
            "status"
        ] == "pending" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answer.json()["image"]["url"] == f"{url}{read}/image"


# One secret for every process of one `serve`


def test_serve_with_two_processes_and_no_secret_key_accepts_every_form(tmp_path: Path) -> None:
    """issue 14: each process drew its own key, so about half the forms got 403."""
    with serving(tmp_path, workers=2) as url:
        # No keep-alive: each request on a new connection, which either process may take.
        fresh = httpx.Limits(max_keepalive_connections=0)
        statuses = []
        for _ in range(20):
            with httpx.Client(base_url=url, timeout=10, limits=fresh) as http:
                page = http.get("/")
                token = CSRF_TOKEN.search(page.text)
                assert token, page.text[:300]
                answer = http.post("/", data={"phrase": "кот", "_csrf_token": token.group(1)})
                statuses.append(answer.status_code)
        assert statuses == [200] * 20
    log = (tmp_path / "serve.log").read_text(encoding="utf-8")
    assert len(re.findall(r"Terminated child process \[\d+\]", log)) == 2, log
    assert "FIGA_SECRET_KEY is unset" in log, log


def test_serve_chooses_only_what_the_operator_left_empty() -> None:
    chosen = Settings().chosen_for_serve("0.0.0.0", 8080)  # noqa: S104 - nothing is bound
    assert chosen["public_base_url"] == "http://127.0.0.1:8080"  # a wildcard names loopback
    assert len(chosen["secret_key"]) >= 32
    assert chosen["secret_key"] != Settings().chosen_for_serve("::1", 80)["secret_key"]
    assert Settings().chosen_for_serve("::1", 80)["public_base_url"] == "http://[::1]:80"
    given = Settings(secret_key="shared", public_base_url="https://figachechnaya.ru")
    assert given.chosen_for_serve("0.0.0.0", 8080) == {}  # noqa: S104
