"""The worker's PUT (`app.s3_put`) against a store that checks every signature.

moto checks none, so here an aiohttp server stands for S3 and verifies each
request as AWS documents Signature Version 4 — recomputed from the request as
it arrived on the wire (method, path, the signed headers' values, the body's
hash), so a header aiohttp sends differently from what botocore signed fails
here as it would on Yandex Object Storage.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from app.images import FsspecImageStore
from app.outages import ImageStoreUnavailable
from app.s3_put import SignedPut
from app.settings import Settings
from tests.services.ports import LOCALHOST, free_port

KEY_ID = "YCAJEexample"
SECRET = "YCexample-secret/with+chars"
REGION = "ru-central1"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<scope>[^,]+), "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass
class SigningStore:
    """Objects by path; each PUT stored only when its signature is the one SECRET makes."""

    objects: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)

    async def put(self, request: web.Request) -> web.Response:
        body = await request.read()
        transport = request.transport
        if transport is not None:
            self.connections.add(id(transport))
        problem = _signature_problem(request, body)
        if problem:
            self.refused.append(problem)
            xml = f"<Error><Code>SignatureDoesNotMatch</Code><Message>{problem}</Message></Error>"
            return web.Response(status=403, text=xml, content_type="application/xml")
        self.objects[request.path] = (body, request.headers.get("Content-Type", ""))
        return web.Response(status=200, headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})  # noqa: S324


def _signature_problem(request: web.Request, body: bytes) -> str:
    found = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", ""))
    if not found:
        return "no SigV4 Authorization header"
    date, region, service, terminal = found["scope"].split("/")
    if (found["key"], region, service, terminal) != (KEY_ID, REGION, "s3", "aws4_request"):
        return f"wrong scope {found['key']}/{found['scope']}"
    payload = hashlib.sha256(body).hexdigest()
    if request.headers.get("x-amz-content-sha256") != payload:
        return "the body is not the one whose hash was signed"
    signed = found["signed"].split(";")
    if not {"host", "x-amz-date", "x-amz-content-sha256"} <= set(signed):
        return f"too few headers signed: {signed}"
    canonical_headers = "".join(
        f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in signed
    )
    canonical = "\n".join(
        [
            request.method,
            request.raw_path.split("?")[0],
            "",
            canonical_headers,
            found["signed"],
            payload,
        ]
    )
    amz_date = request.headers["x-amz-date"]
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            found["scope"],
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + SECRET).encode()
    for part in (date, region, service, terminal):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return "" if hmac.compare_digest(expected, found["signature"]) else "signature differs"


@pytest.fixture
async def store() -> AsyncIterator[tuple[SigningStore, str]]:
    state = SigningStore()
    app = web.Application()
    app.router.add_put("/{path:.*}", state.put)
    runner = web.AppRunner(app, keepalive_timeout=0.3)  # closes idle connections quickly
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOCALHOST, port).start()
    try:
        yield state, f"http://{LOCALHOST}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.mark.usefixtures("credentials")
async def test_the_store_accepts_the_signature_and_keeps_the_bytes_and_type(
    store: tuple[SigningStore, str],
) -> None:
    state, endpoint = store
    put = SignedPut(endpoint, connect_timeout=1.0)
    try:
        await put.put("pictures", "p/01JABC/card.png", b"\x89PNG one", content_type="image/png")
        await put.put("pictures", "p/01JABD/card.png", b"\x89PNG two", content_type="image/png")
    finally:
        await put.close()
    assert state.refused == []
    assert state.objects == {
        "/pictures/p/01JABC/card.png": (b"\x89PNG one", "image/png"),
        "/pictures/p/01JABD/card.png": (b"\x89PNG two", "image/png"),
    }
    assert len(state.connections) == 1  # kept alive: the second PUT reused the connection


async def test_a_wrong_secret_is_refused_with_the_stores_code_and_stores_nothing(
    store: tuple[SigningStore, str], credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, endpoint = store
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    put = SignedPut(endpoint, connect_timeout=1.0)
    try:
        with pytest.raises(ImageStoreUnavailable, match=r"HTTP 403 \(SignatureDoesNotMatch\)"):
            await put.put("pictures", "p/x.png", b"png", content_type="image/png")
    finally:
        await put.close()
    assert state.objects == {}
    assert state.refused == ["signature differs"]


@pytest.mark.usefixtures("credentials")
async def test_a_pooled_connection_the_store_drops_as_the_put_arrives_is_sent_again() -> None:
    """The race a keep-alive pool has: the store closes an idle connection just as the next
    request goes out on it. A raw server answers one request per connection, keeps it open,
    and drops it without a word when a second request arrives on it."""
    stored: list[bytes] = []
    dropped = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal dropped
        answered = 0
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
            body = await reader.readexactly(length)
            if answered:
                dropped += 1
                writer.close()
                return
            stored.append(body)
            answered += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    port = free_port()
    server = await asyncio.start_server(serve, LOCALHOST, port)
    put = SignedPut(f"http://{LOCALHOST}:{port}", connect_timeout=1.0)
    try:
        await put.put("pictures", "p/a.png", b"a", content_type="image/png")
        await put.put("pictures", "p/b.png", b"b", content_type="image/png")
    finally:
        await put.close()
        server.close()
    assert stored == [b"a", b"b"]
    assert dropped == 1  # the second PUT met the dropped connection, then went on a new one


async def test_no_credentials_anywhere_is_a_clear_outage(
    store: tuple[SigningStore, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, endpoint = store
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    put = SignedPut(endpoint, connect_timeout=1.0)
    try:
        with pytest.raises(ImageStoreUnavailable, match="no S3 credentials"):
            await put.put("pictures", "p/x.png", b"png", content_type="image/png")
    finally:
        await put.close()


@pytest.mark.usefixtures("credentials")
async def test_the_image_store_puts_through_it_when_an_endpoint_is_set_and_bounds_it(
    store: tuple[SigningStore, str],
) -> None:
    state, endpoint = store
    images = FsspecImageStore(
        Settings(image_store_url="s3://pictures/cards", s3_endpoint_url=endpoint)
    )
    try:
        await images.put("01JX/card.png", b"\x89PNG")
    finally:
        await images.close()
    assert state.objects == {"/pictures/cards/01JX/card.png": (b"\x89PNG", "image/png")}
