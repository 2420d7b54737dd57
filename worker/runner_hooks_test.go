package worker_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/workertest"
)

// hookedRunner is the Ray-job-shaped fake plus the optional interfaces: readiness and metrics.
type hookedRunner struct {
	*fakeRunner
	mu       sync.Mutex
	notReady error
	polls    prometheus.Counter
}

func newHooked() *hookedRunner {
	return &hookedRunner{fakeRunner: newFake(rayJobCaps),
		polls: prometheus.NewCounter(prometheus.CounterOpts{Name: "fake_runner_checks_total", Help: "test"})}
}

func (h *hookedRunner) Ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.notReady
}

func (h *hookedRunner) setReady(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notReady = err
}

// Start reports tasks whose callable says "unknown" as Unknown from the first poll.
func (h *hookedRunner) Start(ctx context.Context, t store.Task) error {
	if err := h.fakeRunner.Start(ctx, t); err != nil {
		return err
	}
	if strings.Contains(t.CallablePath, "unknown") {
		h.set(*t.RayJobID, worker.Status{Phase: worker.Unknown, Message: "status unavailable"})
	}
	return nil
}

func (h *hookedRunner) Describe(ch chan<- *prometheus.Desc) { h.polls.Describe(ch) }
func (h *hookedRunner) Collect(ch chan<- prometheus.Metric) { h.polls.Collect(ch) }

var (
	_ worker.ReadinessReporter = (*hookedRunner)(nil)
	_ prometheus.Collector     = (*hookedRunner)(nil)
)

// TestRunnerNotReadyHoldsClaims: while the runner says it cannot take work, nothing is
// claimed and /readyz says why; once it can, claiming resumes. Each change is logged once.
func TestRunnerNotReadyHoldsClaims(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newHooked()
	f.setReady(errors.New("Ray Jobs API at http://ray:8265 unreachable since 12:00"))
	h := e.startWith(func(c *worker.Config) { c.ShutdownTimeout = 100 * time.Millisecond }, f)
	task := enqueue(t, e.s, store.NewTask{CallablePath: "myapp.tasks.x"})
	time.Sleep(500 * time.Millisecond) // ten claim opportunities at IdlePollMax 50ms
	if got := workertest.Row(t, e.s, task.ID); got.State != store.StateQueued {
		t.Fatalf("claimed while the runner was not ready: %+v", got)
	}
	if code, body := probe(t, h.w, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "runner not ready: Ray Jobs API at http://ray:8265 unreachable") {
		t.Fatalf("/readyz %d %q", code, body)
	}
	if m := scrape(t, h.w); m["fake_runner_checks_total"] != 0 {
		t.Fatalf("runner metric not served: %v", m["fake_runner_checks_total"])
	} else if _, ok := m["fake_runner_checks_total"]; !ok {
		t.Fatal("the runner's collector is not on /metrics")
	}
	f.setReady(nil)
	waitState(t, e.s, task.ID, store.StateRunning)
	if code, _ := probe(t, h.w, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d after recovery", code)
	}
	if n, m := len(h.logs.Lines("runner not ready; holding claims")), len(h.logs.Lines("runner ready again")); n != 1 || m != 1 {
		t.Fatalf("%d hold and %d resume lines:\n%s", n, m, h.logs)
	}
}

// TestUnknownIsNotHeartbeated: an execution the runner cannot report on is not heartbeated
// (it shows as stuck), but its owner neither marks it LOST nor stops it once it is older than
// the stuck timeout: its work may still run. When the runner knows again, its outcome is
// recorded. One the runner knows is running keeps its heartbeat.
func TestUnknownIsNotHeartbeated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newHooked()
	h := e.startWith(func(c *worker.Config) {
		c.StuckAfter, c.Concurrency, c.ShutdownTimeout = 2*time.Second, 2, 100*time.Millisecond
	}, f)
	known := enqueue(t, e.s, store.NewTask{CallablePath: "myapp.tasks.known"})
	unknown := enqueue(t, e.s, store.NewTask{CallablePath: "myapp.tasks.unknown"})
	workertest.Eventually(t, 10*time.Second, "both started", func() bool { return len(f.startedTasks()) == 2 })
	var unknownJob string
	for _, s := range f.startedTasks() {
		if s.ID == unknown.ID {
			unknownJob = *s.RayJobID
		}
	}
	// Wait until the unknown row is stale by the database's clock and the known row has been
	// heartbeated three times since: sweeps run at the heartbeat's pace, so some ran then.
	staleAt := workertest.Row(t, e.s, unknown.ID).StartedAt.Add(2 * time.Second)
	var beats []time.Time
	workertest.Eventually(t, 30*time.Second, "three heartbeats after the unknown row went stale", func() bool {
		if hb := workertest.Row(t, e.s, known.ID).LastHeartbeatAt; hb != nil && hb.After(staleAt) && (len(beats) == 0 || hb.After(beats[len(beats)-1])) {
			beats = append(beats, *hb)
		}
		return len(beats) >= 3
	})
	u := workertest.Row(t, e.s, unknown.ID)
	if u.State != store.StateRunning || u.LastHeartbeatAt == nil || u.StartedAt == nil || !u.LastHeartbeatAt.Equal(*u.StartedAt) {
		t.Fatalf("the unknown task was heartbeated or moved: %+v", u)
	}
	if f.wasCancelled(unknownJob) {
		t.Fatal("the unknown task's work was stopped")
	}
	ok, _ := lifecycle.Success("finished while unobservable")
	f.set(unknownJob, worker.Status{Phase: worker.Done, Outcome: ok})
	if got := waitState(t, e.s, unknown.ID, store.StateSucceeded, store.StateLost, store.StateQueued); got.State != store.StateSucceeded || got.AttemptNumber != 1 {
		t.Fatalf("unknown task: %+v", got)
	}
	if k := workertest.Row(t, e.s, known.ID); k.State != store.StateRunning {
		t.Fatalf("known task: %+v", k)
	}
	if n := len(h.logs.Lines(`"msg":"task lost`)); n != 0 {
		t.Fatalf("%d lost lines:\n%s", n, h.logs)
	}
}

// TestDeadWorkersJobsStopped: a dead worker's timed-out task is taken over, its job stopped,
// and the row failed only then; a running orphan is adopted and counted.
func TestDeadWorkersJobsStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newHooked()
	dead := storetest.Ptr("dead-worker")
	timedOut := storetest.Insert(t, e.s, store.Task{State: store.StateRunning, ClaimedByWorker: dead, TimeoutSeconds: storetest.Ptr(int32(5)),
		RayJobID: storetest.Ptr("raysubmit_dead_timed_out"), StartedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Second)})
	orphan := storetest.Insert(t, e.s, store.Task{State: store.StateRunning, ClaimedByWorker: dead,
		RayJobID: storetest.Ptr("raysubmit_dead_running"), StartedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Second)})
	f.set("raysubmit_dead_timed_out", worker.Status{Phase: worker.Running})
	f.set("raysubmit_dead_running", worker.Status{Phase: worker.Running})
	h := e.startWith(nil, f)
	got := waitState(t, e.s, timedOut.ID, store.StateFailed)
	if str(got.ErrorMessage) != "Task timed out after 5 seconds" || str(got.ClaimedByWorker) != h.w.ID() {
		t.Fatalf("%+v", got)
	}
	if !f.wasCancelled("raysubmit_dead_timed_out") {
		t.Fatal("the timed-out row was failed before its job was stopped")
	}
	workertest.Eventually(t, 10*time.Second, "adoption", func() bool { return str(workertest.Row(t, e.s, orphan.ID).ClaimedByWorker) == h.w.ID() })
	if m := scrape(t, h.w); m[`rayworker_tasks_recovered_total{kind="adopted"}`] != 2 {
		t.Fatalf("adopted metric %v", m[`rayworker_tasks_recovered_total{kind="adopted"}`])
	}
	ok, _ := lifecycle.Success("x")
	f.set("raysubmit_dead_running", worker.Status{Phase: worker.Done, Outcome: ok})
	waitState(t, e.s, orphan.ID, store.StateSucceeded)
}
