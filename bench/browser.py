"""A simulated browser for the soak: the page, its polls, and now and then a figalization.

It behaves like the page with htmx: `GET /` once (CSRF cookie and token, the
fragments' poll paths), the hint and the counter every 2 s, and after a
figalization the picture fragment every second until it answers 286. A
figalization goes through the JSON API, the htmx form or the plain form,
chosen at random. Every answer is tallied, so the soak can compare what was
accepted with what was stored, counted and pictured, id by id.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.phrases import PHRASES
from bench.polls import poll_path
from bench.web import SCHEMES, csrf_token

TICK_SECONDS = 1.0
POLL_EVERY_TICKS = 2  # the page's FIGA_POLL_SECONDS
STOP_POLLING = 286
_RESULT_ID = re.compile(r'class="result-card".*?href="/r/([0-9A-Za-z]+)"', re.S)


@dataclass
class Tally:
    """What every simulated browser saw, added up."""

    accepted_ids: set[str] = field(default_factory=set)  # answered as stored
    by_kind: Counter[str] = field(default_factory=Counter)  # figalizations per way in
    polls: Counter[int] = field(default_factory=Counter)  # hint/counter polls by status
    picture_polls: Counter[int] = field(default_factory=Counter)
    pictures_seen: int = 0  # picture fragments that answered "done"
    statuses: Counter[int] = field(default_factory=Counter)  # every answer
    failures: Counter[str] = field(default_factory=Counter)  # transport errors, bad answers

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


class Browser:
    def __init__(self, client: httpx.AsyncClient, tally: Tally, rng: random.Random) -> None:
        self._client = client
        self._tally = tally
        self._rng = rng
        self._cookie = self._token = ""
        self._polls: dict[str, str] = {}
        self._pending: list[str] = []  # figalizations whose picture is not shown yet

    async def run(self, *, until: float, figalize_chance: float) -> None:
        """Open the page, then tick once a second until `until` (monotonic)."""
        await asyncio.sleep(self._rng.uniform(0, POLL_EVERY_TICKS * TICK_SECONDS))
        if not await self._open():
            return
        tick = 0
        next_tick = time.monotonic()
        while time.monotonic() < until:
            if tick % POLL_EVERY_TICKS == 0:
                for name in ("hint", "total"):
                    await self._poll(name)
            for figalization_id in list(self._pending):
                await self._poll_picture(figalization_id)
            if self._rng.random() < figalize_chance:
                await self._figalize()
            tick += 1
            next_tick += TICK_SECONDS
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))

    async def _get(self, path: str) -> httpx.Response | None:
        return await self._send("GET", path)

    async def _send(self, method: str, path: str, **options: Any) -> httpx.Response | None:
        try:
            answer = await self._client.request(method, path, **options)
        except httpx.HTTPError as error:
            self._tally.failures[f"{method} {path.split('?')[0]}: {type(error).__name__}"] += 1
            return None
        self._tally.statuses[answer.status_code] += 1
        return answer

    async def _open(self) -> bool:
        page = await self._get("/")
        if page is None or page.status_code != 200 or "figa_csrf" not in page.cookies:
            self._tally.failures["GET / without a page or a CSRF cookie"] += 1
            return False
        self._cookie, self._token = page.cookies["figa_csrf"], csrf_token(page.text)
        for name in ("hint", "total"):
            self._polls[name] = poll_path(page.text.split(f'id="{name}"', 1)[1])
        return True

    async def _poll(self, name: str) -> None:
        answer = await self._get(self._polls[name])
        if answer is None:
            return
        self._tally.polls[answer.status_code] += 1
        if answer.status_code == 200:  # changed: htmx swaps it and polls the new version
            self._polls[name] = poll_path(answer.text)
        elif answer.status_code != 204:
            self._tally.failures[f"poll {name} answered {answer.status_code}"] += 1

    async def _poll_picture(self, figalization_id: str) -> None:
        answer = await self._get(f"/fragments/image/{figalization_id}")
        if answer is None:
            return
        self._tally.picture_polls[answer.status_code] += 1
        if answer.status_code == STOP_POLLING:
            self._pending.remove(figalization_id)
            self._tally.pictures_seen += 1
        elif answer.status_code != 200:
            self._tally.failures[f"picture poll answered {answer.status_code}"] += 1

    async def _figalize(self) -> None:
        phrase, scheme = self._rng.choice(PHRASES), self._rng.choice(SCHEMES)
        kind = self._rng.choice(("api", "htmx", "page"))
        if kind == "api":
            answer = await self._send(
                "POST", "/api/v2/figalizations", json={"phrase": phrase, "scheme": scheme}
            )
            found = answer.json().get("id") if answer and answer.status_code == 201 else None
        else:
            headers = {"Cookie": f"figa_csrf={self._cookie}", "x-csrftoken": self._token}
            if kind == "htmx":
                headers["HX-Request"] = "true"
            form = {"phrase": phrase, "scheme": scheme, "_csrf_token": self._token}
            answer = await self._send("POST", "/", data=form, headers=headers)
            match = _RESULT_ID.search(answer.text) if answer and answer.status_code == 200 else None
            found = match.group(1) if match else None
        if answer is None:
            return
        if found is None:
            self._tally.failures[f"{kind} figalization not stored: {answer.status_code}"] += 1
            return
        self._tally.accepted_ids.add(found)
        self._tally.by_kind[kind] += 1
        self._pending.append(found)
