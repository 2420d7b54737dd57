#!/usr/bin/env bash
# rayworker's executor runners against django-ray 0.2.0's own worker, same database, same
# Django project (python/rayctl_testapp), interleaved rounds (bench/executors/main.go says
# what is measured). Prints progress per run on stderr and the Markdown table and ratios for
# docs/benchmarks.md on stdout.
#
#   bench/executors.sh [ARGS...]          e.g. -rounds 3 -tasks 200
#   RAYCTL_BENCH_RAY=0 bench/executors.sh skip the Ray Core comparison (no Ray head)
#
# It builds bin/rayworker, makes the venv (scripts/pyenv.sh), starts a throwaway PostgreSQL when
# DATABASE_URL is unset, and for the Ray Core comparison a throwaway Ray head whose workers have
# the Django project on their path (django-ray's --cluster passes no runtime_env, so its tasks
# rely on the head's environment; rayworker passes the same through --ray-runtime-env).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
if [ -z "${DATABASE_URL:-}" ]; then exec scripts/pg.sh run "$0" "$@"; fi
eval "$(scripts/pyenv.sh)"
CGO_ENABLED=0 go build -trimpath -o bin/rayworker ./cmd/rayworker
go build -o bin/bench-executors ./bench/executors
args=(-python "$RAYCTL_PYTHON" -rayworker "$root/bin/rayworker" -pythonpath "$root/python")
if [ "${RAYCTL_BENCH_RAY:-1}" = 1 ]; then
  raydir=$(mktemp -d /tmp/rb.XXXXXX)
  trap 'scripts/ray.sh stop "$raydir"' EXIT
  eval "$(DJANGO_SETTINGS_MODULE=rayctl_testapp.settings PYTHONPATH="$root/python" scripts/ray.sh start "$raydir")"
  args+=(-gcs "$RAYCTL_RAY_GCS")
fi
echo "bench/executors.sh: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start" >&2
bin/bench-executors "${args[@]}" "$@"
