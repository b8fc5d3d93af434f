"""pytest plugin: which tests run together, apart and first when the suite runs in parallel.

The suite mostly waits (fault tests sitting out timeouts, servers starting,
polling intervals), so `pytest` runs it in two processes with pytest-xdist:
`-n 2 --dist loadfile` in pyproject.toml's addopts, with the scheduler below
instead of xdist's own for `loadfile`. A process takes a unit at a time and
runs it through in order:

- A unit is a test module, so a module's fixtures (a cluster of test hosts,
  Lighthouse's runs, a served stack) are made once, as in a serial run; modules
  in one of `SHARED` form one unit: the deployment rehearsals keep the
  manifests' fixed ports (8000, 9100, 9101), so they never run at once.
- Units of the two sides of `APART` never run at the same time: Chromium and
  Lighthouse keep both cores busy for seconds on end, and the fault tests hold
  answers to bounds of a second or two (a process that has only such units left
  waits for the other to finish its unit).
- The longest units go first (`FIRST`: the fault tests, the browsers, then by
  folder), so the many short unit tests fill the end of both processes evenly.

Session services (PostgreSQL, the broker, S3, the browser tests' server) start
once per process, on free ports and in directories of their own; the few steps
that change the machine itself take a lock (`tests.services.locks`).
`-n 0` runs the suite serially (e.g. for `--pdb`), in collection order.

(Not xdist's `loadgroup` with `xdist_group` marks: with pytest 9.2 it silently
stops grouping, pytest-dev/pytest-xdist#1386.)
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController

# Unit name → the modules it holds (paths relative to the root).
SHARED = {
    "manifest-ports": (
        "tests/deploy/test_k8s_rehearsal.py",
        "tests/deploy/test_compose_rehearsal.py",
    ),
}
# Modules or folders (ending in "/"): no unit of one side runs beside one of the other.
APART = (
    ("tests/browser/",),
    ("tests/faults/", "tests/integration/test_graceful_stop.py"),
)
# The order units are handed out in; within one entry, collection order.
FIRST = (
    "tests/faults/",
    "tests/browser/",
    "manifest-ports",
    "tests/integration/",
    "tests/deploy/",
    "tests/fuzz/",
    "tests/unit/",
)


def _is_in(path: str, entry: str) -> bool:
    """`path` is `entry`, or lies in the folder `entry` (ending in "/")."""
    return path.startswith(entry) if entry.endswith("/") else path == entry


def unit_of(nodeid: str) -> str:
    """The unit of a test: its module's path, or the `SHARED` unit that holds it."""
    path = nodeid.split("::", 1)[0]
    for unit, members in SHARED.items():
        if path in members:
            return unit
    return path


def side_of(unit: str) -> int | None:
    """Which side of `APART` a unit is on (a shared unit: that of its first module)."""
    path = SHARED[unit][0] if unit in SHARED else unit
    for side, entries in enumerate(APART):
        if any(_is_in(path, entry) for entry in entries):
            return side
    return None


def rank_of(unit: str) -> int:
    """Where `unit` comes in `FIRST`; anything else after all of it."""
    for rank, entry in enumerate(FIRST):
        if _is_in(unit, entry):
            return rank
    return len(FIRST)


class GroupedScheduling(LoadFileScheduling):
    """xdist's `loadfile`, with the units, the sides kept apart and the order above."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _assign_work_unit(self, node: WorkerController) -> None:
        """The first unit in `FIRST` order that may run beside what the others run now;
        none (the node waits) when every unit left must wait for them."""
        busy = {
            side_of(unit)
            for other, units in self.assigned_work.items()
            if other is not node
            for unit, tests in units.items()
            if not all(tests.values())
        } - {None}
        allowed = [u for u in self.workqueue if side_of(u) is None or busy <= {side_of(u)}]
        if not allowed:
            return
        order = {unit: index for index, unit in enumerate(self.workqueue)}
        unit = min(allowed, key=lambda u: (rank_of(u), order[u]))
        work = self.workqueue.pop(unit)
        self.assigned_work.setdefault(node, {})[unit] = work
        collection = self.registered_collections[node]
        node.send_runtest_some([collection.index(test) for test, done in work.items() if not done])

    def mark_test_complete(
        self, node: WorkerController, item_index: int, duration: float = 0
    ) -> None:
        """As xdist's, but a node that waited (for this one's unit) is given work first."""
        nodeid = self.registered_collections[node][item_index]
        self.assigned_work[node][self._split_scope(nodeid)][nodeid] = True
        for other in self.nodes:
            if other is not node and not self._pending_of(self.assigned_work[other]):
                self._reschedule(other)
        self._reschedule(node)


@pytest.hookimpl(optionalhook=True)  # optional: `-p no:xdist` has no such hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> GroupedScheduling | None:
    if config.getvalue("dist") != "loadfile":
        return None
    return GroupedScheduling(config, log)
