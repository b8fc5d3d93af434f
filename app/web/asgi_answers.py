"""The few ASGI steps the plain-ASGI routes do by hand: answer, read a bounded body, read `?v=`.

The hottest routes (the create route, the two live polls) and the envelope's
CORS preflight skip Litestar's request and response objects, which cost more
than the work itself there (see `api.create_figalization`, `fragments`).
They share these helpers so that each step is written, and fixed, once.
Errors are raised as Litestar exceptions: the app's exception handlers
render them like every other route's.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from litestar.exceptions import ClientException
from litestar.types import Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]


class BodyTooLarge(ClientException):
    status_code = 413


async def answer(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    """The whole answer at once; a body's length is known, so it is sent, not chunked.
    `headers` is copied: middleware may add to the list it is sent (the rate limit does)."""
    sent = [*headers, (b"content-length", str(len(body)).encode())] if body else [*headers]
    await send({"type": "http.response.start", "status": status, "headers": sent})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def read_body(scope: Scope, receive: Receive, *, limit: int) -> bytes | None:
    """The whole body, refused with 413 past `limit` bytes, announced or streamed;
    None when the client went away before sending it all."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():
                raise ClientException(f"invalid content-length: {value.decode('latin-1')!r}")
            if int(value) > limit:
                raise BodyTooLarge(f"the body is over {limit} bytes")
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def query_parameter(scope: Scope, name: str) -> str:
    """The first value of one query parameter, "" when absent."""
    query = scope["query_string"]
    if not query:
        return ""
    return parse_qs(query.decode("latin-1")).get(name, [""])[0]
