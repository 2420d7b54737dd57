package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

func TestLeaseLifecycle(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	l := store.Lease{WorkerID: "w1", Hostname: "host-a", PID: 4242, QueueName: "default,emails"}
	if err := s.UpsertLease(ctx, l); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetLease(ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsActive || got.Hostname != "host-a" || got.PID != 4242 || got.QueueName != "default,emails" || got.StoppedAt != nil {
		t.Fatalf("lease: %+v", got)
	}
	started := got.StartedAt

	if ok, err := s.HeartbeatLease(ctx, "w1"); !ok || err != nil {
		t.Fatalf("heartbeat: %v %v", ok, err)
	}
	if ok, _ := s.HeartbeatLease(ctx, "nobody"); ok {
		t.Fatal("heartbeat of a missing lease reported success")
	}
	if ok, err := s.DeactivateLease(ctx, "w1"); !ok || err != nil {
		t.Fatalf("deactivate: %v %v", ok, err)
	}
	if ok, _ := s.DeactivateLease(ctx, "w1"); ok {
		t.Fatal("deactivated twice")
	}
	if ok, _ := s.HeartbeatLease(ctx, "w1"); ok {
		t.Fatal("heartbeat re-activated an inactive lease silently: the worker must notice and re-create it")
	}
	got, _ = s.GetLease(ctx, "w1")
	if got.IsActive || got.StoppedAt == nil {
		t.Fatalf("deactivated lease: %+v", got)
	}
	// re-activation keeps the worker id and first start
	if err := s.UpsertLease(ctx, l); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetLease(ctx, "w1")
	if !got.IsActive || got.StoppedAt != nil || !got.StartedAt.Equal(started) {
		t.Fatalf("re-activated lease: %+v", got)
	}

	// expiry sweep: only active leases older than the TTL
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "w-old", Hostname: "h", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '5 minutes' WHERE worker_id = 'w-old'`); err != nil {
		t.Fatal(err)
	}
	expired, err := s.ExpireLeases(ctx, time.Minute)
	if err != nil || !reflect.DeepEqual(expired, []string{"w-old"}) {
		t.Fatalf("expired %v (%v), want [w-old]", expired, err)
	}
	leases, err := s.ListLeases(ctx)
	if err != nil || len(leases) != 2 || leases[0].WorkerID != "w-old" {
		t.Fatalf("leases oldest heartbeat first: %+v %v", leases, err)
	}
	if _, err := s.GetLease(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing lease: %v", err)
	}
	long := strings.Repeat("q", 101)
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "w-long", Hostname: "h", QueueName: long}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("overlong queue label: %v", err)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	rows := []store.Task{
		{QueueName: "default", CreatedAt: time.Now().Add(-10 * time.Minute)},
		{QueueName: "default"},
		{QueueName: "default", RunAfter: storetest.Ptr(time.Now().Add(time.Hour)), CreatedAt: time.Now().Add(-time.Hour)},
		{QueueName: "emails", CreatedAt: time.Now().Add(-3 * time.Minute)},
		{QueueName: "emails", State: store.StateRunning, StartedAt: storetest.Ago(time.Second)},
		{QueueName: "emails", State: store.StateSucceeded, FinishedAt: storetest.Ago(10 * time.Second)},
		{QueueName: "emails", State: store.StateSucceeded, FinishedAt: storetest.Ago(2 * time.Hour)},
		{QueueName: "reports", State: store.StateFailed, FinishedAt: storetest.Ago(5 * time.Second)},
		{QueueName: "reports", State: store.StateLost, FinishedAt: storetest.Ago(5 * time.Second)},
		{QueueName: "reports", State: store.StateCancelling},
	}
	for _, r := range rows {
		storetest.Insert(t, s, r)
	}
	for _, id := range []string{"live", "stale", "gone"} {
		if err := s.UpsertLease(ctx, store.Lease{WorkerID: id, Hostname: "h", QueueName: "default"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '2 minutes' WHERE worker_id = 'stale';
		UPDATE django_ray_taskworkerlease SET is_active = false WHERE worker_id = 'gone'`); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wantStates := map[store.TaskState]int64{"QUEUED": 4, "RUNNING": 1, "SUCCEEDED": 2, "FAILED": 1, "CANCELLED": 0, "CANCELLING": 1, "LOST": 1}
	if !reflect.DeepEqual(st.States, wantStates) {
		t.Errorf("states %v, want %v", st.States, wantStates)
	}
	if st.Total != 10 || st.Queued != 4 || st.Running != 1 || st.Completed1m != 1 || st.Failed1m != 2 {
		t.Errorf("totals: %+v", st)
	}
	if st.OldestQueued < 590 || st.OldestQueued > 700 {
		t.Errorf("oldest queued age %.0fs, want ~600s", st.OldestQueued)
	}
	if st.Leases != (store.LeaseCounts{Live: 1, Stale: 1, Inactive: 1}) {
		t.Errorf("leases %+v", st.Leases)
	}
	var names []string
	for _, q := range st.Queues {
		names = append(names, fmt.Sprintf("%s:%d/%d", q.Name, q.Depth, q.Deferred))
	}
	if got := strings.Join(names, " "); got != "default:3/1 emails:1/0 reports:0/0" {
		t.Errorf("queues %s", got)
	}

	// an empty database: every state present with zero
	empty, _ := storetest.New(t)
	st, err = empty.Stats(ctx, time.Minute)
	if err != nil || len(st.States) != 7 || st.Total != 0 || st.Now.IsZero() {
		t.Fatalf("empty stats: %+v %v", st, err)
	}
}

func TestListTasksFilters(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	a := storetest.Insert(t, s, store.Task{CallablePath: "billing.tasks.charge", State: store.StateFailed, QueueName: "payments",
		ErrorMessage: storetest.Ptr("CardDeclined: 100% sure"), FinishedAt: storetest.Ago(2 * time.Hour)})
	b := storetest.Insert(t, s, store.Task{CallablePath: "billing.tasks.refund", State: store.StateFailed, QueueName: "payments",
		ErrorMessage: storetest.Ptr("timeout talking to bank"), FinishedAt: storetest.Ago(time.Minute)})
	c := storetest.Insert(t, s, store.Task{CallablePath: "mail.tasks.send", State: store.StateLost, ClaimedByWorker: storetest.Ptr("w7")})
	d := storetest.Insert(t, s, store.Task{CallablePath: "mail.tasks.send_x", State: store.StateQueued, TaskID: "5b0c6c7e-0000-4000-8000-000000000000"})
	ids := func(ts []store.Task) []int64 {
		var out []int64
		for _, t := range ts {
			out = append(out, t.ID)
		}
		return out
	}
	cases := []struct {
		name string
		f    store.TaskFilter
		want []int64
	}{
		{"all newest first", store.TaskFilter{}, []int64{d.ID, c.ID, b.ID, a.ID}},
		{"state", store.TaskFilter{States: []store.TaskState{store.StateFailed}}, []int64{b.ID, a.ID}},
		{"states", store.TaskFilter{States: []store.TaskState{store.StateFailed, store.StateLost}}, []int64{c.ID, b.ID, a.ID}},
		{"queue", store.TaskFilter{Queues: []string{"payments"}}, []int64{b.ID, a.ID}},
		{"callable exact", store.TaskFilter{Callable: "mail.tasks.send"}, []int64{c.ID}},
		{"callable glob", store.TaskFilter{Callable: "billing.*"}, []int64{b.ID, a.ID}},
		{"glob underscore is literal", store.TaskFilter{Callable: "mail.tasks.send_*"}, []int64{d.ID}},
		{"error contains, case-insensitive", store.TaskFilter{ErrorContains: "TIMEOUT"}, []int64{b.ID}},
		{"error contains percent literally", store.TaskFilter{ErrorContains: "100%"}, []int64{a.ID}},
		{"older than", store.TaskFilter{States: []store.TaskState{store.StateFailed}, OlderThan: time.Hour}, []int64{a.ID}},
		{"worker", store.TaskFilter{Worker: "w7"}, []int64{c.ID}},
		{"task id", store.TaskFilter{TaskID: d.TaskID}, []int64{d.ID}},
		{"ids", store.TaskFilter{IDs: []int64{a.ID, d.ID}}, []int64{d.ID, a.ID}},
		{"limit", store.TaskFilter{Limit: 2}, []int64{d.ID, c.ID}},
		{"page after", store.TaskFilter{Limit: 2, BeforeID: c.ID}, []int64{b.ID, a.ID}},
		{"search", store.TaskFilter{Search: "bank"}, []int64{b.ID}},
		{"sql metacharacters", store.TaskFilter{Callable: "x'; DROP TABLE django_ray_raytaskexecution; --", ErrorContains: "' OR 1=1 --"}, nil},
	}
	for _, tc := range cases {
		got, err := s.ListTasks(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(ids(got), tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, ids(got), tc.want)
		}
		if tc.f.Limit == 0 && tc.f.BeforeID == 0 {
			if n, err := s.CountTasks(ctx, tc.f); err != nil || n != int64(len(tc.want)) {
				t.Errorf("%s: count = %d (%v), want %d", tc.name, n, err, len(tc.want))
			}
		}
	}
	if n, _ := s.CountTasks(ctx, store.TaskFilter{}); n != 4 {
		t.Fatalf("table damaged: %d rows", n)
	}
	if n, _ := s.CountTasks(ctx, store.TaskFilter{States: []store.TaskState{store.StateFailed}}); n != 2 {
		t.Fatalf("count failed = %d", n)
	}
	if _, err := s.GetTask(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing task: %v", err)
	}
}

func TestParseState(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]store.TaskState{"failed": store.StateFailed, " LOST ": store.StateLost, "Cancelling": store.StateCancelling} {
		if got, err := store.ParseState(in); err != nil || got != want {
			t.Errorf("ParseState(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := store.ParseState("DONE"); err == nil || !strings.Contains(err.Error(), "QUEUED, RUNNING") {
		t.Errorf("unknown state error: %v", err)
	}
}

func TestSweepQueries(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	for _, id := range []string{"me", "live"} {
		if err := s.UpsertLease(ctx, store.Lease{WorkerID: id, Hostname: "h", QueueName: "default"}); err != nil {
			t.Fatal(err)
		}
	}
	old := storetest.Ago(10 * time.Minute)
	mk := func(owner *string, mod func(*store.Task)) store.Task {
		return runningRow(t, s, func(r *store.Task) {
			r.ClaimedByWorker, r.LastHeartbeatAt, r.StartedAt = owner, old, old
			if mod != nil {
				mod(r)
			}
		})
	}
	mineStuck := mk(storetest.Ptr("me"), nil)
	deadStuck := mk(storetest.Ptr("dead"), nil)
	liveStuck := mk(storetest.Ptr("live"), nil)
	noOwner := mk(nil, func(r *store.Task) { r.RayJobID = storetest.Ptr("raysubmit_abc") })
	fresh := mk(storetest.Ptr("dead"), func(r *store.Task) { r.LastHeartbeatAt = storetest.Ago(time.Second) })
	timedOut := mk(storetest.Ptr("dead"), func(r *store.Task) {
		r.TimeoutSeconds = storetest.Ptr(int32(60))
		r.LastHeartbeatAt = storetest.Ago(time.Second)
	})
	localJob := mk(storetest.Ptr("dead"), func(r *store.Task) { r.RayJobID = nil; r.LastHeartbeatAt = storetest.Ago(time.Second) })
	cancelMine := mk(storetest.Ptr("me"), func(r *store.Task) { r.State = store.StateCancelling })
	cancelDead := mk(storetest.Ptr("dead"), func(r *store.Task) { r.State = store.StateCancelling })
	mk(storetest.Ptr("live"), func(r *store.Task) { r.State = store.StateCancelling })
	deadLocal := mk(storetest.Ptr("dead"), func(r *store.Task) { r.RayJobID = nil })

	p := store.SweepParams{Self: "me", LeaseTTL: time.Minute, StuckAfter: 5 * time.Minute}
	ids := func(ts []store.Task, err error) []int64 {
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, t := range ts {
			out = append(out, t.ID)
		}
		return out
	}
	if got, want := ids(s.StuckTasks(ctx, p)), []int64{mineStuck.ID, deadStuck.ID, noOwner.ID, deadLocal.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("stuck %v, want %v (live %d and fresh %d excluded)", got, want, liveStuck.ID, fresh.ID)
	}
	if got, want := ids(s.TimedOutTasks(ctx, p)), []int64{timedOut.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("timed out %v, want %v", got, want)
	}
	if got, want := ids(s.OrphanedJobs(ctx, p, "raysubmit_")), []int64{deadStuck.ID, noOwner.ID, fresh.ID, timedOut.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("orphans %v, want %v (no job id: %d)", got, want, localJob.ID)
	}
	if got, want := ids(s.CancellingTasks(ctx, p)), []int64{cancelMine.ID, cancelDead.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("cancelling %v, want %v", got, want)
	}
	if got, want := ids(s.OwnedTasks(ctx, "me")), []int64{mineStuck.ID, cancelMine.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("owned %v, want %v", got, want)
	}

	// OnlyOwn: a worker that has not watched the database for a lease TTL sweeps its own rows
	own := p
	own.OnlyOwn = true
	if got, want := ids(s.StuckTasks(ctx, own)), []int64{mineStuck.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("only own: stuck %v, want %v", got, want)
	}
	if got := ids(s.TimedOutTasks(ctx, own)); len(got) != 0 {
		t.Errorf("only own: timed out %v", got)
	}
	if got, want := ids(s.CancellingTasks(ctx, own)), []int64{cancelMine.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("only own: cancelling %v, want %v", got, want)
	}
	// SkipJobPrefix: a worker without Ray leaves other workers' Ray job rows alone
	noRay := p
	noRay.SkipJobPrefix = "raysubmit_"
	if got, want := ids(s.StuckTasks(ctx, noRay)), []int64{mineStuck.ID, deadLocal.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("without Ray: stuck %v, want %v", got, want)
	}
	if got := ids(s.TimedOutTasks(ctx, noRay)); len(got) != 0 {
		t.Errorf("without Ray: timed out %v", got)
	}
	if got, want := ids(s.CancellingTasks(ctx, noRay)), []int64{cancelMine.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("without Ray: cancelling %v, want %v", got, want)
	}
}

func TestMissingSchemaIsClear(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	s := store.New(sc.Pool)
	_, err := s.Stats(t.Context(), time.Minute)
	if !errors.Is(err, store.ErrNoSchema) || !strings.Contains(err.Error(), "rayctl migrate up") {
		t.Fatalf("stats on an empty database: %v", err)
	}
	_, err = s.Enqueue(t.Context(), store.NewTask{CallablePath: "a.b"})
	if !errors.Is(err, store.ErrNoSchema) {
		t.Fatalf("enqueue on an empty database: %v", err)
	}
}

// TestStampUnseen: RUNNING rows without a heartbeat or start time, or with one far in the
// future, get a first-seen heartbeat so the stuck sweep can judge them later; live workers'
// rows and rows with a usable time are left alone.
func TestStampUnseen(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "live", Hostname: "h", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	bare := func(owner *string) store.Task {
		return runningRow(t, s, func(r *store.Task) { r.ClaimedByWorker, r.StartedAt, r.LastHeartbeatAt = owner, nil, nil })
	}
	nobody, dead, live := bare(nil), bare(storetest.Ptr("dead")), bare(storetest.Ptr("live"))
	future, infinite, usable := runningRow(t, s, func(r *store.Task) { r.LastHeartbeatAt = storetest.Ptr(time.Now().Add(48 * time.Hour)) }),
		runningRow(t, s, nil), runningRow(t, s, nil)
	if _, err := storetest.DB(s).Exec(ctx, `UPDATE django_ray_raytaskexecution SET last_heartbeat_at = 'infinity' WHERE id = $1`, infinite.ID); err != nil {
		t.Fatal(err)
	}
	p := store.SweepParams{Self: "me", LeaseTTL: time.Minute, StuckAfter: 5 * time.Minute}
	if n, err := s.StampUnseen(ctx, p); err != nil || n != 4 {
		t.Fatalf("stamped %d, %v; want 4", n, err)
	}
	before := storetest.Ago(0)
	for _, r := range []store.Task{nobody, dead, future, infinite} {
		var hb time.Time
		if err := storetest.DB(s).QueryRow(ctx, `SELECT last_heartbeat_at FROM django_ray_raytaskexecution WHERE id = $1`, r.ID).Scan(&hb); err != nil {
			t.Fatal(err)
		}
		if hb.After(*before) {
			t.Errorf("row %d: heartbeat %v is not the sweep's now", r.ID, hb)
		}
	}
	for _, r := range []store.Task{live, usable} {
		if got, _ := s.GetTask(ctx, r.ID); !reflect.DeepEqual(got.LastHeartbeatAt, r.LastHeartbeatAt) {
			t.Errorf("row %d touched: %v", r.ID, got.LastHeartbeatAt)
		}
	}
	// stamped rows are stuck StuckAfter later, like any other
	p.StuckAfter = 0
	stuck, err := s.StuckTasks(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(stuck) < 4 {
		t.Fatalf("%d stuck after stamping", len(stuck))
	}
	if n, _ := s.StampUnseen(ctx, store.SweepParams{Self: "me", LeaseTTL: time.Minute, StuckAfter: 5 * time.Minute}); n != 0 {
		t.Fatalf("stamped again: %d", n)
	}
}
