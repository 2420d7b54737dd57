#!/usr/bin/env bash
# Measures what one `rayctl top` refresh reads on a table of 1,000,000 rows (ROWS=...):
# seeds a throwaway schema with scripts/seed-1m.sql, runs BenchmarkTopRefresh (with the
# EXPLAIN (ANALYZE, BUFFERS) plans of every query), and drops the schema again.
# Results: docs/benchmarks.md, "rayctl top refresh at 1,000,000 rows".
#   scripts/bench-top.sh              # starts a throwaway PostgreSQL when DATABASE_URL is unset
#   ROWS=200000 BENCHTIME=10x scripts/bench-top.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DATABASE_URL:-}" ]; then exec scripts/pg.sh run "$0" "$@"; fi
command -v psql >/dev/null || { echo "bench-top.sh: psql is needed (apt-get install postgresql-client)" >&2; exit 1; }
rows=${ROWS:-1000000}
schema=${SCHEMA:-bench_top}
case "$DATABASE_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
url="${DATABASE_URL}${sep}options=-csearch_path%3D${schema}"

psql -qX "$DATABASE_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" -c "CREATE SCHEMA $schema"
trap 'psql -qX "$DATABASE_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE"' EXIT
go run ./cmd/rayctl migrate up --database-url "$url"
echo "seeding $rows rows into $schema..." >&2
time psql -qX "$url" -v n="$rows" -f scripts/seed-1m.sql
# a second VACUUM: the first one, right after the bulk insert, can leave pages not yet
# all-visible, which turns the index-only scans into heap fetches
psql -qX "$url" -c "VACUUM ANALYZE django_ray_raytaskexecution"
RAYCTL_BENCH_SCHEMA=$schema RAYCTL_EXPLAIN=1 go test -run '^$' -bench BenchmarkTopRefresh \
  -benchtime "${BENCHTIME:-20x}" -v ./store/
