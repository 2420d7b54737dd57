package rayrunner_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/rayrunner"
	"github.com/rayctl/rayctl/worker/workertest"
)

// loopConfig is a worker configuration with short intervals for tests.
func loopConfig(logs io.Writer) worker.Config {
	cfg := workertest.Config()
	cfg.Concurrency, cfg.Policy, cfg.ShutdownTimeout = 8, lifecycle.Policy{MaxAttempts: 2}, 100*time.Millisecond
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

// loopEnv is a worker with the Ray runner over a fake Jobs API and a fresh schema.
type loopEnv struct {
	t      *testing.T
	s      *store.Store
	sc     storetest.Schema
	srv    *raytest.Server
	w      *worker.Worker
	r      *rayrunner.Runner
	logs   *workertest.LogBuffer
	cancel context.CancelFunc
	done   chan error
}

func startLoop(t *testing.T, s *store.Store, sc storetest.Schema, srv *raytest.Server, mod func(*worker.Config), rmod func(*rayrunner.Config)) *loopEnv {
	t.Helper()
	logs := &workertest.LogBuffer{}
	rc := fastConfig(newClient(t, srv, nil), logs)
	if rmod != nil {
		rmod(&rc)
	}
	r, err := rayrunner.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := loopConfig(logs)
	if mod != nil {
		mod(&cfg)
	}
	w, err := worker.New(cfg, s, r)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.Context(): the worker must keep running until its stop in Cleanup shuts it down.
	ctx, cancel := context.WithCancel(context.Background())
	e := &loopEnv{t: t, s: s, sc: sc, srv: srv, w: w, r: r, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- w.Run(ctx) }()
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("worker log:\n%s", logs.String())
		}
	})
	return e
}

func (e *loopEnv) stop() {
	e.cancel()
	select {
	case err, ok := <-e.done:
		if ok {
			close(e.done)
			if err != nil {
				e.t.Errorf("worker: %v", err)
			}
		}
	case <-time.After(60 * time.Second):
		e.t.Fatal("worker did not stop")
	}
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// scriptByCallable scripts fake jobs by the task's callable (metadata) and attempt (id).
func scriptByCallable(script func(callable string, attempt int) []raytest.Step) raytest.Option {
	return raytest.WithLifecycle(func(sub raytest.Submission) []raytest.Step {
		attempt := 0
		if i := strings.Index(sub.SubmissionID, "_a"); i >= 0 {
			fmt.Sscanf(sub.SubmissionID[i+2:], "%d", &attempt)
		}
		return script(sub.Metadata["callable_path"], attempt)
	})
}

func pyString(n int) string { return `"` + strings.Repeat("x", n) + `"` }

// TestThroughTheLoop: every outcome a Ray job can have, recorded by the worker loop exactly
// as django-ray 0.2.0 records it (with 0.2.0's known faults fixed): results inline and by
// reference, app errors retried under a new submission id, FAILED jobs as RayJobFailed,
// STOPPED jobs CANCELLED, timeouts and cancellations stopping the Ray job.
func TestThroughTheLoop(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	appErr := `{"success": false, "result": null, "error": "bad value", "traceback": "Traceback (most recent call last):\nValueError: bad value\n", "exception_type": "builtins.ValueError"}`
	const big = 2 << 20
	srv := raytest.New(t, scriptByCallable(func(callable string, attempt int) []raytest.Step {
		switch callable {
		case "app.ok":
			return raytest.Succeeds("Running entrypoint for job\n" + envelope(`{"sum": 5}`) + "\n")
		case "app.flaky":
			if attempt == 1 {
				return raytest.Succeeds(appErr + "\n")
			}
			return raytest.Succeeds(envelope(`"second time lucky"`) + "\n")
		case "app.crash":
			return raytest.Fails("Traceback (most recent call last):\nModuleNotFoundError: No module named 'app'\n")
		case "app.stopped":
			return []raytest.Step{{After: 0, Status: raytest.Running}, {After: 1, Status: raytest.Stopped}}
		case "app.big":
			return raytest.Succeeds(envelope(pyString(big)) + "\n")
		}
		return []raytest.Step{{After: 0, Status: raytest.Running}} // runs until stopped
	}))
	e := startLoop(t, s, sc, srv, nil, nil)

	ok := workertest.Enqueue(t, s, store.NewTask{CallablePath: "app.ok"})
	flaky := workertest.Enqueue(t, s, store.NewTask{CallablePath: "app.flaky"})
	crash := workertest.Enqueue(t, s, store.NewTask{CallablePath: "app.crash"})
	stopped := workertest.Enqueue(t, s, store.NewTask{CallablePath: "app.stopped"})
	bigT := workertest.Enqueue(t, s, store.NewTask{CallablePath: "app.big"})
	timeout := workertest.Enqueue(t, s, store.NewTask{CallablePath: "app.forever", TimeoutSeconds: storetest.Ptr(int32(1))})
	cancel := workertest.Enqueue(t, s, store.NewTask{CallablePath: "app.forever"})

	if got := workertest.WaitState(t, s, ok.ID, 20*time.Second, store.StateSucceeded); str(got.ResultData) != `{"sum": 5}` ||
		!strings.HasPrefix(str(got.RayJobID), fmt.Sprintf("raysubmit_t%d_a1_", ok.ID)) || str(got.RayAddress) != e.r.Address() {
		t.Fatalf("ok: %+v", got)
	}
	got := workertest.WaitState(t, s, flaky.ID, 20*time.Second, store.StateSucceeded)
	if str(got.ResultData) != `"second time lucky"` || got.AttemptNumber != 2 || got.ErrorMessage != nil {
		t.Fatalf("flaky: %+v", got)
	}
	var flakyJobs []string
	for _, j := range srv.Jobs() {
		if j.Metadata["django_ray_task_id"] == fmt.Sprint(flaky.ID) {
			flakyJobs = append(flakyJobs, j.SubmissionID)
		}
	}
	if len(flakyJobs) != 2 || flakyJobs[0] == flakyJobs[1] || !strings.Contains(flakyJobs[1], "_a2_") {
		t.Fatalf("retry must run under a new submission id: %v", flakyJobs)
	}
	if got := workertest.WaitState(t, s, crash.ID, 30*time.Second, store.StateFailed); got.AttemptNumber != 2 ||
		!strings.HasPrefix(str(got.ErrorMessage), "Job entrypoint command failed with exit code 1") ||
		!strings.Contains(str(got.ErrorTraceback), "No module named 'app'") {
		t.Fatalf("crash: %+v", got)
	}
	workertest.WaitState(t, s, stopped.ID, 20*time.Second, store.StateCancelled)
	sum := sha256.Sum256([]byte(pyString(big)))
	if got := workertest.WaitState(t, s, bigT.ID, 30*time.Second, store.StateSucceeded); got.ResultData != nil ||
		str(got.ResultReference) != fmt.Sprintf("oversize://sha256/%s?bytes=%d", hex.EncodeToString(sum[:]), big+2) {
		t.Fatalf("big: data %d bytes, reference %s", len(str(got.ResultData)), str(got.ResultReference))
	}

	// timeout: FAILED (never retried), and the Ray job is stopped (0.2.0 leaves it running)
	got = workertest.WaitState(t, s, timeout.ID, 20*time.Second, store.StateFailed)
	if str(got.ErrorMessage) != "Task timed out after 1 seconds" || got.AttemptNumber != 1 {
		t.Fatalf("timeout: %+v", got)
	}
	workertest.Eventually(t, 10*time.Second, "the timed-out job to be stopped", func() bool {
		j, _ := srv.Job(str(got.RayJobID))
		return j.Status == raytest.Stopped && j.StopRequests == 1
	})

	// cancel: CANCELLING -> the Ray job is stopped -> CANCELLED
	workertest.Eventually(t, 10*time.Second, "the job to run", func() bool {
		j, ok := srv.Job(str(workertest.Row(t, s, cancel.ID).RayJobID))
		return ok && j.Status == raytest.Running
	})
	if _, err := s.RequestCancel(t.Context(), []int64{cancel.ID}, []store.TaskState{store.StateRunning}); err != nil {
		t.Fatal(err)
	}
	got = workertest.WaitState(t, s, cancel.ID, 20*time.Second, store.StateCancelled)
	if j, _ := srv.Job(str(got.RayJobID)); j.Status != raytest.Stopped || j.StopRequests != 1 {
		t.Fatalf("cancelled job: %+v", j)
	}

	// every job was accepted exactly once
	for _, j := range srv.Jobs() {
		if acc, posts := accepted(srv, j.SubmissionID); acc != 1 || posts != 1 {
			t.Fatalf("%s: accepted %d, posts %d", j.SubmissionID, acc, posts)
		}
	}
}

// TestOutageThroughTheLoop: while Ray is unreachable the worker claims nothing, /readyz says
// why, and in-flight tasks are not heartbeated (they show as stuck) but, past the stuck
// timeout, neither marked LOST nor re-run: their jobs may still run, or have finished. When
// Ray comes back the job's own outcome is recorded (the same job, the same attempt).
func TestOutageThroughTheLoop(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	srv := raytest.New(t, scriptByCallable(func(callable string, attempt int) []raytest.Step {
		if callable == "app.later" {
			return raytest.Succeeds(envelope(`"claimed after the outage"`) + "\n")
		}
		return []raytest.Step{{After: 0, Status: raytest.Running}}
	}))
	e := startLoop(t, s, sc, srv, func(c *worker.Config) { c.StuckAfter = 2 * time.Second }, nil)
	inflight := workertest.Enqueue(t, s, store.NewTask{CallablePath: "app.long"})
	first := workertest.WaitState(t, s, inflight.ID, 10*time.Second, store.StateRunning)
	workertest.Eventually(t, 10*time.Second, "the job to run", func() bool {
		j, ok := srv.Job(str(first.RayJobID))
		return ok && j.Status == raytest.Running
	})

	srv.SetDown(true)
	workertest.Eventually(t, 10*time.Second, "/readyz to fail", func() bool {
		rec := httptest.NewRecorder()
		e.w.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code == http.StatusServiceUnavailable && strings.Contains(rec.Body.String(), "unreachable")
	})
	// The loop may have checked readiness just before the outage and be claiming now: enqueue
	// once it has seen the runner not ready, so "nothing is claimed during the outage" is what
	// the loop decides, not how fast this machine schedules it.
	workertest.Eventually(t, 10*time.Second, "the loop to hold claims", func() bool {
		return len(e.logs.Lines("runner not ready; holding claims")) > 0
	})
	waiting := workertest.Enqueue(t, s, store.NewTask{CallablePath: "app.later"})
	// The job finishes while the API is out.
	srv.Update(t, str(first.RayJobID), func(j *raytest.Job) {
		j.Status, j.Logs = raytest.Succeeded, envelope(`"finished during the outage"`)+"\n"
	})
	// Past the stuck timeout by the database's clock, and some sweeps later.
	workertest.Eventually(t, 30*time.Second, "the in-flight row to be stale for the stuck timeout", func() bool {
		var stale bool
		err := storetest.DB(s).QueryRow(t.Context(), `SELECT last_heartbeat_at < now() - interval '3 seconds' FROM django_ray_raytaskexecution WHERE id = $1`, inflight.ID).Scan(&stale)
		return err == nil && stale
	})
	if got := workertest.Row(t, s, inflight.ID); got.State != store.StateRunning || got.AttemptNumber != 1 {
		t.Fatalf("moved during the outage: %+v", got)
	}
	if got := workertest.Row(t, s, waiting.ID); got.State != store.StateQueued {
		t.Fatalf("claimed during the outage: %+v", got)
	}

	srv.SetDown(false)
	got := workertest.WaitState(t, s, inflight.ID, 30*time.Second, store.StateSucceeded, store.StateQueued, store.StateLost, store.StateFailed)
	if got.State != store.StateSucceeded || str(got.ResultData) != `"finished during the outage"` || str(got.RayJobID) != str(first.RayJobID) || got.AttemptNumber != 1 {
		t.Fatalf("%+v", got)
	}
	if j, _ := srv.Job(str(first.RayJobID)); j.StopRequests != 0 {
		t.Fatalf("the job was stopped: %+v", j)
	}
	workertest.WaitState(t, s, waiting.ID, 30*time.Second, store.StateSucceeded)
	if n := len(e.logs.Lines("Ray Jobs API unreachable")); n != 1 {
		t.Fatalf("%d outage lines", n)
	}
	if n := len(e.logs.Lines("runner not ready; holding claims")); n != 1 {
		t.Fatalf("%d hold lines", n)
	}
	if n := len(e.logs.Lines(`"msg":"task lost`)); n != 0 {
		t.Fatalf("%d lost lines", n)
	}
	for _, j := range srv.Jobs() {
		if acc, posts := accepted(srv, j.SubmissionID); acc != 1 || posts != 1 {
			t.Fatalf("%s: accepted %d, posts %d", j.SubmissionID, acc, posts)
		}
	}
}
