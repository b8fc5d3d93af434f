"""Steady traffic against an app during a fault, and what each request met.

Open loop: a request starts every `1/rate` seconds whether or not the earlier
ones have answered, as real users do, so a stalled app shows up as latency and
pile-up instead of hiding behind a closed loop that simply slows down. Every
request has a client deadline far above any documented bound; a request that
reaches it is recorded as such (`status` 0), never waited for forever.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

CLIENT_DEADLINE_SECONDS = 30.0
_KEPT_HEADERS = ("retry-after", "x-figalization-stored")
WORDS = ("велосипед", "молоко", "корабль", "собака", "телевизор", "пирожок", "самолёт")


@dataclass(frozen=True)
class Answer:
    kind: str
    started: float  # seconds since the traffic began
    seconds: float
    status: int  # 0: no answer (connection error or the client deadline)
    stored: bool = False  # a figalization answered 201
    figalization_id: str | None = None
    body: Any = None
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # the few a fault test asks about


@dataclass
class Traffic:
    """Every request made (`/readyz` included, as the test saw it meanwhile)."""

    answers: list[Answer] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return time.monotonic() - self.began

    def of(self, kind: str, since: float = 0.0, until: float = float("inf")) -> list[Answer]:
        return [a for a in self.answers if a.kind == kind and since <= a.started < until]

    def stored_ids(self) -> list[str]:
        return [a.figalization_id for a in self.answers if a.stored and a.figalization_id]

    def failed(self, answers: list[Answer] | None = None) -> list[Answer]:
        """No answer, or a 5xx."""
        return [
            a
            for a in (self.answers if answers is None else answers)
            if a.status >= 500 or not a.status
        ]

    def slowest(self, answers: list[Answer]) -> float:
        return max((a.seconds for a in answers), default=0.0)

    def p99(self, answers: list[Answer]) -> float:
        seconds = sorted(a.seconds for a in answers)
        return seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))] if seconds else 0.0


async def _one(
    traffic: Traffic, http: httpx.AsyncClient, kind: str, make: Callable[[], Any]
) -> None:
    started = traffic.now()
    t0 = time.monotonic()
    try:
        response = await asyncio.wait_for(make(), CLIENT_DEADLINE_SECONDS)
    except (httpx.HTTPError, TimeoutError) as error:
        traffic.answers.append(Answer(kind, started, time.monotonic() - t0, 0, error=repr(error)))
        return
    seconds = time.monotonic() - t0
    body: Any = None
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
    figalization_id = body.get("id") if isinstance(body, dict) else None
    traffic.answers.append(
        Answer(
            kind,
            started,
            seconds,
            response.status_code,
            stored=response.status_code == 201,
            figalization_id=figalization_id,
            body=body,
            headers={k: v for k, v in response.headers.items() if k in _KEPT_HEADERS},
        )
    )


async def run_traffic(
    base_url: str,
    traffic: Traffic,
    *,
    seconds: float,
    posts_per_second: float = 10.0,
    reads_per_second: float = 5.0,
    readiness_every: float = 0.25,
) -> None:
    """POST figalizations, read history and watch /readyz for `seconds`; wait for stragglers."""
    numbers = itertools.count()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    timeout = httpx.Timeout(CLIENT_DEADLINE_SECONDS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as http:
        tasks: set[asyncio.Task[None]] = set()

        def post() -> Any:
            phrase = f"{WORDS[next(numbers) % len(WORDS)]} {next(numbers)}"
            return http.post("/api/v2/figalizations", json={"phrase": phrase})

        def read() -> Any:
            return http.get("/api/v2/history", params={"limit": 5})

        def ready() -> Any:
            return http.get("/readyz")

        schedule = [("post", posts_per_second, post), ("read", reads_per_second, read)]
        schedule.append(("readyz", 1 / readiness_every, ready))
        next_at = {kind: 0.0 for kind, _, _ in schedule}
        while traffic.now() < seconds:
            for kind, rate, make in schedule:
                if rate and traffic.now() >= next_at[kind]:
                    next_at[kind] += 1 / rate
                    task = asyncio.create_task(_one(traffic, http, kind, make))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.005)
        if tasks:
            await asyncio.gather(*tasks)
