"""`free_port` never hands one process the same port twice (the OS may offer it again)."""

from __future__ import annotations

import socket

import pytest

from tests.services import ports


def test_ports_given_to_one_process_are_all_different() -> None:
    given = [ports.free_port() for _ in range(300)]
    assert len(set(given)) == len(given)


def test_a_port_the_os_offers_again_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    offered = iter([40001, 40001, 40001, 40002])

    class Probe:
        def __init__(self, *_: object) -> None:
            self.port = next(offered)

        def __enter__(self) -> Probe:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def bind(self, _: object) -> None:
            return None

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(ports, "_given", set())
    monkeypatch.setattr(socket, "socket", Probe)
    assert [ports.free_port(), ports.free_port()] == [40001, 40002]
