"""Brotli or gzip for text answers, for the clients that say they take it.

One ASGI layer around the router, inside the envelope (`app.asgi`), so that
every text answer is covered whoever made it: Litestar's handlers, the
plain-ASGI page, form and poll routes, the static files, the error pages.
The envelope outside it still sees the real status and adds its headers.

A request without `Accept-Encoding` (the API's benchmark, most programs)
costs one pass over its headers and goes on untouched: no wrapper, no
`Vary` — an uncompressed answer is right for every client, so a cache that
keeps it for everyone is right too. With it, an answer is compressed when
its type is text (HTML, CSS, JS, JSON, SVG), it carries no encoding yet
(the hashed assets come precompressed, `negotiated` tells them what to
send) and its body is at least `MIN_BYTES`, 1 KiB: a smaller body goes in
one packet either way, and the polled fragments (200–400 bytes, thousands a
second, the hottest answers) would pay the compressor's set-up on every
poll to save a few dozen bytes. Such answers get `Vary: Accept-Encoding` whether or
not they were compressed. A body sent in parts is compressed as a stream.

Which encoding: for answers made per request, gzip at level 6 when the
client takes it (every browser does), else Brotli at quality 4. Measured on
the 12.6 KiB page here: both give 4.2 KiB, gzip in about half the CPU time
(~150 µs against ~290 µs); Brotli pays off only at high quality, which is
for bodies compressed once — the hashed assets, at quality 11 (`best`).
"""

from __future__ import annotations

import functools
import gzip
import zlib
from typing import Any

import brotli
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

MIN_BYTES = 1024
BROTLI_QUALITY = 4
GZIP_LEVEL = 6
_TEXT = (
    b"text/",
    b"application/json",
    b"application/javascript",
    b"application/vnd.oai.openapi",
    b"application/x-yaml",
    b"image/svg+xml",
)
DYNAMIC = ("gzip", "br")  # the server's preference among equally accepted encodings
ONCE = ("br", "gzip")


def compression(app: ASGIApp) -> ASGIApp:
    async def compressing(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        encoding = None
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                encoding = negotiated(value, DYNAMIC)
                break
        if encoding is None:
            await app(scope, receive, send)
            return
        await app(scope, receive, _Compressing(send, encoding).send)

    return compressing


@functools.lru_cache(maxsize=64)  # browsers send a handful of distinct values
def negotiated(accept_encoding: bytes, preference: tuple[str, ...] = DYNAMIC) -> str | None:
    """`br`, `gzip` or None for an `Accept-Encoding` value (RFC 9110 § 12.5.3: the highest
    q wins, q=0 refuses; among equals the first of `preference`)."""
    weights: dict[str, float] = {}
    for item in accept_encoding.decode("latin-1").lower().split(","):
        coding, _, parameters = item.partition(";")
        weight = 1.0
        parameter = parameters.strip()
        if parameter.startswith("q="):
            try:
                weight = float(parameter[2:])
            except ValueError:
                weight = 0.0
        weights[coding.strip()] = weight
    wildcard = weights.get("*", 0.0)
    accepted = [coding for coding in preference if weights.get(coding, wildcard) > 0]
    return max(accepted, key=lambda coding: weights.get(coding, wildcard), default=None)


def compress(body: bytes, encoding: str, *, best: bool = False) -> bytes:
    """The whole body at once; `best` for bodies compressed once and kept (the assets)."""
    if encoding == "br":
        return bytes(brotli.compress(body, quality=11 if best else BROTLI_QUALITY))
    return gzip.compress(body, compresslevel=9 if best else GZIP_LEVEL, mtime=0)


def compressible(headers: Any) -> bool:
    """A text type not encoded yet."""
    text = False
    for name, value in headers:
        if name == b"content-encoding":
            return False
        if name == b"content-type":
            text = value.startswith(_TEXT)
    return text


class _Compressing:
    """The `send` of one answer: holds its start until the body shows what to do."""

    def __init__(self, send: Send, encoding: str) -> None:
        self._send: Any = send  # messages are rebuilt here: typed as plain dicts
        self._encoding = encoding
        self._start: Any = None
        self._stream: Any = None  # a compressor once the body comes in parts

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            status = message["status"]
            if status >= 200 and status not in (204, 304) and compressible(message["headers"]):
                self._start = message
                return
        elif kind == "http.response.body" and (self._start or self._stream):
            await self._body(message)
            return
        elif self._start is not None:  # an ASGI extension's message: let it through as it is
            await self._send(self._start)
            self._start = None
        await self._send(message)

    async def _body(self, message: Any) -> None:
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        start, self._start = self._start, None
        if start is not None:
            headers = [
                (name, value)
                for name, value in start["headers"]
                if name not in (b"content-length", b"vary")
            ]
            vary = [value for name, value in start["headers"] if name == b"vary"]
            headers.append((b"vary", b", ".join([*vary, b"Accept-Encoding"])))
            if not more and len(body) < MIN_BYTES:
                length = [h for h in start["headers"] if h[0] == b"content-length"]
                await self._send({**start, "headers": headers + length})
                await self._send(message)
                return
            headers.append((b"content-encoding", self._encoding.encode()))
            if not more:
                body = compress(body, self._encoding)
                headers.append((b"content-length", str(len(body)).encode()))
                await self._send({**start, "headers": headers})
                await self._send({**message, "body": body})
                return
            self._stream = _Stream(self._encoding)
            await self._send({**start, "headers": headers})
        await self._send(
            {"type": "http.response.body", "body": self._stream.part(body, more), "more_body": more}
        )


class _Stream:
    """One answer's body compressed part by part (no flush between parts: nothing here
    streams events, so the parts may be as large as the compressor likes)."""

    def __init__(self, encoding: str) -> None:
        self._brotli = brotli.Compressor(quality=BROTLI_QUALITY) if encoding == "br" else None
        self._gzip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: the gzip format

    def part(self, body: bytes, more: bool) -> bytes:
        if self._brotli is not None:
            out = self._brotli.process(body)
            return bytes(out if more else out + self._brotli.finish())
        out = self._gzip.compress(body)
        return out if more else out + self._gzip.flush()
