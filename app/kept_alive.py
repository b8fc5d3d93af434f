"""HTTP/1.1 requests to one origin on kept-alive connections, answers parsed by httptools.

The worker's one request per picture is its PUT to the object store, and through an
aiohttp `ClientSession` that request cost ~220 µs of client CPU for a 30 KB body on a
kept-alive connection (bench machine, 2-core AMD EPYC, uvloop): its request and response
objects, header multidicts, tracing hooks and timers, around one write and one read.
Here a request is one `writelines` of a prepared head and the body, and its answer goes
through httptools (the C parser uvicorn uses) into a status and a body. That is all the
PUT needs, so it is all this module does: no redirects, no cookies, no proxies, no
decompression, one request at a time on each connection.

What an HTTP client owes its caller is kept:
- a connection goes back to the pool only after a whole answer that lets it stay open
  (`should_keep_alive`: HTTP/1.1 without `Connection: close`); a request cancelled or
  failed halfway closes its connection, so no later request reads a stale answer;
- the race of a keep-alive pool, the server closing an idle connection just as the next
  request goes out on it, is answered as aiohttp answers it: a request that met a
  closed pooled connection before any byte of an answer is sent once more, on a new
  connection. Only idempotent requests come here (the PUT of an object is);
- a connection attempt is bounded by `connect_timeout`; the caller bounds the whole call;
- an answer's body is capped (`MAX_BODY`): an object store's answer to a PUT is empty or
  a short XML error, and a store gone wrong must not fill the worker's memory.

TLS is the standard library's default context (certificates and host name checked).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

MAX_BODY = 1 << 20  # bytes of an answer kept; more is a broken store, not an answer
MAX_IDLE = 32  # connections kept open between requests; the worker runs 8 jobs at once


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes


class ConnectionDropped(ConnectionError):
    """The connection closed before the whole answer arrived."""

    def __init__(self, *, answered: bool) -> None:
        super().__init__("the server closed the connection" + (" mid-answer" if answered else ""))
        self.answered = answered  # some of an answer came: the request reached the server


class _Exchange(asyncio.Protocol):
    """One connection, and the answer to the request on it (the parser's callbacks)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Reply] | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._answered = False  # a byte of the current answer has arrived

    def expect(self, answer: asyncio.Future[Reply]) -> None:
        self._answer, self._body, self._size, self._answered = answer, [], 0, False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream's transport (uvloop's are not subclasses of asyncio's, hence no check).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None:  # bytes nobody asked for (a 408 before an idle close, say)
            self._fail(ConnectionError("the server spoke out of turn"))
            return
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ConnectionError(f"unreadable answer: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionDropped(answered=self._answered))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_BODY:
            self._fail(ConnectionError(f"an answer of more than {MAX_BODY} bytes"))
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue, 103): the real one follows
            self._body, self._size = [], 0
            return
        answer, self._answer = self._answer, None
        if answer is None:  # a second answer in the same bytes: the server spoke out of turn
            self._fail(ConnectionError("the server spoke out of turn"))
            return
        if not self._parser.should_keep_alive():
            self.closed = True  # not pooled again; the caller closes it
        if not answer.done():
            answer.set_result(Reply(status, b"".join(self._body)))

    def _fail(self, error: Exception) -> None:
        self.closed = True
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)
        if self.transport is not None:
            self.transport.close()


def request_head(method: str, target: str, headers: dict[str, str], length: int) -> bytes:
    """The request line and headers of a request with a body of `length` bytes. A value
    with a line break would end the head early and smuggle a header in: refused."""
    if not target.startswith("/") or any(c in target for c in " \r\n"):
        raise ValueError(f"not a request target: {target!r}")
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"a line break in the header {name!r}")
        lines.append(f"{name}: {value}")
    lines.append(f"content-length: {length}\r\n\r\n")
    return "\r\n".join(lines).encode("ascii")


class KeptAlive:
    """Requests to the origin of `base_url` (scheme, host and port; its path is ignored)."""

    def __init__(self, base_url: str, *, connect_timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._connect_timeout = connect_timeout
        self._idle: list[_Exchange] = []

    async def request(self, head: bytes, body: bytes) -> Reply:
        """Send `head` (request line and headers, ending in the blank line, Content-Length
        included) and `body`; the answer, whatever its status."""
        exchange, reused = await self._connection()
        try:
            return await self._send(exchange, head, body)
        except ConnectionDropped as error:
            if not reused or error.answered:
                raise
        # The pooled connection was closed under the request: once more on a new one.
        exchange, _ = await self._connection(new=True)
        return await self._send(exchange, head, body)

    async def _send(self, exchange: _Exchange, head: bytes, body: bytes) -> Reply:
        answer: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        exchange.expect(answer)
        transport = exchange.transport
        assert transport is not None  # noqa: S101  (set by connection_made)
        done = False
        try:
            transport.writelines((head, body))
            reply = await answer
            done = True
            return reply
        finally:
            if done and not exchange.closed and len(self._idle) < MAX_IDLE:
                self._idle.append(exchange)
            else:  # cancelled, failed or not to be kept: nobody may read this connection again
                transport.close()

    async def _connection(self, *, new: bool = False) -> tuple[_Exchange, bool]:
        while self._idle and not new:
            exchange = self._idle.pop()  # the most recently used: the least likely closed
            if not exchange.closed:
                return exchange, True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, exchange = await loop.create_connection(
                    _Exchange, self._host, self._port, ssl=self._tls
                )
        except TimeoutError as error:
            where = f"{self._host}:{self._port}"
            within = f"{self._connect_timeout:g} s"
            raise ConnectionError(f"no connection to {where} within {within}") from error
        return exchange, False

    def close(self) -> None:
        for exchange in self._idle:
            if exchange.transport is not None:
                exchange.transport.close()
        self._idle.clear()
