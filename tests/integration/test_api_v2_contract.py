"""spec/api.md § JSON API (/api/v2), against the app in the single-process mode."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.settings import Settings
from tests.conftest import figalize, wait_until

Client = AsyncTestClient[Any]
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


async def test_schemes_are_listed_in_catalogue_order_default_first(client: Client) -> None:
    response = await client.get("/api/v2/schemes")
    assert response.status_code == 200
    assert response.json() == [
        {"id": "figa", "name": "Фигачечная"},
        {"id": "khren", "name": "Хреначечная"},
    ]


async def test_creating_a_figalization_answers_201_and_the_object(client: Client) -> None:
    response = await client.post("/api/v2/figalizations", json={"phrase": "  Велосипед  "})
    assert response.status_code == 201
    body = response.json()
    assert ULID.fullmatch(body["id"])
    assert body["phrase"] == "Велосипед"
    assert body["scheme"] == "figa"
    assert body["result"] == "Фигосипед"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created_at"])
    assert body["image"] == {"status": "pending", "url": None}


async def test_the_scheme_can_be_chosen(client: Client) -> None:
    body = await figalize(client, "Велосипед", scheme="khren")
    assert (body["scheme"], body["result"]) == ("khren", "Хреносипед")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"phrase": "   "}, "empty"),
        ({"phrase": "а" * 201}, "too_long"),
        ({"phrase": "Hello"}, "not_russian"),
        ({"phrase": "<b>кот</b>"}, "not_russian"),
        ({"phrase": "кот", "scheme": "nope"}, "unknown_scheme"),
    ],
)
async def test_bad_input_answers_422_with_a_code_and_changes_nothing(
    client: Client, payload: dict[str, str], code: str
) -> None:
    response = await client.post("/api/v2/figalizations", json=payload)
    assert response.status_code == 422
    assert response.json()["error"] == code
    assert response.json()["message"]
    assert (await client.get("/api/v2/stats")).json() == {"total": 0}
    assert (await client.get("/api/v2/history")).json() == {"items": [], "next": None}


async def test_malformed_bodies_are_refused_with_the_error_shape(client: Client) -> None:
    for body in (b"not json", b'{"phrase": 5}', b"{}"):
        response = await client.post(
            "/api/v2/figalizations", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


async def test_malformed_bodies_say_what_is_wrong(client: Client) -> None:
    cases = {
        b"": "JSON object",
        b"not json": "malformed",
        b'{"phrase": 5}': "$.phrase",
        b'{"phrase": "\xd0\xba\xd0\xbe\xd1\x82", "scheme": 5}': "$.scheme",
        b"[]": "object",
    }
    for body, hint in cases.items():
        response = await client.post(
            "/api/v2/figalizations", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, body
        assert hint in response.json()["message"], response.json()
    assert (await client.get("/api/v2/stats")).json() == {"total": 0}


async def test_bodies_over_4_kib_are_refused_with_413(client: Client) -> None:
    response = await client.post("/api/v2/figalizations", json={"phrase": "кот " * 1100})
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


async def test_a_streamed_body_over_4_kib_is_refused_too(client: Client) -> None:
    """No Content-Length (chunked): the limit holds on what actually arrives."""
    chunks = [b'{"phrase": "', *["кот ".encode() * 100] * 10, b'"}']
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    messages[-1]["more_body"] = False
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v2/figalizations",
        "raw_path": b"/api/v2/figalizations",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    await client.app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert messages, "it stopped reading once the limit was passed"
    assert (await client.get("/api/v2/stats")).json() == {"total": 0}


async def test_only_post_creates(client: Client) -> None:
    response = await client.get("/api/v2/figalizations")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert "POST" in response.headers["allow"]


async def test_the_documented_request_body_is_the_one_decoded(client: Client) -> None:
    """The create route is plain ASGI, documented apart from Litestar's own: the two agree."""
    import msgspec

    from app.web.api import FigalizationRequest

    document = (await client.get("/api/openapi.json")).json()
    operation = document["paths"]["/api/v2/figalizations"]["post"]
    assert operation["operationId"] == "createFigalization"
    reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    documented = document["components"]["schemas"][reference.rsplit("/", 1)[1]]
    _, definitions = msgspec.json.schema_components([FigalizationRequest])
    decoded = definitions["FigalizationRequest"]
    assert documented["required"] == decoded["required"]
    assert set(documented["properties"]) == set(decoded["properties"])
    for answer in ("201", "200", "400", "413", "422"):
        assert answer in operation["responses"]


async def test_a_figalization_can_be_read_back_by_id(client: Client) -> None:
    created = await figalize(client, "Машина")
    response = await client.get(f"/api/v2/figalizations/{created['id']}")
    assert response.status_code == 200
    assert response.json()["result"] == "Фигина"


async def test_an_unknown_id_is_404(client: Client) -> None:
    response = await client.get("/api/v2/figalizations/01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_the_picture_becomes_ready_and_downloads_as_png(client: Client) -> None:
    created = await figalize(client, "Велосипед")
    url = f"/api/v2/figalizations/{created['id']}"

    async def ready() -> bool:
        return (await client.get(url)).json()["image"]["status"] == "ready"

    await wait_until(ready)
    image = (await client.get(url)).json()["image"]
    assert image["url"].endswith(f"{url}/image")
    response = await client.get(f"{url}/image")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


async def test_the_picture_of_an_unknown_id_is_404(client: Client) -> None:
    response = await client.get("/api/v2/figalizations/01ZZZZZZZZZZZZZZZZZZZZZZZZ/image")
    assert response.status_code == 404


async def test_history_is_newest_first_and_paginated_by_cursor(client: Client) -> None:
    ids = [(await figalize(client, f"кот номер {n}"))["id"] for n in range(5)]
    first = (await client.get("/api/v2/history", params={"limit": 2})).json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    assert first["next"] == ids[3]
    second = await client.get("/api/v2/history", params={"limit": 2, "before": first["next"]})
    assert [item["id"] for item in second.json()["items"]] == ids[::-1][2:4]
    last = (await client.get("/api/v2/history", params={"limit": 2, "before": ids[1]})).json()
    assert [item["id"] for item in last["items"]] == [ids[0]]
    assert last["next"] is None


@pytest.mark.parametrize("limit", ["0", "101", "x"])
async def test_history_limit_must_be_1_to_100(client: Client, limit: str) -> None:
    response = await client.get("/api/v2/history", params={"limit": limit})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_latest_is_204_when_empty_then_the_newest(client: Client) -> None:
    assert (await client.get("/api/v2/history/latest")).status_code == 204
    await figalize(client, "кот")
    newest = await figalize(client, "Ёлка")
    response = await client.get("/api/v2/history/latest")
    assert response.status_code == 200
    assert response.json()["id"] == newest["id"]


async def test_stats_count_successful_figalizations_only(client: Client) -> None:
    await figalize(client, "кот")
    await client.post("/api/v2/figalizations", json={"phrase": "Hello"})
    await figalize(client, "кот")
    assert (await client.get("/api/v2/stats")).json() == {"total": 2}


async def test_openapi_document_and_docs_are_served(client: Client) -> None:
    document = (await client.get("/api/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    for path in ("/api/v2/figalizations", "/api/v2/history", "/api/getschemas"):
        assert path in document["paths"]
    docs = await client.get("/api/docs")
    assert docs.status_code == 200
    assert "/vendor/swagger/swagger-ui-bundle.js" in docs.text  # served by us, no CDN


async def test_cors_preflight_for_json_is_answered(client: Client) -> None:
    response = await client.options(
        "/api/v2/history/latest",
        headers={
            "Origin": "https://example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] in ("*", "https://example.org")
    simple = await client.get("/api/v2/stats", headers={"Origin": "https://example.org"})
    assert simple.headers["access-control-allow-origin"] in ("*", "https://example.org")


async def test_every_response_carries_a_request_id(client: Client) -> None:
    given = await client.get("/api/v2/stats", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/api/v2/stats")
    assert re.fullmatch(r"[0-9a-f]{24}", made.headers["x-request-id"])
    assert (await client.get("/api/v2/stats")).headers["x-request-id"] != made.headers[
        "x-request-id"
    ]


async def test_with_a_public_base_url_the_picture_is_a_redirect_there(
    app_client: Any, local_settings: Settings
) -> None:
    cdn = {"image_public_base_url": "https://cdn.test/p"}
    client = await app_client(Settings(**(local_settings.model_dump() | cdn)))
    created = await figalize(client, "кот")

    async def ready() -> bool:
        answer = await client.get(f"/api/v2/figalizations/{created['id']}")
        return bool(answer.json()["image"]["status"] == "ready")

    await wait_until(ready)
    response = await client.get(
        f"/api/v2/figalizations/{created['id']}/image", follow_redirects=False
    )
    assert response.status_code == 302
    assert response.headers["location"] == f"https://cdn.test/p/{created['id']}.png"
    page = await client.get("/")
    assert "https://cdn.test" in page.headers["content-security-policy"]  # the <img> may load it
