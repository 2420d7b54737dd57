# rayctl / rayworker. `make help` lists the targets.
.DEFAULT_GOAL := help
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE ?= $(shell git log -1 --format=%cI 2>/dev/null)
# the same -X paths as .goreleaser.yaml (deploy/release_test.go builds with that file's flags)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

.PHONY: help build test lint bench bench-top bench-ray demo docs release-check release-snapshot test-release test-scale

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-17s %s\n", $$1, $$2}'

build: ## build bin/rayctl and bin/rayworker (static, trimmed)
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

test: ## gofmt, go vet and go test -race against a throwaway PostgreSQL
	scripts/test.sh

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...

bench: ## Go benchmarks against a throwaway PostgreSQL
	scripts/pg.sh run go test -run '^$$' -bench . -benchtime 2s ./store/

bench-top: ## rayctl top's refresh queries on 1,000,000 seeded rows, with plans
	scripts/bench-top.sh

bench-ray: ## rayworker Ray Job mode: per-task overhead and requests/s with 1,000 jobs in flight (throwaway PostgreSQL and Ray)
	scripts/pg.sh run scripts/ray.sh run go run ./bench/rayrunner -n 1000 -window 60s -overhead 30

demo: ## throwaway PostgreSQL, workers, sample tasks and rayctl top (q quits and cleans up)
	scripts/demo.sh

docs: ## man pages and shell completions from the CLI definitions, into .cache/docs
	scripts/gen-docs.sh

release-check: ## goreleaser check (builds goreleaser from the Go module proxy the first time)
	scripts/release.sh check

release-snapshot: ## a snapshot release into dist/: archives, deb/rpm, SBOMs, checksums, OCI images (nothing published)
	scripts/release.sh snapshot

test-release: ## the release tier: snapshot release, then its packages and images inspected
	cd deploy && RAYCTL_RELEASE=1 go test -count=1 -run 'TestRelease' -v -timeout 40m .

test-scale: ## the scale-out tier: two-node Ray cluster, three replicas, a replica and a node killed (throwaway PostgreSQL)
	RAYCTL_SCALE=1 scripts/test.sh -run TestScaleOut -v -timeout 40m ./cmd/rayworker/
