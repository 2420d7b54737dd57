package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/workertest"
)

// fakeRunner is a Runner shaped like the Ray Job runner: job ids assigned at claim, no
// events (status by polling), adoption of "raysubmit_" jobs it did not start, executions
// that outlive the worker. Its jobs are driven by the test.
type fakeRunner struct {
	caps worker.Capabilities
	// slowStop: Cancel records the request but the job goes on until the test ends it (a Ray
	// job takes a while to stop).
	slowStop bool

	mu        sync.Mutex
	jobs      map[string]worker.Status // by ray_job_id
	started   []store.Task
	cancelled []string
}

func newFake(caps worker.Capabilities) *fakeRunner {
	return &fakeRunner{caps: caps, jobs: map[string]worker.Status{}}
}

func (f *fakeRunner) Capabilities() worker.Capabilities { return f.caps }
func (f *fakeRunner) Events() <-chan struct{}           { return nil }
func (f *fakeRunner) Forget(store.Task)                 {}
func (f *fakeRunner) Close(context.Context) error       { return nil }

func (f *fakeRunner) Start(_ context.Context, t store.Task) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.RayJobID == nil {
		return fmt.Errorf("no submission id assigned at claim")
	}
	f.started = append(f.started, t)
	f.jobs[*t.RayJobID] = worker.Status{Phase: worker.Running}
	return nil
}

func (f *fakeRunner) Poll(_ context.Context, tasks []store.Task) ([]worker.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]worker.Status, len(tasks))
	for i, t := range tasks {
		if t.RayJobID != nil {
			if st, ok := f.jobs[*t.RayJobID]; ok {
				out[i] = st
				continue
			}
		}
		out[i] = worker.Status{Phase: worker.Unknown, Message: "no such job"}
	}
	return out, nil
}

func (f *fakeRunner) Cancel(_ context.Context, t store.Task) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.RayJobID != nil {
		f.cancelled = append(f.cancelled, *t.RayJobID)
		if st, ok := f.jobs[*t.RayJobID]; ok && st.Phase != worker.Done && !f.slowStop {
			f.jobs[*t.RayJobID] = worker.Status{Phase: worker.Done, Outcome: lifecycle.Outcome{Kind: lifecycle.Cancelled}}
		}
	}
	return nil
}

func (f *fakeRunner) Output(_ context.Context, t store.Task, max int) ([]byte, error) {
	return []byte(strings.Repeat("log ", max)[:max]), nil
}

func (f *fakeRunner) set(jobID string, st worker.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[jobID] = st
}

func (f *fakeRunner) startedTasks() []store.Task {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.started)
}

func (f *fakeRunner) wasCancelled(jobID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.cancelled, jobID)
}

var rayJobCaps = worker.Capabilities{Name: "fake-rayjob", AssignJobIDs: true, RayAddress: "http://ray-head:8265",
	AdoptPrefix: "raysubmit_", PollInterval: 50 * time.Millisecond, Detached: true}

// TestRayJobShapedRunner shows the loop drives a runner with the Ray Job runner's needs
// without knowing it: submission ids written at claim, completion found by polling,
// adoption of dead workers' jobs, dead workers' cancelled jobs stopped, and jobs left
// running for adoption at shutdown.
func TestRayJobShapedRunner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFake(rayJobCaps)
	dead := storetest.Ptr("dead-worker")
	orphanRunning := storetest.Insert(t, e.s, store.Task{State: store.StateRunning, ClaimedByWorker: dead,
		RayJobID: storetest.Ptr("raysubmit_orphan_running"), StartedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Second)})
	orphanFailed := storetest.Insert(t, e.s, store.Task{State: store.StateRunning, ClaimedByWorker: dead,
		RayJobID: storetest.Ptr("raysubmit_orphan_failed"), StartedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Second), AttemptNumber: 3})
	orphanUnknown := storetest.Insert(t, e.s, store.Task{State: store.StateRunning, ClaimedByWorker: dead,
		RayJobID: storetest.Ptr("raysubmit_orphan_unknown"), StartedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Second)})
	notOurs := storetest.Insert(t, e.s, store.Task{State: store.StateRunning, ClaimedByWorker: dead,
		RayJobID: storetest.Ptr("ray_core:17"), StartedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Second)})
	cancelling := storetest.Insert(t, e.s, store.Task{State: store.StateCancelling, ClaimedByWorker: dead,
		RayJobID: storetest.Ptr("raysubmit_cancel_me"), StartedAt: storetest.Ago(time.Minute)})
	f.set("raysubmit_orphan_running", worker.Status{Phase: worker.Running})
	f.set("raysubmit_orphan_failed", worker.Status{Phase: worker.Done, Outcome: lifecycle.JobFailed("Job entrypoint command failed with exit code 1", []byte("logs"))})
	f.set("raysubmit_cancel_me", worker.Status{Phase: worker.Running})

	h := e.startWith(func(c *worker.Config) { c.ShutdownTimeout = 100 * time.Millisecond }, f)
	task := enqueue(t, e.s, store.NewTask{CallablePath: "myapp.tasks.report"})

	// the claim wrote the submission id before Start saw the row
	workertest.Eventually(t, 10*time.Second, "the job to be submitted", func() bool { return len(f.startedTasks()) == 1 })
	sub := f.startedTasks()[0]
	row := workertest.Row(t, e.s, task.ID)
	if sub.RayJobID == nil || !strings.HasPrefix(*sub.RayJobID, fmt.Sprintf("raysubmit_t%d_a1_", task.ID)) ||
		str(row.RayJobID) != *sub.RayJobID || str(row.RayAddress) != "http://ray-head:8265" {
		t.Fatalf("submitted %+v, row %+v", sub, row)
	}
	// completion found by polling (the runner has no events)
	ok, _ := lifecycle.Success(map[string]any{"rows": int64(3)})
	f.set(*sub.RayJobID, worker.Status{Phase: worker.Done, Outcome: ok})
	if got := waitState(t, e.s, task.ID, store.StateSucceeded); str(got.ResultData) != `{"rows": 3}` {
		t.Fatalf("%+v", got)
	}

	// a dead worker's running job is adopted and then completed like our own
	workertest.Eventually(t, 10*time.Second, "adoption", func() bool {
		return str(workertest.Row(t, e.s, orphanRunning.ID).ClaimedByWorker) == h.w.ID()
	})
	f.set("raysubmit_orphan_running", worker.Status{Phase: worker.Done, Outcome: ok})
	waitState(t, e.s, orphanRunning.ID, store.StateSucceeded)
	// a dead worker's finished job is recorded without adoption
	if got := waitState(t, e.s, orphanFailed.ID, store.StateFailed); str(got.ErrorMessage) != "Job entrypoint command failed with exit code 1" || str(got.ErrorTraceback) != "logs" {
		t.Fatalf("%+v", got)
	}
	// a dead worker's cancelled job is stopped, then finalized
	waitState(t, e.s, cancelling.ID, store.StateCancelled)
	if !f.wasCancelled("raysubmit_cancel_me") {
		t.Fatal("the dead worker's cancelled job was not stopped")
	}
	// unknown and foreign jobs are left alone
	for _, id := range []int64{orphanUnknown.ID, notOurs.ID} {
		if got := workertest.Row(t, e.s, id); got.State != store.StateRunning || str(got.ClaimedByWorker) != "dead-worker" {
			t.Fatalf("touched: %+v", got)
		}
	}

	// shutdown with a job still running: a detached runner's job is left for adoption
	long := enqueue(t, e.s, store.NewTask{CallablePath: "myapp.tasks.long"})
	workertest.Eventually(t, 10*time.Second, "the long job to be submitted", func() bool { return len(f.startedTasks()) == 2 })
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	got := workertest.Row(t, e.s, long.ID)
	if got.State != store.StateRunning || str(got.ClaimedByWorker) != h.w.ID() || f.wasCancelled(str(got.RayJobID)) {
		t.Fatalf("the running job was not left for adoption: %+v", got)
	}
	if len(h.logs.Lines(`"msg":"task left running for adoption by another worker"`)) != 1 {
		t.Fatalf("no event for the job left running:\n%s", h.logs)
	}
}

// TestStartErrorsOfAnyRunner: a plain error from Start is recorded as RayJobFailed under the
// retry policy; the loop goes on.
func TestStartErrorsOfAnyRunner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	caps := rayJobCaps
	caps.AssignJobIDs = false // the fake refuses rows without a submission id
	f := newFake(caps)
	e.startWith(func(c *worker.Config) {
		c.Policy = lifecycle.Policy{MaxAttempts: 2, Denylist: []string{"RayJobFailed"}}
	}, f)
	task := enqueue(t, e.s, store.NewTask{CallablePath: "myapp.tasks.x"})
	got := waitState(t, e.s, task.ID, store.StateFailed)
	if str(got.ErrorMessage) != "could not start the task: no submission id assigned at claim" || got.AttemptNumber != 1 {
		t.Fatalf("%+v", got)
	}
}

// TestDeadWorkersRayRows: a worker that can see Ray jobs never moves a dead worker's row away
// from a job that may still run: a stale RUNNING row whose job runs is adopted (not LOST), and
// a CANCELLING row is finalized only once the runner confirms its job ended after the stop.
func TestDeadWorkersRayRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFake(rayJobCaps)
	f.slowStop = true
	dead := storetest.Ptr("dead-worker")
	stale := storetest.Insert(t, e.s, store.Task{State: store.StateRunning, ClaimedByWorker: dead,
		RayJobID: storetest.Ptr("raysubmit_stale"), StartedAt: storetest.Ago(2 * time.Hour), LastHeartbeatAt: storetest.Ago(time.Hour)})
	cancelling := storetest.Insert(t, e.s, store.Task{State: store.StateCancelling, ClaimedByWorker: dead,
		RayJobID: storetest.Ptr("raysubmit_slow_stop"), StartedAt: storetest.Ago(time.Minute)})
	f.set("raysubmit_stale", worker.Status{Phase: worker.Running})
	f.set("raysubmit_slow_stop", worker.Status{Phase: worker.Running})
	h := e.startWith(func(c *worker.Config) { c.StuckAfter = time.Second }, f)

	workertest.Eventually(t, 30*time.Second, "the stop of the cancelled row's job and the stale row's adoption", func() bool {
		return f.wasCancelled("raysubmit_slow_stop") && str(workertest.Row(t, e.s, stale.ID).ClaimedByWorker) == h.w.ID()
	})
	if got := workertest.Row(t, e.s, cancelling.ID); got.State != store.StateCancelling {
		t.Fatalf("finalized before its job ended: %+v", got)
	}
	if got := workertest.Row(t, e.s, stale.ID); got.State != store.StateRunning || got.AttemptNumber != 1 {
		t.Fatalf("stale row: %+v", got)
	}
	f.set("raysubmit_slow_stop", worker.Status{Phase: worker.Done, Outcome: lifecycle.Outcome{Kind: lifecycle.Cancelled}})
	waitState(t, e.s, cancelling.ID, store.StateCancelled)
	if f.wasCancelled("raysubmit_stale") {
		t.Fatal("the adopted job was stopped")
	}
	h.waitLines(1, `"msg":"stopping a dead worker's cancelled job`)
}
