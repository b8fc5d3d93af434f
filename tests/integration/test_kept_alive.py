"""`app.kept_alive`: the worker's HTTP/1.1 client keeps connections only while that is safe.

Each test runs a raw asyncio server on loopback that answers the way it must for the
case (late, chunked, closing, interim 100), and counts the connections it saw.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from app.kept_alive import MAX_BODY, KeptAlive, request_head
from tests.services.ports import LOCALHOST, free_port

Answerer = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(answer: Answerer) -> AsyncIterator[tuple[KeptAlive, list[int]]]:
    """A server calling `answer(request number on this connection, body, writer)` for each
    request; yields a client for it and the list of requests per connection."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(0)
        mine = len(connections) - 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
                body = await reader.readexactly(length)
                await answer(connections[mine], body, writer)
                connections[mine] += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, LOCALHOST, port)
    client = KeptAlive(f"http://{LOCALHOST}:{port}", connect_timeout=1.0)
    try:
        yield client, connections
    finally:
        client.close()
        server.close()
        await server.wait_closed()


def put(body: bytes) -> tuple[bytes, bytes]:
    return request_head("PUT", "/b/k.png", {"host": "store"}, len(body)), body


def ok(text: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text)


async def test_one_connection_carries_request_after_request() -> None:
    async def echo(_: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(ok(body.upper()))

    async with raw_server(echo) as (client, connections):
        replies = [await client.request(*put(b"card %d" % n)) for n in range(3)]
    assert [(r.status, r.body) for r in replies] == [(200, b"CARD %d" % n) for n in range(3)]
    assert connections == [3]


async def test_a_request_cancelled_before_its_answer_never_lends_its_answer_to_the_next() -> None:
    """The late answer to the first PUT arrives on its connection after the caller gave up:
    the connection was closed, so the second PUT gets its own answer on a new one."""

    async def slow_first(number: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        if body == b"first":
            await asyncio.sleep(0.3)
        writer.write(ok(body))

    async with raw_server(slow_first) as (client, connections):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await client.request(*put(b"first"))
        reply = await client.request(*put(b"second"))
    assert reply.body == b"second"
    assert len(connections) == 2


async def test_an_answer_that_closes_the_connection_is_not_pooled() -> None:
    async def closing(_: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")

    async with raw_server(closing) as (client, connections):
        for _ in range(2):
            assert (await client.request(*put(b"x"))).status == 200
    assert connections == [1, 1]


async def test_a_chunked_error_answer_is_read_whole_and_the_connection_kept() -> None:
    xml = b"<Error><Code>SlowDown</Code></Error>"
    chunked = b"HTTP/1.1 503 Slow Down\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"%x\r\n%s\r\n0\r\n\r\n" % (len(xml), xml)

    async def refusing(number: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(chunked if number == 0 else ok(b"stored"))

    async with raw_server(refusing) as (client, connections):
        first = await client.request(*put(b"x"))
        second = await client.request(*put(b"x"))
    assert (first.status, first.body) == (503, xml)
    assert (second.status, second.body) == (200, b"stored")
    assert connections == [2]


async def test_an_interim_100_continue_is_passed_over_for_the_real_answer() -> None:
    async def continuing(_: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"done"))

    async with raw_server(continuing) as (client, _):
        reply = await client.request(*put(b"x"))
    assert (reply.status, reply.body) == (200, b"done")


async def test_an_answer_too_long_to_be_a_stores_is_refused_and_its_connection_closed() -> None:
    async def flooding(number: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        if body == b"flood me":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 10))
            writer.write(b"x" * (MAX_BODY + 10))
        else:
            writer.write(ok(b"small"))

    async with raw_server(flooding) as (client, connections):
        with pytest.raises(ConnectionError, match="more than"):
            await client.request(*put(b"flood me"))
        assert (await client.request(*put(b"x"))).body == b"small"
    assert len(connections) == 2


async def test_a_fresh_connection_dropped_before_any_answer_is_an_error_not_a_retry() -> None:
    """Only a pooled connection may have been closed by the store's idle timeout: on a new
    one a silent close is the store failing, and the caller's retry policy decides."""

    async def dropping(_: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with raw_server(dropping) as (client, connections):
        with pytest.raises(ConnectionError, match="closed the connection"):
            await client.request(*put(b"x"))
    assert len(connections) == 1


async def test_no_listener_is_a_connection_error() -> None:
    client = KeptAlive(f"http://{LOCALHOST}:{free_port()}", connect_timeout=1.0)
    with pytest.raises(ConnectionRefusedError):
        await client.request(*put(b"x"))


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/b/k.png", {"x-amz-meta": "a\r\nx-smuggled: 1"}),
        ("/b/k.png", {"x-bad\nname": "v"}),
        ("/b/k.png HTTP/1.1\r\nx-smuggled: 1\r\n", {}),
        ("b/k.png", {}),
    ],
)
def test_a_head_that_would_smuggle_a_line_is_refused(target: str, headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"line break|request target"):
        request_head("PUT", target, headers, 0)


def test_the_head_carries_the_length_and_ends_in_a_blank_line() -> None:
    head = request_head("PUT", "/b/k%20x.png", {"host": "store:9000"}, 5)
    assert head == (b"PUT /b/k%20x.png HTTP/1.1\r\nhost: store:9000\r\ncontent-length: 5\r\n\r\n")


@pytest.mark.parametrize("later", [False, True], ids=["in-the-same-bytes", "while-idle"])
async def test_a_connection_the_server_spoke_on_unasked_is_not_used_again(later: bool) -> None:
    """Some servers send a 408 on an idle connection before closing it: that answer belongs
    to no request, and the connection is dropped at once rather than lent to the next."""

    async def timing_out(number: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(ok(body))
        if number == 0:
            if later:
                await writer.drain()
                await asyncio.sleep(0.02)
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")

    async with raw_server(timing_out) as (client, connections):
        assert (await client.request(*put(b"one"))).body == b"one"
        await asyncio.sleep(0.05)  # the 408 arrives while the connection is idle
        reply = await client.request(*put(b"two"))
    assert (reply.status, reply.body) == (200, b"two")
    assert len(connections) == 2
