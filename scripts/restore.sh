#!/usr/bin/env bash
# Restores one schema dump made by scripts/backup.sh into a database.
#
#   scripts/restore.sh [--force] [--schema NAME] [--target URL] DUMP_FILE
#
#   DUMP_FILE        a pg_dump custom-format file, e.g. backups/identity/identity-20250101T030000Z.dump
#   --schema NAME    the schema to restore (default: the dump's only schema). pg_restore cannot
#                    rename a schema: it is restored under its own name.
#   --target URL     the database to restore into (default: $TARGET_DATABASE_URL, then
#                    $DATABASE_URL, then libpq's PG* variables). Prefer the environment: a URL
#                    with a password on the command line is visible to other users of the host.
#   --force          replace a schema that already holds tables. The existing schema is renamed
#                    aside first and dropped only once the restore has succeeded; on failure it
#                    is put back.
#
# Without --force a non-empty target schema is refused (exit status 3): a restore never
# overwrites data by accident. The restore runs `pg_restore --no-owner --no-privileges
# --schema=NAME --single-transaction --exit-on-error`: objects belong to the connecting user, and
# grants are the target environment's business. Stop the service (or scale it to 0) first:
# it must not write while its schema is swapped. Exit status: 0 restored, 1 restore failed,
# 2 usage error or unreadable dump, 3 refused.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pg-url.sh
. "$here/pg-url.sh"

log() { printf '%s restore: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() {
  log "error: $1" >&2
  exit "${2:-2}"
}
usage() { sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

force=0 schema="" target=${TARGET_DATABASE_URL:-${DATABASE_URL:-}} dump=""
while (($#)); do
  case $1 in
    --force) force=1 ;;
    --schema) schema=${2:?--schema needs a name}; shift ;;
    --schema=*) schema=${1#*=} ;;
    --target) target=${2:?--target needs a URL}; shift ;;
    --target=*) target=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      [[ -z $dump ]] || die "one dump file at a time"
      dump=$1
      ;;
  esac
  shift
done
[[ -n $dump ]] || die "no dump file given (see --help)"
[[ -r $dump ]] || die "cannot read $dump"
for tool in pg_restore psql; do
  command -v "$tool" >/dev/null || die "$tool is not installed (Debian: postgresql-client)"
done
pg_from_url "$target" || die "target: expected a postgres:// URL"
psql_q() { psql "${PG_ARGS[@]}" --no-password -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }

# The dump must read back, and name the schema.
listing=$(pg_restore --list "$dump" 2>&1) || die "$dump is not a readable pg_dump custom-format file: $(head -c 300 <<<"$listing" | tr '\n' ' ')"
mapfile -t in_dump < <(sed -nE 's/^[0-9]+; [0-9]+ [0-9]+ SCHEMA - ([^ ]+).*/\1/p' <<<"$listing")
if [[ -z $schema ]]; then
  ((${#in_dump[@]} == 1)) || die "the dump holds ${#in_dump[@]} schemas (${in_dump[*]:-none}); choose one with --schema"
  schema=${in_dump[0]}
elif ! printf '%s\n' "${in_dump[@]}" | grep -qx -- "$schema"; then
  die "schema $schema is not in the dump (it holds: ${in_dump[*]:-none})"
fi
[[ $schema =~ ^[a-z_][a-z0-9_]*$ ]] || die "invalid schema name '$schema'"
tables=$(grep -Ec "^[0-9]+; [0-9]+ [0-9]+ TABLE $schema " <<<"$listing" || true)
log "restoring schema $schema ($tables tables) from $dump into $PG_SHOWN"

exists=$(psql_q "select count(*) from pg_namespace where nspname = '$schema'") || die "cannot reach $PG_SHOWN" 1
relations=0
if [[ $exists == 1 ]]; then
  relations=$(psql_q "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = '$schema'")
fi

aside=""
if ((relations > 0)); then
  ((force)) || die "schema $schema in $PG_SHOWN is not empty ($relations relations); refusing to overwrite it (use --force to replace it)" 3
  aside="${schema}_before_restore_$(date -u +%Y%m%d%H%M%S)"
  log "--force: moving the existing schema $schema ($relations relations) aside as $aside"
  psql_q "alter schema \"$schema\" rename to \"$aside\"" >/dev/null
elif [[ $exists == 1 ]]; then
  psql_q "drop schema \"$schema\"" >/dev/null # empty: nothing is lost
fi

put_back() {
  log "restore failed: removing the partial schema" >&2
  psql_q "drop schema if exists \"$schema\" cascade" >/dev/null || true
  if [[ -n $aside ]]; then
    psql_q "alter schema \"$aside\" rename to \"$schema\"" >/dev/null &&
      log "the previous $schema is back in place" >&2
  fi
}

# pg_restore --schema restores the objects in the schema, not the schema itself.
psql_q "create schema \"$schema\"" >/dev/null
if ! pg_restore "${PG_ARGS[@]}" --no-password --no-owner --no-privileges --schema="$schema" \
  --single-transaction --exit-on-error "$dump"; then
  put_back
  exit 1
fi
if [[ -n $aside ]]; then
  psql_q "drop schema \"$aside\" cascade" >/dev/null
  log "dropped the previous schema (was $aside)"
fi
restored=$(psql_q "select count(*) from information_schema.tables where table_schema = '$schema'")
log "done: schema $schema restored into $PG_SHOWN ($restored tables)"
