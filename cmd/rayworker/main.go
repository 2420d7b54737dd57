// Command rayworker is the worker daemon for django-ray task queues: a drop-in replacement for
// django-ray 0.2.0's `manage.py django_ray_worker` over the same PostgreSQL tables.
package main

import (
	"context"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/rayctl/rayctl/internal/buildinfo"
	"github.com/rayctl/rayctl/worker/procgroup"
)

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
	procgroup.Main() // when re-executed as a task's supervisor, this runs it and exits
	termCtx, stopTerm := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	intCtx, stopInt := signal.NotifyContext(context.Background(), os.Interrupt)
	ctx, cancel := context.WithCancel(context.Background())
	var signalled atomic.Int32 // the exit code of a graceful stop: 128 + the signal
	go func() {
		select {
		case <-termCtx.Done():
			signalled.Store(exitSIGTERM)
		case <-intCtx.Done():
			signalled.Store(exitSIGINT)
		}
		stopTerm() // a second signal during the shutdown takes its default effect: exit now
		stopInt()
		cancel()
	}()
	code := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	if s := signalled.Load(); code == exitOK && s != 0 {
		code = int(s)
	}
	os.Exit(code)
}
