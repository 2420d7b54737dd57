package workertest

import (
	"context"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
)

// Config is a worker configuration with the short intervals tests want: heartbeats every
// 200ms, a 2s lease, idle polls of 10-50ms. Tests set the rest (concurrency, policy,
// shutdown timeout, logger).
func Config() worker.Config {
	return worker.Config{
		HeartbeatInterval:   200 * time.Millisecond,
		LeaseTTL:            2 * time.Second,
		StuckAfter:          30 * time.Second,
		IdlePollMin:         10 * time.Millisecond,
		IdlePollMax:         50 * time.Millisecond,
		CancelCheckInterval: 50 * time.Millisecond,
		StopWait:            5 * time.Second,
	}
}

// Runner is what Run and WaitDone need of a worker.Runner.
type Runner interface {
	Start(context.Context, store.Task) error
	Poll(context.Context, []store.Task) ([]worker.Status, error)
	Events() <-chan struct{}
	Forget(store.Task)
}

// Run starts tk on r, waits for its Done status (WaitDone) and forgets it, as the worker's
// loop does.
func Run(t testing.TB, r Runner, tk store.Task, timeout time.Duration) worker.Status {
	t.Helper()
	if err := r.Start(t.Context(), tk); err != nil {
		t.Fatalf("start: %v", err)
	}
	st := WaitDone(t, r, tk, timeout)
	r.Forget(tk)
	return st
}

// WaitDone polls r for tk, when its Events fire and at least every second, until tk is Done,
// and returns that status. A Poll error, a phase other than Running or Done, or no Done
// within timeout fails the test.
func WaitDone(t testing.TB, r Runner, tk store.Task, timeout time.Duration) worker.Status {
	t.Helper()
	deadline := time.After(timeout)
	for {
		st, err := r.Poll(t.Context(), []store.Task{tk})
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Phase == worker.Done {
			return st[0]
		}
		if st[0].Phase != worker.Running {
			t.Fatalf("task %d: phase %v (%s)", tk.ID, st[0].Phase, st[0].Message)
		}
		select {
		case <-r.Events():
		case <-time.After(time.Second): // another wait may have taken the event
		case <-deadline:
			t.Fatalf("task %d did not finish within %s", tk.ID, timeout)
		}
	}
}

// CloseAtEnd closes r when the test ends, giving Close timeout, and fails the test if Close
// returns an error.
func CloseAtEnd(t testing.TB, r interface{ Close(context.Context) error }, timeout time.Duration) {
	t.Cleanup(func() {
		// Not t.Context(): it is cancelled before Cleanup functions run.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
}
