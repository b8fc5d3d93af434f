"""PostgreSQL with WAL archiving, its base backups, and servers restored from them.

The backup and restore procedure of docs/operations.md, on the `pgserver` wheel's own
programs: a server whose `archive_command` copies every finished WAL segment into an
archive folder, `pg_basebackup` of it, and a new data directory made from that backup
which replays the archive (`restore_command`) up to a named restore point or a time,
then is promoted and takes writes. Always local (an external FIGA_TEST_DATABASE_URL
server cannot be reconfigured), one server per drill, removed afterwards.

As root, the servers and `pg_basebackup` run as the `pgserver` system user (PostgreSQL
refuses root), so the archive and backup folders are made theirs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.services.postgres import (
    ADMIN_DATABASE,
    ADMIN_USER,
    SYSTEM_USER,
    PostgresService,
    _pgserver_bin,
    _primary_group,
)
from tests.services.processes import ServiceError, make_workdir

# What docs/operations.md sets on a self-run PostgreSQL (compose): WAL kept for
# replay, each finished segment copied once into the archive (never overwritten:
# two servers archiving into one folder must fail loudly, not mix their histories).
ARCHIVE_COMMAND = "test ! -f {archive}/%f && cp %p {archive}/%f"
RESTORE_COMMAND = "cp {archive}/%f %p"


def _as_server_user() -> dict[str, object]:
    """subprocess arguments that run a program as the servers' user (when we are root)."""
    if os.name != "posix" or os.geteuid() != 0:
        return {}
    return {"user": SYSTEM_USER, "group": _primary_group(SYSTEM_USER), "extra_groups": []}


def _give_to_server_user(path: Path) -> None:
    if os.name != "posix" or os.geteuid() != 0:
        return
    import pwd

    entry = pwd.getpwnam(SYSTEM_USER)
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
        self.folder = make_workdir("pgbackup")
        self.folder.chmod(0o755)
        self.archive = self.folder / "wal-archive"
        self.archive.mkdir()
        _give_to_server_user(self.archive)

    def _initdb(self, pgdata: Path, user: str | None) -> None:
        super()._initdb(pgdata, user)
        archive_command = ARCHIVE_COMMAND.format(archive=self.archive)
        _append_settings(
            pgdata,
            {"wal_level": "replica", "archive_mode": "on", "archive_command": archive_command},
        )

    def base_backup(self, name: str) -> Path:
        """`pg_basebackup` of the running server into a new folder; returns it.

        `-X none`: the backup holds no WAL of its own, so it is usable only with the
        archive — `pg_basebackup` waits until the archiver has copied the segment that
        ends the backup, which proves `archive_command` works."""
        destination = self.folder / name
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

    def settings(self) -> dict[str, str]:
        if (self.name is None) == (self.time is None):
            raise ValueError("a recovery target is a restore point's name or a time")
        if self.name is not None:
            return {"recovery_target_name": self.name}
        return {"recovery_target_time": str(self.time)}


class RestoredPostgres(PostgresService):
    """A new PostgreSQL made from a base backup and the WAL archive, up to `target`.

    `start()` returns once recovery has reached the target and the server is promoted:
    it then takes writes, on a new timeline, as a restored primary must."""

    def __init__(self, backup: Path, archive: Path, target: RecoveryTarget) -> None:
        super().__init__()
        self._backup = backup
        self._archive = archive
        self._target = target

    def _initdb(self, pgdata: Path, user: str | None) -> None:
        shutil.copytree(self._backup, pgdata, dirs_exist_ok=True)
        (pgdata / "recovery.signal").touch()
        _append_settings(
            pgdata,
            {
                "restore_command": RESTORE_COMMAND.format(archive=self._archive),
                **self._target.settings(),
                "recovery_target_action": "promote",
                # The restored server must not archive into the source's history.
                "archive_mode": "off",
            },
        )
        pgdata.chmod(0o700)
        _give_to_server_user(pgdata)

    def _accepts(self) -> bool:
        """Ready = promoted: while it replays, a hot standby answers read-only queries."""
        probe = [str(_pgserver_bin() / "psql"), "-h", self.host, "-p", str(self.port)]
        probe += ["-U", ADMIN_USER, "-d", ADMIN_DATABASE, "-Atc", "SELECT pg_is_in_recovery()"]
        answer = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
        if answer.returncode == 0 and answer.stdout.strip() == "f":
            return True
        time.sleep(0.05)
        return False
