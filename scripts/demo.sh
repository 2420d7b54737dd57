#!/usr/bin/env bash
# make demo: a throwaway queue with a worker, a stream of sample tasks and `rayctl top`.
#
#   scripts/demo.sh                 # PostgreSQL: DATABASE_URL, else a throwaway one (scripts/pg.sh)
#   RAY_ADDRESS=http://127.0.0.1:8265 scripts/demo.sh   # run the tasks as Ray Jobs instead
#
# It builds bin/rayctl and bin/rayworker, runs `rayctl migrate up --audit`, starts two
# `rayworker --sync --entrypoint "python3 scripts/demo_tasks.py"` workers (the bundled demo tasks
# speak django-ray's entrypoint contract, so no Django is needed), enqueues sample tasks (fast,
# slow, failing, on several queues) in the background, and opens `rayctl top`. After a minute
# it freezes one worker (SIGSTOP) so its lease goes stale and its task stops heartbeating: the
# banner then names runbook playbook 2. Quitting top (q) stops everything and removes the
# throwaway database.
#
# DEMO_SECONDS=N DEMO_NO_TUI=1 runs for N seconds without the TUI and prints `rayctl stats`
# instead (a smoke test of the demo itself; it may be piped). Without it, stdin and stdout must
# be a terminal (exit 2 otherwise, before anything starts). However the demo ends (q, Ctrl-C,
# an error), the workers and the throwaway database are stopped. DEMO_CHAOS=0 keeps both
# workers healthy.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# rayctl top draws on a terminal: with stdout or stdin not one (`make demo | tee log`), say so
# before anything starts, instead of starting a database and workers only for top to refuse.
if [ -z "${DEMO_NO_TUI:-}" ] && ! { [ -t 0 ] && [ -t 1 ]; }; then
  echo "demo: rayctl top needs a terminal on stdin and stdout; run \`make demo\` without a pipe or" >&2
  echo "demo: redirection, or DEMO_NO_TUI=1 DEMO_SECONDS=60 make demo | tee log for a run without top" >&2
  exit 2
fi

if [ -z "${DATABASE_URL:-}" ]; then
  exec scripts/pg.sh run "$0" "$@"
fi

say() { printf 'demo: %s\n' "$*" >&2; }

command -v go >/dev/null || { say "Go is needed to build rayctl and rayworker"; exit 1; }
command -v python3 >/dev/null || { say "python3 is needed for the demo tasks (scripts/demo_tasks.py)"; exit 1; }
mkdir -p bin
say "building bin/rayctl"
CGO_ENABLED=0 go build -o bin/rayctl ./cmd/rayctl
if [ -d cmd/rayworker ]; then
  say "building bin/rayworker"
  CGO_ENABLED=0 go build -o bin/rayworker ./cmd/rayworker
fi

work=$(mktemp -d /tmp/rayctl-demo.XXXXXX)
pids=()
stopped_worker=
cleanup() {
  set +e
  [ -n "$stopped_worker" ] && kill -CONT "$stopped_worker" 2>/dev/null
  for pid in "${pids[@]}"; do
    pkill -TERM -P "$pid" 2>/dev/null # the background loops' own children (sleep, rayctl enqueue)
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  say "stopped; logs were in $work (removed)"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bin/rayctl migrate up --audit >&2   # with the optional audit trail: rayctl audit ls shows what requeue/cancel did

# --- the worker (issue: rayworker is built on its own branch; detect what is there) --------
entrypoint="python3 $root/scripts/demo_tasks.py"
worker_ok=1
if [ ! -x bin/rayworker ]; then
  say "rayworker is not built (no cmd/rayworker in this checkout): no worker will run, tasks"
  say "will only queue up, and top will show the backlog signal (playbook 1)"
  worker_ok=0
elif ! bin/rayworker --help 2>&1 | grep -q -- '--entrypoint'; then
  say "this rayworker has no --entrypoint flag, so it cannot run the bundled demo tasks;"
  say "running without a worker (top will show the backlog signal, playbook 1)"
  worker_ok=0
fi
if [ "$worker_ok" = 1 ]; then
  queues=default,emails,reports,high-priority
  if [ -n "${RAY_ADDRESS:-}" ]; then
    say "RAY_ADDRESS=$RAY_ADDRESS: running tasks as Ray Jobs (the Ray cluster must see $root/scripts)"
    mode=(--cluster "$RAY_ADDRESS")
  else
    mode=(--sync)
  fi
  for n in 1 2; do
    # Short retry backoff so failures reach FAILED within a demo's minute; a declined card is
    # not worth retrying (the runbook's denylist advice).
    bin/rayworker "${mode[@]}" --queue "$queues" --concurrency 4 --entrypoint "$entrypoint" \
      --retry-backoff-seconds 5 --retry-exception-denylist demo.payments.CardDeclined \
      --worker-lease-seconds 30 --worker-heartbeat-seconds 5 \
      >"$work/worker$n.log" 2>&1 &
    pids+=("$!")
  done
  worker_pids=("${pids[@]}")
  say "workers running (logs: $work/worker*.log)"
fi

# --- a stream of sample tasks --------------------------------------------------------------
enqueue() { bin/rayctl enqueue "$@" >/dev/null 2>>"$work/enqueue.log" || true; }
(
  i=0
  while :; do
    i=$((i + 1))
    enqueue demo.tasks.add --args "[$i, 2]" --count 3
    enqueue demo.tasks.send_email --queue emails --kwargs "{\"to\": \"user$i@example.com\"}" --count 2
    enqueue demo.tasks.flaky --args "[$i]"
    enqueue demo.tasks.charge_card --queue high-priority --kwargs "{\"customer\": \"c_$i\", \"cents\": $(( (i * 1373) % 9000 ))}"
    if [ $((i % 5)) = 0 ]; then
      enqueue demo.tasks.slow --kwargs '{"seconds": 8}'
      enqueue demo.tasks.build_report --queue reports --kwargs "{\"day\": \"day-$i\"}"
    fi
    if [ $((i % 15)) = 0 ]; then
      enqueue demo.tasks.add --run-after 2m --count 5   # deferred tasks
    fi
    sleep 1
  done
) &
pids+=("$!")

if [ "${DEMO_CHAOS:-1}" = 1 ] && [ "$worker_ok" = 1 ]; then
  (
    sleep 60
    kill -STOP "${worker_pids[1]}" 2>/dev/null && echo "froze worker ${worker_pids[1]}" >>"$work/chaos.log"
  ) &
  pids+=("$!")
  stopped_worker=${worker_pids[1]}
fi

if [ -n "${DEMO_NO_TUI:-}" ]; then
  sleep "${DEMO_SECONDS:-10}"
  bin/rayctl stats
  exit 0
fi
say "opening rayctl top (q quits and cleans up)"
bin/rayctl top --log-file "$work/top.log"
