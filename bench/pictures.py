"""Pictures: render time, the way from request to stored image, and jobs/s per worker.

- Render: `workers.render.render_card` timed in this process, call by call; and
  against a naive Pillow card (the same layout drawn in RGB, saved with Pillow's
  default PNG settings), the two alternating call by call so that whatever else
  runs on the machine slows both alike. `python -m bench.pictures` prints that
  ratio alone.
- Steady: one worker (nice 10) beside the app, wrk sending 50 figalizations a
  second for 20 s; the worker's own histograms (render, upload, end to end)
  are compared before and after, and every figalization of the run must end
  `ready` with its object in the bucket (the drain is waited for, bounded).
- Scaling: with the workers stopped, 800 jobs are queued; then 1, 2 or 4
  workers start together, each held to one core as its pod is (`bench.stack`),
  and the rate and the workers' CPU per picture are read between 10% and 90%
  done, so process start and group join are not counted. The steps go 1, 2, 1,
  2, 4, 2, 1, 2, 1; the renderer is timed alone in-process around each, for the
  report beside the workers' own drawing time.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from app.catalogue import load_catalogue
from app.domain.figalize import figalize
from bench.load import Request, Wrk, WrkResult
from bench.phrases import PHRASES
from bench.prometheus import Scrape, quantile, scrape, share_at_most
from bench.stack import Process, Site, Stack
from workers.layout import layout_card
from workers.render import paint_rgb, render_card

STEADY_SHARE = 0.5  # of one worker's measured capacity: the end-to-end target's load (issue 13)
STEADY_SECONDS = 20.0
E2E_BOUND_SECONDS = 1.0
DRAIN_LIMIT_SECONDS = 120.0
# One and two workers four times each, 4 once, in a mirror order: a drift of the machine over
# the ~80 s moves the counts alike, each ratio is of means over the same stretch of time, and
# a second in which the shared machine slows by a fifth (it does) weighs a quarter of a mean.
SCALING_WORKERS = (1, 2, 1, 2, 4, 2, 1, 2, 1)
SCALING_JOBS = 800  # at ~200 pictures/s a worker, a 10–90% window of ~3 s
WINDOW = (0.1, 0.9)  # the shares of the jobs done between which a step is measured


@dataclass(frozen=True, slots=True)
class Spread:
    p50: float
    p99: float
    mean: float  # where the rate matters: n calls take n × mean, not n × p50


@dataclass
class Steady:
    rate: int  # figalizations/s offered: connections, each one request a second
    load: WrkResult
    end_to_end_seconds: Spread  # estimated from the worker's histogram
    end_to_end_share_within_bound: float  # exact: the 1 s bucket
    render_ms: Spread  # the worker's histogram (includes the hop to its render thread)
    upload_ms: Spread
    drain_seconds: float  # after the load stopped, until nothing was pending
    statuses: dict[str, int]
    rows: int  # of the whole picture site (the scaling runs' included)
    counter: int
    objects: int
    pictures: int  # drawn during this run (warm-up and drain included)
    app_rss_bytes: int
    worker_rss_bytes: int

    @property
    def problems(self) -> list[str]:
        found = []
        if set(self.statuses) != {"ready"}:
            found.append(f"pictures not all ready after the drain: {self.statuses}")
        if not self.rows == self.counter == self.objects:
            found.append(f"rows {self.rows}, counter {self.counter}, objects {self.objects}")
        if not self.load.clean:
            found.append(f"steady load had errors: {self.load}")
        return found


@dataclass(frozen=True, slots=True)
class Scaling:
    workers: int
    jobs: int
    jobs_per_second: float
    seconds_to_all: float  # from spawning the workers to the last picture
    cpu_ms_per_picture: float  # the workers' CPU over the same 10–90% window, per picture
    drawing_ms: float  # the workers' own mean drawing time over that window (their histogram)
    alone_ms: tuple[float, float]  # the renderer's mean in-process just before and just after

    @property
    def per_worker(self) -> float:
        return self.jobs_per_second / self.workers

    @property
    def drawing_share(self) -> float:
        """The share of the workers' time spent drawing over the window: their rate ÷ the
        rate their renderer drew at in the same seconds (1 ÷ its mean there)."""
        return self.per_worker * self.drawing_ms / 1000

    @property
    def alone_rate(self) -> float:
        """Cards/s of the renderer alone in the bench process, around the step."""
        return 1000 / statistics.mean(self.alone_ms)


def measure_render(rounds: int = 2) -> Spread:
    """Milliseconds per `render_card` call over the phrase list (after 3 warm-up calls)."""
    scheme = load_catalogue("").default
    cards = [(phrase, figalize(phrase, scheme)) for phrase in PHRASES]
    for phrase, result in cards[:3]:
        render_card(phrase=phrase, result=result, scheme_name=scheme.name)
    timings = []
    for _ in range(rounds):
        for phrase, result in cards:
            started = time.perf_counter()
            render_card(phrase=phrase, result=result, scheme_name=scheme.name)
            timings.append((time.perf_counter() - started) * 1000)
    return spread(timings)


@dataclass(frozen=True, slots=True)
class RenderRatio:
    """Medians of our card and of the naive Pillow card, measured interleaved."""

    ours_ms: float
    naive_ms: float
    calls: int  # of each

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.naive_ms


def naive_card(*, phrase: str, result: str, scheme_name: str) -> bytes:
    """What the card costs done the obvious way: the same layout, fonts and texts drawn on an
    RGB image and saved with `Image.save(buffer, "PNG")`, no options."""
    image = paint_rgb(layout_card(phrase=phrase, result=result, scheme_name=scheme_name))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def measure_render_ratio(rounds: int = 3) -> RenderRatio:
    """Naive card and ours for each phrase in turn, `rounds` times over the phrase list (after
    a warm-up of each), which one goes first alternating: both see the same moments of a noisy
    machine, and neither gets the other's warm caches."""
    scheme = load_catalogue("").default
    cards = [(phrase, figalize(phrase, scheme)) for phrase in PHRASES]
    makers = (naive_card, render_card)
    for make in makers:
        for phrase, result in cards[:3]:
            make(phrase=phrase, result=result, scheme_name=scheme.name)
    timings: dict[object, list[float]] = {make: [] for make in makers}
    for number, (phrase, result) in enumerate(cards * rounds):
        for make in makers if number % 2 else makers[::-1]:  # neither always goes first
            started = time.perf_counter()
            make(phrase=phrase, result=result, scheme_name=scheme.name)
            timings[make].append((time.perf_counter() - started) * 1000)
    naive, ours = (statistics.median(timings[make]) for make in makers)
    return RenderRatio(ours_ms=ours, naive_ms=naive, calls=rounds * len(cards))


def spread(values: list[float]) -> Spread:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return Spread(p50=statistics.median(values), p99=cuts[98], mean=statistics.mean(values))


def api_requests() -> list[Request]:
    return [
        Request("POST", "/api/v2/figalizations", json.dumps({"phrase": p}, ensure_ascii=False))
        for p in PHRASES
    ]


async def measure_steady(
    client: httpx.AsyncClient,
    site: Site,
    app: Process,
    worker: Process,
    metrics_url: str,
    *,
    rate: int,
) -> Steady:
    """The app and one worker are running; warm up, load at `rate`/s, drain, compare."""
    rows_before = await site.scalar("SELECT count(*) FROM figalization")
    for phrase in PHRASES[:5]:  # the worker joins its group and loads its fonts
        (await client.post("/api/v2/figalizations", json={"phrase": phrase})).raise_for_status()
    await wait_drained(site, within=60.0)
    before = await scrape(client, metrics_url)
    load = await Wrk(str(client.base_url)).run(
        connections=rate,
        seconds=STEADY_SECONDS,
        requests=api_requests(),
        headers=["Content-Type: application/json"],
        pace_ms=1000,
    )
    drain = await wait_drained(site, within=DRAIN_LIMIT_SECONDS)
    delta = (await scrape(client, metrics_url)).minus(before)
    end_to_end = delta.buckets("figachechnaya_image_end_to_end_seconds")
    rows = await site.scalar("SELECT count(*) FROM figalization")
    return Steady(
        rate=rate,
        load=load,
        end_to_end_seconds=_histogram_spread(delta, "figachechnaya_image_end_to_end_seconds", 1),
        end_to_end_share_within_bound=share_at_most(end_to_end, E2E_BOUND_SECONDS),
        render_ms=_histogram_spread(delta, "figachechnaya_image_render_seconds", 1000),
        upload_ms=_histogram_spread(delta, "figachechnaya_image_upload_seconds", 1000),
        drain_seconds=drain,
        statuses=await site.image_statuses(),
        rows=rows,
        counter=int((await client.get("/api/v2/stats")).json()["total"]),
        objects=site.stored_pictures(),
        pictures=rows - rows_before,
        app_rss_bytes=app.rss_bytes(),
        worker_rss_bytes=worker.rss_bytes(),
    )


def _histogram_spread(delta: Scrape, name: str, scale: float) -> Spread:
    buckets = delta.buckets(name)
    mean = delta.total(f"{name}_sum") / max(1.0, delta.total(f"{name}_count"))
    return Spread(
        p50=quantile(buckets, 0.5) * scale, p99=quantile(buckets, 0.99) * scale, mean=mean * scale
    )


async def wait_drained(site: Site, *, within: float) -> float:
    """Seconds until no picture is pending (bounded: fails after `within`)."""
    started = time.monotonic()
    async with site.database() as db:
        while await db.fetchval("SELECT count(*) FROM figalization WHERE image_status = 'pending'"):
            if time.monotonic() - started > within:
                raise TimeoutError(f"pictures still pending after {within:.0f}s")
            await asyncio.sleep(0.1)
    return time.monotonic() - started


async def measure_scaling(client: httpx.AsyncClient, stack: Stack, site: Site) -> list[Scaling]:
    """Jobs/s with 1, 2 and 4 workers on a backlog (no worker may be running when this
    starts); one worker's rate is also what the steady run's load is a share of. Around each
    step the renderer is timed alone in this process, for the report: on a shared machine
    whose speed moves by a fifth from one second to the next, that is a neighbour of the
    step, not its denominator. The step's own denominator is the workers' drawing time in
    the same window, from their histograms."""
    results = []
    for count in SCALING_WORKERS:
        before = measure_render().mean
        ready_before = await _ready(site)
        await _enqueue(client, SCALING_JOBS)
        started = time.monotonic()
        workers = stack.start_workers(site, count)
        processes = [process for process, _ in workers]
        try:
            samples, cpu = await _sample_ready(
                site,
                ready_before,
                SCALING_JOBS,
                cpu=functools.partial(_cpu_seconds, processes),
                drawing=functools.partial(_drawing, client, [url for _, url in workers]),
            )
        finally:
            for process in processes:
                stack.stop(process)
        results.append(
            Scaling(
                workers=count,
                jobs=SCALING_JOBS,
                jobs_per_second=steady_rate(samples.marks, SCALING_JOBS),
                seconds_to_all=samples.marks[-1][0] - started,
                cpu_ms_per_picture=window_cpu_ms(samples.marks, cpu, SCALING_JOBS),
                drawing_ms=samples.drawing_ms,
                alone_ms=(before, measure_render().mean),
            )
        )
    return results


async def _drawing(client: httpx.AsyncClient, metrics_urls: list[str]) -> tuple[float, float]:
    """(seconds drawing, cards drawn) so far, summed over the workers' histograms."""
    seconds = count = 0.0
    for url in metrics_urls:
        found = await scrape(client, url)
        seconds += found.total("figachechnaya_image_render_seconds_sum")
        count += found.total("figachechnaya_image_render_seconds_count")
    return seconds, count


def _cpu_seconds(processes: list[Process]) -> float:
    return sum(process.cpu_seconds() for process in processes)


async def _ready(site: Site) -> int:
    return await site.scalar("SELECT count(*) FROM figalization WHERE image_status = 'ready'")


async def _enqueue(client: httpx.AsyncClient, jobs: int) -> None:
    """`jobs` figalizations through the API, then wait until the outbox is in Kafka."""
    gate = asyncio.Semaphore(16)

    async def one(number: int) -> None:
        async with gate:
            answer = await client.post(
                "/api/v2/figalizations", json={"phrase": PHRASES[number % len(PHRASES)]}
            )
            answer.raise_for_status()

    await asyncio.gather(*(one(n) for n in range(jobs)))
    for _ in range(300):
        if (await client.get("/readyz")).json().get("outbox_backlog") == 0:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the outbox did not empty into Kafka within 30 s")


@dataclass
class ReadySamples:
    marks: list[tuple[float, int]]  # (monotonic time, pictures made), every 50 ms
    drawing_ms: float  # the workers' mean drawing time between the 10% and 90% marks


async def _sample_ready(
    site: Site,
    before: int,
    jobs: int,
    *,
    cpu: Callable[[], float] = lambda: 0.0,
    drawing: Callable[[], Awaitable[tuple[float, float]]] | None = None,
) -> tuple[ReadySamples, list[float]]:
    """(monotonic time, pictures made) every 50 ms until all `jobs` are ready (bounded), and
    beside each sample `cpu()` (the workers' CPU seconds so far); `drawing()` is read at the
    samples that open and close the 10–90% window."""
    samples: list[tuple[float, int]] = []
    cpus: list[float] = []
    drawn: list[tuple[float, float]] = []  # at the window's first and last sample
    deadline = time.monotonic() + DRAIN_LIMIT_SECONDS
    async with site.database() as db:
        while not samples or samples[-1][1] < jobs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {samples[-1][1]}/{jobs} pictures made in time")
            ready = await db.fetchval(
                "SELECT count(*) FROM figalization WHERE image_status = 'ready'"
            )
            samples.append((time.monotonic(), int(ready) - before))
            cpus.append(cpu())
            share = samples[-1][1] / jobs
            if drawing is not None and len(drawn) < 2 and share >= WINDOW[len(drawn)]:
                drawn.append(await drawing())
            await asyncio.sleep(0.05)
    drawing_ms = 0.0
    if len(drawn) == 2:
        (seconds_0, cards_0), (seconds_1, cards_1) = drawn
        drawing_ms = (seconds_1 - seconds_0) / max(1.0, cards_1 - cards_0) * 1000
    return ReadySamples(samples, drawing_ms), cpus


def steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Jobs/s between 10% and 90% of `total` done: start-up and the last stragglers excluded."""
    first, last = _window(samples, total)
    (start, start_done), (end, end_done) = samples[first], samples[last]
    if end <= start:
        raise ValueError("too few samples between 10% and 90%")
    return (end_done - start_done) / (end - start)


def window_cpu_ms(samples: list[tuple[float, int]], cpu: list[float], total: int) -> float:
    """CPU milliseconds per job over the same window as `steady_rate` (imports, fonts and
    the group join before it are not counted)."""
    first, last = _window(samples, total)
    made = samples[last][1] - samples[first][1]
    return (cpu[last] - cpu[first]) / max(1, made) * 1000


def _window(samples: list[tuple[float, int]], total: int) -> tuple[int, int]:
    first = next(i for i, (_, done) in enumerate(samples) if done >= WINDOW[0] * total)
    last = next(i for i, (_, done) in enumerate(samples) if done >= WINDOW[1] * total)
    return first, last


if __name__ == "__main__":
    measured = measure_render_ratio()
    print(
        f"card {measured.ours_ms:.2f} ms, naive Pillow card {measured.naive_ms:.2f} ms "
        f"(medians of {measured.calls} interleaved calls each): ratio {measured.ratio:.3f}"
    )
