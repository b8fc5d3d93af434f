"""Abuse: rate limits on every way to figalize, hostile text never rendered raw."""

from __future__ import annotations

from typing import Any

import pytest

from app.settings import Settings
from tests.conftest import AppClient, figalize, post_form

HOSTILE = [
    '<script>alert("x")</script>',
    '"><img src=x onerror=alert(1)>',
    "кот</p><script>",
    "{{ 7*7 }} кот",
    "кот' OR '1'='1",
]


async def test_figalizing_is_rate_limited_per_client_with_retry_after(
    app_client: AppClient, local_settings: Settings
) -> None:
    client = await app_client(
        Settings(**(local_settings.model_dump() | {"rate_limit_per_minute": 3}))
    )
    for _ in range(3):
        await figalize(client, "кот")
    limited = await client.post("/api/v2/figalizations", json={"phrase": "кот"})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert limited.json()["error"] == "rate_limited"
    compat = await client.post("/api/figalize/", json={"schema_id": 0, "phrase": "кот"})
    assert compat.status_code == 429
    assert (await client.get("/api/v2/stats")).json() == {"total": 3}
    assert (await client.get("/api/v2/history/latest")).status_code == 200  # reading is not limited


async def test_the_page_form_counts_against_the_same_limit(
    app_client: AppClient, local_settings: Settings
) -> None:
    client = await app_client(
        Settings(**(local_settings.model_dump() | {"rate_limit_per_minute": 1}))
    )
    assert (await post_form(client, {"phrase": "кот"})).status_code == 200
    assert (await post_form(client, {"phrase": "кот"})).status_code == 429


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_phrases_are_refused_or_escaped_everywhere(client: Any, hostile: str) -> None:
    api = await client.post("/api/v2/figalizations", json={"phrase": hostile, "scheme": hostile})
    assert api.status_code == 422
    compat = await client.post("/api/figalize/", json={"schema_id": hostile, "phrase": hostile})
    assert compat.status_code == 400
    image = await client.post("/api/getimageurl/", json={"phrase": hostile})
    assert image.status_code == 404
    page = await post_form(client, {"phrase": hostile, "scheme": hostile})
    assert "<script>" not in page.text.replace(
        '<script src="/vendor/htmx/htmx.min.js" defer></script>', ""
    )
    assert "onerror=alert" not in page.text.replace("onerror=alert(1)&gt;", "")
    result = await client.get(f"/r/{hostile}", headers={"Accept": "text/html"})
    assert result.status_code == 404
    assert "<script>alert" not in result.text
    assert (await client.get("/api/v2/stats")).json() == {"total": 0}
