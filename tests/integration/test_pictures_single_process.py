"""Pictures in the single-process mode: SQLite, the in-process queue and worker, a folder."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient
from PIL import Image

from app.settings import Settings
from tests.conftest import figalize, wait_until


async def test_50_figalizations_become_50_png_files_of_1200_by_630(
    client: AsyncTestClient[Any], local_settings: Settings
) -> None:
    ids = [(await figalize(client, f"Машина номер {n}"))["id"] for n in range(50)]

    async def all_ready() -> bool:
        answers = await asyncio.gather(*(client.get(f"/api/v2/figalizations/{i}") for i in ids))
        return all(a.json()["image"]["status"] == "ready" for a in answers)

    await wait_until(all_ready, within=60, every=0.25)
    folder = Path(local_settings.image_store_url)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{i}.png" for i in ids)
    for figalization_id in ids[:5]:
        download = await client.get(f"/api/v2/figalizations/{figalization_id}/image")
        picture = Image.open(io.BytesIO(download.content))
        assert (picture.format, picture.size) == ("PNG", (1200, 630))
        assert download.content == (folder / f"{figalization_id}.png").read_bytes()
