#!/usr/bin/env bash
# Release tooling (the opt-in release tier: RAYCTL_RELEASE=1 scripts/test.sh).
#
#   scripts/release.sh tools      install goreleaser and cyclonedx-gomod into .cache/bin
#   scripts/release.sh check      goreleaser check (validates .goreleaser.yaml)
#   scripts/release.sh snapshot   goreleaser release --snapshot --clean (nothing published) of
#                                 the committed HEAD, then the multi-platform image layouts
#                                 dist/images/{rayctl,rayworker}
#   scripts/release.sh release    the same for a tagged release (publishes: needs GITHUB_TOKEN)
#
# The tools come from the Go module proxy at pinned versions and are built with this
# machine's Go (no prebuilt downloads). The container images are built without a Docker
# daemon (deploy/cmd/ociimage, run by the builds' post hooks).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
GORELEASER_VERSION=v2.14.0
CYCLONEDX_GOMOD_VERSION=v1.10.0
bin=$root/.cache/bin
export PATH="$bin:$PATH"

tools() {
  mkdir -p "$bin"
  if ! "$bin/goreleaser" --version 2>/dev/null | grep -q "GitVersion: *${GORELEASER_VERSION}$"; then
    echo "release.sh: building goreleaser $GORELEASER_VERSION (a few minutes the first time)" >&2
    GOBIN=$bin GOFLAGS= go install "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION"
  fi
  if ! "$bin/cyclonedx-gomod" version 2>/dev/null | grep -q "${CYCLONEDX_GOMOD_VERSION#v}"; then
    echo "release.sh: building cyclonedx-gomod $CYCLONEDX_GOMOD_VERSION" >&2
    GOBIN=$bin GOFLAGS= go install "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$CYCLONEDX_GOMOD_VERSION"
  fi
}

images() {
  go build -C deploy -o "$bin/ociimage" ./cmd/ociimage
  for name in rayctl rayworker; do
    "$bin/ociimage" index -name "$name" -out dist/images
    # the multi-platform index is made after goreleaser's checksums: add it, in their format
    (cd dist && sha256sum "images/$name/index.json") >>dist/checksums.txt
  done
}

# in_clone ARGS...: run goreleaser in a fresh clone of this repository, so a release is built
# from what is committed, and goreleaser finds a remote (it reads commit and date from git and
# gives up on both without one: a worktree or a repository with no remote), then move its
# dist/ here.
in_clone() {
  local tmp
  tmp=$(mktemp -d /tmp/rayctl-release.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN
  git clone --quiet "$root" "$tmp/src"
  (cd "$tmp/src" && goreleaser "$@")
  rm -rf "$root/dist"
  mv "$tmp/src/dist" "$root/dist"
}

cmd=${1:-}
case "$cmd" in
  tools) tools ;;
  check) tools; goreleaser check ;;
  snapshot) tools; in_clone release --snapshot --clean; images ;;
  release) tools; in_clone release --clean; images ;;
  *) echo "usage: scripts/release.sh tools|check|snapshot|release" >&2; exit 2 ;;
esac
