"""CPU time of the servers under load, from /proc: what a request costs whatever the machine.

Requests/s depend on what shares the cores (PostgreSQL, the broker, the load
generator, other people's work); the CPU seconds a process spends per request
much less so. A process tree's time is counted, not one process's: a worker
that draws in child processes, or PostgreSQL's backends (each of which calls
setsid(), so a process group would miss them), are counted with the process
we started. A child that exited and was waited for is in its parent's
`cutime`/`cstime`, so summing utime + stime + cutime + cstime over the live
members of the tree counts every process once.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StatTimes:
    """The fields of /proc/PID/stat this module needs, in seconds."""

    ppid: int
    pgrp: int
    own_seconds: float  # utime + stime
    children_seconds: float  # cutime + cstime: children that exited and were waited for


def parse_stat(text: str, ticks: int = CLOCK_TICKS) -> StatTimes:
    """Read /proc/PID/stat; the command name may hold spaces and parentheses, so the fields
    are counted from its last `)`."""
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 of proc(5): state; ppid is 4, pgrp 5, utime..cstime 14..17.
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return StatTimes(
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        own_seconds=(utime + stime) / ticks,
        children_seconds=(cutime + cstime) / ticks,
    )


def tree_cpu_seconds(root: int, proc: Path = PROC) -> float:
    """CPU seconds used so far by process `root`, its live descendants, and the children any
    of them waited for."""
    processes: dict[int, StatTimes] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            processes[int(entry.name)] = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):  # exited while we looked
            continue
    children: dict[int, list[int]] = {}
    for pid, times in processes.items():
        children.setdefault(times.ppid, []).append(pid)
    total, pending = 0.0, [root] if root in processes else []
    while pending:
        pid = pending.pop()
        total += processes[pid].own_seconds + processes[pid].children_seconds
        pending += children.get(pid, [])
    return total


class Meter(Protocol):
    def __call__(self) -> float: ...


async def cpu_during(meters: dict[str, Meter], work: Awaitable[T]) -> tuple[T, dict[str, float]]:
    """Run `work`; return its result and the CPU seconds each meter counted meanwhile."""
    before = {name: meter() for name, meter in meters.items()}
    result = await work
    return result, {name: meter() - before[name] for name, meter in meters.items()}


def us_per(cpu_seconds: float, count: int) -> float:
    """Microseconds of CPU per request (or per picture, per row)."""
    if count <= 0:
        raise ValueError(f"no requests to divide {cpu_seconds:.3f} s of CPU by")
    return cpu_seconds / count * 1e6
