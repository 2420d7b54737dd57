#!/usr/bin/env bash
# The project's test command (README, Makefile `make test`, .ci/run):
#   gofmt check, go vet, then go test -race over every package against a real PostgreSQL.
# With DATABASE_URL unset it starts a throwaway server (scripts/pg.sh) and removes it after.
# Extra arguments go to `go test` (e.g. scripts/test.sh -run TestClaim ./store/).
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...

if [ $# -eq 0 ]; then set -- ./...; fi
exec scripts/pg.sh run go test -race -count=1 -timeout 30m "$@"
