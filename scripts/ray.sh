#!/usr/bin/env bash
# Throwaway single-node Ray head for the real-Ray test tier and benchmarks.
#
#   scripts/ray.sh start [DIR]   start a head, print `export RAY_ADDRESS=...` lines
#   scripts/ray.sh stop DIR      stop it (every process it started) and delete DIR
#   scripts/ray.sh run CMD...    start one, run CMD with RAY_ADDRESS etc. exported, stop it
#
# The head uses the .venv from scripts/pyenv.sh (Ray 2.60, django-ray 0.2.0): PATH starts with
# the venv's bin, so a job's `python -m django_ray.runtime.entrypoint` runs the venv's Python.
# Ray's files live in a private temp dir (Ray's --temp-dir) and every port is chosen free on
# 127.0.0.1, so it does not clash with another Ray on the machine. That temp dir is a short one
# under /tmp, named in DIR/tempdir, whatever DIR is: Ray's Unix sockets live below it, and a
# socket path may not exceed 107 bytes, which a DIR longer than about 40 characters would
# (DIR itself keeps the bookkeeping: logs, the process group, the marker). `stop` ends the head's
# process group (recorded at start) and every process whose environment carries the marker
# RAYCTL_RAY_DIR=DIR (job entrypoints run in sessions of their own, but inherit it): it never
# touches a Ray it did not start (`ray stop` would kill every Ray of the user).
#
# Exports: RAY_ADDRESS (the Jobs API, http://127.0.0.1:PORT), RAYCTL_RAY_GCS (the GCS address,
# 127.0.0.1:PORT, for Ray Core drivers: rayworker --runner ray_core), RAYCTL_PYTHON (the venv python),
# RAYCTL_PYTHONPATH (this repo's python/ dir, for a job's runtime_env), RAYCTL_RAY_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/lib.sh

fetch() { # fetch URL: print the body of a 2xx answer (curl, else the venv's python)
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -m 2 "$1"
  else
    "$RAYCTL_PYTHON" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "$1"
  fi
}

start() {
  local dir venv port dash start_ms tdir
  dir=$(server_dir "${1:-}" rayctl-ray)
  tdir=$(mktemp -d /tmp/rr.XXXXXX)
  echo "$tdir" >"$dir/tempdir"
  eval "$(scripts/pyenv.sh)"
  venv=$RAYCTL_VENV
  port=$(free_port); dash=$(free_port)
  local wmin=$(( 40000 + (RANDOM % 200) * 100 ))
  start_ms=$(( $(date +%s%N) / 1000000 ))
  # RAY_USAGE_STATS_ENABLED=0: no usage reporting (no network here, and none wanted).
  # setsid: Ray's daemons get a process group of their own (its id goes in DIR/pgid), so stop
  # can end them all, including those whose environment setproctitle overwrote.
  if ! env PATH="$venv/bin:$PATH" RAYCTL_RAY_DIR="$dir" RAY_USAGE_STATS_ENABLED=0 \
    setsid -w bash -c 'echo $$ >"$RAYCTL_RAY_DIR/pgid"; exec "$@"' ray \
    "$venv/bin/ray" start --head --disable-usage-stats \
      --num-cpus "${RAYCTL_RAY_CPUS:-2}" --object-store-memory $(( 200 * 1024 * 1024 )) \
      --node-ip-address 127.0.0.1 --temp-dir "$tdir" \
      --port "$port" --dashboard-host 127.0.0.1 --dashboard-port "$dash" \
      --ray-client-server-port "$(free_port)" --node-manager-port "$(free_port)" \
      --object-manager-port "$(free_port)" --metrics-export-port "$(free_port)" \
      --dashboard-agent-listen-port "$(free_port)" --dashboard-agent-grpc-port "$(free_port)" \
      --runtime-env-agent-port "$(free_port)" \
      --min-worker-port "$wmin" --max-worker-port $(( wmin + 99 )) \
      >"$dir/start.log" 2>&1; then
    echo "ray.sh: \`ray start --head\` failed (log: $dir/start.log):" >&2
    tail -n 40 "$dir/start.log" >&2
    stop "$dir" keep
    return 1
  fi
  local url="http://127.0.0.1:$dash" i
  for i in $(seq 1 240); do
    if fetch "$url/api/version" >"$dir/version.json" 2>/dev/null; then break; fi
    if [ "$i" = 240 ]; then
      echo "ray.sh: the Ray dashboard at $url did not answer /api/version within 120s" >&2
      tail -n 40 "$dir/start.log" >&2
      stop "$dir" keep
      return 1
    fi
    sleep 0.5
  done
  echo "ray.sh: Ray head up at $url in $(( $(date +%s%N) / 1000000 - start_ms ))ms: $(cat "$dir/version.json")" >&2
  echo "export RAY_ADDRESS='$url'"
  echo "export RAYCTL_RAY_GCS='127.0.0.1:$port'"
  echo "export RAYCTL_PYTHON='$venv/bin/python'"
  echo "export RAYCTL_PYTHONPATH='$root/python'"
  echo "export RAYCTL_RAY_DIR='$dir'"
}

# ours DIR: PIDs of live processes this head started: its process group (DIR/pgid) and
# anything whose environment carries the marker (job entrypoints run in sessions of their own,
# but inherit it). Zombies are left to their parents.
ours() {
  local dir=$1 pgid=
  [ -f "$dir/pgid" ] && pgid=$(cat "$dir/pgid")
  {
    if [ -n "$pgid" ]; then
      ps -e -o pid=,pgid=,stat= | awk -v g="$pgid" '$2 == g && $3 !~ /^Z/ {print $1}'
    fi
    grep -lzxF "RAYCTL_RAY_DIR=$dir" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
  } | grep -vx "$$" | sort -u || true
}

stop() {
  local dir=${1:?usage: ray.sh stop DIR} keep=${2:-} pids i
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  pids=$(ours "$dir")
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for i in $(seq 1 25); do  # 5 s grace, then SIGKILL
      pids=$(ours "$dir")
      [ -z "$pids" ] && break
      sleep 0.2
    done
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
  fi
  if [ -z "$keep" ]; then
    if [ -f "$dir/tempdir" ]; then rm -rf "$(cat "$dir/tempdir")"; fi
    rm -rf "$dir"
  fi
  return 0
}

run() {
  start_until_exit RAYCTL_RAY_DIR
  "$@"
}

main "start stop run" "start [DIR] | stop DIR | run CMD..." "$@"
