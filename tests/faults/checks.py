"""The questions every fault test asks after the link returns: was anything lost?"""

from __future__ import annotations

import time

from tests.faults.cluster import Cluster, wait_for
from tests.faults.traffic import Traffic


async def nothing_lost(cluster: Cluster, traffic: Traffic, *, within: float) -> float:
    """Every 201 figalization stored and counted, every stored one pictured as exactly one
    object, none pending, the outbox empty; returns the seconds it took to get there."""
    started = time.monotonic()
    accepted = set(traffic.stored_ids())
    assert accepted, "the traffic stored nothing: the test proves nothing"

    async def every_picture_settled() -> bool:
        pending = await cluster.scalar(
            "SELECT count(*) FROM figalization WHERE image_status <> 'ready'"
        )
        unpublished = await cluster.scalar("SELECT count(*) FROM image_job_outbox")
        return int(pending) == 0 and int(unpublished) == 0

    try:
        await wait_for(every_picture_settled, within=within)
    except AssertionError:
        states = await cluster.scalar(
            "SELECT string_agg(image_status || ':' || n, ', ') FROM"
            " (SELECT image_status, count(*) AS n FROM figalization GROUP BY image_status) s"
        )
        unpublished = await cluster.scalar("SELECT count(*) FROM image_job_outbox")
        raise AssertionError(f"not settled in {within} s: {states}; outbox {unpublished}") from None
    settled = time.monotonic() - started
    stored = set(
        (await cluster.scalar("SELECT string_agg(id, ',') FROM figalization") or "").split(",")
    )
    assert accepted <= stored, f"accepted but not stored: {sorted(accepted - stored)[:5]}"
    counted = int(await cluster.scalar("SELECT sum(value) FROM figalization_counter"))
    assert counted == len(stored), f"counter {counted} ≠ {len(stored)} rows"
    objects = [path.rsplit("/", 1)[-1].removesuffix(".png") for path in cluster.objects()]
    assert len(objects) == len(set(objects)), "two objects for one figalization"
    assert set(objects) == stored, (
        f"{len(stored)} stored, {len(objects)} pictures;"
        f" missing {sorted(stored - set(objects))[:5]}, extra {sorted(set(objects) - stored)[:5]}"
    )
    return settled
