"""`serve`'s stop (app/graceful_stop.py): a connection let in before the stop gets its answer.

The server runs in the test's event loop, so the test decides exactly when the
loop may accept: connections opened without an await in between sit in the
kernel's accept queue when the stop begins. Plain uvicorn is run through the
same cases to show what the module is for (if uvicorn stops resetting them,
those tests fail and the module can go).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn

from app.graceful_stop import FIRST_REQUEST_SECONDS, DrainingServer
from tests.conftest import wait_until
from tests.services.ports import LOCALHOST

REQUEST = b"POST /figalize HTTP/1.1\r\nHost: app\r\nContent-Length: 2\r\n\r\n{}"


async def hello(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    assert scope["type"] == "http"
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"stored"})


Start = Callable[[type[uvicorn.Server]], Awaitable[tuple[uvicorn.Server, int]]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start a server of the given class on a free port, in this loop: (server, port)."""
    servers: list[uvicorn.Server] = []

    async def started(kind: type[uvicorn.Server]) -> tuple[uvicorn.Server, int]:
        config = uvicorn.Config(hello, host=LOCALHOST, port=0, lifespan="off", log_config=None)
        config.load()
        server = kind(config)
        server.lifespan = config.lifespan_class(config)  # what `Server.serve` sets up
        await server.startup()
        servers.append(server)
        return server, server.servers[0].sockets[0].getsockname()[1]

    yield started
    for server in servers:
        for listener in server.servers:
            listener.close()


def answer_to(client: socket.socket) -> str:
    """The status of the answer on `client`, or how the connection ended without one."""
    client.settimeout(5)
    received = b""
    try:
        while b"\r\n\r\n" not in received:
            chunk = client.recv(4096)
            if not chunk:
                return "closed"
            received += chunk
    except ConnectionResetError:
        return "reset"
    finally:
        client.close()
    return received.split(b" ", 2)[1].decode()


async def accepted(server: uvicorn.Server) -> None:
    async def has_a_connection() -> bool:
        return bool(server.server_state.connections)

    await wait_until(has_a_connection, within=5, every=0.005)


def connect_and_send(port: int, count: int) -> list[socket.socket]:
    """`count` connections with a request each, opened with no await: none accepted yet."""
    clients = [socket.create_connection((LOCALHOST, port)) for _ in range(count)]
    for client in clients:
        client.sendall(REQUEST)
    return clients


async def answers_when_stopped_with_a_queue(start: Start, kind: type[uvicorn.Server]) -> list[str]:
    server, port = await start(kind)
    clients = connect_and_send(port, 5)
    stopping = asyncio.create_task(server.shutdown())
    answers = await asyncio.gather(*(asyncio.to_thread(answer_to, c) for c in clients))
    await stopping
    return answers


async def test_requests_queued_for_accepting_when_the_stop_begins_are_answered(
    start: Start,
) -> None:
    assert await answers_when_stopped_with_a_queue(start, DrainingServer) == ["201"] * 5


async def test_plain_uvicorn_resets_the_queued_connections(start: Start) -> None:
    answers = await answers_when_stopped_with_a_queue(start, uvicorn.Server)
    assert set(answers) <= {"reset", "closed"}, answers


async def answer_sent_after_the_stop_began(start: Start, kind: type[uvicorn.Server]) -> str:
    server, port = await start(kind)
    client = socket.create_connection((LOCALHOST, port))
    await accepted(server)  # no request yet
    stopping = asyncio.create_task(server.shutdown())
    await asyncio.sleep(0.2)  # the proxy's request is on its way
    try:
        client.sendall(REQUEST)
    except OSError as error:
        await stopping
        return type(error).__name__
    answer = await asyncio.to_thread(answer_to, client)
    await stopping
    return answer


async def test_a_connection_accepted_before_the_stop_may_still_send_its_request(
    start: Start,
) -> None:
    assert await answer_sent_after_the_stop_began(start, DrainingServer) == "201"


async def test_plain_uvicorn_closes_it_unread(start: Start) -> None:
    assert await answer_sent_after_the_stop_began(start, uvicorn.Server) != "201"


async def test_once_stopping_new_connections_are_refused_and_a_silent_one_is_cut(
    start: Start,
) -> None:
    """Refused is what lets nginx send even a POST to the next replica; a client that
    connected and says nothing holds the stop FIRST_REQUEST_SECONDS at most."""
    server, port = await start(DrainingServer)
    silent = socket.create_connection((LOCALHOST, port))
    await accepted(server)
    began = time.monotonic()
    stopping = asyncio.create_task(server.shutdown())
    await asyncio.sleep(0)  # the stop has closed the listening socket
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOCALHOST, port), timeout=2)
    assert await asyncio.to_thread(answer_to, silent) == "closed"
    await stopping
    took = time.monotonic() - began
    assert FIRST_REQUEST_SECONDS <= took < FIRST_REQUEST_SECONDS + 1, took
