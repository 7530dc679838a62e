#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2012
# (bash -c '...' "$arg" is on purpose; the dump names are the scripts' own.)
# End-to-end test of scripts/backup.sh and scripts/restore.sh against a real Postgres.
#
#   scripts/test-backup.sh
#
# TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres) is a maintenance connection
# allowed to create databases. The test creates two throwaway databases with unique names (a
# source with identity- and notifier-like schemas, and a restore target), backs up, restores,
# checks retention and the refusals, and drops both databases on exit, failed or not.
# One line per check, then `backup: N passed, M failed`; exit status 1 on any failure.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
admin_url=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
base_url=${admin_url%/*}
suffix="$$_$(date +%s)"
src_db="mas_backup_test_src_$suffix"
dst_db="mas_backup_test_dst_$suffix"
work=$(mktemp -d /tmp/mas-backup-test.XXXXXX)
# A password the scripts must never print (the local server may ignore it: trust auth).
secret="Sup3r-Secret-%40-pw"
with_password() { sed -E "s#^(postgres(ql)?://)([^:@/]+)(@)#\1\3:$secret\4#" <<<"$1"; }
src_url=$(with_password "$base_url/$src_db")
dst_url=$(with_password "$base_url/$dst_db")

passed=0 failed=0
ok() {
  passed=$((passed + 1))
  echo "ok   $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL $1${2:+: $2}"
}
expect() { # expect "name" command...: passes when the command succeeds
  local name=$1
  shift
  if "$@"; then ok "$name"; else fail "$name"; fi
}

admin() { psql "$admin_url" -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }
sql() { psql "$base_url/$1" -X -q -t -A -v ON_ERROR_STOP=1 -c "$2"; }

cleanup() {
  for db in "$src_db" "$dst_db"; do
    admin "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 ||
      echo "warning: could not drop $db" >&2
  done
  rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! admin "select 1" >/dev/null 2>&1; then
  fail "Postgres reachable at ${admin_url%%\?*}"
  echo "backup: $passed passed, $failed failed"
  exit 1
fi

admin "create database \"$src_db\"" >/dev/null && admin "create database \"$dst_db\"" >/dev/null
expect "throwaway databases $src_db and $dst_db created" true

# The source: schemas the way the services leave them (seaql_migrations marks a service schema),
# plus a schema no service owns, which discovery must leave out.
sql "$src_db" "
create schema identity;
create table identity.seaql_migrations (version varchar primary key, applied_at bigint not null);
insert into identity.seaql_migrations values ('m_0001_init', 1700000000), ('m_mas_bus_0001_tables', 1700000001);
create table identity.platforms (id text primary key, name text not null, created_at timestamptz not null);
create table identity.users (
  id text primary key, platform text not null references identity.platforms (id), email text not null,
  full_name text not null, role text not null, password_hash text not null,
  active boolean not null default true, created_at timestamptz not null, updated_at timestamptz not null);
create unique index users_platform_email on identity.users (platform, email);
insert into identity.platforms values ('mr-mentor', 'Mr Mentor', now()), ('my-analytics-school', 'MAS', now());
insert into identity.users
  select 'u' || g, case when g % 2 = 0 then 'mr-mentor' else 'my-analytics-school' end, 'user' || g || '@example.com',
         'User ' || g, 'USER', '\$argon2id\$v=19\$x', true, now(), now()
  from generate_series(1, 250) g;
create schema notifier;
create table notifier.seaql_migrations (version varchar primary key, applied_at bigint not null);
create table notifier.deliveries (id text primary key, platform text not null, channel text not null,
  recipient text not null, status text not null, attempts int not null default 0, created_at timestamptz not null);
insert into notifier.deliveries select 'd' || g, 'mr-mentor', 'email', 'a@example.com', 'sent', 1, now()
  from generate_series(1, 40) g;
create schema scratch;
create table scratch.t (x int);
" >/dev/null || fail "source schemas created"

export BACKUP_DIR="$work/backups" BACKUP_RETENTION_DAYS=14 BACKUP_KEEP_MIN=2
unset BACKUP_SCHEMAS

# 1. A backup with the default (discovered) schemas.
if DATABASE_URL="$src_url" "$here/backup.sh" >"$work/backup1.log" 2>&1; then
  ok "backup.sh exits 0 on discovered schemas"
else
  fail "backup.sh exits 0 on discovered schemas" "$(tail -3 "$work/backup1.log" | tr '\n' ' ')"
fi
id_dump=$(ls "$BACKUP_DIR"/identity/identity-*.dump 2>/dev/null | head -1)
nt_dump=$(ls "$BACKUP_DIR"/notifier/notifier-*.dump 2>/dev/null | head -1)
expect "dumps named BACKUP_DIR/<schema>/<schema>-<UTC timestamp>.dump" \
  bash -c '[[ $0 =~ /identity/identity-[0-9]{8}T[0-9]{6}Z\.dump$ && $1 =~ /notifier/notifier-[0-9]{8}T[0-9]{6}Z\.dump$ ]]' "$id_dump" "$nt_dump"
expect "discovery leaves out a schema no service migrated (scratch)" test ! -e "$BACKUP_DIR/scratch"
expect "pg_restore --list reads the identity dump and lists identity.users" \
  bash -c 'pg_restore --list "$0" | grep -q "TABLE DATA identity users"' "$id_dump"
expect "pg_restore --list reads the notifier dump and lists notifier.deliveries" \
  bash -c 'pg_restore --list "$0" | grep -q "TABLE DATA notifier deliveries"' "$nt_dump"
expect "the log says what it did (wrote, verified, kept)" \
  bash -c 'grep -q "identity: wrote .*verified with pg_restore --list and a full read" "$0" && grep -q "done: 2 schema(s) backed up, 0 failed" "$0"' "$work/backup1.log"
expect "no partial files left behind" bash -c '! ls "$0"/*/*.partial 2>/dev/null | grep -q .' "$BACKUP_DIR"

# 2. Restore into a fresh database.
if TARGET_DATABASE_URL="$dst_url" "$here/restore.sh" "$id_dump" >"$work/restore1.log" 2>&1; then
  ok "restore.sh restores identity into a fresh database"
else
  fail "restore.sh restores identity into a fresh database" "$(tail -3 "$work/restore1.log" | tr '\n' ' ')"
fi
expect "restored identity.users has the 250 rows" test "$(sql "$dst_db" "select count(*) from identity.users" 2>&1)" = 250
expect "restored rows are the same rows (checksum)" test \
  "$(sql "$src_db" "select md5(string_agg(id || email || platform, ',' order by id)) from identity.users")" = \
  "$(sql "$dst_db" "select md5(string_agg(id || email || platform, ',' order by id)) from identity.users" 2>&1)"
expect "restored constraints hold (unique email per platform)" \
  bash -c '! psql "$0" -X -q -c "insert into identity.users values ('"'x'"', '"'mr-mentor'"', '"'user2@example.com'"', '"'x'"', '"'USER'"', '"'h'"', true, now(), now())" 2>/dev/null' "$base_url/$dst_db"
expect "restored migration history (seaql_migrations) came along" test "$(sql "$dst_db" "select count(*) from identity.seaql_migrations")" = 2
if DATABASE_URL="$dst_url" "$here/restore.sh" "$nt_dump" >"$work/restore2.log" 2>&1 &&
  [[ $(sql "$dst_db" "select count(*) from notifier.deliveries") == 40 ]]; then
  ok "restore.sh restores notifier (DATABASE_URL as the target) with its 40 deliveries"
else
  fail "restore.sh restores notifier (DATABASE_URL as the target) with its 40 deliveries" "$(tail -3 "$work/restore2.log" | tr '\n' ' ')"
fi

# 3. Refusals.
sql "$dst_db" "delete from identity.users where id = 'u1'" >/dev/null
TARGET_DATABASE_URL="$dst_url" "$here/restore.sh" "$id_dump" >"$work/refuse.log" 2>&1
rc=$?
expect "restore.sh refuses a non-empty schema without --force (exit 3)" test "$rc" = 3
expect "the refusal says why and how" grep -q "is not empty .*use --force" "$work/refuse.log"
expect "the refused restore left the data as it was (249 rows)" test "$(sql "$dst_db" "select count(*) from identity.users")" = 249
if TARGET_DATABASE_URL="$dst_url" "$here/restore.sh" --force "$id_dump" >"$work/force.log" 2>&1 &&
  [[ $(sql "$dst_db" "select count(*) from identity.users") == 250 ]]; then
  ok "restore.sh --force replaces the schema (250 rows again)"
else
  fail "restore.sh --force replaces the schema (250 rows again)" "$(tail -3 "$work/force.log" | tr '\n' ' ')"
fi
expect "--force dropped the schema it moved aside" \
  test "$(sql "$dst_db" "select count(*) from pg_namespace where nspname like 'identity_before_restore_%'")" = 0
head -c 2000 "$id_dump" >"$work/truncated.dump"
TARGET_DATABASE_URL="$dst_url" "$here/restore.sh" --force "$work/truncated.dump" >"$work/bad.log" 2>&1
rc=$?
expect "restore.sh refuses an unreadable (truncated) dump and leaves the schema alone" \
  bash -c '[[ $0 != 0 ]] && [[ $(psql "$1" -X -t -A -c "select count(*) from identity.users") == 250 ]]' "$rc" "$base_url/$dst_db"
# A dump whose table of contents reads but whose data is cut short: the restore fails part way,
# and --force must put the previous schema back.
head -c "$(($(stat -c %s "$id_dump") - 200))" "$id_dump" >"$work/cut.dump"
TARGET_DATABASE_URL="$dst_url" "$here/restore.sh" --force "$work/cut.dump" >"$work/cut.log" 2>&1
rc=$?
expect "a restore that fails part way puts the previous schema back (exit 1, 250 rows, nothing aside)" \
  bash -c '[[ $0 == 1 ]] && grep -q "previous identity is back in place" "$2" &&
    [[ $(psql "$1" -X -t -A -c "select count(*) from identity.users") == 250 ]] &&
    [[ $(psql "$1" -X -t -A -c "select count(*) from pg_namespace where nspname like '"'identity_before_restore_%'"'") == 0 ]]' \
  "$rc" "$base_url/$dst_db" "$work/cut.log"
TARGET_DATABASE_URL="$dst_url" "$here/restore.sh" --schema notifier "$id_dump" >"$work/wrong.log" 2>&1
expect "restore.sh refuses a --schema the dump does not hold" grep -q "schema notifier is not in the dump" "$work/wrong.log"
DATABASE_URL="$src_url" "$here/backup.sh" no_such_schema >"$work/missing.log" 2>&1
rc=$?
expect "backup.sh fails loudly on a named schema that does not exist" \
  bash -c '[[ $0 == 1 ]] && grep -q "no_such_schema: FAILED: no such schema" "$1"' "$rc" "$work/missing.log"

# 4. Retention: dumps older than BACKUP_RETENTION_DAYS go, the newest BACKUP_KEEP_MIN stay.
dir="$BACKUP_DIR/identity"
for d in 20 30 40; do
  old="$dir/identity-$(date -u -d "$d days ago" +%Y%m%dT%H%M%SZ).dump"
  cp "$id_dump" "$old"
  touch -d "$d days ago" "$old"
done
recent="$dir/identity-$(date -u -d "3 days ago" +%Y%m%dT%H%M%SZ).dump"
cp "$id_dump" "$recent"
touch -d "3 days ago" "$recent"
touch -d "1 hour ago" "$id_dump"
sleep 1 # a new timestamp for the next dump
if DATABASE_URL="$src_url" BACKUP_KEEP_MIN=1 "$here/backup.sh" identity >"$work/prune.log" 2>&1; then
  ok "backup.sh with a named schema (identity) exits 0"
else
  fail "backup.sh with a named schema (identity) exits 0" "$(tail -3 "$work/prune.log" | tr '\n' ' ')"
fi
left=$(find "$dir" -name 'identity-*.dump' | wc -l)
expect "retention pruned the 3 dumps older than 14 days, kept the 3 recent ones ($left left)" test "$left" = 3
expect "retention kept the 3-day-old dump and the previous one" test -e "$recent" -a -e "$id_dump"
expect "the pruning is logged" bash -c '[[ $(grep -c "pruned .*older than 14 days" "$0") == 3 ]]' "$work/prune.log"
# Every dump old: the newest BACKUP_KEEP_MIN survive anyway.
find "$dir" -name 'identity-*.dump' -exec touch -d "60 days ago" {} +
newest=$(ls "$dir"/identity-*.dump | sort | tail -1)
touch -d "50 days ago" "$newest"
sleep 1
DATABASE_URL="$src_url" BACKUP_KEEP_MIN=2 "$here/backup.sh" identity >"$work/keep.log" 2>&1
left=$(find "$dir" -name 'identity-*.dump' | wc -l)
expect "retention keeps the newest BACKUP_KEEP_MIN=2 even when all are old ($left left)" \
  bash -c '[[ $0 == 2 && -e $1 ]]' "$left" "$newest"
expect "the notifier dumps were not touched by the identity run" test "$(find "$BACKUP_DIR/notifier" -name '*.dump' | wc -l)" = 1

# 5. The password never shows.
cat "$work"/*.log >"$work/all.txt"
expect "no log line carries the database password" bash -c '! grep -qF -- "$0" "$1" && ! grep -qF -- "Sup3r-Secret" "$1"' "$secret" "$work/all.txt"
expect "logs name the database without the password" grep -qF "postgres@127.0.0.1:5432/$src_db" "$work/all.txt"

echo "backup: $passed passed, $failed failed"
((failed == 0))
