"""The web tier under load: figalizations (JSON API and the HTML form), then the polls.

Every run is measured by wrk at 16, 64 and 256 connections after a 1 s
warm-up; the app's own metrics (status by route template, scraped from its
operations port) confirm what the server answered, so a wrong status cannot
hide behind wrk's "2xx or 3xx".
The site used here has no worker: thousands of figalizations a second would
leave minutes of pictures to draw, so this phase proves "stored and job
published" (the outbox empties into Kafka) and `pictures.py` proves
"pictured" at a rate one worker sustains.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx

from bench.load import Request, Wrk, WrkResult
from bench.phrases import PHRASES
from bench.polls import Polls, measure_polls
from bench.prometheus import Scrape, scrape
from bench.stack import Process, Site

CONNECTIONS = (16, 64, 256)
WARMUP_SECONDS = 1.0
RUN_SECONDS = 5.0
SCHEMES = ("figa", "khren")
_CSRF_INPUT = re.compile(r'<input[^>]*name="_csrf_token"[^>]*>')
_VALUE = re.compile(r'value="([^"]*)"')


@dataclass
class Series:
    """One route measured at each connection count."""

    label: str
    runs: dict[int, WrkResult] = field(default_factory=dict)


@dataclass
class Accounting:
    """Every figalization answered 2xx is stored, counted, and its job published."""

    answered_by_client: int  # 2xx responses wrk and our probes saw
    abandoned_bound: int  # requests wrk left in flight when a run ended (≤ its connections)
    created_by_server: int  # 201 (API) and 200 (form) the server sent
    stored_rows: int
    counter: int  # /api/v2/stats
    not_stored: int  # figalizations answered while the database was down
    outbox_backlog: int | None
    drain_seconds: float

    @property
    def problems(self) -> list[str]:
        found = []
        if not self.created_by_server == self.stored_rows == self.counter:
            found.append(
                f"server created {self.created_by_server}, rows {self.stored_rows}, "
                f"counter {self.counter}: must be equal"
            )
        low, high = self.answered_by_client, self.answered_by_client + self.abandoned_bound
        if not low <= self.stored_rows <= high:
            found.append(f"{self.stored_rows} rows stored for {low} answered (at most {high})")
        if self.not_stored:
            found.append(f"{self.not_stored} figalizations answered without being stored")
        if self.outbox_backlog != 0:
            found.append(f"outbox backlog {self.outbox_backlog} (jobs not published)")
        return found


@dataclass
class WebResults:
    api: Series
    form_htmx: Series
    form_page: Series
    polls: Polls
    accounting: Accounting
    wrong_statuses: dict[str, float]  # "METHOD route status" → count, from the app's metrics
    app_rss_bytes: int


async def measure_ceiling(base_url: str) -> Series:
    wrk = Wrk(base_url)
    series = Series("hello (ceiling)")
    for connections in CONNECTIONS:
        await wrk.run("/", connections=connections, seconds=WARMUP_SECONDS)
        series.runs[connections] = await wrk.run("/", connections=connections, seconds=RUN_SECONDS)
    return series


async def measure_web(app: Process, base_url: str, site: Site) -> WebResults:
    wrk = Wrk(base_url)
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        before = await scrape(client, app.metrics_url)
        cookie, token = await _csrf(client)
        answered = await _probe(client, cookie, token)
        (api, form_htmx, form_page), answered_by_wrk, abandoned = await _measure_figalizations(
            wrk, cookie, token
        )
        accounting = await _account(
            client, app, site, before, answered + answered_by_wrk, abandoned
        )
        polls = await measure_polls(client, wrk, app)
        after = await scrape(client, app.metrics_url)
    return WebResults(
        api=api,
        form_htmx=form_htmx,
        form_page=form_page,
        polls=polls,
        accounting=accounting,
        wrong_statuses=wrong_statuses(after.minus(before)),
        app_rss_bytes=app.rss_bytes(),
    )


async def _measure_figalizations(
    wrk: Wrk, cookie: str, token: str
) -> tuple[list[Series], int, int]:
    """API, form with htmx, form without; returns the series, 2xx seen, and the in-flight bound."""
    api = [
        Request("POST", "/api/v2/figalizations", json.dumps(body, ensure_ascii=False))
        for body in _bodies()
    ]
    form = [Request("POST", "/", urlencode({**body, "_csrf_token": token})) for body in _bodies()]
    form_headers = [
        "Content-Type: application/x-www-form-urlencoded",
        f"Cookie: figa_csrf={cookie}",
        f"x-csrftoken: {token}",
    ]
    plans = [
        ("POST /api/v2/figalizations", api, ["Content-Type: application/json"]),
        ("POST / (form, htmx)", form, [*form_headers, "HX-Request: true"]),
        ("POST / (form, full page)", form, form_headers),
    ]
    measured, answered, abandoned = [], 0, 0
    for label, requests, headers in plans:
        series = Series(label)
        for connections in CONNECTIONS:
            for seconds in (WARMUP_SECONDS, RUN_SECONDS):
                result = await wrk.run(
                    connections=connections, seconds=seconds, requests=requests, headers=headers
                )
                answered += result.answered_2xx
                abandoned += connections
            series.runs[connections] = result
        measured.append(series)
    return measured, answered, abandoned


def _bodies() -> list[dict[str, str]]:
    return [{"phrase": phrase, "scheme": scheme} for phrase in PHRASES for scheme in SCHEMES]


async def _csrf(client: httpx.AsyncClient) -> tuple[str, str]:
    """The form's CSRF cookie and token, as a browser gets them from `GET /`."""
    page = await client.get("/")
    page.raise_for_status()
    return page.cookies["figa_csrf"], csrf_token(page.text)


def csrf_token(page: str) -> str:
    field_tag = _CSRF_INPUT.search(page)
    value = _VALUE.search(field_tag.group()) if field_tag else None
    if value is None:
        raise RuntimeError("the page has no _csrf_token input")
    return html.unescape(value.group(1))


async def _probe(client: httpx.AsyncClient, cookie: str, token: str) -> int:
    """One of each kind through httpx first, so a broken route fails loudly, not as 4xx noise."""
    api = await client.post("/api/v2/figalizations", json={"phrase": PHRASES[0]})
    headers = {"Cookie": f"figa_csrf={cookie}", "x-csrftoken": token}
    form = {"phrase": PHRASES[1], "scheme": SCHEMES[1], "_csrf_token": token}
    client.cookies.clear()  # the cookie goes in the header, as wrk sends it
    page = await client.post("/", data=form, headers=headers)
    fragment = await client.post("/", data=form, headers={**headers, "HX-Request": "true"})
    for answer, status in ((api, 201), (page, 200), (fragment, 200)):
        if answer.status_code != status or (status == 200 and "result-card" not in answer.text):
            raise RuntimeError(f"probe {answer.request.url} → {answer.status_code}: {answer.text}")
    return 3


async def _account(
    client: httpx.AsyncClient,
    app: Process,
    site: Site,
    before: Scrape,
    answered: int,
    abandoned: int,
) -> Accounting:
    """Wait (bounded) for the outbox to empty into Kafka, then compare every count."""
    started = time.monotonic()
    backlog: int | None = None
    while time.monotonic() - started < 30:
        backlog = (await client.get("/readyz")).json().get("outbox_backlog")
        if backlog == 0:
            break
        await asyncio.sleep(0.2)
    drained = time.monotonic() - started
    delta = (await scrape(client, app.metrics_url)).minus(before)
    requests = "figachechnaya_http_requests_total"
    created = delta.total(requests, method="POST", route="/api/v2/figalizations", status="201")
    created += delta.total(requests, method="POST", route="/", status="200")
    return Accounting(
        answered_by_client=answered,
        abandoned_bound=abandoned,
        created_by_server=round(created),
        stored_rows=await site.scalar("SELECT count(*) FROM figalization"),
        counter=int((await client.get("/api/v2/stats")).json()["total"]),
        not_stored=round(delta.total("figachechnaya_figalizations_total", stored="false")),
        outbox_backlog=backlog,
        drain_seconds=drained,
    )


def wrong_statuses(delta: Scrape) -> dict[str, float]:
    """Answers that must not happen under this load: any 5xx, or a refused figalization/poll."""
    wrong = {}
    for labels, count in delta.series("figachechnaya_http_requests_total").items():
        found = dict(labels)
        status, route, method = found.get("status", ""), found.get("route", ""), found["method"]
        expected = {
            ("POST", "/api/v2/figalizations"): {"201"},
            ("POST", "/"): {"200"},
            ("GET", "/fragments/hint"): {"200", "204"},
            ("GET", "/fragments/total"): {"200", "204"},
        }.get((method, route))
        bad = status.startswith("5") or (expected is not None and status not in expected)
        if bad and count > 0:
            wrong[f"{method} {route} {status}"] = count
    return wrong
