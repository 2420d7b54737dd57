package recovery_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// Reconciliation and StopJobs run goroutines: none may outlive a test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))
}

func rayClient(t *testing.T, url string) *rayjobs.Client {
	t.Helper()
	c, err := rayjobs.New(rayjobs.Options{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// liveRows stages n RUNNING rows of a live worker whose jobs run in the fake, plus missing
// rows whose jobs the fake does not know.
func liveRows(t *testing.T, s *store.Store, fake *raytest.Server, n, missing int) {
	t.Helper()
	if err := s.UpsertLease(t.Context(), store.Lease{WorkerID: "w", Hostname: "h", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	for i := range n + missing {
		id := fmt.Sprintf("raysubmit_%04d", i)
		storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w"), StartedAt: storetest.Ago(time.Minute),
			LastHeartbeatAt: storetest.Ago(time.Second), RayJobID: storetest.Ptr(id)})
		if i < n {
			fake.AddJob(raytest.Job{SubmissionID: id, Status: raytest.Running})
		}
	}
}

// TestPlanReconcileRayRequests: many rows cost one list call (plus a GET to confirm each job
// absent from it); few rows cost one GET each. Nothing else is asked of Ray per row.
func TestPlanReconcileRayRequests(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		rows, missing    int
		view             string
		lists, gets, all int
	}{
		{"many rows: one list", 40, 2, "list", 1, 2, 4},
		{"few rows: GETs", 10, 1, "get", 0, 11, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := storetest.New(t)
			fake := raytest.New(t)
			liveRows(t, s, fake, tc.rows, tc.missing)
			p, err := recovery.PlanReconcile(t.Context(), s, rayClient(t, fake.URL), recovery.ReconcileOptions{Address: fake.URL})
			if err != nil {
				t.Fatal(err)
			}
			if p.RayView != tc.view || fake.Count(raytest.List) != tc.lists || fake.Count(raytest.Get) != tc.gets || p.RayRequests != tc.all ||
				fake.Count(raytest.Logs) != 0 {
				t.Fatalf("view %s, %d requests; fake saw %d lists, %d gets, %d logs", p.RayView, p.RayRequests,
					fake.Count(raytest.List), fake.Count(raytest.Get), fake.Count(raytest.Logs))
			}
			counts := p.Counts()
			if counts[recovery.ClassConsistent] != tc.rows || counts[recovery.ClassMissing] != tc.missing || len(p.Actionable()) != 0 {
				t.Fatalf("counts %v", counts)
			}
		})
	}
}

// countingRay wraps a client and records the most GETs in flight at once.
type countingRay struct {
	*rayjobs.Client
	inflight, peak atomic.Int32
}

func (c *countingRay) Get(ctx context.Context, id string) (*rayjobs.JobDetails, error) {
	n := c.inflight.Add(1)
	defer c.inflight.Add(-1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(10 * time.Millisecond) // hold the slot so others pile up if the bound leaks
	return c.Client.Get(ctx, id)
}

func TestPlanReconcileBoundsConcurrency(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	fake := raytest.New(t)
	liveRows(t, s, fake, 24, 0)
	ray := &countingRay{Client: rayClient(t, fake.URL)}
	p, err := recovery.PlanReconcile(t.Context(), s, ray, recovery.ReconcileOptions{Address: fake.URL, ListThreshold: -1, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	if peak := ray.peak.Load(); peak > 3 || peak < 2 || fake.Count(raytest.Get) != 24 || p.RayView != "get" {
		t.Fatalf("peak %d GETs in flight (bound 3), %d GETs, view %s", peak, fake.Count(raytest.Get), p.RayView)
	}
}

func TestPlanReconcileLimit(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	fake := raytest.New(t)
	liveRows(t, s, fake, 5, 0)
	p, err := recovery.PlanReconcile(t.Context(), s, rayClient(t, fake.URL), recovery.ReconcileOptions{Address: fake.URL, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if p.Candidates != 5 || len(p.Entries) != 2 || p.Remaining() != 3 || fake.Count(raytest.Get) != 2 {
		t.Fatalf("candidates %d, entries %d, remaining %d, gets %d", p.Candidates, len(p.Entries), p.Remaining(), fake.Count(raytest.Get))
	}
	for _, bad := range []recovery.ReconcileOptions{{Limit: -1}, {Limit: recovery.MaxLimit + 1}, {LeaseTTL: -time.Second}} {
		bad.Address = fake.URL
		if _, err := recovery.PlanReconcile(t.Context(), s, rayClient(t, fake.URL), bad); !errors.Is(err, recovery.ErrBadSelection) {
			t.Errorf("%+v: %v, want ErrBadSelection", bad, err)
		}
	}
}

// TestPlanReconcileRayDown: an unreachable Ray, a refused token and a Ray whose list fails
// all end the plan with ErrRayUnavailable.
func TestPlanReconcileRayDown(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	fake := raytest.New(t)
	liveRows(t, s, fake, 40, 0)
	authed := raytest.New(t, raytest.WithToken("t"))
	ctx := t.Context()
	fake.SetDown(true)
	if _, err := recovery.PlanReconcile(ctx, s, rayClient(t, fake.URL), recovery.ReconcileOptions{Address: fake.URL}); !errors.Is(err, recovery.ErrRayUnavailable) {
		t.Errorf("down: %v", err)
	}
	fake.SetDown(false)
	if _, err := recovery.PlanReconcile(ctx, s, rayClient(t, authed.URL), recovery.ReconcileOptions{Address: authed.URL}); !errors.Is(err, recovery.ErrRayUnavailable) ||
		!errors.Is(err, rayjobs.ErrUnauthorized) {
		t.Errorf("401: %v", err)
	}
	fake.Inject(raytest.List, raytest.Fault{Status: 503, Body: "upstream connect error", Times: 1})
	if _, err := recovery.PlanReconcile(ctx, s, rayClient(t, fake.URL), recovery.ReconcileOptions{Address: fake.URL}); !errors.Is(err, recovery.ErrRayUnavailable) {
		t.Errorf("list failed: %v", err)
	}
}

// TestApplyReconcileWithoutAuditTables: a Django-created schema (no rayctl_audit) is
// reconciled all the same, without an audit record; a reason needs the table.
func TestApplyReconcileWithoutAuditTables(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	if _, err := sc.Pool.Exec(ctx, `DROP TABLE rayctl_audit_task, rayctl_audit`); err != nil {
		t.Fatal(err)
	}
	fake := raytest.New(t)
	row := storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("gone"), StartedAt: storetest.Ago(time.Hour),
		RayJobID: storetest.Ptr("raysubmit_done")})
	fake.AddJob(raytest.Job{SubmissionID: "raysubmit_done", Status: raytest.Succeeded, EndTime: time.Now().Add(-time.Hour),
		Logs: `{"success": true, "result": [1, 2], "error": null, "traceback": null, "exception_type": null}`})
	ray := rayClient(t, fake.URL)
	p, err := recovery.PlanReconcile(ctx, s, ray, recovery.ReconcileOptions{Address: fake.URL})
	if err != nil || p.Audited || len(p.Actionable()) != 1 {
		t.Fatalf("plan %+v %v", p, err)
	}
	if _, err := recovery.ApplyReconcile(ctx, s, ray, p, recovery.ReconcileApplyOptions{Reason: "x"}); !errors.Is(err, store.ErrNoAudit) {
		t.Fatalf("a reason without the audit table: %v", err)
	}
	out, err := recovery.ApplyReconcile(ctx, s, ray, p, recovery.ReconcileApplyOptions{})
	if err != nil || out.Applied != 1 || out.AuditID != nil {
		t.Fatalf("outcome %+v %v", out, err)
	}
	got, err := s.GetTask(ctx, row.ID)
	if err != nil || got.State != store.StateSucceeded || got.ResultData == nil || *got.ResultData != "[1, 2]" {
		t.Fatalf("row %+v %v", got, err)
	}
}

// TestApplyReconcileLogGone: a SUCCEEDED job whose log cannot be read at apply time (its node
// died) is a failed entry, its row untouched; the run goes on.
func TestApplyReconcileLogGone(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	fake := raytest.New(t)
	var rows []store.Task
	for _, id := range []string{"raysubmit_a", "raysubmit_b"} {
		rows = append(rows, storetest.Insert(t, s, store.Task{State: store.StateRunning, StartedAt: storetest.Ago(time.Hour), RayJobID: storetest.Ptr(id)}))
		fake.AddJob(raytest.Job{SubmissionID: id, Status: raytest.Succeeded, EndTime: time.Now().Add(-time.Hour), Logs: "plain text result\n"})
	}
	ray := rayClient(t, fake.URL)
	p, err := recovery.PlanReconcile(ctx, s, ray, recovery.ReconcileOptions{Address: fake.URL})
	if err != nil || len(p.Actionable()) != 2 {
		t.Fatalf("plan %+v %v", p, err)
	}
	var once sync.Once
	hooks := recovery.Hooks{BeforeJob: func(context.Context, recovery.JobEntry) error {
		once.Do(func() {
			fake.Inject(raytest.Logs, raytest.Fault{Status: 500, Body: "RuntimeError: node is dead", Times: 1})
		})
		return nil
	}}
	out, err := recovery.ApplyReconcile(ctx, s, ray, p, recovery.ReconcileApplyOptions{Hooks: hooks})
	if err != nil || out.Applied != 1 || out.Failed != 1 || out.Results[0].Error == "" {
		t.Fatalf("outcome %+v %v", out, err)
	}
	first, _ := s.GetTask(ctx, rows[0].ID)
	second, _ := s.GetTask(ctx, rows[1].ID)
	// a last line that is not JSON: django-ray 0.2.0 stores the whole log as the result string
	if first.State != store.StateRunning || second.State != store.StateSucceeded || *second.ResultData != `"plain text result\n"` {
		t.Fatalf("rows %s %s %v", first.State, second.State, second.ResultData)
	}
}
