"""Degradation: the database stops mid-test, and comes back (issue: the service itself, §6).

While PostgreSQL is down, figalization still answers (not stored, not counted),
the page renders and says the hint and counter are unavailable, `/readyz`
stays ready (200: the process serves, degraded) and reports the database down
in its body; when it is back, figalizations are stored again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from app.store.migrate import upgrade_async
from tests.conftest import AppClient, figalize, post_form, wait_until
from tests.services.postgres import PostgresService


async def test_a_database_outage_degrades_storage_only_and_recovers(
    postgres_service: PostgresService, postgres_url: str, app_client: AppClient, tmp_path: Path
) -> None:
    if not postgres_service.controllable:
        pytest.skip("an external database (FIGA_TEST_DATABASE_URL) cannot be stopped by the test")
    settings = Settings(
        database_url=postgres_url,
        image_store_url=str(tmp_path / "images"),
        live_refresh_seconds=0.2,
        db_timeout_seconds=1.0,
        metrics_port=0,
    )
    await upgrade_async(settings)
    client = await app_client(settings)
    await figalize(client, "кот")

    postgres_service.stop()
    try:
        answer = await client.post("/api/v2/figalizations", json={"phrase": "Велосипед"})
        assert answer.status_code == 200
        assert answer.json()["result"] == "Фигосипед"
        assert answer.headers["x-figalization-stored"] == "false"
        assert (
            await client.post("/api/figalize/", json={"schema_id": 0, "phrase": "кот"})
        ).json() == {"data": "фигот"}
        fragment = await post_form(client, {"phrase": "Машина"}, htmx=True)
        assert "Фигина" in fragment.text
        assert "Не сохранено" in fragment.text

        async def page_says_unavailable() -> bool:
            page = await client.get("/")
            return page.status_code == 200 and "Счётчик временно недоступен" in page.text

        await wait_until(page_says_unavailable)
        assert "Подсказка временно недоступна" in (await client.get("/")).text
        ready = await client.get("/readyz")
        assert ready.status_code == 200  # still routed to: the page degrades, it does not fail
        assert ready.json()["ready"] is True
        assert ready.json()["database"]["ok"] is False
        assert (await client.get("/api/v2/stats")).status_code == 503
    finally:
        postgres_service.start()

    async def database_ok_again() -> bool:
        ready = await client.get("/readyz")
        return ready.status_code == 200 and ready.json()["database"]["ok"] is True

    await wait_until(database_ok_again, within=30)
    await figalize(client, "Машина")
    assert (await client.get("/api/v2/stats")).json() == {"total": 2}
    latest = (await client.get("/api/v2/history/latest")).json()
    assert latest["result"] == "Фигина"
