// Command rayworker is the worker daemon for django-ray task queues: a drop-in replacement for
// django-ray 0.2.0's `manage.py django_ray_worker` over the same PostgreSQL tables.
package main

import (
	"context"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/rayctl/rayctl/worker/procgroup"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

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
