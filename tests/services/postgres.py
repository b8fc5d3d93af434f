"""PostgreSQL for the tests: PostgreSQL 16 from the `pgserver` wheel, or an external server.

Local: the wheel's `initdb` makes a cluster in a temporary directory, and its
`postgres` listens on 127.0.0.1 at a port fixed for the whole session, so a
test can stop the server and start it again at the same address with its data
intact. Durability is traded for speed (`fsync=off`), which only matters if
the machine itself crashes. As root, PostgreSQL refuses to run, so it runs as
the system user `pgserver` (the wheel's own convention).

External (`FIGA_TEST_DATABASE_URL`): used as given and never stopped.

Never drops or alters a database it did not create.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
import warnings
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.services.locks import machine_lock
from tests.services.ports import LOCALHOST, free_port
from tests.services.processes import ControllableService, ServerProcess, ServiceError, make_workdir

ADMIN_USER = "postgres"
ADMIN_DATABASE = "postgres"
# PostgreSQL never runs as root; the `pgserver` wheel creates this user for it.
SYSTEM_USER = "pgserver"
SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "unix_socket_directories": "",  # TCP only: one address, the same after a restart
}


def _pgserver_bin() -> Path:
    """The directory of the wheel's PostgreSQL programs (imported only when needed)."""
    with warnings.catch_warnings():
        # Importing pgserver asks platformdirs for a runtime directory we never use.
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def asyncpg_url(url: str) -> str:
    """The SQLAlchemy async URL for `url`, whichever PostgreSQL driver it names."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class PostgresService(ControllableService):
    """A PostgreSQL server: its admin URL, fresh databases, and stop/start."""

    def __init__(
        self,
        external_url: str | None = None,
        *,
        port: int | None = None,
        host: str = LOCALHOST,
        namespace: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.controllable = not external_url
        self.start_timeout = start_timeout
        self.last_start_seconds: float | None = None
        self._workdir: Path | None = None
        self._server: ServerProcess | None = None
        if external_url:
            self.url = asyncpg_url(external_url)
            return
        self.host = host
        self.namespace = namespace  # a tests.services.netns host's, or the test's own
        self.port = port or free_port()
        self.url = f"postgresql+asyncpg://{ADMIN_USER}@{self.host}:{self.port}/{ADMIN_DATABASE}"

    @property
    def is_running(self) -> bool:
        if not self.controllable:
            return True
        return self._server is not None and self._server.running

    @property
    def log_path(self) -> Path | None:
        return self._server.log_path if self._server else None

    def url_for(self, database: str) -> str:
        """The async URL of another database on the same server."""
        return make_url(self.url).set(database=database).render_as_string(hide_password=False)

    def start(self) -> None:
        """Start the server (creating the cluster the first time); wait until it accepts."""
        self._require_control()
        if self._server is None:
            self._server = self._initialise()
        if self._server.running:
            return
        started = time.monotonic()
        self._server.spawn()
        self._server.wait_ready(self._accepts, timeout=self.start_timeout, what="accepting")
        self.last_start_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Fast shutdown: connections are cut, the data stays for the next `start()`."""
        self._require_control()
        if self._server is not None:
            self._server.stop(timeout=15.0)

    def close(self) -> None:
        """Stop for good and delete the cluster's directory."""
        if self._server is not None:
            self._server.stop(timeout=15.0)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    async def create_database(self) -> str:
        """A new empty database with a unique name; returns the name."""
        name = f"t_{uuid.uuid4().hex}"
        await self._execute_as_admin(f'CREATE DATABASE "{name}"')
        return name

    async def drop_database(self, name: str) -> None:
        """Drop a database this service created, disconnecting its clients."""
        await self._execute_as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _execute_as_admin(self, statement: str) -> None:
        # CREATE/DROP DATABASE cannot run in a transaction block.
        engine = create_async_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    def describe(self) -> str:
        return f"PostgreSQL at {self.url}"

    def _initialise(self) -> ServerProcess:
        self._workdir = make_workdir("postgres")
        pgdata = self._workdir / "pgdata"
        pgdata.mkdir()
        user = self._prepare_system_user(pgdata)
        self._initdb(pgdata, user)
        if self.namespace is not None:
            # On a test host the clients come from the other hosts' addresses, not loopback.
            with (pgdata / "pg_hba.conf").open("a") as hba:
                hba.write("host all all 0.0.0.0/0 trust\n")
        settings = [
            arg for key, value in SERVER_SETTINGS.items() for arg in ("-c", f"{key}={value}")
        ]
        argv = [str(_pgserver_bin() / "postgres"), "-D", str(pgdata)]
        argv += ["-h", self.host, "-p", str(self.port), *settings]
        return ServerProcess(
            "PostgreSQL",
            argv,
            self._workdir / "postgres.log",
            stop_signal=signal.SIGINT,  # "fast" shutdown: roll back, disconnect, checkpoint
            death_signal=signal.SIGQUIT,  # "immediate" shutdown, children included
            user=user,
            group=_primary_group(user),
            namespace=self.namespace,
        )

    def _prepare_system_user(self, pgdata: Path) -> str | None:
        if os.name != "posix" or os.geteuid() != 0:
            return None
        import stat

        bin_path = _pgserver_bin()
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        # The first start on a fresh machine adds the user: two test processes
        # (a parallel run) must not both run `useradd`, the second would fail.
        with machine_lock("pgserver-user"):
            entry = ensure_user_exists(SYSTEM_USER)
        # The same permissions pgserver itself grants before running as that user.
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(bin_path)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_path, stat.S_IXGRP | stat.S_IXOTH | read)
        ensure_folder_permissions(bin_path.parent / "lib", read)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        return SYSTEM_USER

    def _initdb(self, pgdata: Path, user: str | None) -> None:
        base = [str(_pgserver_bin() / "initdb"), "-D", str(pgdata), "-U", ADMIN_USER]
        base += ["--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions"]
        # C.UTF-8 keeps upper()/lower() right for Cyrillic; not every OS has it.
        errors = []
        for locale in (["--locale=C.UTF-8"], []):
            result = subprocess.run(
                base + locale,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                user=user,
                group=_primary_group(user),
                extra_groups=[] if user else None,
            )
            if result.returncode == 0:
                return
            errors.append(result.stdout + result.stderr)
        raise ServiceError("initdb failed:\n" + "\n".join(errors))

    def _accepts(self) -> bool:
        probe = [str(_pgserver_bin() / "pg_isready"), "-q", "-t", "1"]
        probe += ["-h", self.host, "-p", str(self.port), "-U", ADMIN_USER, "-d", ADMIN_DATABASE]
        return subprocess.run(probe, check=False, timeout=10).returncode == 0


def _primary_group(user: str | None) -> int | None:
    if user is None:
        return None
    import pwd

    return pwd.getpwnam(user).pw_gid
