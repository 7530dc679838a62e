# shellcheck shell=bash disable=SC2034
# (PG_ARGS and PG_SHOWN are read by the scripts that source this file.)
# Sourced by scripts/backup.sh and scripts/restore.sh: turns a postgres:// URL into libpq
# arguments without the password ever reaching a command line or a log line.
#
#   pg_from_url "$DATABASE_URL"
#     PG_ARGS      array: (--dbname=<the URL without its password>); for an empty URL,
#                  (--dbname=$PGDATABASE) and libpq's PGHOST/PGUSER/... environment applies
#     PG_SHOWN     the URL as it may be logged (no password)
#     PGPASSWORD   exported when the URL carried one (percent-decoded)
#
# The password may also be in the query (`?password=...`); it is moved the same way. A password
# with `@`, `/` or `:` should be percent-encoded, as in any URL; an unencoded `/` or `:` still
# works here because the user info is split at the last `@`.

pg_urldecode() {
  # %XX only: in a URL's user info, as for libpq, `+` is a plus sign.
  local s=${1//\\/\\\\}
  printf '%b' "${s//%/\\x}"
}

pg_from_url() {
  local url=$1
  if [[ -z $url ]]; then
    # libpq's environment; the database named explicitly, because pg_restore without
    # --dbname writes SQL to stdout instead of restoring.
    local db=${PGDATABASE:-${PGUSER:-$(id -un)}}
    PG_ARGS=("--dbname=$db")
    PG_SHOWN="database $db (PG* environment)"
    return 0
  fi
  case $url in
    postgres://* | postgresql://*) ;;
    *)
      echo "expected a postgres:// or postgresql:// URL" >&2
      return 1
      ;;
  esac
  local scheme=${url%%://*} rest=${url#*://} userinfo="" hostpart user pass=""
  if [[ $rest == *@* ]]; then
    userinfo=${rest%@*}
    hostpart=${rest##*@}
  else
    hostpart=$rest
  fi
  if [[ $userinfo == *:* ]]; then
    user=${userinfo%%:*}
    pass=${userinfo#*:}
  else
    user=$userinfo
  fi
  # A password in the query string.
  if [[ $hostpart == *\?* ]]; then
    local base=${hostpart%%\?*} query=${hostpart#*\?} params=() kv
    local IFS='&'
    for kv in $query; do
      if [[ $kv == password=* ]]; then
        pass=${kv#password=}
      elif [[ -n $kv ]]; then
        params+=("$kv")
      fi
    done
    hostpart=$base
    if ((${#params[@]})); then hostpart="$base?${params[*]}"; fi
  fi
  if [[ -n $pass ]]; then
    PGPASSWORD=$(pg_urldecode "$pass")
    export PGPASSWORD
  fi
  local clean="$scheme://${user:+$user@}$hostpart"
  PG_ARGS=("--dbname=$clean")
  PG_SHOWN=$clean
}
