#!/usr/bin/env bash
# Backs up each service's Postgres schema with pg_dump's custom format, checks each dump reads
# back, and prunes old dumps.
#
#   scripts/backup.sh [schema...]
#
# Environment:
#   DATABASE_URL            postgres://user:password@host:5432/db (unset: libpq's PG* variables).
#                           The password never appears in the log or on a command line.
#   BACKUP_DIR              where dumps go (default /var/backups/mas):
#                           BACKUP_DIR/<schema>/<schema>-<UTC yyyymmddThhmmssZ>.dump
#   BACKUP_SCHEMAS          schemas to back up, space or comma separated, when none are given
#                           as arguments. Default: every schema that holds a `seaql_migrations`
#                           table, i.e. every schema a MAS service has migrated (identity,
#                           notifier, meetings_signalling, ...; the gateway owns none).
#   BACKUP_RETENTION_DAYS   dumps older than this many days are deleted (default 14) ...
#   BACKUP_KEEP_MIN         ... except the newest N of each schema, whatever their age (default 3).
#
# A schema named explicitly (argument or BACKUP_SCHEMAS) that does not exist is an error. Each
# dump is written to a .partial file, verified with `pg_restore --list` (it must list the
# schema) and a full read of the archive (`pg_restore --file=/dev/null`), then renamed; old dumps of a schema are pruned only after its new dump verified.
# Exit status: 0 when every schema was backed up, 1 otherwise (the others are still attempted),
# 2 on a usage or configuration error.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pg-url.sh
. "$here/pg-url.sh"

log() { printf '%s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() {
  log "error: $*" >&2
  exit 2
}

case ${1:-} in
  -h | --help)
    sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac

BACKUP_DIR=${BACKUP_DIR:-/var/backups/mas}
BACKUP_RETENTION_DAYS=${BACKUP_RETENTION_DAYS:-14}
BACKUP_KEEP_MIN=${BACKUP_KEEP_MIN:-3}
[[ $BACKUP_RETENTION_DAYS =~ ^[0-9]+$ ]] || die "BACKUP_RETENTION_DAYS must be a whole number of days"
[[ $BACKUP_KEEP_MIN =~ ^[0-9]+$ ]] || die "BACKUP_KEEP_MIN must be a whole number"
for tool in pg_dump pg_restore psql; do
  command -v "$tool" >/dev/null || die "$tool is not installed (Debian: postgresql-client)"
done

pg_from_url "${DATABASE_URL:-}" || die "DATABASE_URL: expected a postgres:// URL"
psql_q() { psql "${PG_ARGS[@]}" --no-password -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }

# Which schemas.
explicit=1
if (($#)); then
  schemas=("$@")
elif [[ -n ${BACKUP_SCHEMAS:-} ]]; then
  read -r -a schemas <<<"${BACKUP_SCHEMAS//,/ }"
else
  explicit=0
  found=$(psql_q "select table_schema from information_schema.tables
                  where table_name = 'seaql_migrations' order by 1") ||
    die "cannot list schemas in $PG_SHOWN"
  mapfile -t schemas <<<"$found"
  [[ -n ${schemas[0]:-} ]] || die "no schema with a seaql_migrations table in $PG_SHOWN; name the schemas"
fi
for s in "${schemas[@]}"; do
  # The rule services apply to DATABASE_SCHEMA (crates/db), so the name is safe in SQL.
  [[ $s =~ ^[a-z_][a-z0-9_]*$ ]] || die "invalid schema name '$s': lowercase letters, digits, underscores"
done

mkdir -p "$BACKUP_DIR"
if command -v flock >/dev/null; then
  exec 9>"$BACKUP_DIR/.backup.lock"
  flock -n 9 || die "another backup is running in $BACKUP_DIR"
fi

log "database $PG_SHOWN; schemas: ${schemas[*]} ($( ((explicit)) && echo named || echo discovered)); into $BACKUP_DIR; keep $BACKUP_RETENTION_DAYS days, at least $BACKUP_KEEP_MIN per schema"

prune() {
  local schema=$1 dir=$2 n=0 f kept=0 removed=0
  local minutes=$((BACKUP_RETENTION_DAYS * 1440))
  local files
  files=$(find "$dir" -maxdepth 1 -type f -name "$schema-*.dump" -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2-)
  while IFS= read -r f; do
    [[ -n $f ]] || continue
    n=$((n + 1))
    if ((n <= BACKUP_KEEP_MIN)) || [[ -z $(find "$f" -maxdepth 0 -mmin +"$minutes") ]]; then
      kept=$((kept + 1))
      continue
    fi
    rm -f -- "$f"
    removed=$((removed + 1))
    log "$schema: pruned $f (older than $BACKUP_RETENTION_DAYS days)"
  done <<<"$files"
  # Leftovers of interrupted runs.
  find "$dir" -maxdepth 1 -type f -name "$schema-*.dump.partial" -mmin +1440 -delete
  log "$schema: $kept dump(s) kept, $removed pruned"
}

ok=0 failed=0
for schema in "${schemas[@]}"; do
  exists=$(psql_q "select count(*) from pg_namespace where nspname = '$schema'") || exists=""
  if [[ $exists != 1 ]]; then
    log "$schema: FAILED: no such schema in $PG_SHOWN" >&2
    failed=$((failed + 1))
    continue
  fi
  dir="$BACKUP_DIR/$schema"
  mkdir -p "$dir"
  ts=$(date -u +%Y%m%dT%H%M%SZ)
  while [[ -e "$dir/$schema-$ts.dump" ]]; do
    sleep 1
    ts=$(date -u +%Y%m%dT%H%M%SZ)
  done
  out="$dir/$schema-$ts.dump"
  tmp="$out.partial"
  started=$(date +%s)
  if ! pg_dump "${PG_ARGS[@]}" --no-password --format=custom --schema="$schema" --file="$tmp" 2>"$tmp.err"; then
    log "$schema: FAILED: pg_dump: $(tr '\n' ' ' <"$tmp.err")" >&2
    rm -f -- "$tmp" "$tmp.err"
    failed=$((failed + 1))
    continue
  fi
  rm -f -- "$tmp.err"
  # The dump must read back and contain the schema; otherwise it is not a backup. --list reads
  # the table of contents; converting the whole archive to SQL (into /dev/null) reads every
  # data block, which catches a truncated or corrupt file.
  if ! listing=$(pg_restore --list "$tmp" 2>&1) ||
    ! grep -Eq "^[0-9]+; [0-9]+ [0-9]+ SCHEMA - $schema( |\$)" <<<"$listing"; then
    log "$schema: FAILED: the dump does not read back with pg_restore --list: $(head -c 300 <<<"$listing" | tr '\n' ' ')" >&2
    rm -f -- "$tmp"
    failed=$((failed + 1))
    continue
  fi
  if ! err=$(pg_restore --file=/dev/null "$tmp" 2>&1); then
    log "$schema: FAILED: the dump's data does not read back: $(head -c 300 <<<"$err" | tr '\n' ' ')" >&2
    rm -f -- "$tmp"
    failed=$((failed + 1))
    continue
  fi
  mv -- "$tmp" "$out"
  tables=$(grep -Ec "^[0-9]+; [0-9]+ [0-9]+ TABLE $schema " <<<"$listing" || true)
  size=$(du -h -- "$out" | cut -f1)
  log "$schema: wrote $out ($tables tables, $size, $(($(date +%s) - started)) s), verified with pg_restore --list and a full read"
  prune "$schema" "$dir"
  ok=$((ok + 1))
done

log "done: $ok schema(s) backed up, $failed failed"
((failed == 0)) || exit 1
