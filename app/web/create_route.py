"""`POST /api/v2/figalizations`, the hottest write route, as a Litestar ASGI route handler.

A typed Litestar handler spends about 35 µs a request on generic machinery
before and after ours (streaming the body through an async generator,
dependency injection, a signature model, building a `Response` and
converting it), which was more than a third of this route's cost and kept it
far from the framework's own "hello" ceiling. Here Litestar still routes the
request, runs the middleware (envelope: request id, metrics, headers, CORS;
the rate limit) and renders every error through the app's exception handlers,
so the answers are those of every other route. What this module does by hand
is what the typed handler did generically: read at most `MAX_BODY_BYTES`,
decode with msgspec into `FigalizationRequest`, encode the answer. Because
Litestar cannot describe an ASGI handler, `document` adds the operation to
the OpenAPI document; the schemathesis run checks that the two agree.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, asgi
from litestar.exceptions import (
    ClientException,
    MethodNotAllowedException,
    ValidationException,
)
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    PathItem,
    Reference,
    RequestBody,
    Schema,
)
from litestar.types import Receive, Scope, Send

from app.domain.phrase import PhraseError
from app.figalizations import UnknownScheme
from app.logs import request_id_var
from app.runtime import Runtime
from app.web.security import MAX_BODY_BYTES
from app.web.views import ErrorView, ImageView, api_view

PATH = "/api/v2/figalizations"


class FigalizationRequest(msgspec.Struct, forbid_unknown_fields=False):
    phrase: str
    scheme: str | None = None


class BodyTooLarge(ClientException):
    status_code = 413


_DECODER = msgspec.json.Decoder(FigalizationRequest)
_ENCODER = msgspec.json.Encoder()
_JSON = b"application/json"


@asgi(PATH, is_mount=False, copy_scope=False, include_in_schema=False)
async def create_figalization(scope: Scope, receive: Receive, send: Send) -> None:
    if scope.get("method") != "POST":
        raise MethodNotAllowedException(headers={"Allow": "OPTIONS, POST"})
    body = await _read_body(scope, receive)
    if body is None:
        return  # the client went away before sending its body: nothing to answer
    data = _decode(body)
    runtime: Runtime = scope["litestar_app"].state.runtime
    try:
        outcome = await runtime.figalizer.figalize(
            data.phrase, data.scheme, request_id=request_id_var.get()
        )
    except PhraseError as error:
        await _answer(send, 422, ErrorView(error.code, error.message))
        return
    except UnknownScheme as error:
        await _answer(send, 422, ErrorView("unknown_scheme", error.message))
        return
    # A new figalization's picture is pending (or, unstored, failed): never a URL to build.
    view = api_view(outcome.figalization, base_url="")
    if not outcome.stored:  # database down: the answer stands, but nothing was created
        view.image = ImageView(status="failed", url=None)
        await _answer(send, 200, view, [(b"x-figalization-stored", b"false")])
        return
    await _answer(send, 201, view)


async def _read_body(scope: Scope, receive: Receive) -> bytes | None:
    """The whole body, refused with 413 past MAX_BODY_BYTES (announced or streamed)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():
                raise ClientException(f"invalid content-length: {value.decode('latin-1')!r}")
            if int(value) > MAX_BODY_BYTES:
                raise BodyTooLarge(f"the body is over {MAX_BODY_BYTES} bytes")
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(f"the body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _decode(body: bytes) -> FigalizationRequest:
    if not body.strip():
        raise ValidationException('the body must be a JSON object: {"phrase": "…"}')
    try:
        return _DECODER.decode(body)
    except msgspec.ValidationError as error:  # e.g. "Expected `str`, got `int` - at `$.phrase`"
        raise ValidationException(str(error)) from error
    except msgspec.DecodeError as error:  # e.g. "JSON is malformed: invalid character (byte 4)"
        raise ValidationException(str(error)) from error


async def _answer(
    send: Send, status: int, view: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = _ENCODER.encode(view)
    start = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": start + (headers or [])}
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def document(app: Litestar) -> None:
    """Add this route's operation to the app's OpenAPI document (before it is first served)."""
    openapi = app.openapi_schema
    components = openapi.components
    if components.schemas is None:
        components.schemas = {}
    components.schemas["FigalizationRequest"] = Schema(
        type=OpenAPIType.OBJECT,
        required=["phrase"],
        properties={
            "phrase": Schema(type=OpenAPIType.STRING, description="Russian words to figalize"),
            "scheme": Schema(
                one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)],
                description="A scheme id from /api/v2/schemes; the default when absent",
            ),
        },
        title="FigalizationRequest",
    )
    figalization = _json(Reference(ref="#/components/schemas/FigalizationView"))
    error = _json(Reference(ref="#/components/schemas/ErrorView"))
    paths = openapi.paths if openapi.paths is not None else {}
    paths[PATH] = PathItem(
        post=Operation(
            tags=["figalizations"],
            summary="Figalize a phrase, store it and queue its picture",
            operation_id="createFigalization",
            request_body=RequestBody(
                content=_json(Reference(ref="#/components/schemas/FigalizationRequest")),
                required=True,
            ),
            responses={
                "201": OpenAPIResponse(
                    description="Created: stored, counted, its picture queued", content=figalization
                ),
                "200": OpenAPIResponse(
                    description="Figalized while the database is down: not stored, not counted, "
                    "no picture",
                    content=figalization,
                    headers={
                        "X-Figalization-Stored": OpenAPIHeader(
                            schema=Schema(type=OpenAPIType.STRING, const="false"),
                            description="Always `false` on this answer",
                        )
                    },
                ),
                "400": OpenAPIResponse(
                    description="Not a JSON object with a string `phrase` (error invalid_request)",
                    content=error,
                ),
                "413": OpenAPIResponse(description="The body is over 4 KiB", content=error),
                "422": OpenAPIResponse(
                    description="A bad phrase (empty, too_long, not_russian) or unknown_scheme",
                    content=error,
                ),
            },
        )
    )
    openapi.paths = paths


def _json(schema: Schema | Reference) -> dict[str, OpenAPIMediaType]:
    return {"application/json": OpenAPIMediaType(schema=schema)}
