// Package scripts has no code: it holds the Go tests of the project's shell scripts (pg.sh,
// ray.sh, demo.sh), so that `go test ./...` runs them.
package scripts
