"""pytest plugin: which tests may run at the same time when the suite runs in parallel.

The suite mostly waits (fault tests sitting out timeouts, servers starting,
polling intervals), so `pytest` runs it in two processes with pytest-xdist:
`-n 2 --dist loadgroup --no-loadscope-reorder` in pyproject.toml's addopts. A
process takes one group of tests at a time and runs it through, in order;
this plugin says what a group is and which groups go first:

- Every test module is a group of its own, so a module's fixtures (a cluster of
  test hosts, Lighthouse's runs, a served stack) are made once, as in a serial run.
- `SHARED_GROUPS` put some modules into one group, so they never run beside each
  other: the deployment rehearsals keep the manifests' fixed ports (8000, 9100,
  9101); the fault tests and the graceful stops hold answers to bounds of a
  second or two, which Chromium and Lighthouse (both cores for seconds on end)
  must not stretch. That group is also the longest, so it starts first.
- Then the integration, deployment and fuzz modules; the many short unit tests
  come last, filling the end of both processes evenly.

Session services (PostgreSQL, the broker, S3, the browser tests' server) start
once per process, on free ports and in directories of their own; the few steps
that change the machine itself take a lock (`tests.services.locks`).
"""

from __future__ import annotations

import pytest

# Group name → the modules (or folders, ending in "/") it holds, relative to the root.
SHARED_GROUPS = {
    "timing-and-browsers": (
        "tests/faults/",
        "tests/browser/",
        "tests/integration/test_graceful_shutdown.py",
        "tests/integration/test_graceful_stop.py",
    ),
    "manifest-ports": (
        "tests/deploy/test_k8s_rehearsal.py",
        "tests/deploy/test_compose_rehearsal.py",
    ),
}
# The order groups are handed out in: a shared group first, then by folder.
FIRST = (*SHARED_GROUPS, "tests/integration/", "tests/deploy/", "tests/fuzz/", "tests/unit/")


def _is_in(path: str, entry: str) -> bool:
    """`path` is the module `entry`, or lies in the folder `entry` (ending in "/")."""
    return path.startswith(entry) if entry.endswith("/") else path == entry


def group_of(path: str) -> str:
    """The group of the test module at `path` (relative to the root, with `/`)."""
    for group, members in SHARED_GROUPS.items():
        if any(_is_in(path, member) for member in members):
            return group
    return path


def rank_of(group: str) -> int:
    """Where `group` comes in `FIRST`; anything else after all of it."""
    for rank, start in enumerate(FIRST):
        if _is_in(group, start):
            return rank
    return len(FIRST)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not getattr(config.option, "loadgroup", False):
        return  # a serial run (`-n 0`, `-p no:xdist`): collection order, as always
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            path = item.path.relative_to(config.rootpath).as_posix()
            item.add_marker(pytest.mark.xdist_group(group_of(path)))
    # Stable: inside a group the tests keep their order, so each module stays together.
    items.sort(key=lambda item: rank_of(_group(item)))


def _group(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    assert marker is not None
    return str(marker.args[0] if marker.args else marker.kwargs.get("name", "default"))
