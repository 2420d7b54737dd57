#!/usr/bin/env bash
# Measures `rayctl requeue` on 100,000 FAILED rows, the way an operator runs it: the built
# binary against PostgreSQL, --limit 10000 per run (the hard cap), repeated until nothing
# matches, for each --batch size given. Prints rows/s (wall clock, including each run's
# selection and process start), the number of transactions, the mean time per transaction
# (rayctl's apply time / transactions) and the longest transaction (the longest batch,
# BEGIN to COMMIT, as rayctl measures it).
#
#   bench/requeue_100k.sh [BATCH...]      default batches: 100 1000
#   ROWS=100000 bench/requeue_100k.sh 500
#
# Uses DATABASE_URL (a fresh schema in it, dropped afterwards), or starts a throwaway
# PostgreSQL with scripts/pg.sh when DATABASE_URL is unset. Needs psql and jq.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DATABASE_URL:-}" ]; then exec scripts/pg.sh run "$0" "$@"; fi
command -v psql >/dev/null && command -v jq >/dev/null || { echo "requeue_100k.sh: needs psql and jq" >&2; exit 2; }

ROWS=${ROWS:-100000}
BATCHES=("$@")
[ ${#BATCHES[@]} -gt 0 ] || BATCHES=(100 1000)

bin=$(mktemp -d)
schema="bench_requeue_$$"
base=$DATABASE_URL
case "$base" in *\?*) sep='&' ;; *) sep='?' ;; esac
export DATABASE_URL="${base}${sep}search_path=${schema}"
export PGOPTIONS="-c search_path=${schema}"
cleanup() { psql "$base" -qc "DROP SCHEMA IF EXISTS ${schema} CASCADE" >/dev/null 2>&1 || true; rm -rf "$bin"; }
trap cleanup EXIT

go build -o "$bin/rayctl" ./cmd/rayctl
psql "$base" -qc "CREATE SCHEMA ${schema}"
"$bin/rayctl" migrate up >/dev/null

echo "rayctl requeue of ${ROWS} FAILED rows; $(nproc) CPUs; $(psql "$base" -tAc 'SHOW server_version' | cut -d' ' -f1)"
printf '%-7s %-6s %-10s %-10s %-6s %-11s %-12s\n' BATCH RUNS "WALL (s)" "ROWS/S" "TXS" "MEAN TX" "LONGEST TX"
for batch in "${BATCHES[@]}"; do
  psql "$base" -q <<SQL
TRUNCATE django_ray_raytaskexecution, rayctl_audit CASCADE;
INSERT INTO django_ray_raytaskexecution (task_id, callable_path, queue_name, state, attempt_number, ray_job_id,
  ray_address, created_at, started_at, finished_at, last_heartbeat_at, claimed_by_worker, args_json, kwargs_json,
  error_message, error_traceback)
SELECT gen_random_uuid()::text, 'bench.tasks.charge', 'default', 'FAILED', 3, 'raysubmit_' || g, 'auto',
  now() - interval '2 hours', now() - interval '1 hour', now() - interval '59 minutes', now() - interval '59 minutes',
  'w-bench', '[1, 2]', '{}', 'ValueError: boom', 'Traceback (most recent call last): ...'
FROM generate_series(1, ${ROWS}) g;
VACUUM ANALYZE django_ray_raytaskexecution;
SQL
  runs=0 requeued=0 longest=0 txs=0 applying=0
  start=$(date +%s.%N)
  while :; do
    set +e
    out=$("$bin/rayctl" requeue --state FAILED --limit 10000 --batch "$batch" --yes -o json)
    code=$?
    set -e
    [ "$code" = 3 ] && break
    [ "$code" = 0 ] || { echo "rayctl exited $code" >&2; exit 1; }
    runs=$((runs + 1))
    requeued=$((requeued + $(jq .outcome.changed <<<"$out")))
    txs=$((txs + $(jq .outcome.batches <<<"$out")))
    applying=$(jq -n "$applying + $(jq .outcome.elapsed_seconds <<<"$out")")
    longest=$(jq -n --argjson a "$longest" --argjson b "$(jq .outcome.longest_batch_seconds <<<"$out")" '[$a, $b] | max')
  done
  end=$(date +%s.%N)
  left=$(psql "$base" -tAc "SELECT count(*) FROM django_ray_raytaskexecution WHERE state <> 'QUEUED'")
  [ "$requeued" = "$ROWS" ] && [ "$left" = 0 ] || { echo "requeued $requeued of $ROWS, $left left" >&2; exit 1; }
  wall=$(jq -n "$end - $start")
  printf '%-7s %-6s %-10.2f %-10.0f %-6s %-11s %-12s\n' "$batch" "$runs" "$wall" "$(jq -n "$ROWS / $wall")" "$txs" \
    "$(jq -n "$applying / $txs * 1000 | . * 10 | round / 10")ms" "$(jq -n "$longest * 1000 | . * 10 | round / 10")ms"
done
