"""What a JSON request body must be before any handler sees it: UTF-8, not absurdly deep.

msgspec decodes a string value with Python's UTF-8 codec and recurses per
nesting level, so bytes that are not UTF-8 (`"\\xff"`, the overlong
`"\\xc0\\xaf"`) end in a `UnicodeDecodeError`, and a document nested a few
thousand levels deep in a `RecursionError` — neither a `msgspec.DecodeError`,
so both used to escape as 500s. And msgspec skips unknown fields without
decoding them, so invalid bytes there were accepted silently. Every JSON body
of the APIs is read through here instead: the plain-ASGI create route calls
`decode`, the typed compat routes get `JsonBodyRequest` as their request
class. Each refusal is a `ValidationException` (400, the API's usual error
shape) whose message says what is wrong, raised before anything is stored.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

NOT_UTF8 = "the body is not valid UTF-8 (JSON must be UTF-8, RFC 8259)"
TOO_DEEP = "the JSON body is nested too deeply"
EMPTY = "the body is empty: send a JSON object, as /api/openapi.json describes"

T = TypeVar("T")


def decode(body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """`body` decoded by `decoder`, or a 400 saying why not."""
    try:
        _require_utf8(body)
        return decoder.decode(body)
    # Malformed JSON ("JSON is malformed: invalid character (byte 4)") and, a subclass,
    # the wrong shape ("Expected `str`, got `int` - at `$.phrase`").
    except msgspec.DecodeError as error:
        raise ValidationException(str(error)) from error
    except (UnicodeDecodeError, RecursionError) as error:
        raise _refusal(error) from error


class JsonBodyRequest(Request[Any, Any, Any]):
    """Litestar's request with its JSON body checked as `decode` checks it, and an empty
    body refused with a message saying so (Litestar's own says `data: 'data'`)."""

    async def body(self) -> bytes:
        body = await super().body()
        if not body.strip():
            raise ValidationException(EMPTY)
        return body

    async def json(self) -> Any:
        try:
            _require_utf8(await self.body())
            return await super().json()
        except (UnicodeDecodeError, RecursionError) as error:
            raise _refusal(error) from error


def _require_utf8(body: bytes) -> None:
    if not body.isascii():  # ASCII is UTF-8; only other bodies need the whole check
        body.decode("utf-8")  # strict: overlong forms and surrogates are refused too


def _refusal(error: UnicodeDecodeError | RecursionError) -> ValidationException:
    return ValidationException(NOT_UTF8 if isinstance(error, UnicodeDecodeError) else TOO_DEEP)
