#!/bin/sh
# Prepares an empty PostgreSQL data directory for a point-in-time restore
# (docs/operations.md § Restore to a point in time): the base backup copied
# in, and what recovery needs — where the archived WAL is, where to stop, and
# to promote there. The server does the rest when it starts: it replays the
# archive up to the target, then takes writes on a new timeline.
#
#   restore.sh BASE TARGET
#     BASE    a folder of $BACKUPS/base (pg_basebackup's), the newest before TARGET
#     TARGET  'YYYY-MM-DD HH:MM:SS+00' (a time), or name:POINT (pg_create_restore_point's)
#
# $BACKUPS (/backups) holds base/ and wal/ (compose: the postgres-backups
# volume); $PGDATA (/var/lib/postgresql/data) must be empty: whatever is in
# it is moved to $BACKUPS/damaged-<time> first, never deleted. Run it as the
# server's user. tests/integration/test_restore_drill.py runs this script.
set -eu

BACKUPS=${BACKUPS:-/backups}
PGDATA=${PGDATA:-/var/lib/postgresql/data}
[ "$#" -eq 2 ] || { echo "usage: restore.sh BASE TARGET" >&2; exit 2; }
base="$BACKUPS/base/$1"
target=$2
[ -f "$base/PG_VERSION" ] || { echo "no base backup at $base" >&2; exit 2; }
[ -d "$BACKUPS/wal" ] || { echo "no WAL archive at $BACKUPS/wal" >&2; exit 2; }

if [ -n "$(ls -A "$PGDATA")" ]; then
  kept="$BACKUPS/damaged-$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir "$kept"
  find "$PGDATA" -mindepth 1 -maxdepth 1 -exec mv {} "$kept/" \;
  echo "the data that was in $PGDATA is kept in $kept"
fi

cp -a "$base/." "$PGDATA/"
case $target in
  name:*) stop_at="recovery_target_name = '${target#name:}'" ;;
  *) stop_at="recovery_target_time = '$target'" ;;
esac
cat >> "$PGDATA/postgresql.auto.conf" <<SETTINGS
# point-in-time restore prepared $(date -u +%Y-%m-%dT%H:%M:%SZ) from $base
restore_command = 'cp $BACKUPS/wal/%f %p'
$stop_at
recovery_target_action = 'promote'
SETTINGS
touch "$PGDATA/recovery.signal"
chmod 0700 "$PGDATA"
echo "prepared: start the server; it replays $BACKUPS/wal up to $target and promotes"
