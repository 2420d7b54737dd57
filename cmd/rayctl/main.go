// Command rayctl is the operator tool for django-ray task queues: scripted recovery commands
// for runbooks and CI, and a live TUI (rayctl top).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rayctl/rayctl/cmd/rayctl/internal/termquery"
	"github.com/rayctl/rayctl/internal/buildinfo"
)

// init runs after every imported package's init (bubbletea's included): the terminal's TERM
// comes back now that nothing can query the terminal at startup (see termquery).
func init() { termquery.Restore() }

// version, commit and date are set at build time with -ldflags "-X main.version=... -X
// main.commit=... -X main.date=..." (goreleaser, make build). Unset, build falls back to what
// the Go toolchain recorded (go install ...@vX.Y.Z, a build in a git checkout).
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// build identifies this binary: `version`, the configuration log and the User-Agent use it.
var build = buildinfo.Resolve(version, commit, date)

func main() {
	// A write to a closed stdout (rayctl ... | head) then returns EPIPE instead of killing the
	// process with SIGPIPE (exit 141) wherever it is: rayctl stops writing output and ends
	// what it is doing safely (see outWriter). The signals themselves are dropped.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
