package worker_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/workertest"
)

// scrape reads the worker's /metrics into name{labels} -> value.
func scrape(t *testing.T, w *worker.Worker) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	w.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func probe(t *testing.T, w *worker.Worker, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	w.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, strings.TrimSpace(string(b))
}

// TestStuckTasksLostAndRetried: RUNNING rows whose heartbeat is older than the stuck timeout
// and whose owner is dead (no lease, an inactive or stale lease, or nobody) go LOST and are
// retried under TaskLost; with attempts exhausted they stay LOST; a live worker's are left.
func TestStuckTasksLostAndRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	if err := e.s.UpsertLease(ctx, store.Lease{WorkerID: "alive", Hostname: "h", PID: 1, QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.UpsertLease(ctx, store.Lease{WorkerID: "stopped", Hostname: "h", PID: 2, QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.DeactivateLease(ctx, "stopped"); err != nil {
		t.Fatal(err)
	}
	stale := func(owner *string, attempt int32) store.Task {
		return storetest.Insert(t, e.s, store.Task{CallablePath: "tests.tasks.add", ArgsJSON: "[1, 1]", State: store.StateRunning,
			ClaimedByWorker: owner, AttemptNumber: attempt, StartedAt: storetest.Ago(2 * time.Hour), LastHeartbeatAt: storetest.Ago(time.Hour)})
	}
	noLease := stale(storetest.Ptr("vanished"), 1)
	inactive := stale(storetest.Ptr("stopped"), 1)
	nobody := stale(nil, 1)
	exhausted := stale(storetest.Ptr("vanished"), 3)
	live := stale(storetest.Ptr("alive"), 1)
	// keep "alive" alive while the test runs
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				_, _ = e.s.HeartbeatLease(ctx, "alive")
			}
		}
	}()
	h := e.start(nil, nil)

	for _, task := range []store.Task{noLease, inactive, nobody} {
		got := waitState(t, e.s, task.ID, store.StateSucceeded)
		if got.AttemptNumber != 2 || got.ErrorMessage != nil || str(got.ClaimedByWorker) != h.w.ID() {
			t.Fatalf("%+v", got)
		}
	}
	got := waitState(t, e.s, exhausted.ID, store.StateLost)
	if str(got.ErrorMessage) != store.LostMessage || got.AttemptNumber != 3 || got.FinishedAt == nil {
		t.Fatalf("%+v", got)
	}
	if got := workertest.Row(t, e.s, live.ID); got.State != store.StateRunning || str(got.ClaimedByWorker) != "alive" {
		t.Fatalf("a live worker's task was touched: %+v", got)
	}
	h.waitLines(3, `"msg":"task lost, retry scheduled"`)
	h.waitLines(1, `"msg":"task lost"`)
	if m := scrape(t, h.w); m[`rayworker_tasks_recovered_total{kind="lost"}`] != 4 {
		t.Fatalf("recovered metric: %v", m[`rayworker_tasks_recovered_total{kind="lost"}`])
	}
}

// TestDeadWorkersRows: a dead worker's CANCELLING row is finalized CANCELLED (django-ray
// 0.2.0 leaves it forever) and its timed-out RUNNING row is FAILED.
func TestDeadWorkersRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cancelling := storetest.Insert(t, e.s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("dead"),
		StartedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Second)})
	timedOut := storetest.Insert(t, e.s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("dead"),
		StartedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Second), TimeoutSeconds: storetest.Ptr(int32(10))})
	h := e.start(nil, nil)
	if got := waitState(t, e.s, cancelling.ID, store.StateCancelled); got.FinishedAt == nil {
		t.Fatalf("%+v", got)
	}
	got := waitState(t, e.s, timedOut.ID, store.StateFailed)
	if str(got.ErrorMessage) != "Task timed out after 10 seconds" || got.AttemptNumber != 1 {
		t.Fatalf("%+v", got)
	}
	workertest.Eventually(t, 10*time.Second, "the recovery metrics", func() bool {
		m := scrape(t, h.w)
		return m[`rayworker_tasks_recovered_total{kind="cancelled"}`] == 1 && m[`rayworker_tasks_recovered_total{kind="timed_out"}`] == 1
	})
}

// TestLeaseLifecycle: the lease is created at start, heartbeated, re-created when deleted,
// re-activated when deactivated, other workers' stale leases are expired, and the worker's
// own is deactivated at shutdown.
func TestLeaseLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	if err := e.s.UpsertLease(ctx, store.Lease{WorkerID: "old", Hostname: "h", PID: 1, QueueName: "q"}); err != nil {
		t.Fatal(err)
	}
	if _, err := storetest.DB(e.s).Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'old'`); err != nil {
		t.Fatal(err)
	}
	h := e.start(func(c *worker.Config) { c.Queues = []string{"a", "b"} }, nil)
	id := h.w.ID()
	var lease store.Lease
	workertest.Eventually(t, 10*time.Second, "the lease", func() bool {
		var err error
		lease, err = e.s.GetLease(ctx, id)
		return err == nil
	})
	host, _ := os.Hostname()
	if !lease.IsActive || lease.QueueName != "a,b" || lease.PID != int32(os.Getpid()) || lease.Host() != host || lease.Mode() != "process" {
		t.Fatalf("%+v", lease)
	}
	first := lease.LastHeartbeatAt
	workertest.Eventually(t, 10*time.Second, "a lease heartbeat", func() bool {
		l, err := e.s.GetLease(ctx, id)
		return err == nil && l.LastHeartbeatAt.After(first)
	})
	workertest.Eventually(t, 10*time.Second, "the stale lease to expire", func() bool {
		l, err := e.s.GetLease(ctx, "old")
		return err == nil && !l.IsActive && l.StoppedAt != nil
	})

	if _, err := storetest.DB(e.s).Exec(ctx, `DELETE FROM django_ray_taskworkerlease WHERE worker_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, 10*time.Second, "the deleted lease to be re-created", func() bool {
		l, err := e.s.GetLease(ctx, id)
		return err == nil && l.IsActive
	})
	if _, err := e.s.DeactivateLease(ctx, id); err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, 10*time.Second, "the deactivated lease to be re-activated", func() bool {
		l, err := e.s.GetLease(ctx, id)
		return err == nil && l.IsActive && l.StoppedAt == nil
	})
	h.waitLines(2, `"msg":"lease was missing or inactive; re-created it"`) // logged after the counter
	if n := scrape(t, h.w)["rayworker_lease_recreated_total"]; n != 2 {
		t.Fatalf("lease re-created %v times, want 2", n)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if l, err := e.s.GetLease(ctx, id); err != nil || l.IsActive || l.StoppedAt == nil {
		t.Fatalf("after shutdown: %+v %v", l, err)
	}
}

// TestTaskHeartbeats: the worker refreshes last_heartbeat_at of its RUNNING rows, so a long
// task is never taken for stuck.
func TestTaskHeartbeats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.start(nil, nil)
	pidfile := h.dir + "/pid"
	task := enqueue(t, e.s, store.NewTask{CallablePath: "sleep", ArgsJSON: `[60, "` + pidfile + `"]`})
	workertest.ReadPIDs(t, pidfile)
	first := waitState(t, e.s, task.ID, store.StateRunning).LastHeartbeatAt
	workertest.Eventually(t, 10*time.Second, "two task heartbeats", func() bool {
		hb := workertest.Row(t, e.s, task.ID).LastHeartbeatAt
		return hb != nil && hb.Sub(*first) >= 300*time.Millisecond
	})
}

// TestMetricsAndProbes: /metrics serves the runbook's gauges from the store and the worker's
// own counters; /healthz and /readyz answer.
func TestMetricsAndProbes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.start(func(c *worker.Config) {
		c.Queues = []string{"default"}
		c.StatsTTL = time.Nanosecond // fresh figures on every scrape, for the test
	}, nil)
	workertest.Eventually(t, 10*time.Second, "health and readiness", func() bool {
		hc, hb := probe(t, h.w, "/healthz")
		rc, rb := probe(t, h.w, "/readyz")
		return hc == http.StatusOK && hb == "ok" && rc == http.StatusOK && rb == "ready"
	})
	done := enqueue(t, e.s, store.NewTask{CallablePath: "add"})
	waitState(t, e.s, done.ID, store.StateSucceeded)
	h.waitLines(1, `"msg":"task succeeded"`) // the counters move with the log line, after the write
	enqueue(t, e.s, store.NewTask{CallablePath: "add", Queue: "other"})
	enqueue(t, e.s, store.NewTask{CallablePath: "add", Queue: "other"})
	m := scrape(t, h.w)
	want := map[string]float64{
		`django_ray_tasks_total{state="SUCCEEDED"}`:                  1,
		`django_ray_tasks_total{state="QUEUED"}`:                     2,
		`django_ray_tasks_total{state="LOST"}`:                       0,
		`django_ray_tasks_queued`:                                    2,
		`django_ray_tasks_running`:                                   0,
		`django_ray_queue_depth{queue="other"}`:                      2,
		`rayworker_tasks_claimed_total`:                              1,
		`rayworker_task_outcomes_total{outcome="succeeded"}`:         1,
		`rayworker_task_duration_seconds_count{outcome="succeeded"}`: 1,
		`rayworker_queue_wait_seconds_count`:                         1,
		`rayworker_concurrency`:                                      4,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if _, ok := m[`django_ray_queue_depth{queue="default"}`]; ok {
		t.Error("queue depth reported for a queue without QUEUED tasks")
	}
	if m["rayworker_claim_duration_seconds_count"] < 1 || m["go_goroutines"] == 0 {
		t.Errorf("claim histogram or Go collector missing")
	}
}

func TestStatsAreCached(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.start(func(c *worker.Config) { c.StatsTTL = time.Hour; c.Queues = []string{"none"} }, nil)
	enqueue(t, e.s, store.NewTask{CallablePath: "add"})
	if got := scrape(t, h.w)["django_ray_tasks_queued"]; got != 1 {
		t.Fatalf("queued %v", got)
	}
	enqueue(t, e.s, store.NewTask{CallablePath: "add"})
	if got := scrape(t, h.w)["django_ray_tasks_queued"]; got != 1 {
		t.Fatalf("the store was queried again within the TTL: queued %v", got)
	}
}

func TestProbesBeforeStartAndConfigErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := &fakeRunner{}
	w, err := worker.New(testConfig(), e.s, r)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := probe(t, w, "/readyz"); code != http.StatusServiceUnavailable || body != "not started" {
		t.Fatalf("/readyz before start: %d %q", code, body)
	}
	if code, body := probe(t, w, "/healthz"); code != http.StatusServiceUnavailable || body != "not started" {
		t.Fatalf("/healthz before start: %d %q", code, body)
	}
	bad := []func(*worker.Config){
		func(c *worker.Config) { c.Concurrency = 1001 },
		func(c *worker.Config) { c.Policy.MaxAttempts = 0; c.Policy.Backoff = time.Second },
		func(c *worker.Config) { c.HeartbeatInterval = 3 * time.Second },
		func(c *worker.Config) { c.Results = lifecycle.Results{MaxInline: 10} },
	}
	for i, mod := range bad {
		cfg := testConfig()
		mod(&cfg)
		if _, err := worker.New(cfg, e.s, r); err == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
}

// TestSweepWaitsALeaseTTLAfterStart: a worker that just started (or just got the database
// back) has not watched it long enough to tell a dead worker from one that was cut off too:
// other workers' rows are left alone until it has reached the database for a lease TTL.
func TestSweepWaitsALeaseTTLAfterStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stale := storetest.Insert(t, e.s, store.Task{CallablePath: "tests.tasks.add", ArgsJSON: "[1]", State: store.StateRunning,
		ClaimedByWorker: storetest.Ptr("vanished"), AttemptNumber: 3, StartedAt: storetest.Ago(2 * time.Hour), LastHeartbeatAt: storetest.Ago(time.Hour)})
	started := time.Now()
	h := e.start(nil, nil)
	got := waitState(t, e.s, stale.ID, store.StateLost)
	if got.FinishedAt == nil || got.FinishedAt.Sub(started) < 1900*time.Millisecond { // LeaseTTL 2 s, same host's clock
		t.Fatalf("marked LOST %v after the worker started, before it had watched the database for a lease TTL", got.FinishedAt.Sub(started))
	}
	h.waitLines(1, `"msg":"task lost"`)
}

// TestBareRunningRowRecovered: a RUNNING row with no owner, no started_at and no heartbeat
// (which 0.2.0's rule never finds stuck) is stamped when a sweep first sees it and recovered
// once nobody has heartbeated it for the stuck timeout.
func TestBareRunningRowRecovered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bare := storetest.Insert(t, e.s, store.Task{CallablePath: "tests.tasks.add", ArgsJSON: "[1, 2]", State: store.StateRunning})
	h := e.start(func(c *worker.Config) { c.StuckAfter = time.Second }, nil)
	got := waitState(t, e.s, bare.ID, store.StateSucceeded)
	if got.AttemptNumber != 2 || str(got.ResultData) != "3" {
		t.Fatalf("%+v", got)
	}
	h.waitLines(1, `"msg":"RUNNING tasks without a usable heartbeat or start time seen for the first time`)
	h.waitLines(1, `"msg":"task lost, retry scheduled"`)
}

// TestWorkerWithoutRayLeavesRayJobsAlone: a worker whose runner cannot see Ray jobs (--sync)
// recovers a dead worker's stale row without a job, but leaves the dead worker's rows that
// carry a Ray job — stuck, timed out, or CANCELLING — for a worker that can stop the job
// (they stay visible to rayctl reconcile-jobs).
func TestWorkerWithoutRayLeavesRayJobsAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dead := storetest.Ptr("dead-worker")
	row := func(state store.TaskState, job *string, mod func(*store.Task)) store.Task {
		r := store.Task{CallablePath: "tests.tasks.add", ArgsJSON: "[1]", State: state, ClaimedByWorker: dead, RayJobID: job,
			AttemptNumber: 3, StartedAt: storetest.Ago(2 * time.Hour), LastHeartbeatAt: storetest.Ago(time.Hour)}
		if mod != nil {
			mod(&r)
		}
		return storetest.Insert(t, e.s, r)
	}
	local := row(store.StateRunning, nil, nil)
	stuckJob := row(store.StateRunning, storetest.Ptr("raysubmit_stuck"), nil)
	timedOutJob := row(store.StateRunning, storetest.Ptr("raysubmit_timed_out"), func(r *store.Task) { r.TimeoutSeconds = storetest.Ptr(int32(5)) })
	cancellingJob := row(store.StateCancelling, storetest.Ptr("raysubmit_cancelling"), nil)
	cancellingLocal := row(store.StateCancelling, nil, nil)
	h := e.start(func(c *worker.Config) { c.StuckAfter = time.Second }, nil)
	waitState(t, e.s, local.ID, store.StateLost)
	waitState(t, e.s, cancellingLocal.ID, store.StateCancelled)
	h.waitLines(1, `"msg":"task lost"`)
	for _, r := range []store.Task{stuckJob, timedOutJob, cancellingJob} {
		if got := workertest.Row(t, e.s, r.ID); got.State != r.State || str(got.ClaimedByWorker) != "dead-worker" {
			t.Errorf("a Ray job's row was moved by a worker without Ray: %+v", got)
		}
	}
}
