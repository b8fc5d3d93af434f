"""Liveness and readiness rules: when Kubernetes restarts a process, and when it routes to it.

The worker is alive while its consume loop beats its heartbeat within the stall
limit (the clock is injected); its operations port answers `/healthz` from that
rule on its own thread. The app is ready while it serves — started and not
draining — whatever its dependencies say; their states are only reported.
"""

from __future__ import annotations

import http.client
import json

import pytest

from app.operations_port import OperationsPort, route
from app.runtime import Health
from app.web.ops import ReadinessProbe
from tests.services.ports import LOCALHOST
from workers.liveness import Heartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# The worker's heartbeat


def test_a_fresh_heartbeat_is_alive_for_the_stall_limit_after_start() -> None:
    clock = Clock()
    heartbeat = Heartbeat(60, clock=clock)
    clock.now += 60
    assert heartbeat.alive()
    clock.now += 0.001
    assert not heartbeat.alive()


def test_each_beat_starts_the_stall_limit_again() -> None:
    clock = Clock()
    heartbeat = Heartbeat(2, clock=clock)
    for _ in range(10):  # rounds every 1.5 s: always alive
        clock.now += 1.5
        assert heartbeat.alive()
        heartbeat.beat()
    clock.now += 2.5  # then the loop hangs
    assert not heartbeat.alive()
    heartbeat.beat()  # and recovers
    assert heartbeat.alive()


def test_the_check_says_how_long_the_loop_has_been_silent() -> None:
    clock = Clock()
    heartbeat = Heartbeat(2, clock=clock)
    clock.now += 3.25
    assert heartbeat.check() == (False, {"silent_seconds": 3.25, "stall_seconds": 2})


# The operations port


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/metrics", "/metrics"),
        ("/metrics/", "/metrics"),
        ("//metrics", "/metrics"),
        ("/metrics?x=1", "/metrics"),
        ("/METRICS", "/metrics"),
        ("/", "/"),
        ("/healthz/", "/healthz"),
    ],
)
def test_the_operations_port_reads_every_spelling_of_a_path_as_its_route(
    raw: str, expected: str
) -> None:
    assert route(raw) == expected


def get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(LOCALHOST, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_the_worker_healthz_answers_503_once_the_heartbeat_is_stale_and_200_after_a_beat() -> None:
    clock = Clock()
    heartbeat = Heartbeat(2, clock=clock)
    operations = OperationsPort(LOCALHOST, 0, healthz=heartbeat.check)
    operations.start()
    try:
        assert get(operations.port, "/healthz")[0] == 200
        clock.now += 5
        status, body = get(operations.port, "/healthz")
        assert status == 503
        assert json.loads(body) == {"status": "stalled", "silent_seconds": 5, "stall_seconds": 2}
        assert get(operations.port, "/metrics")[0] == 200  # metrics still tell what happened
        heartbeat.beat()
        assert get(operations.port, "/healthz")[0] == 200
    finally:
        operations.stop()


def test_without_a_check_the_operations_port_has_no_healthz() -> None:
    operations = OperationsPort(LOCALHOST, 0)
    operations.start()
    try:
        assert get(operations.port, "/healthz")[0] == 404
        status, body = get(operations.port, "/metrics")
        assert status == 200
        assert "# HELP" in body
    finally:
        operations.stop()


# The app's readiness


async def fails() -> None:
    raise ConnectionRefusedError("nobody listens")


async def answers() -> None:
    return None


async def no_backlog() -> int:
    return 0


async def nothing_waits() -> float:
    return 0.0


async def test_the_app_is_ready_only_between_start_and_drain_whatever_its_dependencies() -> None:
    probe = ReadinessProbe(
        Health(
            database=answers,
            queue=fails,
            images=fails,
            backlog=no_backlog,
            oldest_job_age=nothing_waits,
        )
    )
    starting = await probe.check()
    assert not starting.ready
    probe.start_serving()
    serving = await probe.check()
    assert serving.ready
    assert (serving.database.ok, serving.queue.ok, serving.images.ok) == (True, False, False)
    assert "nobody listens" in serving.queue.detail
    probe.stop_serving()
    assert not (await probe.check()).ready  # draining, from the cache of the states too
