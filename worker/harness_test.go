package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/procgroup"
	"github.com/rayctl/rayctl/worker/procrunner"
	"github.com/rayctl/rayctl/worker/workertest"
)

// TestMain checks no test leaves a goroutine behind. storetest keeps one admin pool for the
// whole test binary (its health-check goroutine is expected); the worker creates no pools.
func TestMain(m *testing.M) {
	procgroup.Main() // the process runner re-executes this binary as its supervisor
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))
}

// waitLines waits until n log lines contain every one of subs and returns them (the row's
// new state is visible before the worker logs it).
func (h *running) waitLines(n int, subs ...string) []string {
	h.t.Helper()
	var got []string
	workertest.Eventually(h.t, 10*time.Second, fmt.Sprintf("%d log lines with %q", n, subs), func() bool {
		got = h.logs.Lines(subs...)
		return len(got) >= n
	})
	if len(got) != n {
		h.t.Fatalf("%d log lines with %q, want %d: %q", len(got), subs, n, got)
	}
	return got
}

// testConfig is a worker configuration with short intervals for tests.
func testConfig() worker.Config {
	cfg := workertest.Config()
	cfg.Concurrency, cfg.Policy, cfg.ShutdownTimeout = 4, lifecycle.Policy{MaxAttempts: 3}, 5*time.Second
	return cfg
}

// running is a worker running in the background against a fresh schema.
type running struct {
	t      *testing.T
	s      *store.Store
	sc     storetest.Schema
	w      *worker.Worker
	logs   *workertest.LogBuffer
	cancel context.CancelFunc
	done   chan error
	dir    string
}

// env is a fresh schema for one test.
type env struct {
	t  *testing.T
	s  *store.Store
	sc storetest.Schema
}

func newEnv(t *testing.T) env {
	t.Helper()
	s, sc := storetest.New(t)
	return env{t: t, s: s, sc: sc}
}

// start runs a worker with the process runner over the contract entrypoint.
func (e env) start(mod func(*worker.Config), rmod func(*procrunner.Config)) *running {
	t := e.t
	t.Helper()
	rc := procrunner.Config{Entrypoint: workertest.Entrypoint(t), KillGrace: time.Second}
	if rmod != nil {
		rmod(&rc)
	}
	r, err := procrunner.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	return e.startWith(mod, r)
}

func (e env) startWith(mod func(*worker.Config), r worker.Runner) *running {
	t := e.t
	t.Helper()
	cfg := testConfig()
	logs := &workertest.LogBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if mod != nil {
		mod(&cfg)
	}
	w, err := worker.New(cfg, e.s, r)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.Context(): the worker must keep running until its stop in Cleanup shuts it down.
	ctx, cancel := context.WithCancel(context.Background())
	h := &running{t: t, s: e.s, sc: e.sc, w: w, logs: logs, cancel: cancel, done: make(chan error, 1), dir: t.TempDir()}
	go func() { h.done <- w.Run(ctx) }()
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("worker: %v", err)
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", logs.String())
		}
	})
	return h
}

// stop shuts the worker down (once) and returns Run's error.
func (h *running) stop() error {
	h.cancel()
	select {
	case err, ok := <-h.done:
		if !ok {
			return nil
		}
		close(h.done)
		return err
	case <-time.After(60 * time.Second):
		h.t.Fatal("worker did not stop within 60s")
	}
	return nil
}

func enqueue(t *testing.T, s *store.Store, n store.NewTask) store.Task {
	t.Helper()
	if !strings.Contains(n.CallablePath, ".") {
		n.CallablePath = "tests.tasks." + n.CallablePath
	}
	return workertest.Enqueue(t, s, n)
}

// waitState waits until the row is in one of states and returns it.
func waitState(t *testing.T, s *store.Store, id int64, states ...store.TaskState) store.Task {
	t.Helper()
	return workertest.WaitState(t, s, id, 60*time.Second, states...)
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func dbNow(t *testing.T, s *store.Store) time.Time {
	t.Helper()
	now, err := s.Now(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return now
}
