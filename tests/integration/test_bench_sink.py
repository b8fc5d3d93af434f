"""The benchmark's object store (`bench.sink`, Debian's nginx) stores what the worker PUTs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.images import FsspecImageStore
from app.settings import Settings
from bench.sink import ObjectSink


@pytest.fixture
def sink() -> Iterator[ObjectSink]:
    store = ObjectSink()
    store.start()
    try:
        yield store
    finally:
        store.close()


async def test_the_workers_puts_land_as_objects_it_counts_and_serves(
    sink: ObjectSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in sink.credentials_environment().items():
        monkeypatch.setenv(name, value)
    bucket = sink.create_bucket()
    images = FsspecImageStore(
        Settings(image_store_url=f"s3://{bucket}/site", s3_endpoint_url=sink.endpoint_url)
    )
    try:
        for number in range(3):
            await images.put(f"01J{number}/card.png", b"\x89PNG %d" % number)
        await images.put("01J0/card.png", b"\x89PNG again")  # drawn twice: one object
    finally:
        await images.close()
    assert sink.count(f"{bucket}/site") == 3
    assert sink.count(f"{bucket}/elsewhere") == 0
    async with httpx.AsyncClient() as client:
        served = await client.get(f"{sink.endpoint_url}/{bucket}/site/01J0/card.png")
    assert served.content == b"\x89PNG again"
