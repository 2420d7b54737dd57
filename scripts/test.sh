#!/usr/bin/env bash
# The project's test command (README, Makefile `make test`, .ci/run):
#   gofmt check, go vet, then go test -race over every package against a real PostgreSQL and,
#   for the real-Ray tier, a real Ray head.
# With DATABASE_URL unset it starts a throwaway server (scripts/pg.sh) and removes it after.
# With no arguments it also creates/refreshes the Python venv (scripts/pyenv.sh) and starts a
# throwaway Ray head (scripts/ray.sh; skipped when RAY_ADDRESS is already set), stopped at the
# end. If Ray cannot be installed or started, the run fails with Ray's own error.
# Extra arguments go to `go test` (e.g. scripts/test.sh -run TestClaim ./store/); then Ray is
# started only with RAYCTL_RAY=1. RAYCTL_RAY=0 skips Ray in a full run (its tests then skip,
# or fail under CI=true).
# The Django interop tier (interop/) needs the same venv but no Ray: a full run always makes
# it (RAYCTL_DJANGO=0 skips it; RAYCTL_DJANGO=1 makes it for a partial run too).
# A full run also fuzzes every Fuzz target (each parser of untrusted input: pyjson, the
# result line, payloads, result references, DSN redaction, storable text, the terminal
# sanitizer, Ray's answers) for RAYCTL_FUZZTIME (3s) each, one `go test -fuzz` per target,
# starting from the corpus in each package's testdata/fuzz (RAYCTL_FUZZ=0 skips it;
# RAYCTL_FUZZ=1 fuzzes in a partial run too). A failing input is saved there by go test.
# The object-storage tests (resultstore/, and the s3/gcs parts of cmd/rayctl and interop/) need
# an S3 server (scripts/s3.sh: moto, from the tools venv of scripts/toolsenv.sh) and a GCS
# server (scripts/gcs.sh: fake-gcs-server): a full run starts both (RAYCTL_CLOUD=0 skips them;
# RAYCTL_CLOUD=1 starts them for a partial run too). No test may ask a cloud metadata service:
# AWS_EC2_METADATA_DISABLED is set here, and the GCS tests that use Google's credential chain
# point GCE_METADATA_HOST at a closed local port.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
# deploy/ is a module of its own (Kubernetes, KubeRay and kustomize types stay out of the
# binaries' module): its offline checks of the manifests, systemd units and release config
# run in every full run, or with RAYCTL_DEPLOY=1 (no -race: they start no goroutines, and the
# Kubernetes libraries would double the build). RAYCTL_RELEASE=1 adds the snapshot-release
# tier (scripts/release.sh).
(cd deploy && go vet ./...)
deploy=${RAYCTL_DEPLOY:-}
[ $# -eq 0 ] && deploy=${deploy:-1}
if [ "$deploy" = 1 ] || [ "${RAYCTL_RELEASE:-}" = 1 ]; then
  (cd deploy && go test -count=1 -timeout 20m ./...)
fi

ray=${RAYCTL_RAY:-}
django=${RAYCTL_DJANGO:-}
fuzz=${RAYCTL_FUZZ:-}
cloud=${RAYCTL_CLOUD:-}
if [ $# -eq 0 ]; then
  set -- ./...
  ray=${ray:-1}
  django=${django:-1}
  fuzz=${fuzz:-1}
  cloud=${cloud:-1}
fi
if [ "$fuzz" = 1 ]; then
  fuzzlog=$(mktemp)
  started=$SECONDS
  n=0
  fuzz_one() { go test -run '^$' -fuzz "^$2\$" -fuzztime "${RAYCTL_FUZZTIME:-3s}" "./$(dirname "$1")" >"$fuzzlog" 2>&1; }
  while read -r file fn; do
    # A failure without a failing input is the fuzzing engine itself (a worker starved on a
    # loaded machine): try once more. A failing input is saved under testdata/fuzz and fails.
    if ! fuzz_one "$file" "$fn" && { grep -q 'Failing input written to' "$fuzzlog" || ! fuzz_one "$file" "$fn"; }; then
      cat "$fuzzlog" >&2
      rm -f "$fuzzlog"
      echo "test.sh: fuzzing $fn (./$(dirname "$file")) failed" >&2
      exit 1
    fi
    n=$((n + 1))
  done < <(git ls-files '*_test.go' | xargs grep -o '^func Fuzz[A-Za-z0-9_]*' | sed 's/:func / /')
  rm -f "$fuzzlog"
  echo "test.sh: fuzzed $n targets in $((SECONDS - started))s" >&2
fi
export AWS_EC2_METADATA_DISABLED=true
if [ "$django" = 1 ] && [ -z "${RAYCTL_PYTHON:-}" ]; then
  venv_env=$(scripts/pyenv.sh) # fails the run with pip's or pyenv.sh's own error
  eval "$venv_env"
  export RAYCTL_PYTHONPATH=${RAYCTL_PYTHONPATH:-$(pwd)/python}
fi
wrap=(scripts/pg.sh run)
if [ "$cloud" = 1 ]; then
  wrap+=(scripts/s3.sh run scripts/gcs.sh run)
fi
if [ "$ray" = 1 ]; then
  if [ -n "${RAY_ADDRESS:-}" ]; then
    echo "test.sh: using the Ray at RAY_ADDRESS=$RAY_ADDRESS" >&2
    eval "$(scripts/pyenv.sh)"
    export RAYCTL_PYTHONPATH=${RAYCTL_PYTHONPATH:-$(pwd)/python}
  else
    wrap+=(scripts/ray.sh run)
  fi
fi
exec "${wrap[@]}" go test -race -count=1 -timeout 30m "$@"
