"""`python -m bench soak`: a bounded load run against the distributed mode (issue 5, item 6).

Several hundred simulated browsers (`browser.py`) use one app process with
one worker (nice 10) for `--seconds`, mixing figalizations through the API
and both forms with the polls a page makes. Afterwards, with the backlog
drained (bounded), it must hold that: no answer was a 5xx and no request
failed; the figalizations answered as stored are exactly the rows in the
database (id by id), the counter, the pictures `ready` and the PNG objects;
and the memory of the app and the worker stayed flat. Prints a summary,
writes `docs/soak.md`, exits 1 when anything does not hold.
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.request
from dataclasses import dataclass, field
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from pathlib import Path

import httpx

from bench.browser import Browser, Tally
from bench.pictures import wait_drained
from bench.results import Machine
from bench.stack import Process, Site, running_stack

MIB = 2**20
FIGALIZATIONS_PER_SECOND = 20.0  # below what one worker draws on a small machine
WARM_SHARE = 0.25  # memory is "at start" once this share of the run is behind it
RSS_GROWTH, RSS_SLACK = 1.25, 16 * MIB  # flat: end ≤ warm × 1.25 + 16 MiB
DRAIN_LIMIT_SECONDS = 180.0
SAMPLE_SECONDS = 5.0


@dataclass
class Memory:
    name: str
    cold: int = 0  # before any load
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, RSS)
    end: int = 0  # after the drain

    def warm(self, seconds: float) -> int:
        return next(rss for at, rss in self.samples if at >= WARM_SHARE * seconds)

    def flat(self, seconds: float) -> bool:
        return self.end <= self.warm(seconds) * RSS_GROWTH + RSS_SLACK


@dataclass
class SoakOutcome:
    seconds: float
    clients: int
    tally: Tally
    rows: set[str]
    counter: int
    statuses: dict[str, int]
    objects: int
    drain_seconds: float
    memory: list[Memory]

    @property
    def problems(self) -> list[str]:
        found, accepted = [], len(self.tally.accepted_ids)
        if self.tally.server_errors:
            found.append(f"{self.tally.server_errors} answers were 5xx")
        found += [f"{what}: {n}×" for what, n in self.tally.failures.items()]
        if self.rows != self.tally.accepted_ids:
            missing = len(self.tally.accepted_ids - self.rows)
            extra = len(self.rows - self.tally.accepted_ids)
            found.append(f"rows differ from accepted: {missing} missing, {extra} unexpected")
        if not accepted == self.counter == self.statuses.get("ready", 0) == self.objects:
            found.append(
                f"accepted {accepted}, counter {self.counter}, "
                f"pictures {self.statuses}, objects {self.objects}: must be equal"
            )
        found += [
            f"{m.name} memory grew: {m.warm(self.seconds) / MIB:.0f} → {m.end / MIB:.0f} MiB"
            for m in self.memory
            if not m.flat(self.seconds)
        ]
        return found


async def run_soak(docs: Path, *, seconds: float, clients: int) -> int:
    started = time.monotonic()
    with running_stack("soak") as stack:
        stack.start()
        site = await stack.new_site("soak")
        app, base_url = stack.start_app(site)
        [(worker, _)] = stack.start_workers(site, 1)
        print(f"soak: {clients} browsers for {seconds:g} s against {base_url}", flush=True)
        outcome = await _soak(site, base_url, app, worker, seconds=seconds, clients=clients)
    summary = summarise(outcome, time.monotonic() - started)
    print(summary)
    write(docs / "soak.md", summary)
    return 1 if outcome.problems else 0


def write(path: Path, summary: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(summary + "\n", encoding="utf-8")


async def _soak(
    site: Site, base_url: str, app: Process, worker: Process, *, seconds: float, clients: int
) -> SoakOutcome:
    memory = [Memory("app", cold=app.rss_bytes()), Memory("worker", cold=worker.rss_bytes())]
    tally = Tally()
    rng = random.Random(7)  # noqa: S311 - a reproducible load mix, not a secret
    no_cookies = CookieJar(policy=_KeepNoCookies())  # as it is: httpx.Cookies() would copy it
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=10.0, limits=limits, cookies=no_cookies
    ) as client:
        load_started = time.monotonic()
        until = load_started + seconds
        browsers = [Browser(client, tally, random.Random(rng.random())) for _ in range(clients)]  # noqa: S311
        chance = FIGALIZATIONS_PER_SECOND / clients
        sampler = asyncio.create_task(_sample(memory, (app, worker), load_started))
        await asyncio.gather(*(b.run(until=until, figalize_chance=chance) for b in browsers))
        sampler.cancel()
        drain_started = time.monotonic()
        await _outbox_empty(client)
        await wait_drained(site, within=DRAIN_LIMIT_SECONDS)
        drained = time.monotonic() - drain_started
        counter = int((await client.get("/api/v2/stats")).json()["total"])
    async with site.database() as db:
        rows = {row[0] for row in await db.fetch("SELECT id FROM figalization")}
    for entry, process in zip(memory, (app, worker), strict=True):
        entry.end = process.rss_bytes()
    return SoakOutcome(
        seconds=seconds,
        clients=clients,
        tally=tally,
        rows=rows,
        counter=counter,
        statuses=await site.image_statuses(),
        objects=site.stored_pictures(),
        drain_seconds=drained,
        memory=memory,
    )


class _KeepNoCookies(DefaultCookiePolicy):
    """One connection pool for all browsers, but each browser sends its own CSRF cookie."""

    def set_ok(self, cookie: Cookie, request: urllib.request.Request) -> bool:
        return False


async def _sample(memory: list[Memory], processes: tuple[Process, ...], started: float) -> None:
    while True:
        at = time.monotonic() - started
        for entry, process in zip(memory, processes, strict=True):
            entry.samples.append((at, process.rss_bytes()))
        await asyncio.sleep(SAMPLE_SECONDS)


async def _outbox_empty(client: httpx.AsyncClient) -> None:
    for _ in range(300):
        if (await client.get("/readyz")).json().get("outbox_backlog") == 0:
            return
        await asyncio.sleep(0.1)


def summarise(outcome: SoakOutcome, total_seconds: float) -> str:
    tally, machine = outcome.tally, Machine.describe()
    problems = outcome.problems
    lines = [
        "# Soak",
        "",
        f"Generated by `make soak` (`python -m bench soak`) on {machine.date}, "
        f"{machine.cores} cores, Python {machine.python}: "
        f"**{'passed' if not problems else 'FAILED'}** in {total_seconds:.0f} s.",
        "",
        f"- Load: {outcome.clients} simulated browsers for {outcome.seconds:g} s on 127.0.0.1, "
        f"one app process and one worker (nice 10); {tally.requests:,} requests "
        f"({tally.requests / outcome.seconds:,.0f}/s).",
        f"- Figalizations answered as stored: {len(tally.accepted_ids):,} "
        f"({', '.join(f'{kind} {n:,}' for kind, n in sorted(tally.by_kind.items()))}); "
        f"rows {len(outcome.rows):,}; counter {outcome.counter:,}; pictures {outcome.statuses}; "
        f"PNG objects {outcome.objects:,}. Backlog drained {outcome.drain_seconds:.1f} s "
        "after the load stopped.",
        f"- Polls: {dict(sorted(tally.polls.items()))} (status: count); picture polls "
        f"{dict(sorted(tally.picture_polls.items()))}; 5xx: {tally.server_errors}; "
        f"failed requests: {sum(tally.failures.values())}.",
        "",
        "| process | RSS before load | RSS at "
        f"{WARM_SHARE:.0%} of the run | RSS at the end | flat? |",
        "|---|---:|---:|---:|---|",
    ]
    for entry in outcome.memory:
        lines.append(
            f"| {entry.name} | {entry.cold / MIB:.0f} MiB | "
            f"{entry.warm(outcome.seconds) / MIB:.0f} MiB | {entry.end / MIB:.0f} MiB | "
            f"{'yes' if entry.flat(outcome.seconds) else '**no**'} |"
        )
    lines += [
        "",
        f"Flat means end ≤ {RSS_GROWTH:g} × the RSS at {WARM_SHARE:.0%} of the run + "
        f"{RSS_SLACK // MIB} MiB: measured from a warm process (pools, fonts and caches "
        "filled), so that what remains is growth with time, which is what a leak looks like. "
        "Samples every 5 s (MiB): "
        + "; ".join(
            f"{m.name} " + " ".join(f"{rss / MIB:.0f}" for _, rss in m.samples)
            for m in outcome.memory
        )
        + ".",
    ]
    if problems:
        lines += ["", "Problems:", *(f"- {problem}" for problem in problems)]
    return "\n".join(lines)
