#!/usr/bin/env bash
# Throwaway PostgreSQL for tests, CI and the demo.
#
#   scripts/pg.sh start [DIR]   init + start a cluster, print `export DATABASE_URL=...` lines
#   scripts/pg.sh stop DIR      stop it and delete DIR
#   scripts/pg.sh down DIR      stop the server (fast shutdown: clients are cut off), keep DIR
#   scripts/pg.sh up DIR        start it again after down, same port and settings
#   scripts/pg.sh run CMD...    if DATABASE_URL is unset, start one, run CMD with it, stop it
#                               (also when CMD fails or is interrupted; exits with CMD's status)
#
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user on a
# directory it owns. When the postgres user cannot reach DIR (a parent directory of mode 0700,
# such as root's home), the server's files go in a private directory under /tmp instead, named
# in DIR/home; DIR keeps the bookkeeping and `stop DIR` removes both. It listens on 127.0.0.1 on
# a free private port and a private socket dir, with fsync off: it is for tests only and is
# deleted on stop.
set -euo pipefail

# free_port, server_dir, start_until_exit, main; and the rule that every function returns an
# explicit status (so that stop, from the EXIT trap, never gives up half-way)
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_bin() {
  if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then echo "$PG_BIN"; return 0; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  done
  echo "pg.sh: no PostgreSQL server binaries found (set PG_BIN, or apt-get install postgresql)" >&2
  return 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# home DIR: where the server's files are (data, log, socket): DIR itself, or the directory
# named in DIR/home when the postgres user could not reach DIR.
home() {
  if [ -f "$1/home" ]; then cat "$1/home"; else echo "$1"; fi
  return 0
}

start() {
  local bin dir port h
  bin=$(find_bin)
  dir=$(server_dir "${1:-}" rayctl-pg)
  h=$dir
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --no-create-home postgres
    chown postgres "$dir"
    chmod 700 "$dir"
    if ! runuser -u postgres -- test -w "$dir" -a -x "$dir" 2>/dev/null; then
      # a parent of DIR is closed to the postgres user (e.g. mode 0700): keep the server's
      # files where it can reach them, and name that place in DIR/home
      h=$(mktemp -d /tmp/rayctl-pgh.XXXXXX)
      chown postgres "$h"
      chmod 700 "$h"
      echo "$h" >"$dir/home"
      echo "pg.sh: the postgres user cannot reach $dir; the server's files are in $h" >&2
    fi
  fi
  port=$(free_port)
  as_owner "$bin/initdb" -D "$h/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    as_owner "$bin/initdb" -D "$h/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  echo "$port" >"$dir/port"
  serve "$bin" "$dir" "$port" || return 1
  echo "export DATABASE_URL='postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable'"
  echo "export RAYCTL_PG_DIR='$dir'"
  return 0
}

serve() {
  local bin=$1 dir=$2 port=$3 h
  h=$(home "$dir")
  as_owner "$bin/pg_ctl" -D "$h/data" -l "$h/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$h \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_connections=300 -c shared_buffers=256MB" start >/dev/null ||
    { cat "$h/server.log" >&2; return 1; }
  return 0
}

down() {
  local dir=${1:?usage: pg.sh down DIR} bin
  bin=$(find_bin)
  as_owner "$bin/pg_ctl" -D "$(home "$dir")/data" -m fast -w -t 60 stop >/dev/null
}

up() {
  local dir=${1:?usage: pg.sh up DIR} bin
  bin=$(find_bin)
  serve "$bin" "$dir" "$(cat "$dir/port")"
}

# stop DIR: stop the server at once and delete its files. Safe to call from a trap, whatever
# failed before: it neither depends on the caller's status nor stops half-way.
stop() {
  local dir=${1:?usage: pg.sh stop DIR} bin h
  [ -d "$dir" ] || return 0
  h=$(home "$dir")
  if [ -d "$h/data" ] && bin=$(find_bin); then
    as_owner "$bin/pg_ctl" -D "$h/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ "$h" != "$dir" ]; then rm -rf "$h"; fi
  rm -rf "$dir"
  return 0
}

# run CMD...: CMD's exit status is pg.sh's; the server is stopped and deleted however CMD ends
# (success, failure, Ctrl-C: 130, SIGTERM: 143, SIGHUP: 129).
run() {
  if [ -n "${DATABASE_URL:-}" ]; then exec "$@"; fi
  start_until_exit RAYCTL_PG_DIR
  echo "pg.sh: throwaway PostgreSQL at ${DATABASE_URL}" >&2
  "$@"
}

main "start stop down up run" "start [DIR] | stop DIR | down DIR | up DIR | run CMD..." "$@"
