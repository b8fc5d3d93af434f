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
from collections.abc import Awaitable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx

from app.jobs.relay import HANDOFF_GRACE_SECONDS
from bench.cpu import cpu_during, us_per
from bench.load import Request, Wrk, WrkResult
from bench.phrases import PHRASES
from bench.polls import Polls, measure_polls
from bench.prometheus import Scrape, scrape
from bench.stack import Process, Site, Stack

CONNECTIONS = (16, 64, 256)
CPU_CONNECTIONS = 64  # the interleaved hello / form / API POST slices of the CPU and form targets
CPU_SLICES = 15
SLICE_SECONDS = 1.0  # wrk's shortest run
WARMUP_SECONDS = 1.0
RUN_SECONDS = 5.0
SCHEMES = ("figa", "khren")
_CSRF_INPUT = re.compile(r'<input[^>]*name="_csrf_token"[^>]*>')
_VALUE = re.compile(r'value="([^"]*)"')


@dataclass
class Series:
    """One route measured at each connection count, with the server's CPU time of each run."""

    label: str
    runs: dict[int, WrkResult] = field(default_factory=dict)
    cpu_seconds: dict[int, float] = field(default_factory=dict)  # the server process's

    def cpu_us(self, connections: int) -> float:
        """Server CPU per request answered (microseconds)."""
        return us_per(self.cpu_seconds[connections], self.runs[connections].requests)


@dataclass
class Slice:
    """One slice: the ceiling's hello, the htmx form POST and the API POST, a second each at
    the same connection count, one after the other: hello and API are the pair the CPU
    target compares (the servers' CPU, not the shared cores' rate), form and API the pair
    the form target compares."""

    hello: WrkResult
    hello_cpu_seconds: float
    post: WrkResult
    post_cpu_seconds: float  # the app's, during the API run
    services_cpu_seconds: dict[str, float]  # PostgreSQL's and the broker's during that run
    transactions: int  # group commit batches written during that run
    rows: int  # figalizations those batches stored
    form: WrkResult
    form_cpu_seconds: float  # the app's

    @property
    def form_share(self) -> float:
        return self.form.requests_per_second / self.post.requests_per_second

    @property
    def hello_cpu_us(self) -> float:
        return us_per(self.hello_cpu_seconds, self.hello.requests)

    @property
    def post_cpu_us(self) -> float:
        """App CPU per stored figalization (every 2xx is stored: `Accounting` proves it)."""
        return us_per(self.post_cpu_seconds, self.post.answered_2xx)

    @property
    def ratio(self) -> float:
        return self.post_cpu_us / self.hello_cpu_us


@dataclass
class CpuSlices:
    """Interleaved slices; the ratio is of the sums (each slice weighs by its requests)."""

    slices: list[Slice]
    warmup_answered: int = 0  # the POST warm-ups' 2xx: stored too, so counted by `Accounting`

    @property
    def answered(self) -> int:
        return self.warmup_answered + sum(
            r.post.answered_2xx + r.form.answered_2xx for r in self.slices
        )

    @property
    def hello_cpu_us(self) -> float:
        return us_per(
            sum(r.hello_cpu_seconds for r in self.slices),
            sum(r.hello.requests for r in self.slices),
        )

    @property
    def post_cpu_us(self) -> float:
        return us_per(
            sum(r.post_cpu_seconds for r in self.slices),
            sum(r.post.answered_2xx for r in self.slices),
        )

    @property
    def ratio(self) -> float:
        return self.post_cpu_us / self.hello_cpu_us

    @property
    def hello_rate(self) -> float:
        return sum(r.hello.requests_per_second for r in self.slices) / len(self.slices)

    @property
    def post_rate(self) -> float:
        return sum(r.post.requests_per_second for r in self.slices) / len(self.slices)

    @property
    def form_rate(self) -> float:
        return sum(r.form.requests_per_second for r in self.slices) / len(self.slices)

    @property
    def throughput_ratio(self) -> float:
        return self.post_rate / self.hello_rate

    def thirds(self) -> list[CpuSlices]:
        """The slices in three consecutive groups, for the report: one slice is a second."""
        size = -(-len(self.slices) // 3)
        return [CpuSlices(self.slices[i : i + size]) for i in range(0, len(self.slices), size)]

    @property
    def form_share(self) -> float:
        """The htmx form's requests/s ÷ the API's, of the sums: a second each, side by side,
        fifteen times over, so a moment the shared machine was slow weighs a fifteenth."""
        return self.form_rate / self.post_rate

    @property
    def form_cpu_us(self) -> float:
        return us_per(
            sum(r.form_cpu_seconds for r in self.slices),
            sum(r.form.answered_2xx for r in self.slices),
        )

    def service_cpu_us(self, service: str) -> float | None:
        """A server's CPU per stored figalization (None when it was not ours to count)."""
        if not all(service in r.services_cpu_seconds for r in self.slices):
            return None
        return us_per(
            sum(r.services_cpu_seconds[service] for r in self.slices),
            sum(r.post.answered_2xx for r in self.slices),
        )

    @property
    def rows_per_transaction(self) -> float:
        return sum(r.rows for r in self.slices) / max(1, sum(r.transactions for r in self.slices))


@dataclass
class Accounting:
    """Every figalization answered 2xx is stored, counted, and its job published."""

    answered_by_client: int  # 2xx responses wrk and our probes saw
    abandoned_bound: int  # requests wrk left in flight when a run ended (≤ its connections)
    created_by_server: int  # 201 (API) and 200 (form) the server sent
    stored_rows: int
    counter: int  # /api/v2/stats
    not_stored: int  # figalizations answered while the database was down
    outbox_backlog: int  # rows left when the accounting stopped waiting
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
    cpu: CpuSlices
    table_bytes: int  # the figalization table with its indexes and TOAST, after the runs


async def measure_ceiling(hello: Process, base_url: str) -> Series:
    wrk = Wrk(base_url)
    series = Series("hello (ceiling)")
    for connections in CONNECTIONS:
        await wrk.run("/", connections=connections, seconds=WARMUP_SECONDS)
        series.runs[connections], cpu = await cpu_during(
            {"hello": hello.cpu_seconds},
            wrk.run("/", connections=connections, seconds=RUN_SECONDS),
        )
        series.cpu_seconds[connections] = cpu["hello"]
    return series


async def measure_web(
    stack: Stack, app: Process, base_url: str, site: Site, hello: Process, hello_url: str
) -> WebResults:
    """The figalization series, the interleaved CPU slices against the (still running)
    ceiling, the accounting of every figalization, then the polls."""
    wrk = Wrk(base_url)
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        before = await scrape(client, app.metrics_url)
        cookie, token = await _csrf(client)
        answered = await _probe(client, cookie, token)
        plans = _plans(cookie, token)
        (api, form_htmx, form_page), answered_by_wrk, abandoned = await _measure_figalizations(
            wrk, app, plans
        )
        cpu = await _measure_cpu_slices(
            client, stack, site, app, wrk, hello, Wrk(hello_url), plans[0], plans[1]
        )
        answered_by_wrk += cpu.answered
        abandoned += CPU_CONNECTIONS * (2 + 2 * len(cpu.slices))  # warm-ups and measured runs
        accounting = await _account(
            client, app, site, before, answered + answered_by_wrk, abandoned
        )
        table_bytes = await site.scalar("SELECT pg_total_relation_size('figalization')")
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
        cpu=cpu,
        table_bytes=table_bytes,
    )


Plan = tuple[str, list[Request], list[str]]  # label, requests cycled, headers
_BATCH = "figachechnaya_group_commit_batch_size"


async def _published(site: Site, *, within: float = 20.0) -> tuple[int, float]:
    """Until the outbox is empty (every job of the runs so far published), at most `within`
    seconds; return the rows left then (0: all published) and the seconds waited. Counted
    in the table, not read from /readyz, whose backlog the relay measures once a second."""
    started = time.monotonic()
    while True:
        backlog = await site.scalar("SELECT count(*) FROM image_job_outbox")
        waited = time.monotonic() - started
        if not backlog or waited >= within:
            return backlog, waited
        await asyncio.sleep(0.05)


async def _measure_cpu_slices(
    client: httpx.AsyncClient,
    stack: Stack,
    site: Site,
    app: Process,
    wrk: Wrk,
    hello: Process,
    hello_wrk: Wrk,
    api: Plan,
    form: Plan,
) -> CpuSlices:
    """Hello, then the form POST and the API POST, a second each at 64 connections, fifteen
    times over after one warm-up of each: the machine is shared and its speed drifts within
    seconds (the same hello cost 66 µs and 125 µs a request in consecutive seconds), so the
    runs that are compared take turns every second, and whatever else runs slows all three
    alike. Three 5 s rounds had the CPU ratio move 1.26–1.92 from one round to the next.
    Form and API swap places every slice: the POST run that follows another pays for what
    the first left behind (its publishing, PostgreSQL's cleaning up), and neither may have
    that place for good. Each run's CPU is the app's during the run: what one run leaves
    to the next (its last jobs' publishing, its requests in flight at wrk's stop) measured
    ~1 µs a request, and each run inherits as much from the one before."""

    def run(target: Wrk, plan: Plan | None, seconds: float = SLICE_SECONDS) -> Awaitable[WrkResult]:
        if plan is None:
            return target.run("/", connections=CPU_CONNECTIONS, seconds=seconds)
        _, requests, headers = plan
        return target.run(
            connections=CPU_CONNECTIONS, seconds=seconds, requests=requests, headers=headers
        )

    warmup_answered = 0
    await run(hello_wrk, None, WARMUP_SECONDS)
    for plan in (form, api):
        warmup_answered += (await run(wrk, plan, WARMUP_SECONDS)).answered_2xx
    await _published(site)  # the series' and the warm-ups' jobs are not the slices'

    async def form_run() -> tuple[WrkResult, float]:
        result, cpu = await cpu_during({"app": app.cpu_seconds}, run(wrk, form))
        return result, cpu["app"]

    async def api_run() -> tuple[WrkResult, float, dict[str, float], Scrape]:
        """The run, the app's CPU, the servers' CPU and the app's metrics during it."""
        before = await scrape(client, app.metrics_url)  # its own CPU is not the run's
        services_before = stack.service_cpu_seconds()
        result, cpu = await cpu_during({"app": app.cpu_seconds}, run(wrk, api))
        services_after = stack.service_cpu_seconds()
        delta = (await scrape(client, app.metrics_url)).minus(before)
        services = {
            name: services_after[name] - services_before[name]
            for name in services_before.keys() & services_after.keys()
        }
        return result, cpu["app"], services, delta

    slices = []
    for number in range(CPU_SLICES):
        hello_run, hello_cpu = await cpu_during({"hello": hello.cpu_seconds}, run(hello_wrk, None))
        if number % 2 == 0:
            form_result, form_cpu = await form_run()
            post, post_cpu, services, delta = await api_run()
        else:
            post, post_cpu, services, delta = await api_run()
            form_result, form_cpu = await form_run()
        slices.append(
            Slice(
                hello=hello_run,
                hello_cpu_seconds=hello_cpu["hello"],
                post=post,
                post_cpu_seconds=post_cpu,
                services_cpu_seconds=services,
                transactions=round(delta.total(f"{_BATCH}_count")),
                rows=round(delta.total(f"{_BATCH}_sum")),
                form=form_result,
                form_cpu_seconds=form_cpu,
            )
        )
    await _published(site)  # the slices' jobs are out before the accounting counts them
    return CpuSlices(slices, warmup_answered)


def _plans(cookie: str, token: str) -> list[Plan]:
    """API, form with htmx, form without: what each one posts."""
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
    return [
        ("POST /api/v2/figalizations", api, ["Content-Type: application/json"]),
        ("POST / (form, htmx)", form, [*form_headers, "HX-Request: true"]),
        ("POST / (form, full page)", form, form_headers),
    ]


async def _measure_figalizations(
    wrk: Wrk, app: Process, plans: list[Plan]
) -> tuple[list[Series], int, int]:
    """Each plan at each connection count; returns the series, 2xx seen, and the in-flight
    bound. The app's CPU is counted over the measured run only, not the warm-up. The plans
    take turns at each connection count, so the form's run at 64 comes seconds after the
    API's, not half a minute: the ratio of the two then sees the same moments of the machine."""
    measured = [Series(label) for label, _, _ in plans]
    answered, abandoned = 0, 0
    for connections in CONNECTIONS:
        for series, (_, requests, headers) in zip(measured, plans, strict=True):
            warmup = await wrk.run(
                connections=connections, seconds=WARMUP_SECONDS, requests=requests, headers=headers
            )
            result, cpu = await cpu_during(
                {"app": app.cpu_seconds},
                wrk.run(
                    connections=connections, seconds=RUN_SECONDS, requests=requests, headers=headers
                ),
            )
            answered += warmup.answered_2xx + result.answered_2xx
            abandoned += 2 * connections
            series.runs[connections] = result
            series.cpu_seconds[connections] = cpu["app"]
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
    """Wait (bounded) for the outbox to empty into Kafka, then compare every count. Jobs the
    relay could not hold in memory wait for its sweep, which leaves a row alone for the
    hand-off grace after it was handed over: the bound is that grace and 30 s more."""
    backlog, drained = await _published(site, within=HANDOFF_GRACE_SECONDS + 30)
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
