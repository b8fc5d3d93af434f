"""spec/api.md § Compatibility API: the original service's v1, for its unchanged clients."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import figalize, wait_until

Client = AsyncTestClient[Any]


async def test_getschemas_maps_catalogue_index_to_name(client: Client) -> None:
    response = await client.get("/api/getschemas/")
    assert response.json() == {"0": "Фигачечная", "1": "Хреначечная"}


@pytest.mark.parametrize("schema_id", [1, "1"])
async def test_figalize_accepts_the_index_as_number_or_string(
    client: Client, schema_id: int | str
) -> None:
    response = await client.post(
        "/api/figalize/", json={"schema_id": schema_id, "phrase": "Велосипед"}
    )
    assert response.status_code == 200
    assert response.json() == {"data": "Хреносипед"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"schema_id": 0, "phrase": "Hello"}, "Пишите по-русски: у нас заведение культурное"),
        ({"schema_id": 0, "phrase": " "}, "Введите слово или фразу"),
        ({"schema_id": 9, "phrase": "кот"}, "Такой схемы у нас нет"),
        ({"schema_id": "x", "phrase": "кот"}, "Такой схемы у нас нет"),
        ({"schema_id": -1, "phrase": "кот"}, "Такой схемы у нас нет"),
    ],
)
async def test_figalize_answers_400_with_the_message(
    client: Client, payload: dict[str, Any], message: str
) -> None:
    response = await client.post("/api/figalize/", json=payload)
    assert response.status_code == 400
    assert response.json() == {"data": message}
    assert (await client.get("/api/v2/stats")).json() == {"total": 0}


async def test_gethistory_is_empty_then_total_original_and_result(client: Client) -> None:
    assert (await client.get("/api/gethistory/")).json() == []
    await client.post("/api/figalize/", json={"schema_id": 0, "phrase": "кот"})
    await client.post("/api/figalize/", json={"schema_id": "0", "phrase": "Велосипед"})
    assert (await client.get("/api/gethistory/")).json() == [[2, "Велосипед", "Фигосипед"]]


async def test_getimageurl_is_404_until_the_picture_exists_then_an_absolute_url(
    client: Client,
) -> None:
    missing = await client.post("/api/getimageurl/", json={"phrase": "Фигосипед"})
    assert (missing.status_code, missing.json()) == (404, {"data": ""})
    created = await figalize(client, "Велосипед")

    async def ready() -> bool:
        answer = await client.post("/api/getimageurl/", json={"phrase": "Фигосипед"})
        return answer.status_code == 200

    await wait_until(ready)
    url = (await client.post("/api/getimageurl/", json={"phrase": "Фигосипед"})).json()["data"]
    assert url.startswith("http://")
    assert url.endswith(f"/api/v2/figalizations/{created['id']}/image")
    picture = await client.get(url.split("://", 1)[1].split("/", 1)[1].join(["/", ""]))
    assert picture.headers["content-type"] == "image/png"


async def test_compat_api_answers_cross_origin_preflights(client: Client) -> None:
    response = await client.options(
        "/api/figalize/",
        headers={
            "Origin": "https://figachechnaya.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code in (200, 204)
    assert "access-control-allow-origin" in response.headers
