"""Hostile and careless clients (issue 14 § 6), most severe first: what a black-box probe found.

Each test is one defect the probe found: bad bytes that were 500s, metrics
that counted refusals as 500 and missed unmatched routes, error answers made
outside the handlers without the security headers, HEAD refused, polls that
took any method, cursors taken on trust, a server that waited forever for a
request's head, and error texts that said nothing.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from app.operations_port import OperationsPort
from app.settings import Settings
from tests.conftest import AppClient, figalize, post_form, wait_until
from tests.distributed import settings_env
from tests.services.ports import LOCALHOST, free_port
from tests.services.processes import ServerProcess

Client = AsyncTestClient[Any]
FIGACHECHNAYA = str(Path(sys.executable).with_name("figachechnaya"))
JSON = {"content-type": "application/json"}
CLIENT_CLOSED = 499  # nginx's status for a client gone before the answer (app.web.envelope)
UNMATCHED = "unmatched"  # the route label of requests no route matched

NOT_UTF8 = b'{"phrase": "\xff"}'
OVERLONG = b'{"phrase": "\xc0\xaf"}'  # "/" in two bytes: UTF-8 forbids overlong forms
HIDDEN = '{"phrase": "кот", "note": "'.encode() + b'\xff"}'  # in a field the decoder skips
DEEP = b'{"phrase": "x", "note": ' + b"[" * 2000 + b"]" * 2000 + b"}"
DEEP_PHRASE = b'{"phrase": ' + b"[" * 2000 + b"]" * 2000 + b"}"
HOSTILE_BODIES = [NOT_UTF8, OVERLONG, HIDDEN, DEEP, DEEP_PHRASE]


def counted(method: str, route: str, status: int | str) -> float:
    """How many requests the web tier's counter holds for these labels (the registry is
    the process's: compare before and after)."""
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("figachechnaya_http_requests_total", labels) or 0.0


def limited(settings: Settings, per_minute: int) -> Settings:
    return settings.model_copy(update={"rate_limit_per_minute": per_minute})


async def assert_nothing_changed(client: Client) -> None:
    assert (await client.get("/api/v2/stats")).json() == {"total": 0}
    assert (await client.get("/api/v2/history")).json() == {"items": [], "next": None}


# --- 1. bad bytes and absurd nesting: 400, never 500 ---------------------------------------


async def test_bodies_that_are_not_utf8_or_nested_too_deep_are_400s_that_change_nothing(
    client: Client,
) -> None:
    for body in HOSTILE_BODIES:
        v2 = await client.post("/api/v2/figalizations", content=body, headers=JSON)
        assert v2.status_code == 400, (body[:40], v2.text)
        assert v2.json()["error"] == "invalid_request"
        assert v2.json()["message"], v2.json()
        for path in ("/api/figalize/", "/api/getimageurl/"):
            compat = await client.post(path, content=body, headers=JSON)
            assert compat.status_code == 400, (path, body[:40], compat.text)
            assert set(compat.json()) == {"data"}, compat.json()  # the compat API's shape
            assert compat.json()["data"]
    for body, message in [(NOT_UTF8, "not valid UTF-8"), (HIDDEN, "UTF-8"), (DEEP, "too deeply")]:
        v2 = await client.post("/api/v2/figalizations", content=body, headers=JSON)
        assert message in v2.json()["message"], v2.json()
        assert message in (await client.post("/api/figalize/", content=body)).json()["data"]
    await assert_nothing_changed(client)


# --- 2. metrics: the real status, unmatched routes under one label ---------------------------


async def test_metrics_count_refusals_by_their_real_status_and_disconnects_as_499(
    app_client: AppClient, local_settings: Settings
) -> None:
    client = await app_client(limited(local_settings, 1))
    before = {
        "csrf": counted("POST", "/", 403),
        "page_429": counted("POST", "/", 429),
        "api_429": counted("POST", "/api/v2/figalizations", 429),
        "api_500": counted("POST", "/api/v2/figalizations", 500),
        "compat_499": counted("POST", "/api/figalize", CLIENT_CLOSED),
        "compat_500": counted("POST", "/api/figalize", 500),
        "api_499": counted("POST", "/api/v2/figalizations", CLIENT_CLOSED),
        "unmatched_404": counted("GET", UNMATCHED, 404),
        "unmatched_405": counted("PUT", UNMATCHED, 405),
    }
    await figalize(client, "кот")
    assert (await client.post("/api/v2/figalizations", json={"phrase": "кот"})).status_code == 429
    assert (await post_form(client, {"phrase": "кот"})).status_code == 429

    unlimited = await app_client(local_settings)
    assert (await unlimited.post("/", data={"phrase": "кот"})).status_code == 403  # no token
    assert (await unlimited.get(f"/no/such/page/{time.time_ns()}")).status_code == 404
    assert (await unlimited.put("/api/v2/stats")).status_code == 405
    for path in ("/api/v2/figalizations", "/api/figalize/"):  # the client hangs up mid-body
        await unlimited.app(post_scope(path), hang_up, ignore)

    assert counted("POST", "/", 403) - before["csrf"] == 1
    assert counted("POST", "/api/v2/figalizations", 429) - before["api_429"] == 1
    assert counted("POST", "/", 429) - before["page_429"] == 1
    assert counted("POST", "/api/v2/figalizations", CLIENT_CLOSED) - before["api_499"] == 1
    assert counted("POST", "/api/figalize", CLIENT_CLOSED) - before["compat_499"] == 1
    assert counted("POST", "/api/v2/figalizations", 500) == before["api_500"]
    assert counted("POST", "/api/figalize", 500) == before["compat_500"]
    assert counted("GET", UNMATCHED, 404) - before["unmatched_404"] == 1  # one label, any path
    assert counted("PUT", UNMATCHED, 405) - before["unmatched_405"] == 1


def post_scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }


async def hang_up() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def ignore(message: dict[str, Any]) -> None:
    """The server drops what is sent to a client that is gone."""


# --- 3. security headers on every answer, the errors made outside handlers too --------------

PAGE_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options")


def assert_enveloped(response: httpx.Response, *, api: bool) -> None:
    headers = response.headers
    where = f"{response.request.method} {response.request.url.path} → {response.status_code}"
    assert headers.get("x-request-id"), where
    assert headers.get("x-content-type-options") == "nosniff", where
    if api:
        assert headers.get("access-control-allow-origin") == "*", where
    else:
        for name in PAGE_HEADERS:
            assert name in headers, (where, name)


async def test_error_answers_made_by_middleware_and_the_router_carry_the_security_headers(
    app_client: AppClient, local_settings: Settings
) -> None:
    client = await app_client(limited(local_settings, 1))
    assert (await post_form(client, {"phrase": "кот"})).status_code == 200
    page_limited = await post_form(client, {"phrase": "кот"})
    assert page_limited.status_code == 429
    assert_enveloped(page_limited, api=False)
    api_limited = await client.post("/api/v2/figalizations", json={"phrase": "кот"})
    assert api_limited.status_code == 429
    assert_enveloped(api_limited, api=True)
    compat_limited = await client.post("/api/figalize/", json={"phrase": "кот"})
    assert compat_limited.status_code == 429
    assert_enveloped(compat_limited, api=True)

    unlimited = await app_client(local_settings)
    csrf = await unlimited.post("/", data={"phrase": "кот"}, headers={"Accept": "text/html"})
    assert csrf.status_code == 403
    assert_enveloped(csrf, api=False)
    too_large = await post_form(unlimited, {"phrase": "кот " * 1100})
    assert too_large.status_code == 413
    assert_enveloped(too_large, api=False)
    api_too_large = await unlimited.post("/api/v2/figalizations", json={"phrase": "кот " * 1100})
    assert api_too_large.status_code == 413
    assert_enveloped(api_too_large, api=True)
    for path, api in (("/no/such/page", False), ("/api/no/such/route", True)):
        unmatched = await unlimited.get(path)
        assert unmatched.status_code == 404
        assert_enveloped(unmatched, api=api)
    for path, api in (("/healthz", False), ("/api/v2/stats", True)):
        wrong_method = await unlimited.delete(path)
        assert wrong_method.status_code == 405
        assert_enveloped(wrong_method, api=api)


# --- 4. HEAD wherever GET ------------------------------------------------------------------


async def test_head_is_answered_wherever_get_is_with_the_same_headers_and_no_body(
    client: Client,
) -> None:
    made = await figalize(client, "Велосипед")

    async def picture_ready() -> bool:  # the pages stay the same from then on
        answer = await client.get(f"/api/v2/figalizations/{made['id']}")
        return bool(answer.json()["image"]["status"] == "ready")

    await wait_until(picture_ready)
    paths = [
        "/",
        f"/r/{made['id']}",
        "/healthz",
        "/readyz",
        "/api/v2/schemes",
        f"/api/v2/figalizations/{made['id']}",
        f"/api/v2/figalizations/{made['id']}/image",
        "/api/v2/history",
        "/api/v2/history/latest",
        "/api/v2/stats",
        "/api/getschemas/",
        "/api/gethistory/",
        "/fragments/total",
        "/assets/site.css",
    ]
    for path in paths:
        get = await client.get(path)
        head = await client.head(path)
        assert (head.status_code, get.status_code) == (200, 200), path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        assert head.headers.get("content-length") == get.headers.get("content-length"), path
        assert head.headers["x-content-type-options"] == "nosniff", path
    unknown = await client.head("/r/no-such-result")
    assert (unknown.status_code, unknown.content) == (404, b"")
    refused = await client.put("/healthz")
    assert refused.status_code == 405
    assert "HEAD" in refused.headers["allow"]


# --- 5. the polls answer GET and HEAD only -------------------------------------------------


@pytest.mark.parametrize("path", ["/fragments/hint", "/fragments/total"])
async def test_the_poll_fragments_refuse_every_method_but_get_and_head(
    client: Client, path: str
) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "TRACE"):
        response = await client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == "GET, HEAD", method
    assert (await client.get(path)).status_code == 200
    assert (await client.head(path)).status_code == 200


# --- 6. cursors ----------------------------------------------------------------------------


async def test_a_history_cursor_that_is_not_a_figalization_id_is_a_400(client: Client) -> None:
    for n in range(3):
        await figalize(client, f"Машина номер {n}")
    first = (await client.get("/api/v2/history?limit=2")).json()
    assert len(first["items"]) == 2
    for cursor in ["", "garbage", first["next"].lower(), first["next"] + "0", "8" * 26]:
        response = await client.get("/api/v2/history", params={"limit": 2, "before": cursor})
        assert response.status_code == 400, (cursor, response.text)
        assert response.json()["error"] == "invalid_request"
        assert "before" in response.json()["message"]
    second = await client.get("/api/v2/history", params={"limit": 2, "before": first["next"]})
    assert second.status_code == 200
    assert [i["phrase"] for i in second.json()["items"]] == ["Машина номер 0"]


# --- 7. a bound on reading a request's head --------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    """`figachechnaya serve` with a 1 s header timeout; its port."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'figachechnaya.sqlite3'}",
        image_store_url=str(tmp_path / "images"),
        metrics_port=0,
    )
    port = free_port()
    server = ServerProcess(
        "figachechnaya serve",
        [FIGACHECHNAYA, "serve", "--host", LOCALHOST, "--port", str(port)],
        tmp_path / "serve.log",
        env={**os.environ, **settings_env(settings), "FIGA_HEADER_TIMEOUT_SECONDS": "1"},
    )
    server.spawn()
    try:
        server.wait_ready(lambda: healthy(port), timeout=30, what="/healthz answers")
        yield port
    finally:
        server.stop()


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://{LOCALHOST}:{port}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def seconds_until_closed(port: int, sent: bytes) -> float:
    """Send `sent` and wait (10 s at most) for the server to close without answering."""
    with socket.create_connection((LOCALHOST, port), timeout=10) as connection:
        started = time.monotonic()
        connection.sendall(sent)
        assert connection.recv(1024) == b"", "the server answered a request it never got"
        return time.monotonic() - started


def test_a_connection_that_never_completes_its_request_head_is_closed_within_the_timeout(
    served: int,
) -> None:
    for stalled in (b"GET /healthz HT", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b""):
        held = seconds_until_closed(served, stalled)
        assert 0.8 <= held <= 3.0, (stalled, held)
    with socket.create_connection((LOCALHOST, served), timeout=10) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # in time: answered
        assert read_answer(connection).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)  # the keep-alive wait between requests is not a stalled head
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(connection).startswith(b"HTTP/1.1 200")


def read_answer(connection: socket.socket) -> bytes:
    """One whole answer with a Content-Length, read off a kept-alive connection."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += connection.recv(4096) or pytest.fail(f"closed after {answer!r}")
    head, body = answer.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
    while len(body) < length:
        body += connection.recv(4096) or pytest.fail(f"closed after {answer!r}")
    return head


def test_the_header_timeout_is_ten_seconds_unless_set() -> None:
    assert Settings().header_timeout_seconds == 10.0


# --- 8.–10. what the answers say --------------------------------------------------------------


def test_the_metrics_content_type_names_its_charset_once() -> None:
    port = OperationsPort(LOCALHOST, 0)
    port.start()
    try:
        response = httpx.get(f"http://{LOCALHOST}:{port.port}/metrics", timeout=10)
    finally:
        port.stop()
    content_type = response.headers["content-type"]
    assert content_type.startswith("text/plain; version=")
    assert content_type.lower().count("charset=") == 1, content_type


async def test_a_csrf_refusal_has_its_own_error_code(client: Client) -> None:
    response = await client.post("/", data={"phrase": "кот"})
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"
    await assert_nothing_changed(client)


@pytest.mark.parametrize("path", ["/api/figalize/", "/api/getimageurl/"])
async def test_an_empty_compat_body_is_a_400_that_says_the_body_is_empty(
    client: Client, path: str
) -> None:
    response = await client.post(path, content=b"", headers=JSON)
    assert response.status_code == 400
    assert response.json() == {
        "data": "the body is empty: send a JSON object, as /api/openapi.json describes"
    }
