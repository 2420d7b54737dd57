#!/usr/bin/env bash
# Throwaway GCS server (fake-gcs-server) for the object-storage tests.
#
#   scripts/gcs.sh start [DIR]   start one, print `export RAYCTL_GCS_...=...` lines
#   scripts/gcs.sh stop DIR      stop it and delete DIR
#   scripts/gcs.sh run CMD...    start one, run CMD with its variables exported, stop it
#
# fake-gcs-server is a Go program from the Go module proxy, installed once into
# .cache/gobin (gitignored) with `go install` at the pinned version below. It listens on
# 127.0.0.1 on a free port, over plain HTTP, keeping objects in memory. Exports:
# RAYCTL_GCS_EMULATOR_HOST (127.0.0.1:PORT, the STORAGE_EMULATOR_HOST value for it) and
# RAYCTL_GCS_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
version=v1.56.1
gobin=$root/.cache/gobin

free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(( 20000 + RANDOM % 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "gcs.sh: no free port found" >&2
  return 1
}

install() {
  local stamp=$gobin/fake-gcs-server.version
  if [ -x "$gobin/fake-gcs-server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then return; fi
  echo "gcs.sh: installing fake-gcs-server $version into $gobin" >&2
  mkdir -p "$gobin"
  # its own module graph, not this repository's go.mod
  (cd "$gobin" && GOBIN=$gobin GOFLAGS= CGO_ENABLED=0 go install "github.com/fsouza/fake-gcs-server@$version") >&2
  echo "$version" >"$stamp"
}

start() {
  local dir port i
  dir=${1:-$(mktemp -d /tmp/rayctl-gcs.XXXXXX)}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  install
  port=$(free_port)
  setsid "$gobin/fake-gcs-server" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
    -external-url "http://127.0.0.1:$port" -public-host "127.0.0.1:$port" -log-level warn \
    >"$dir/server.log" 2>&1 &
  echo $! >"$dir/pid"
  for i in $(seq 1 60); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if [ "$i" = 60 ] || ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "gcs.sh: fake-gcs-server did not listen on 127.0.0.1:$port within 30s:" >&2
      tail -n 40 "$dir/server.log" >&2
      stop "$dir" keep
      return 1
    fi
    sleep 0.5
  done
  echo "export RAYCTL_GCS_EMULATOR_HOST='127.0.0.1:$port'"
  echo "export RAYCTL_GCS_DIR='$dir'"
  echo "gcs.sh: GCS (fake-gcs-server $version) at http://127.0.0.1:$port" >&2
}

stop() {
  local dir=${1:?usage: gcs.sh stop DIR} keep=${2:-} pid i
  [ -d "$dir" ] || return 0
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 25); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  if [ -z "$keep" ]; then rm -rf "$dir"; fi
}

run() {
  local env
  env=$(start)
  eval "$env"
  # shellcheck disable=SC2064
  trap "stop '$RAYCTL_GCS_DIR'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  "$@"
}

cmd=${1:-}
shift || true
case "$cmd" in
  start) start "$@" ;;
  stop) stop "$@" ;;
  run) run "$@" ;;
  *) echo "usage: scripts/gcs.sh start [DIR] | stop DIR | run CMD..." >&2; exit 2 ;;
esac
