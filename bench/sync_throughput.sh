#!/usr/bin/env bash
# rayworker --sync throughput on trivial tasks: tasks/s, rayworker CPU and peak RSS.
#
#   bench/sync_throughput.sh [TASKS] [CONCURRENCY]
#
# Builds bin/rayworker, starts a throwaway PostgreSQL when DATABASE_URL is unset (each run
# uses a fresh schema either way), and runs two entrypoints: the python3 contract script
# (testdata/contract_entrypoint.py: a Python start per task, as django-ray's entrypoint
# has) and bench/noop_entrypoint.sh (a shell that prints the envelope: rayworker's own cost).
# Results are recorded in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${1:-2000}
concurrency=${2:-10}
if [ -z "${DATABASE_URL:-}" ]; then exec scripts/pg.sh run "$0" "$@"; fi
CGO_ENABLED=0 go build -trimpath -o bin/rayworker ./cmd/rayworker
go build -o bin/syncbench ./bench/syncbench
python=$(python3 -c 'import sys; print(sys.executable)') # the interpreter, not a pyenv shim
for entry in "$python testdata/contract_entrypoint.py" "bench/noop_entrypoint.sh"; do
  echo "== $entry"
  bin/syncbench -rayworker bin/rayworker -tasks "$tasks" -concurrency "$concurrency" -entrypoint "$entry"
done
