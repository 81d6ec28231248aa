#!/usr/bin/env bash
# A throwaway PostgreSQL server for the endpoint's storage conformance tests.
#
#   .ci/postgres.sh start   install PostgreSQL if missing (Debian), start a server for
#                           this checkout and print its URL on stdout
#   .ci/postgres.sh stop    stop that server, if it runs
#   .ci/postgres.sh fresh NAME
#                           start it, (re)create an empty database NAME owned by
#                           `carry`, and print its URL on stdout
#
# The server keeps its data and socket under target/pg/, listens on 127.0.0.1 only, on
# port 55432 or the first free one of the nine after it (CARRY_PG_PORT to change it), and trusts the role `carry` (CREATEDB and
# CREATEROLE, for the tests of a role that may not change the schema; not a superuser) from 127.0.0.1 without a password: any local user can use it, so it is
# for test machines only. Durability is off (fsync=off): the data is disposable.
# initdb refuses to run as root, so as root the server runs as the `postgres` system
# user that the Debian package creates. `start` is idempotent: a running server is
# reused.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${CARRY_PG_PORT:-55432}"
base="$PWD/target/pg"
say() { echo "postgres.sh: $*" >&2; }

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

# Run a PostgreSQL program as the server's owner (from /, which it can enter; every
# path here is absolute).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# The data directory must be reachable by the server's user (a checkout under a
# private home is not) and the socket path short enough for a unix socket; failing
# either, use a directory under /tmp named after this checkout.
choose_base() {
  local sock_path="$base/run/.s.PGSQL.$port"
  if [ ${#sock_path} -gt 100 ] || { [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$(dirname "$base")"; }; then
    base="/tmp/carry-pg-$(printf '%s' "$PWD" | cksum | cut -d' ' -f1)"
    say "using $base (target/pg is not reachable by the server's user)"
  fi
}

install_if_missing() {
  bindir >/dev/null && return 0
  say "installing PostgreSQL (Debian package postgresql)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
  bindir >/dev/null || { say "no initdb under /usr/lib/postgresql/*/bin after installing"; exit 1; }
}

running() {
  [ -f "$base/data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$base/data" status >/dev/null 2>&1
}

# The port a running server listens on (fourth line of postmaster.pid).
running_port() {
  sed -n 4p "$base/data/postmaster.pid" 2>/dev/null || echo "$port"
}

url() { echo "postgres://carry@127.0.0.1:$1/postgres"; }

init() {
  # A data directory from another major version (after an upgrade) is thrown away.
  if [ -f "$base/data/PG_VERSION" ] && [ "$(cat "$base/data/PG_VERSION")" != "$major" ]; then
    say "data directory is from PostgreSQL $(cat "$base/data/PG_VERSION"), not $major: recreating"
    rm -rf "$base/data"
  fi
  mkdir -p "$base/run"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres:postgres "$base"
  fi
  chmod 700 "$base/run"
  [ -f "$base/data/PG_VERSION" ] && return 0
  rm -rf "$base/data"
  as_owner "$bin/initdb" -D "$base/data" -U postgres --auth-local=trust --auth-host=reject \
    -E UTF8 --locale=C.UTF-8 >"$base/initdb.log" 2>&1 \
    || { cat "$base/initdb.log" >&2; say "initdb failed"; exit 1; }
  as_owner tee -a "$base/data/postgresql.conf" >/dev/null <<EOF
# carry test server (.ci/postgres.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$base/run'
unix_socket_permissions = 0700
shared_buffers = 32MB
max_connections = 40
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  # The superuser only over the socket (owner-only, see above); `carry` over TCP.
  as_owner tee "$base/data/pg_hba.conf" >/dev/null <<EOF
local all  all               trust
host  all  carry 127.0.0.1/32 trust
EOF
}

start() {
  install_if_missing
  bin=$(bindir)
  major=$(basename "$(dirname "$bin")")
  mkdir -p "$(dirname "$base")"
  choose_base
  if running; then
    p=$(running_port)
    say "already running on 127.0.0.1:$p"
  else
    init
    # The port may be taken, by another server or for a moment by any program's
    # outgoing connection (55432 is in the ephemeral range): try a few after it.
    p=""
    for candidate in $(seq "$port" $((port + 9))); do
      say "starting PostgreSQL $major on 127.0.0.1:$candidate (data in $base/data)"
      if as_owner "$bin/pg_ctl" -D "$base/data" -l "$base/server.log" -w -t 60 \
        -o "-p $candidate" start >/dev/null; then
        p=$candidate
        break
      fi
      if ! grep -q "Address already in use" "$base/server.log" 2>/dev/null; then
        break
      fi
      say "127.0.0.1:$candidate is taken; trying the next port"
      as_owner truncate -s 0 "$base/server.log" 2>/dev/null || true
    done
    if [ -z "$p" ]; then
      tail -n 20 "$base/server.log" >&2 || true
      say "the server did not start"
      exit 1
    fi
  fi
  local ready=(as_owner "$bin/pg_isready" -q -h "$base/run" -p "$p" -U postgres -d postgres)
  for _ in $(seq 1 60); do
    "${ready[@]}" && break
    sleep 0.5
  done
  "${ready[@]}" || { say "not ready (socket in $base/run, port $p)"; exit 1; }
  local psql=(as_owner "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$base/run" -p "$p" -U postgres -d postgres)
  if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'carry'")" != 1 ]; then
    "${psql[@]}" -c "CREATE ROLE carry LOGIN CREATEDB CREATEROLE"
  else
    "${psql[@]}" -c "ALTER ROLE carry CREATEDB CREATEROLE"
  fi
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$p" -U carry -d postgres \
    || { say "not accepting TCP connections on 127.0.0.1:$p"; exit 1; }
  url "$p"
}

stop() {
  bin=$(bindir) || { say "PostgreSQL is not installed: nothing to stop"; return 0; }
  choose_base
  if running; then
    as_owner "$bin/pg_ctl" -D "$base/data" -m fast -w stop >/dev/null
    say "stopped"
  else
    say "not running"
  fi
}

fresh() {
  local name="${1:-}"
  [[ "$name" =~ ^[a-z_][a-z0-9_]{0,40}$ ]] || { say "give a database name (lower case, digits, _)"; exit 2; }
  local u p
  u=$(start)
  p=${u##*:}
  p=${p%%/*}
  bin=$(bindir)
  choose_base
  as_owner "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$base/run" -p "$p" -U postgres -d postgres \
    -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name OWNER carry" >&2
  echo "postgres://carry@127.0.0.1:$p/$name"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  fresh) fresh "${2:-}" ;;
  *)
    echo "usage: $0 start|stop|fresh NAME" >&2
    exit 2
    ;;
esac
