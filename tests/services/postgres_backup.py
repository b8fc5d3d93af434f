"""PostgreSQL with WAL archiving, its base backups, and servers restored from them.

The backup and restore procedure of docs/operations.md, on the `pgserver` wheel's own
programs: a server with the archive settings of deploy/backup/compose.backup.yaml (every
finished WAL segment copied into an archive folder), `pg_basebackup` of it, and a new data
directory that deploy/backup/restore.sh prepares from that backup, which replays the
archive up to a named restore point or a time, then is promoted and takes writes.
Always local (an external FIGA_TEST_DATABASE_URL server cannot be reconfigured), one
server per drill, removed afterwards.

As root, the servers and `pg_basebackup` run as the `pgserver` system user (PostgreSQL
refuses root), so the archive and backup folders are made theirs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.services.postgres import (
    ADMIN_DATABASE,
    ADMIN_USER,
    SYSTEM_USER,
    PostgresService,
    _pgserver_bin,
    _primary_group,
)
from tests.services.processes import ServiceError, make_workdir

# The compose PostgreSQL's backup layer and restore script (docs/operations.md), run
# here as they are written there, with its /backups volume at a folder of the test's.
BACKUP_LAYER = Path(__file__).resolve().parents[2] / "deploy" / "backup"
VOLUME = "/backups"


def compose_archive_settings(folder: Path) -> dict[str, str]:
    """The server settings (`-c key=value`) of the compose backup layer, `/backups` at
    `folder`."""
    document = yaml.safe_load((BACKUP_LAYER / "compose.backup.yaml").read_text("utf-8"))
    command = document["services"]["postgres"]["command"]
    assert command[0] == "postgres", command
    assert set(command[1::2]) == {"-c"}, command
    settings = dict(pair.split("=", 1) for pair in command[2::2])
    return {key: value.replace(VOLUME, str(folder)) for key, value in settings.items()}


def _as_server_user() -> dict[str, object]:
    """subprocess arguments that run a program as the servers' user (when we are root)."""
    if os.name != "posix" or os.geteuid() != 0:
        return {}
    return {"user": SYSTEM_USER, "group": _primary_group(SYSTEM_USER), "extra_groups": []}


def _give_to_server_user(path: Path) -> None:
    if os.name != "posix" or os.geteuid() != 0:
        return
    with warnings.catch_warnings():
        # Importing pgserver asks platformdirs for a runtime directory we never use.
        warnings.simplefilter("ignore")
        from pgserver.utils import ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)  # on a new machine this may be its first use
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, folders, files in os.walk(path):
        for name in folders + files:
            os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _append_settings(pgdata: Path, settings: dict[str, str]) -> None:
    """Settings in postgresql.auto.conf (read last, so they win over postgresql.conf)."""
    with (pgdata / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
        for key, value in settings.items():
            quoted = value.replace("'", "''")
            conf.write(f"{key} = '{quoted}'\n")


class ArchivingPostgres(PostgresService):
    """A local PostgreSQL whose finished WAL segments are copied into `archive`."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = make_workdir("pgbackup")  # the compose layer's /backups
        self.folder.chmod(0o755)
        self.settings = compose_archive_settings(self.folder)
        self.archive = self.folder / "wal"
        assert f"{self.archive}/%f" in self.settings["archive_command"], self.settings
        for folder in (self.archive, self.folder / "base"):
            folder.mkdir()
            _give_to_server_user(folder)

    def _initdb(self, pgdata: Path, user: str | None) -> None:
        super()._initdb(pgdata, user)
        _append_settings(pgdata, self.settings)

    def base_backup(self, name: str) -> Path:
        """`pg_basebackup` of the running server into `base/<name>`; returns that folder.

        `-X none`: the backup holds no WAL of its own, so it is usable only with the
        archive — `pg_basebackup` waits until the archiver has copied the segment that
        ends the backup, which proves `archive_command` works."""
        destination = self.folder / "base" / name
        destination.mkdir(mode=0o700)
        _give_to_server_user(destination)
        argv = [str(_pgserver_bin() / "pg_basebackup"), "-h", self.host, "-p", str(self.port)]
        argv += ["-U", ADMIN_USER, "-D", str(destination), "-X", "none", "--checkpoint=fast"]
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, check=False, **_as_server_user()
        )  # type: ignore[call-overload]
        if result.returncode != 0:
            raise ServiceError(f"pg_basebackup failed:\n{result.stdout}{result.stderr}")
        return destination

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(frozen=True)
class RecoveryTarget:
    """Where a restore stops: a restore point's name, or a time (`YYYY-MM-DD HH:MM:SS+00`)."""

    name: str | None = None
    time: str | None = None

    def argument(self) -> str:
        """restore.sh's TARGET."""
        if (self.name is None) == (self.time is None):
            raise ValueError("a recovery target is a restore point's name or a time")
        return f"name:{self.name}" if self.name is not None else str(self.time)


class RestoredPostgres(PostgresService):
    """A new PostgreSQL made by deploy/backup/restore.sh from a base backup of `source`
    and its WAL archive, up to `target`.

    `start()` returns once recovery has reached the target and the server is promoted:
    it then takes writes, on a new timeline, as a restored primary must."""

    def __init__(self, source: ArchivingPostgres, backup: Path, target: RecoveryTarget) -> None:
        super().__init__()
        self._backups = source.folder
        self._backup = backup
        self._target = target

    def _initdb(self, pgdata: Path, user: str | None) -> None:
        _give_to_server_user(pgdata)
        script = [str(BACKUP_LAYER / "restore.sh"), self._backup.name, self._target.argument()]
        environment = {"PATH": os.environ["PATH"], "BACKUPS": str(self._backups)}
        result = subprocess.run(
            script, env={**environment, "PGDATA": str(pgdata)}, capture_output=True,
            text=True, timeout=60, check=False, **_as_server_user(),
        )  # type: ignore[call-overload]  # fmt: skip
        if result.returncode != 0:
            raise ServiceError(f"restore.sh failed:\n{result.stdout}{result.stderr}")
        # Only here: two restores of one archive run side by side, and both would archive
        # a timeline 2 into it. A real restore keeps archiving (its new timeline).
        _append_settings(pgdata, {"archive_mode": "off"})

    def _accepts(self) -> bool:
        """Ready = promoted: while it replays, a hot standby answers read-only queries."""
        probe = [str(_pgserver_bin() / "psql"), "-h", self.host, "-p", str(self.port)]
        probe += ["-U", ADMIN_USER, "-d", ADMIN_DATABASE, "-Atc", "SELECT pg_is_in_recovery()"]
        answer = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
        if answer.returncode == 0 and answer.stdout.strip() == "f":
            return True
        time.sleep(0.05)
        return False


def run_sql_file(server: PostgresService, database: str, path: Path, **variables: str) -> str:
    """`psql -f path` on `database` as the admin, with `-v name=value`s; returns its output."""
    argv = [str(_pgserver_bin() / "psql"), "-X", "-h", server.host, "-p", str(server.port)]
    argv += ["-U", ADMIN_USER, "-d", database, "-f", str(path)]
    for name, value in variables.items():
        argv += ["-v", f"{name}={value}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise ServiceError(f"psql -f {path.name} failed:\n{result.stdout}{result.stderr}")
    return result.stdout
