"""deploy/backup/: the compose PostgreSQL's WAL archive and base backups, and restore.sh.

The restore itself runs for real in tests/integration/test_restore_drill.py (these
settings and this script on the pgserver PostgreSQL); here: docker-compose accepts the
layer on top of compose.yaml as docs/operations.md tells to start it, and restore.sh's
refusals and its promise to keep, never delete, what was in the data directory.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

LAYER = ["--file", "compose.yaml", "--file", "deploy/backup/compose.backup.yaml"]


def merged(repo: Path, tool: Any) -> dict[str, Any]:
    docker_compose = tool("docker-compose", "apt-get install docker-compose")
    result = subprocess.run(
        [docker_compose, *LAYER, "config"],
        cwd=repo, capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = yaml.safe_load(result.stdout)
    return document


def test_the_backup_layer_archives_the_compose_database_into_its_own_volume(
    repo: Path, tool: Any
) -> None:
    services = merged(repo, tool)["services"]
    postgres = services["postgres"]
    flags = postgres["command"]
    settings = dict(value.split("=", 1) for value in flags[2::2])
    assert settings["archive_mode"] == "on"
    assert settings["archive_command"] == "test ! -f /backups/wal/%f && cp %p /backups/wal/%f"
    assert int(settings["archive_timeout"]) <= 300, "at most 5 minutes of writes at risk"
    # docker-compose 1.29 prints volumes short: source:target:mode
    mounts = {tuple(v.split(":")[:2]) for v in postgres["volumes"]}
    assert mounts == {
        ("postgres-data", "/var/lib/postgresql/data"),
        ("postgres-backups", "/backups"),
    }
    assert postgres["depends_on"]["postgres-backups-init"]["condition"] == (
        "service_completed_successfully"
    )
    init = services["postgres-backups-init"]
    assert init["image"] == postgres["image"], "the same postgres user id owns the archive"
    assert [tuple(v.split(":")[:2]) for v in init["volumes"]] == [("postgres-backups", "/backups")]
    # The app and the worker still wait for a healthy database, now an archiving one.
    assert services["app"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def restore(repo: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(repo / "deploy" / "backup" / "restore.sh"), *args],
        env={"PATH": "/usr/bin:/bin", "BACKUPS": f"{tmp_path}/b", "PGDATA": f"{tmp_path}/d"},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_restore_sh_refuses_what_it_cannot_restore_from(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    assert restore(repo, tmp_path).returncode == 2
    missing = restore(repo, tmp_path, "20261201T020000Z", "2026-12-01 16:55:00+00")
    assert missing.returncode == 2
    assert "no base backup" in missing.stderr
    assert list((tmp_path / "d").iterdir()) == [], "nothing touched"


def test_restore_sh_keeps_the_damaged_data_and_prepares_recovery(
    repo: Path, tmp_path: Path
) -> None:
    base = tmp_path / "b" / "base" / "20261201T020000Z"
    base.mkdir(parents=True)
    (base / "PG_VERSION").write_text("16\n")
    (base / "postgresql.auto.conf").write_text("# from the backup\n")
    (tmp_path / "b" / "wal").mkdir()
    data = tmp_path / "d"
    data.mkdir()
    (data / "PG_VERSION").write_text("16\n")
    (data / "damaged-table").write_text("rows of after the incident")
    result = restore(repo, tmp_path, base.name, "name:before-the-incident")
    assert result.returncode == 0, result.stderr
    (kept,) = (tmp_path / "b").glob("damaged-*")
    assert (kept / "damaged-table").read_text() == "rows of after the incident"
    assert not (data / "damaged-table").exists()
    assert (data / "recovery.signal").exists()
    conf = (data / "postgresql.auto.conf").read_text()
    assert conf.startswith("# from the backup\n")
    assert f"restore_command = 'cp {tmp_path / 'b'}/wal/%f %p'" in conf
    assert "recovery_target_name = 'before-the-incident'" in conf
    assert "recovery_target_action = 'promote'" in conf
    assert data.stat().st_mode & 0o777 == 0o700, "PostgreSQL refuses a data folder others read"
