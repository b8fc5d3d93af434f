"""The polled fragments when nothing changed: requests/s, and server CPU per poll.

The version a poll carries is the one the fragment's own `hx-get` shows, read
after the fragments stopped changing; the app must answer 204 from memory,
which its metrics (scraped from its operations port) confirm (a 200 means the
version moved during the run).
The crowd is 1,000 browsers on 1,000 connections, each polling the hint and
the counter every 2 s (one poll a second, alternating), for 15 s: the app's
CPU time during the run (/proc/PID/stat) divided by the polls it answered.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from dataclasses import dataclass

import httpx

from bench.cpu import cpu_during, us_per
from bench.load import Request, Wrk, WrkResult
from bench.prometheus import scrape
from bench.stack import Process

POLL_CONNECTIONS = 64
WARMUP_SECONDS = 1.0
RUN_SECONDS = 5.0
CROWD_CLIENTS = 1000
CROWD_SECONDS = 15.0
POLL_PERIOD_MS = 2000  # the page's FIGA_POLL_SECONDS
FRAGMENTS = ("total", "hint")
_REQUESTS = "figachechnaya_http_requests_total"
_HX_GET = re.compile(r'hx-get="([^"]+)"')


@dataclass
class Crowd:
    """Many slow clients polling unchanged fragments: what each poll costs the server."""

    clients: int
    result: WrkResult
    polls_answered: int  # by the server's own count
    cpu_seconds: float  # the app process's CPU time during the run
    idle_cpu_share: float  # of one core, with no load (background loops)

    @property
    def cpu_us_per_poll(self) -> float:
        return self.cpu_seconds / max(1, self.polls_answered) * 1e6


@dataclass
class Polls:
    unchanged: dict[str, WrkResult]  # fragment name → wrk at 64 connections
    not_204: int  # polls in those runs the server answered otherwise
    crowd: Crowd
    unchanged_cpu_seconds: dict[str, float]  # fragment name → the app's CPU during its run

    def cpu_us(self, name: str) -> float:
        return us_per(self.unchanged_cpu_seconds[name], self.unchanged[name].requests)


def poll_path(fragment: str) -> str:
    """The path a fragment polls next (its `hx-get`), carrying the version it shows."""
    match = _HX_GET.search(fragment)
    if match is None:
        raise RuntimeError(f"no hx-get in fragment: {fragment[:200]!r}")
    return html.unescape(match.group(1))


async def measure_polls(client: httpx.AsyncClient, wrk: Wrk, app: Process) -> Polls:
    paths = await _settled_paths(client)
    before = await scrape(client, app.metrics_url)
    unchanged, cpu = {}, {}
    for name, path in paths.items():
        await wrk.run(path, connections=POLL_CONNECTIONS, seconds=WARMUP_SECONDS)
        unchanged[name], used = await cpu_during(
            {"app": app.cpu_seconds},
            wrk.run(path, connections=POLL_CONNECTIONS, seconds=RUN_SECONDS),
        )
        cpu[name] = used["app"]
    delta = (await scrape(client, app.metrics_url)).minus(before)
    not_204 = sum(
        delta.total(_REQUESTS, route=f"/fragments/{name}")
        - delta.total(_REQUESTS, route=f"/fragments/{name}", status="204")
        for name in FRAGMENTS
    )
    crowd = await _measure_crowd(client, wrk, app, paths)
    return Polls(unchanged, round(not_204), crowd, cpu)


async def _settled_paths(client: httpx.AsyncClient) -> dict[str, str]:
    """Each fragment's poll path once nothing changes any more (two equal reads 1 s apart)."""
    previous: dict[str, str] = {}
    for _ in range(10):
        current = {}
        for name in FRAGMENTS:
            fragment = await client.get(f"/fragments/{name}")
            current[name] = poll_path(fragment.text)
        if current == previous:
            return current
        previous = current
        await asyncio.sleep(1.0)
    raise RuntimeError(f"the fragments kept changing: {previous}")


async def _measure_crowd(
    client: httpx.AsyncClient, wrk: Wrk, app: Process, paths: dict[str, str]
) -> Crowd:
    idle_started, idle_cpu = time.monotonic(), app.cpu_seconds()
    await asyncio.sleep(2.0)
    idle_share = (app.cpu_seconds() - idle_cpu) / (time.monotonic() - idle_started)
    before = await scrape(client, app.metrics_url)
    cpu_before = app.cpu_seconds()
    result = await wrk.run(
        connections=CROWD_CLIENTS,
        seconds=CROWD_SECONDS,
        requests=[Request("GET", paths[name]) for name in FRAGMENTS],
        pace_ms=POLL_PERIOD_MS // len(FRAGMENTS),
    )
    cpu = app.cpu_seconds() - cpu_before
    delta = (await scrape(client, app.metrics_url)).minus(before)
    answered = sum(delta.total(_REQUESTS, route=f"/fragments/{name}") for name in FRAGMENTS)
    return Crowd(CROWD_CLIENTS, result, round(answered), cpu, idle_share)
