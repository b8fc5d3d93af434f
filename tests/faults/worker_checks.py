"""The questions every worker-link fault test asks, asked the same way each time.

A worker's link failing must never reach the web tier: the POST path stores
the figalization and its job in PostgreSQL and hands the job to the broker,
and no worker is on it. So during each fault the app's answers stay fast and
2xx, its `/readyz` stays 200 with every dependency ok (its own links are
whole), and once the link returns every accepted figalization is stored,
counted, and has exactly one `ready` picture object, none left `pending`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime

import httpx

from tests.faults.cluster import Cluster, Process
from tests.faults.traffic import Answer, Traffic

# /readyz checks each dependency with a 1 s timeout (app.web.ops.CHECK_TIMEOUT_SECONDS).
READYZ_BOUND_SECONDS = 1.5


@dataclass(frozen=True)
class Window:
    """What the app's clients met in one stretch of the traffic."""

    posts: int
    p99: float
    slowest: float
    slowest_of_run: float  # any POST or read, the whole run


def assert_app_unaffected(cluster: Cluster, traffic: Traffic, since: float, until: float) -> Window:
    """Every request of the run answered, none 5xx, every POST 201, and `/readyz` 200 and
    ready with every dependency ok: the app's own links are whole, so that is the truth.
    Returns what the POSTs of the fault's window (`since`, `until`) met.

    The bound of a request is its documented one, `FIGA_DB_TIMEOUT_SECONDS` (what a
    request may cost at most when the database is away): the POST path needs PostgreSQL
    and, off the request path, the broker — never a worker, so a worker's fault must
    not bring a request near it (their p99 is reported: ~0.1 s)."""
    assert cluster.settings is not None
    bound = cluster.settings.db_timeout_seconds
    posts, reads, readyz = (traffic.of(kind) for kind in ("post", "read", "readyz"))
    assert traffic.of("post", since, until), "no POST during the fault"
    assert reads, "no read"
    assert readyz, "no /readyz probe"
    assert traffic.failed() == [], _describe(traffic.failed())
    assert [a for a in posts if a.status != 201] == []
    assert traffic.slowest(posts + reads) < bound, _slowest(posts + reads)
    assert traffic.slowest(readyz) < READYZ_BOUND_SECONDS, _slowest(readyz)
    for answer in readyz:
        body = answer.body
        assert answer.status == 200, answer
        assert body["ready"] is True, answer
        assert all(body[part]["ok"] for part in ("database", "queue", "images")), answer
    during = traffic.of("post", since, until)
    slowest = traffic.slowest(posts + reads)
    return Window(len(during), traffic.p99(during), traffic.slowest(during), slowest)


async def caught_up(cluster: Cluster, traffic: Traffic, *, within: float) -> float:
    """Seconds until every figalization accepted so far has its picture `ready`: how long
    the work held up by a fault takes to be done once the fault is over."""
    started = time.monotonic()
    accepted = traffic.stored_ids()
    ids = ", ".join(f"'{i}'" for i in accepted)
    query = f"select count(*) from figalization where image_status='ready' and id in ({ids})"  # noqa: S608 -- the app's own ids
    while await cluster.scalar(query) < len(accepted):
        if time.monotonic() - started > within:
            raise AssertionError(f"the pictures held up by the fault not ready in {within}s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def ready_count(cluster: Cluster) -> int:
    return int(await cluster.scalar("select count(*) from figalization where image_status='ready'"))


def this_run(process: Process) -> str:
    """The log of this process's last start only (each start of a `ServerProcess` begins
    with a "---- <time> starting:" line; a respawned process appends to its file)."""
    return process.log().rsplit("\n---- ", 1)[-1]


def logged_at(process: Process, text: str) -> list[float]:
    """When (epoch seconds) this process logged a line containing `text` (JSON logs)."""
    return [
        datetime.fromisoformat(json.loads(line)["time"]).timestamp()
        for line in this_run(process).splitlines()
        if line.startswith("{") and text in line
    ]


def pictures_made(worker: Process) -> dict[str, int]:
    """How often this worker recorded each picture `ready`, from its log."""
    made: dict[str, int] = {}
    for figalization_id in re.findall(r"picture (\S+) ready", this_run(worker)):
        made[figalization_id] = made.get(figalization_id, 0) + 1
    return made


async def assigned_partitions(worker: Process) -> set[str]:
    """The partitions this worker holds now: its lag gauge is rebuilt from its
    assignment every round (`workers.consumer.measure_lag`)."""
    try:
        async with httpx.AsyncClient(timeout=1.0) as http:
            text = (await http.get(f"{worker.url}/metrics")).text
    except httpx.HTTPError:
        return set()
    return set(re.findall(r'^figachechnaya_consumer_lag\{partition="(\d+)"\}', text, re.M))


def _slowest(answers: list[Answer]) -> str:
    worst = max(answers, key=lambda a: a.seconds)
    return f"slowest {worst.kind} took {worst.seconds:.2f}s at t={worst.started:.1f}s"


def _describe(answers: list[Answer]) -> str:
    return "; ".join(f"{a.kind} t={a.started:.1f} {a.status} {a.error}" for a in answers[:5])
