#!/usr/bin/env bash
# Throwaway PostgreSQL for tests, CI and the demo.
#
#   scripts/pg.sh start [DIR]   init + start a cluster, print `export DATABASE_URL=...` lines
#   scripts/pg.sh stop DIR      stop it and delete DIR
#   scripts/pg.sh down DIR      stop the server (fast shutdown: clients are cut off), keep DIR
#   scripts/pg.sh up DIR        start it again after down, same port and settings
#   scripts/pg.sh run CMD...    if DATABASE_URL is unset, start one, run CMD with it, stop it
#
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user on a
# directory it owns. It listens on 127.0.0.1 on a free private port and a private socket dir,
# with fsync off: it is for tests only and is deleted on stop.
set -euo pipefail

find_bin() {
  if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then echo "$PG_BIN"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  echo "pg.sh: no PostgreSQL server binaries found (set PG_BIN, or apt-get install postgresql)" >&2
  return 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(( 20000 + RANDOM % 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "pg.sh: no free port found" >&2
  return 1
}

start() {
  local bin dir port
  bin=$(find_bin)
  dir=${1:-$(mktemp -d /tmp/rayctl-pg.XXXXXX)}
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$dir" postgres
    chown postgres "$dir"
    chmod 700 "$dir"
  fi
  port=$(free_port)
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  echo "$port" >"$dir/port"
  serve "$bin" "$dir" "$port" || return 1
  echo "export DATABASE_URL='postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable'"
  echo "export RAYCTL_PG_DIR='$dir'"
}

serve() {
  local bin=$1 dir=$2 port=$3
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_connections=300 -c shared_buffers=256MB" start >/dev/null ||
    { cat "$dir/server.log" >&2; return 1; }
}

down() {
  local dir=${1:?usage: pg.sh down DIR} bin
  bin=$(find_bin)
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
}

up() {
  local dir=${1:?usage: pg.sh up DIR} bin
  bin=$(find_bin)
  serve "$bin" "$dir" "$(cat "$dir/port")"
}

stop() {
  local dir=${1:?usage: pg.sh stop DIR} bin
  bin=$(find_bin)
  [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

run() {
  if [ -n "${DATABASE_URL:-}" ]; then exec "$@"; fi
  local env
  env=$(start)
  eval "$env"
  # shellcheck disable=SC2064
  trap "stop '$RAYCTL_PG_DIR'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  echo "pg.sh: throwaway PostgreSQL at ${DATABASE_URL}" >&2
  "$@"
}

cmd=${1:-}
shift || true
case "$cmd" in
  start) start "$@" ;;
  stop) stop "$@" ;;
  down) down "$@" ;;
  up) up "$@" ;;
  run) run "$@" ;;
  *) echo "usage: scripts/pg.sh start [DIR] | stop DIR | down DIR | up DIR | run CMD..." >&2; exit 2 ;;
esac
