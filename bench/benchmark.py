"""`python -m bench`: the whole benchmark of issue 7, top to bottom.

In order: the engine and the renderer alone (quiet machine), the servers,
the ceiling app, the web site (figalizations, hello/POST rounds for the CPU
per request, polls), the picture site (1, 2 and 4 workers on a backlog, then
one worker loaded at half the rate one worker made), the report and the
capacity model. Exits 1 when a
target is missed, naming it; every server it started is stopped, whatever
happens.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

from bench import capacity, report
from bench.cpu import cpu_during
from bench.engine import measure_engine
from bench.pictures import (
    STEADY_SHARE,
    measure_render,
    measure_render_ratio,
    measure_scaling,
    measure_steady,
)
from bench.results import BenchResults, Machine, evaluate
from bench.stack import running_stack
from bench.web import measure_ceiling, measure_web

_STARTED = time.monotonic()
BUSY_LOAD = 0.5  # a 1-minute load average above this means the numbers share the CPU


def say(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", flush=True)


async def run_benchmark(docs: Path) -> int:
    started = time.monotonic()
    machine = Machine.describe()
    say(f"machine: {machine.cpu}, {machine.cores} cores; engine and renderer in-process")
    if machine.load_average > BUSY_LOAD:
        say(f"warning: load average {machine.load_average:.2f}: something else runs here")
    engine = measure_engine()
    render = measure_render()
    render_ratio = measure_render_ratio()
    with running_stack("bench") as stack:
        say("starting PostgreSQL, Tansu, nginx as the object store")
        stack.start()
        say("ceiling: bare Litestar hello")
        hello, hello_url = stack.start_hello()
        ceiling = await measure_ceiling(hello, hello_url)
        say("web: figalizations (API, form ± htmx) at 16/64/256, hello/POST CPU rounds, polls")
        web_site = await stack.new_site("web")
        app, app_url = stack.start_app(web_site)
        web = await measure_web(stack, app, app_url, web_site, hello, hello_url)
        if web.accounting.problems:  # a lost figalization: the app's log says why
            stack.keep_logs()
            say(f"accounting: {'; '.join(web.accounting.problems)}; logs kept in {stack.workdir}")
        stack.stop(app)
        stack.stop(hello)
        say("pictures: 1, 2 and 4 workers on a backlog, then one worker at half its capacity")
        picture_site = await stack.new_site("pictures")
        app, app_url = stack.start_app(picture_site)
        async with httpx.AsyncClient(base_url=app_url, timeout=10.0) as client:
            scaling = await measure_scaling(client, stack, picture_site)
            rate = max(1, round(STEADY_SHARE * scaling[0].jobs_per_second))
            [(worker, metrics_url)] = stack.start_workers(picture_site, 1)
            steady, worker_cpu = await cpu_during(
                {"worker": worker.cpu_seconds},
                measure_steady(client, picture_site, app, worker, metrics_url, rate=rate),
            )
            stack.stop(worker)
    results = BenchResults(
        machine,
        ceiling,
        web,
        engine,
        render,
        render_ratio,
        steady,
        scaling,
        time.monotonic() - started,
        worker_cpu_seconds=worker_cpu["worker"],
    )
    targets = evaluate(results)
    markdown, picture = report.write(results, targets, docs)
    say(f"wrote {markdown} and {picture}")
    written = capacity.write(capacity.inputs_of(results), docs)
    say(f"wrote {' and '.join(str(path) for path in written)}")
    for target in targets:
        mark = "ok    " if target.met else "MISSED"
        print(f"  {mark} {target.name}: {target.measured} (required {target.required})")
    missed = [t for t in targets if not t.met]
    if missed:
        print(f"bench: {len(missed)} target(s) missed", file=sys.stderr)
        return 1
    return 0
