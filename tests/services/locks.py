"""A lock shared by every test process on this machine (the suite runs in parallel).

`pytest` runs the suite in several processes (pytest-xdist, see pyproject.toml's
addopts). Most of what they start is theirs alone (free ports, their own
temporary directories, names with their pid), but a few steps change the
machine itself and must not interleave: adding the system user PostgreSQL runs
as (two `useradd` at once: the second fails), and choosing a free subnet for
the network-namespace test hosts. `machine_lock(name)` serialises such a step
across processes with `flock` on a file in the temporary directory; the kernel
releases it when its holder exits, so a killed test run never leaves it held.
"""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Hold the machine-wide lock `name` (blocking until the holder releases it)."""
    path = Path(tempfile.gettempdir()) / f"figa-{name}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
