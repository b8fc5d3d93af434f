"""tests/parallel.py's scheduler, driven as xdist drives it: two workers, one test a tick.

What a parallel run of the suite relies on: every test runs once; a module's
tests (and the two rehearsals, which share fixed ports) run in one process, in
order; a browser test never runs while a fault test does; the fault tests start
first; and a worker that had to wait is given work again, so the run ends.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from types import SimpleNamespace

from tests.parallel import APART, FIRST, SHARED, GroupedScheduling, side_of, unit_of

ROOT = Path(__file__).resolve().parents[2]

MODULES = {
    "tests/browser/test_lighthouse.py": 3,
    "tests/browser/test_live_updates.py": 2,
    "tests/deploy/test_compose_rehearsal.py": 1,
    "tests/deploy/test_k8s_rehearsal.py": 2,
    "tests/deploy/test_yaml.py": 6,
    "tests/faults/test_app_links.py": 4,
    "tests/faults/test_worker_links.py": 7,
    "tests/integration/test_graceful_stop.py": 3,
    "tests/integration/test_pictures.py": 5,
    "tests/unit/test_rules.py": 20,
}
COLLECTION = [f"{module}::test_{n}" for module, count in MODULES.items() for n in range(count)]


class Worker:
    """What the scheduler sees of an xdist worker; it runs what it is sent, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.gateway = SimpleNamespace(id=name)
        self.queue: deque[int] = deque()
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.queue.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


Run = tuple[list[tuple[str, ...]], dict[str, list[str]], list[list[str]], GroupedScheduling]


def run_suite(collection: list[str] = COLLECTION) -> Run:
    """The whole collection through the scheduler: per tick what the workers ran; per
    worker what it ran; per tick a worker waited, the units it left waiting."""
    config = SimpleNamespace(
        getvalue={"tx": ["2*popen"]}.__getitem__,
        option=SimpleNamespace(loadscopereorder=False),
    )
    scheduler = GroupedScheduling(config)  # type: ignore[arg-type]
    workers = [Worker("gw0"), Worker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)  # type: ignore[arg-type]
        scheduler.add_node_collection(worker, collection)  # type: ignore[arg-type]
    scheduler.schedule()
    ticks: list[tuple[str, ...]] = []
    ran: dict[str, list[str]] = {worker.name: [] for worker in workers}
    waited: list[list[str]] = []
    while any(worker.queue for worker in workers):
        assert len(ticks) < 10 * len(collection), "the run never ends"
        if not all(worker.queue for worker in workers):
            waited.append(list(scheduler.workqueue))
        running = [(worker, worker.queue.popleft()) for worker in workers if worker.queue]
        ticks.append(tuple(collection[index] for _, index in running))
        for worker, index in running:
            ran[worker.name].append(collection[index])
            scheduler.mark_test_complete(worker, index)  # type: ignore[arg-type]
    return ticks, ran, waited, scheduler


def test_every_test_runs_once_and_the_run_ends() -> None:
    _, ran, _, scheduler = run_suite()
    assert sorted(ran["gw0"] + ran["gw1"]) == sorted(COLLECTION)
    assert scheduler.tests_finished
    assert ran["gw0"], "both workers work"
    assert ran["gw1"], "both workers work"


def test_a_module_and_the_two_rehearsals_run_in_one_worker_in_order() -> None:
    _, ran, _, _ = run_suite()
    for module in MODULES:
        (worker,) = {name for name, tests in ran.items() for t in tests if t.startswith(module)}
        assert [t for t in ran[worker] if t.startswith(module)] == [
            t for t in COLLECTION if t.startswith(module)
        ]
    assert unit_of("tests/deploy/test_k8s_rehearsal.py::test_0[dev]") == unit_of(
        "tests/deploy/test_compose_rehearsal.py::test_0"
    )
    rehearsals = {name for name, tests in ran.items() for t in tests if "rehearsal" in t}
    assert len(rehearsals) == 1


def test_a_browser_test_never_runs_beside_a_fault_test() -> None:
    ticks, _, _, _ = run_suite()
    assert side_of(unit_of("tests/browser/test_live_updates.py::t")) is not None
    for tick in ticks:
        sides = {side_of(unit_of(test)) for test in tick} - {None}
        assert len(sides) <= 1, tick


def test_the_fault_tests_start_first_and_the_unit_tests_come_last() -> None:
    ticks, _, _, _ = run_suite()
    assert {test.split("::")[0] for test in ticks[0]} == {
        "tests/faults/test_app_links.py",
        "tests/faults/test_worker_links.py",
    }
    assert all("tests/unit/" in test for test in ticks[-1])


def test_a_worker_waits_only_while_every_unit_left_is_kept_apart_from_the_other_s() -> None:
    _, _, waited, _ = run_suite()
    for left in waited:
        assert all(side_of(unit) is not None for unit in left), left


def test_a_worker_that_waited_is_given_work_as_soon_as_it_may() -> None:
    """gw1 waits while gw0 runs the fault tests; once gw0 is on a browser module, the
    other browser module goes to gw1 instead of waiting for gw0 as well."""
    collection = [
        *(f"tests/faults/test_worker_links.py::test_{n}" for n in range(6)),
        "tests/unit/test_rules.py::test_0",
        *(f"tests/browser/test_lighthouse.py::test_{n}" for n in range(6)),
        *(f"tests/browser/test_live_updates.py::test_{n}" for n in range(6)),
    ]
    ticks, ran, _, _ = run_suite(collection)
    assert {t.split("::")[0] for t in ran["gw1"]} >= {"tests/browser/test_live_updates.py"}
    assert len(ticks) <= 6 + 6 + 1, ticks


def test_every_module_and_folder_the_plan_names_exists() -> None:
    """A renamed module would silently leave its unit, side or place in the order."""
    named = [*(m for members in SHARED.values() for m in members), *(e for s in APART for e in s)]
    named += [entry for entry in FIRST if entry not in SHARED]
    assert [entry for entry in named if not (ROOT / entry).exists()] == []
