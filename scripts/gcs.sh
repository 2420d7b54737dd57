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
. scripts/lib.sh

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
  local dir port
  dir=$(server_dir "${1:-}" rayctl-gcs)
  install
  port=$(free_port)
  setsid "$gobin/fake-gcs-server" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
    -external-url "http://127.0.0.1:$port" -public-host "127.0.0.1:$port" -log-level warn \
    >"$dir/server.log" 2>&1 &
  echo $! >"$dir/pid"
  await_port "$dir" "$port" 60 fake-gcs-server || return 1
  echo "export RAYCTL_GCS_EMULATOR_HOST='127.0.0.1:$port'"
  echo "export RAYCTL_GCS_DIR='$dir'"
  echo "gcs.sh: GCS (fake-gcs-server $version) at http://127.0.0.1:$port" >&2
}

stop() {
  stop_group "${1:?usage: gcs.sh stop DIR}" "${2:-}"
}

run() {
  start_until_exit RAYCTL_GCS_DIR
  "$@"
}

main "start stop run" "start [DIR] | stop DIR | run CMD..." "$@"
