package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/migrations"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker/workertest"
)

// These are the fault tests of docs/reliability.md: the real rayworker binary, the real
// PostgreSQL, tasks run by the contract entrypoint's exec_once, which records every execution
// (start and end) and any overlap of two executions of one task (an exclusive flock held for
// the life of the run). Each test asserts: no task lost (every one SUCCEEDED), none run twice
// (one start and one end each), no overlapping runs, no wedged slot (no row RUNNING at the
// end, nothing in flight). Waits are conditions; nothing asserts how fast. Lines starting
// "FIGURE" are the measurements docs/reliability.md quotes.

// execOnce is the args_json of exec_once(dir, key, seconds).
func execOnce(dir, key string, seconds float64) string {
	return fmt.Sprintf(`[%q, %q, %g]`, dir, key, seconds)
}

// checkRuns asserts every key ran exactly once, to its end, with no overlap.
func checkRuns(t *testing.T, dir string, keys []string) (repeated int) {
	t.Helper()
	runs := workertest.ReadRuns(t, dir)
	for _, k := range keys {
		r := runs[k]
		if r.Starts != 1 || r.Ends != 1 || r.Overlaps != 0 {
			t.Errorf("task %s: %d runs started, %d ended, %d overlapping", k, r.Starts, r.Ends, r.Overlaps)
		}
		repeated += max(r.Starts-1, 0)
	}
	return repeated
}

// checkAllSucceeded asserts every row SUCCEEDED in its first attempt and none is RUNNING.
func checkAllSucceeded(t *testing.T, s *store.Store, ids []int64) {
	t.Helper()
	for _, id := range ids {
		got, err := s.GetTask(t.Context(), id)
		if err != nil || got.State != store.StateSucceeded || got.AttemptNumber != 1 {
			t.Errorf("task %d: %+v %v", id, got, err)
		}
	}
	if n, err := s.CountTasks(t.Context(), store.TaskFilter{States: []store.TaskState{store.StateRunning, store.StateCancelling}}); err != nil || n != 0 {
		t.Errorf("%d rows still RUNNING or CANCELLING (%v)", n, err)
	}
}

// waitIdle waits until the worker has nothing in flight: every slot free.
func (p *proc) waitIdle() {
	p.t.Helper()
	workertest.Eventually(p.t, 60*time.Second, "every slot free", func() bool {
		return p.metricValue("rayworker_tasks_in_flight") == 0
	})
}

func waitAll(t *testing.T, s *store.Store, ids []int64, within time.Duration, states ...store.TaskState) {
	t.Helper()
	for _, id := range ids {
		workertest.WaitState(t, s, id, within, states...)
	}
}

// TestBinaryPostgresRestartUnderLoad: three workers run 60 tasks; PostgreSQL is stopped for
// longer than the stuck timeout and the lease TTL while twelve run, some finishing during the
// outage, and started again. Nothing is lost, nothing runs twice: no worker marks another's
// tasks LOST when the database is back (each has watched it for less than a lease TTL while
// the others heartbeat again), and results held through the outage are written.
func TestBinaryPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	pg := workertest.PrivatePostgres(t)
	ctx := t.Context()
	pool, err := store.Open(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool, migrations.Options{}); err != nil {
		t.Fatal(err)
	}
	s := store.New(pool)
	dir := t.TempDir()
	common := []string{"--worker-heartbeat-seconds", "1", "--worker-lease-seconds", "3", "--stuck-task-timeout-seconds", "30",
		"--retry-backoff-seconds", "0", "--concurrency", "4", "--metrics-addr", "127.0.0.1:0"}
	var workers []*proc
	for range 3 {
		w := startWorker(t, pg.DSN, common...)
		w.workerID()
		workers = append(workers, w)
	}
	const n = 60
	var ids []int64
	var keys []string
	for i := range n {
		keys = append(keys, strconv.Itoa(i))
		ids = append(ids, enqueueE2E(t, s, "exec_once", execOnce(dir, keys[i], float64(1+i%5))).ID)
	}
	workertest.Eventually(t, 2*time.Minute, "twelve tasks running and some done", func() bool {
		running, _ := s.CountTasks(ctx, store.TaskFilter{States: []store.TaskState{store.StateRunning}})
		done, _ := s.CountTasks(ctx, store.TaskFilter{States: []store.TaskState{store.StateSucceeded}})
		return running == 12 && done > 0
	})
	var inFlight []int64
	if err := pool.QueryRow(ctx, `SELECT array_agg(id) FROM django_ray_raytaskexecution WHERE state = 'RUNNING'`).Scan(&inFlight); err != nil {
		t.Fatal(err)
	}
	downAt := time.Now()
	pg.Down(t)
	// Past the stuck timeout (30 s) and the lease TTL (3 s) since the last heartbeats.
	for time.Since(downAt) < 35*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	pg.Up(t)
	upAt := time.Now()
	waitAll(t, s, inFlight, 2*time.Minute, store.StateSucceeded, store.StateFailed, store.StateLost, store.StateQueued)
	recovered := time.Since(upAt)
	waitAll(t, s, ids, 5*time.Minute, store.StateSucceeded, store.StateFailed, store.StateLost)
	checkAllSucceeded(t, s, ids)
	repeated := checkRuns(t, dir, keys)
	for _, w := range workers {
		w.waitIdle()
		if logs := w.logs.String(); strings.Contains(logs, `"msg":"task lost`) || strings.Contains(logs, "expired the lease") {
			t.Errorf("a worker marked tasks LOST or expired a lease after the restart:\n%s", logs)
		}
	}
	t.Logf("FIGURE postgres-restart: outage %s (stuck timeout 30 s), %d tasks in flight at the outage recorded %s after the restart, %d of %d runs repeated",
		upAt.Sub(downAt).Round(100*time.Millisecond), len(inFlight), recovered.Round(10*time.Millisecond), repeated, n)
}

// TestBinaryRayAPIOutages: two Ray-mode workers run jobs on the fake Jobs API (which runs them
// for real); the whole API then fails in one way — connections refused, 500s, hanging
// requests, 200s with a login page — for longer than the stuck timeout while the jobs finish.
// During the outage each worker reports it (/readyz 503, rayworker_ray_api_up 0) and claims
// nothing; afterwards every job's real outcome is recorded once: nothing failed, lost or run
// again.
func TestBinaryRayAPIOutages(t *testing.T) {
	t.Parallel()
	for _, outage := range []raytest.Outage{raytest.Refused, raytest.Error500, raytest.Hang, raytest.Garbage} {
		t.Run(outage.String(), func(t *testing.T) {
			t.Parallel()
			s, dsn := migratedDSN(t)
			srv := raytest.New(t, raytest.WithExecutor())
			dir := t.TempDir()
			common := []string{"--cluster", srv.URL, "--entrypoint", workertest.EntrypointCommand(t), "--worker-heartbeat-seconds", "1",
				"--worker-lease-seconds", "3", "--stuck-task-timeout-seconds", "30", "--retry-backoff-seconds", "0", "--concurrency", "3",
				"--metrics-addr", "127.0.0.1:0"}
			workers := []*proc{startRayWorker(t, dsn, nil, common...), startRayWorker(t, dsn, nil, common...)}
			var ids []int64
			var keys []string
			for i := range 6 {
				keys = append(keys, "job"+strconv.Itoa(i))
				ids = append(ids, enqueueE2E(t, s, "exec_once", execOnce(dir, keys[i], float64(2+i%3))).ID)
			}
			workertest.Eventually(t, time.Minute, "six jobs running", func() bool {
				runs := workertest.ReadRuns(t, dir)
				started := 0
				for _, k := range keys {
					started += runs[k].Starts
				}
				return started == 6
			})
			downAt := time.Now()
			srv.SetOutage(outage)
			for i := range 2 { // enqueued during the outage: nobody may claim them
				keys = append(keys, "late"+strconv.Itoa(i))
				ids = append(ids, enqueueE2E(t, s, "exec_once", execOnce(dir, keys[6+i], 0)).ID)
			}
			for _, w := range workers {
				workertest.Eventually(t, time.Minute, "the worker to report the outage", func() bool {
					code, _ := w.get("/readyz")
					return code == http.StatusServiceUnavailable && w.metricValue("rayworker_ray_api_up") == 0
				})
			}
			workertest.Eventually(t, time.Minute, "the jobs to finish during the outage", func() bool { return srv.Running() == 0 })
			for time.Since(downAt) < 35*time.Second { // past the stuck timeout and the lease TTL
				time.Sleep(100 * time.Millisecond)
			}
			for _, id := range ids[6:] {
				if got, _ := s.GetTask(t.Context(), id); got.State != store.StateQueued {
					t.Fatalf("claimed during the outage: %+v", got)
				}
			}
			srv.SetOutage(raytest.NoOutage)
			upAt := time.Now()
			waitAll(t, s, ids[:6], 2*time.Minute, store.StateSucceeded, store.StateFailed, store.StateLost, store.StateQueued)
			recovered := time.Since(upAt)
			waitAll(t, s, ids, 2*time.Minute, store.StateSucceeded, store.StateFailed, store.StateLost)
			checkAllSucceeded(t, s, ids)
			repeated := checkRuns(t, dir, keys)
			for id, n := range submittedIDs(srv) {
				if n != 1 {
					t.Errorf("job %s accepted %d times", id, n)
				}
			}
			for _, w := range workers {
				w.waitIdle()
				if code, _ := w.get("/readyz"); code != http.StatusOK {
					t.Errorf("/readyz %d after the outage", code)
				}
			}
			t.Logf("FIGURE ray-api-%s: outage %s (stuck timeout 30 s), 6 jobs that finished during it recorded %s after it ended, %d runs repeated",
				outage, upAt.Sub(downAt).Round(100*time.Millisecond), recovered.Round(10*time.Millisecond), repeated)
		})
	}
}

// TestBinaryTimeoutThenRequeue: a task times out while its process ignores SIGTERM; an
// operator requeues it the moment the row allows (recovery's requeue, what rayctl requeue and
// rayctl top run). The row becomes FAILED only once the process is gone, so the second run
// never overlaps the first.
func TestBinaryTimeoutThenRequeue(t *testing.T) {
	t.Parallel()
	s, dsn := migratedDSN(t)
	dir := t.TempDir()
	p := startWorker(t, dsn, "--metrics-addr", "127.0.0.1:0")
	p.workerID()
	ctx := t.Context()
	task, err := s.Enqueue(ctx, store.NewTask{CallablePath: "tests.tasks.exec_once", ArgsJSON: fmt.Sprintf(`[%q, "t", 60, true]`, dir),
		TimeoutSeconds: storetest.Ptr(int32(1))})
	if err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, time.Minute, "the first run", func() bool { return workertest.ReadRuns(t, dir)["t"].Starts == 1 })
	sel := recovery.Selection{IDs: []int64{task.ID}, States: []store.TaskState{store.StateFailed}}
	workertest.Eventually(t, time.Minute, "the requeue to apply", func() bool {
		plan, err := recovery.PlanAction(ctx, s, recovery.ActionRequeue, sel, recovery.PlanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Targets) == 0 {
			return false // still RUNNING: the timed-out process is being stopped
		}
		out, err := recovery.Apply(ctx, s, plan, recovery.ApplyOptions{})
		return err == nil && out.Changed == 1
	})
	workertest.Eventually(t, time.Minute, "the second run", func() bool { return workertest.ReadRuns(t, dir)["t"].Starts == 2 })
	got := workertest.WaitState(t, s, task.ID, time.Minute, store.StateFailed)
	if str := got.ErrorMessage; str == nil || *str != "Task timed out after 1 seconds" {
		t.Fatalf("%+v", got)
	}
	p.waitIdle()
	if r := workertest.ReadRuns(t, dir)["t"]; r.Overlaps != 0 {
		t.Fatalf("the requeued run started while the timed-out one was alive: %+v", r)
	}
}

// TestBinarySyncWorkerLeavesRayJobs: a Ray-mode worker is killed with -9 while its job runs; a
// --sync worker on the same database (which cannot see Ray) sweeps for longer than the stuck
// timeout — it recovers a bare RUNNING row (no owner, start or heartbeat) — but leaves the
// dead worker's row with its Ray job alone; a Ray-mode worker started later adopts the job,
// which then ends once, in its first attempt.
func TestBinarySyncWorkerLeavesRayJobs(t *testing.T) {
	t.Parallel()
	s, dsn := migratedDSN(t)
	srv := raytest.New(t, raytest.WithExecutor())
	dir := t.TempDir()
	common := []string{"--worker-heartbeat-seconds", "1", "--worker-lease-seconds", "3", "--stuck-task-timeout-seconds", "30",
		"--retry-backoff-seconds", "0", "--metrics-addr", "127.0.0.1:0"}
	rayArgs := append([]string{"--cluster", srv.URL, "--entrypoint", workertest.EntrypointCommand(t)}, common...)
	a := startRayWorker(t, dsn, nil, rayArgs...)
	long := enqueueE2E(t, s, "exec_once", execOnce(dir, "long", 50))
	workertest.Eventually(t, time.Minute, "the Ray job to run", func() bool { return workertest.ReadRuns(t, dir)["long"].Starts == 1 })
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.exitCode(10 * time.Second)
	bare := storetest.Insert(t, s, store.Task{CallablePath: "tests.tasks.exec_once", ArgsJSON: execOnce(dir, "bare", 0), State: store.StateRunning})

	b := startWorker(t, dsn, common...)
	got := workertest.WaitState(t, s, bare.ID, 2*time.Minute, store.StateSucceeded)
	if got.AttemptNumber != 2 {
		t.Fatalf("bare row: %+v", got)
	}
	row := workertest.Row(t, s, long.ID)
	if row.State != store.StateRunning || row.AttemptNumber != 1 || srv.Running() != 1 {
		t.Fatalf("the --sync worker moved a Ray job's row: %+v (jobs running in Ray: %d)", row, srv.Running())
	}
	c := startRayWorker(t, dsn, nil, rayArgs...)
	got = workertest.WaitState(t, s, long.ID, 2*time.Minute, store.StateSucceeded, store.StateFailed, store.StateQueued, store.StateLost)
	if got.State != store.StateSucceeded || got.AttemptNumber != 1 || got.ClaimedByWorker == nil || *got.ClaimedByWorker != c.workerID() {
		t.Fatalf("%+v", got)
	}
	checkRuns(t, dir, []string{"long", "bare"})
	b.waitIdle()
	c.waitIdle()
	if !strings.Contains(c.logs.String(), `"msg":"task adopted from a dead worker"`) {
		t.Fatalf("no adoption:\n%s", c.logs)
	}
}
