"""A test server run as a child process: started, awaited, stopped, never orphaned.

Three layers keep a server from outliving the test run: the session fixture
stops it; an `atexit` hook stops it if the fixture never ran its teardown; and
on Linux the kernel kills it when the process that started it dies
(`PR_SET_PDEATHSIG`), which covers a test run that is itself killed.

This module starts only what a fixture asks for and never touches other
processes.
"""

from __future__ import annotations

import abc
import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class ServiceError(RuntimeError):
    """A test server did not start or did not stop; the message has its log's tail."""


class NotControllableError(RuntimeError):
    """The service is an external server: the tests cannot stop or start it."""


class ControllableService(abc.ABC):
    """What PostgreSQL, Kafka and S3 share: a local server the tests may stop and start,
    or an external one (`controllable` false) that they only use."""

    controllable: bool

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def describe(self) -> str:
        """The server's name and address, for error messages."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop a local server for good and remove its files; an external one is left."""

    def restart(self) -> None:
        self.stop()
        self.start()

    def ensure_running(self) -> None:
        """Start it if a test left it stopped; nothing to do for an external server."""
        if self.controllable:
            self.start()

    def _require_control(self) -> None:
        if not self.controllable:
            raise NotControllableError(f"external {self.describe()} cannot be stopped")


def _die_with_parent(death_signal: int) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `death_signal` when we die.

    Linux sends the signal when the *thread* that forked exits, so it is used
    only from the main thread (pytest runs fixtures and tests there).
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)

    return preexec


def make_workdir(kind: str) -> Path:
    """A new temporary directory for one server's data and log.

    Its name carries our pid, so the directories of a test run that was killed
    (no teardown, no atexit) are recognised and removed by the next run.
    """
    root = Path(tempfile.gettempdir())
    for stale in root.glob(f"figa-{kind}-*-*"):
        owner = stale.name.split("-")[2]
        if owner.isdigit() and not _is_alive(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"figa-{kind}-{os.getpid()}-", dir=root))


def _primary_gid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, and belongs to someone else
    return True


class ServerProcess:
    """One server child process with its log file; spawn and stop it any number of times."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        stop_signal: int = signal.SIGTERM,
        death_signal: int = signal.SIGKILL,
        user: str | None = None,
        group: int | None = None,
        env: Mapping[str, str] | None = None,
        namespace: str | None = None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.argv = list(argv)
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.death_signal = death_signal
        self.user = user
        self.group = group
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._exit_hook_registered = False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    def spawn(self) -> None:
        """Start the process (appending its output to the log); no-op when it runs."""
        if self.running:
            return
        with self.log_path.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            log.write(f"\n---- {stamp} starting: {' '.join(self._argv())}\n".encode())
            log.flush()
            in_namespace = self.namespace is not None
            self._process = subprocess.Popen(
                self._argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Ctrl+C in the terminal reaches pytest only; its teardown stops us.
                start_new_session=True,
                preexec_fn=_die_with_parent(self.death_signal),
                # In a namespace the user is changed after `ip netns exec` (which needs root).
                user=None if in_namespace else self.user,
                group=None if in_namespace else self.group,
                extra_groups=[] if self.user is not None and not in_namespace else None,
                env=self.env,
            )
        if not self._exit_hook_registered:
            atexit.register(self.stop)
            self._exit_hook_registered = True

    def _argv(self) -> list[str]:
        """The command line; inside `namespace` (a `tests.services.netns` host) when given.

        `ip netns exec` and `setpriv` exec the server, so the pid we signal is the server's."""
        if self.namespace is None:
            return self.argv
        as_user: list[str] = []
        if self.user is not None:
            group = self.group if self.group is not None else _primary_gid(self.user)
            as_user = ["setpriv", f"--reuid={self.user}", f"--regid={group}", "--clear-groups"]
            as_user.append("--")
        return ["ip", "netns", "exec", self.namespace, *as_user, *self.argv]

    def stop(self, timeout: float = 10.0) -> None:
        """The stop signal; each `timeout` it outlives, the death signal, then SIGKILL."""
        process = self._process
        if process is None:
            return
        for sent in (self.stop_signal, self.death_signal, signal.SIGKILL):
            if process.poll() is not None:
                break
            process.send_signal(sent)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
        self._process = None

    def wait_ready(self, is_ready: Callable[[], bool], *, timeout: float, what: str) -> float:
        """Poll `is_ready` until true; return the seconds it took.

        Fails fast when the process exits, and after `timeout` stops the process;
        either way the error carries the tail of the log.
        """
        started = time.monotonic()
        while True:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise ServiceError(
                    f"{self.name} exited (code {code}) before {what}.\n{self.describe_log()}"
                )
            if is_ready():
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                self.stop()
                raise ServiceError(
                    f"{self.name} was not ready ({what}) within {timeout}s.\n{self.describe_log()}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe_log(self) -> str:
        return f"Last lines of {self.log_path}:\n{self.log_tail()}"
