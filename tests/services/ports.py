"""Free TCP ports for the test servers.

A port from the OS is free when we ask; a server started right after binds it.
The same port is kept across a service's stop and start, so clients configured
once keep the same address.
"""

from __future__ import annotations

import socket

LOCALHOST = "127.0.0.1"


_given: set[int] = set()


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port nobody listens on right now, chosen by the OS, and never one this process
    was given before: the OS may hand a port that was just probed out again at once, and
    two servers of one test given the same port would fight over it."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port
    raise RuntimeError(f"the OS gave only ports this process had already been given on {host}")


def accepts(host: str, port: int) -> bool:
    """Whether a server accepts TCP connections on `host:port` now (a readiness probe)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
