#!/usr/bin/env bash
# Man pages and shell completion scripts for the packages, made by the binaries themselves
# from their CLI definitions (`NAME man`, `NAME completion SHELL`: internal/clidoc):
#
#   scripts/gen-docs.sh [DIR]    write DIR/manpages/NAME.1.gz and DIR/completions/NAME.{bash,zsh,fish}
#
# DIR defaults to .cache/docs (goreleaser's before hook; nfpm packs from there). The man pages
# are gzipped without a name or time stamp, so the same source gives the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.cache/docs}
rm -rf "$out/manpages" "$out/completions"
mkdir -p "$out/manpages" "$out/completions" .cache/gen-docs
for name in rayctl rayworker; do
  CGO_ENABLED=0 go build -o ".cache/gen-docs/$name" "./cmd/$name"
  bin=.cache/gen-docs/$name
  "$bin" man | gzip -n -9 >"$out/manpages/$name.1.gz"
  for shell in bash zsh fish; do
    "$bin" completion "$shell" >"$out/completions/$name.$shell"
  done
done
echo "gen-docs.sh: wrote $(cd "$out" && ls manpages/* completions/* | tr '\n' ' ')" >&2
