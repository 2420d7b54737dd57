package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

func ids(refs []store.TaskRef) []int64 {
	out := make([]int64, len(refs))
	for i, r := range refs {
		out[i] = r.ID
	}
	return out
}

func TestSelectRefs(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := context.Background()
	f1 := storetest.Insert(t, s, store.Task{State: store.StateFailed, QueueName: "emails"})
	f2 := storetest.Insert(t, s, store.Task{State: store.StateFailed, QueueName: "default"})
	lost := storetest.Insert(t, s, store.Task{State: store.StateLost})
	storetest.Insert(t, s, store.Task{State: store.StateQueued})
	f3 := storetest.Insert(t, s, store.Task{State: store.StateFailed, FinishedAt: storetest.Ago(time.Hour)})

	q := store.RefQuery{Filter: store.TaskFilter{States: []store.TaskState{store.StateFailed, store.StateLost}}}
	refs, err := s.SelectRefs(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{f1.ID, f2.ID, lost.ID, f3.ID}; !reflect.DeepEqual(ids(refs), want) {
		t.Fatalf("refs %v, want %v (lowest id first)", ids(refs), want)
	}
	if refs[2].State != store.StateLost {
		t.Fatalf("state not reported: %+v", refs[2])
	}
	q.Limit = 2
	if refs, _ = s.SelectRefs(ctx, q); !reflect.DeepEqual(ids(refs), []int64{f1.ID, f2.ID}) {
		t.Fatalf("limit: %v", ids(refs))
	}
	if n, err := s.CountRefs(ctx, q); err != nil || n != 4 {
		t.Fatalf("count ignores the limit: %d %v", n, err)
	}
	q.Filter.OlderThan = 30 * time.Minute
	if refs, _ = s.SelectRefs(ctx, q); !reflect.DeepEqual(ids(refs), []int64{f3.ID}) {
		t.Fatalf("older than: %v", ids(refs))
	}
	q.Filter.OlderThan, q.Filter.NewerThan = 0, 30*time.Minute
	if n, _ := s.CountRefs(ctx, q); n != 3 {
		t.Fatalf("newer than: %d, want 3", n)
	}
	got, err := s.TaskStates(ctx, []int64{lost.ID, 999999, f1.ID})
	if err != nil || !reflect.DeepEqual(got, []store.TaskRef{{ID: f1.ID, State: store.StateFailed}, {ID: lost.ID, State: store.StateLost}}) {
		t.Fatalf("task states: %+v %v", got, err)
	}
}

func TestFinalizeOrphanedCancels(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := context.Background()
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "alive", Hostname: "h", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "dead", Hostname: "h", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeactivateLease(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "stale", Hostname: "h", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '10 minutes' WHERE worker_id = 'stale'`); err != nil {
		t.Fatal(err)
	}
	cancelling := func(owner *string) store.Task {
		return storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: owner, StartedAt: storetest.Ago(time.Minute),
			RayJobID: storetest.Ptr("raysubmit_" + store.NewUUID())})
	}
	ofAlive := cancelling(storetest.Ptr("alive"))
	ofDead := cancelling(storetest.Ptr("dead"))
	ofStale := cancelling(storetest.Ptr("stale"))
	ofGhost := cancelling(storetest.Ptr("ghost"))
	ofNobody := cancelling(nil)
	running := storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("dead")})

	// selection: CANCELLING rows of live owners are left to them; other states unaffected
	q := store.RefQuery{Filter: store.TaskFilter{States: []store.TaskState{store.StateCancelling, store.StateRunning}}, CancellingOwnerNotLive: time.Minute}
	refs, err := s.SelectRefs(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{ofDead.ID, ofStale.ID, ofGhost.ID, ofNobody.ID, running.ID}; !reflect.DeepEqual(ids(refs), want) {
		t.Fatalf("selected %v, want %v", ids(refs), want)
	}

	all := []int64{ofAlive.ID, ofDead.ID, ofStale.ID, ofGhost.ID, ofNobody.ID, running.ID}
	applied, err := s.FinalizeOrphanedCancels(ctx, all, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var appliedIDs []int64
	for _, f := range applied {
		appliedIDs = append(appliedIDs, f.ID)
	}
	if want := []int64{ofDead.ID, ofStale.ID, ofGhost.ID, ofNobody.ID}; !reflect.DeepEqual(appliedIDs, want) {
		t.Fatalf("finalized %v, want %v", appliedIDs, want)
	}
	if applied[0].RayJobID == nil || *applied[0].RayJobID != *ofDead.RayJobID {
		t.Fatalf("the unstopped Ray job is not reported: %+v", applied[0])
	}
	for _, id := range appliedIDs {
		got, _ := s.GetTask(ctx, id)
		if got.State != store.StateCancelled || got.FinishedAt == nil {
			t.Errorf("task %d: %s finished=%v", id, got.State, got.FinishedAt)
		}
	}
	if got, _ := s.GetTask(ctx, ofAlive.ID); got.State != store.StateCancelling {
		t.Errorf("a live owner's CANCELLING row was finalized: %s", got.State)
	}
	if got, _ := s.GetTask(ctx, running.ID); got.State != store.StateRunning {
		t.Errorf("a RUNNING row was touched: %s", got.State)
	}
	if _, err := s.FinalizeOrphanedCancels(ctx, all, 0); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("zero TTL: %v", err)
	}
}

func TestOwnedCountsAndOrphans(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := context.Background()
	for _, w := range []string{"alive", "dead", "stale"} {
		if err := s.UpsertLease(ctx, store.Lease{WorkerID: w, Hostname: "h", QueueName: "default"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeactivateLease(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '10 minutes' WHERE worker_id = 'stale'`); err != nil {
		t.Fatal(err)
	}
	row := func(state store.TaskState, owner *string, age time.Duration) store.Task {
		return storetest.Insert(t, s, store.Task{State: state, ClaimedByWorker: owner, StartedAt: storetest.Ago(age), LastHeartbeatAt: storetest.Ago(age)})
	}
	a1 := row(store.StateRunning, storetest.Ptr("alive"), time.Minute)
	a2 := row(store.StateCancelling, storetest.Ptr("alive"), time.Minute)
	d1 := row(store.StateRunning, storetest.Ptr("dead"), 20*time.Minute)
	s1 := row(store.StateRunning, storetest.Ptr("stale"), 15*time.Minute)
	g1 := row(store.StateCancelling, storetest.Ptr("ghost"), 10*time.Minute)
	n1 := row(store.StateRunning, nil, 5*time.Minute)
	row(store.StateSucceeded, storetest.Ptr("dead"), time.Hour) // finished rows are not owned

	counts, err := s.OwnedCounts(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts["alive"]; c.Running != 1 || c.Cancelling != 1 || !reflect.DeepEqual(c.IDs, []int64{a1.ID, a2.ID}) {
		t.Fatalf("alive: %+v", c)
	}
	if c := counts["dead"]; c.Running != 1 || c.Cancelling != 0 || !reflect.DeepEqual(c.IDs, []int64{d1.ID}) {
		t.Fatalf("dead: %+v", c)
	}
	if len(counts) != 4 { // alive, dead, stale, ghost
		t.Fatalf("owners: %v", counts)
	}
	if c, _ := s.OwnedCounts(ctx, 1); len(c["alive"].IDs) != 1 {
		t.Fatalf("id limit: %+v", c["alive"])
	}

	orphans, total, err := s.OrphanCandidates(ctx, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]store.OwnerStatus{}
	var order []int64
	for _, o := range orphans {
		got[o.Task.ID] = o.Reason
		order = append(order, o.Task.ID)
	}
	want := map[int64]store.OwnerStatus{d1.ID: store.OwnerInactive, s1.ID: store.OwnerStale, g1.ID: store.OwnerUnknown, n1.ID: store.OwnerNone}
	if total != 4 || !reflect.DeepEqual(got, want) {
		t.Fatalf("orphans %v (total %d), want %v", got, total, want)
	}
	if !reflect.DeepEqual(order, []int64{d1.ID, s1.ID, g1.ID, n1.ID}) {
		t.Fatalf("orphans not oldest activity first: %v", order)
	}
	if orphans, total, _ = s.OrphanCandidates(ctx, time.Minute, 2); len(orphans) != 2 || total != 4 {
		t.Fatalf("limited: %d rows, total %d", len(orphans), total)
	}

	h, err := s.HealthCounts(ctx, time.Minute, 12*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if h.StuckRunning != 2 || h.OrphanedRunning != 3 || h.OrphanedCancelling != 1 || h.OldestCancellingAt == nil {
		t.Fatalf("health: %+v", h)
	}
}

func TestCountByAndQueueState(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		storetest.Insert(t, s, store.Task{State: store.StateFailed, CallablePath: "app.charge", ErrorMessage: storetest.Ptr("ValueError: bad card\nmore")})
	}
	storetest.Insert(t, s, store.Task{State: store.StateFailed, CallablePath: "app.mail", QueueName: "emails", ErrorMessage: storetest.Ptr("timeout")})
	storetest.Insert(t, s, store.Task{State: store.StateQueued, CallablePath: "app.mail", QueueName: "emails"})

	f := store.TaskFilter{States: []store.TaskState{store.StateFailed}}
	got, err := s.CountBy(ctx, f, store.ByCallable, 10)
	if err != nil || !reflect.DeepEqual(got, []store.GroupCount{{Key: "app.charge", Count: 3}, {Key: "app.mail", Count: 1}}) {
		t.Fatalf("by callable: %+v %v", got, err)
	}
	got, _ = s.CountBy(ctx, f, store.ByError, 1)
	if !reflect.DeepEqual(got, []store.GroupCount{{Key: "ValueError: bad card", Count: 3}}) {
		t.Fatalf("by error (first line, limit 1): %+v", got)
	}
	if _, err := s.CountBy(ctx, f, "callable_path; DROP TABLE x", 10); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("unknown grouping: %v", err)
	}

	counts, err := s.CountByQueueState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.QueueStateCount{{"default", store.StateFailed, 3}, {"emails", store.StateFailed, 1}, {"emails", store.StateQueued, 1}}
	if !reflect.DeepEqual(counts, want) {
		t.Fatalf("queue/state counts %+v, want %+v", counts, want)
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := context.Background()
	if ok, err := s.AuditAvailable(ctx); !ok || err != nil {
		t.Fatalf("audit available after migrate: %v %v", ok, err)
	}
	sel, _ := json.Marshal(map[string]any{"states": []string{"FAILED"}})
	id, err := s.StartAudit(ctx, store.AuditEntry{Action: "requeue", Actor: "op@host", Reason: storetest.Ptr("INC-42 fixed"),
		Selection: sel, Options: json.RawMessage(`{"batch":100}`), Matched: 3, Selected: 2})
	if err != nil {
		t.Fatal(err)
	}
	changes := []store.AuditChange{{ID: 11, From: store.StateFailed, To: store.StateQueued}, {ID: 12, From: store.StateLost, To: store.StateQueued}}
	if err := s.RecordAuditChanges(ctx, id, changes); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAudit(ctx, id, 2, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAudit(ctx, 999999, 0, 0, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("finish a missing entry: %v", err)
	}
	other, _ := s.StartAudit(ctx, store.AuditEntry{Action: "cancel", Actor: "op@host", Selection: sel, Options: json.RawMessage(`{}`)})

	all, err := s.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(all) != 2 || all[0].ID != other || all[1].ID != id {
		t.Fatalf("list newest first: %+v %v", all, err)
	}
	e := all[1]
	if e.Action != "requeue" || *e.Reason != "INC-42 fixed" || e.Changed != 2 || e.FinishedAt == nil || e.Error != nil || e.Matched != 3 {
		t.Fatalf("entry: %+v", e)
	}
	var selBack map[string]any
	if err := json.Unmarshal(e.Selection, &selBack); err != nil || selBack["states"] == nil {
		t.Fatalf("selection round trip: %s %v", e.Selection, err)
	}
	byTask, _ := s.ListAudit(ctx, store.AuditFilter{TaskID: 12})
	if len(byTask) != 1 || byTask[0].ID != id {
		t.Fatalf("by task: %+v", byTask)
	}
	byAction, _ := s.ListAudit(ctx, store.AuditFilter{Action: "cancel"})
	if len(byAction) != 1 || byAction[0].ID != other {
		t.Fatalf("by action: %+v", byAction)
	}
	if one, err := s.GetAudit(ctx, id); err != nil || one.ID != id || one.Changed != 2 || *one.Reason != "INC-42 fixed" {
		t.Fatalf("get: %+v %v", one, err)
	}
	if _, err := s.GetAudit(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get a missing entry: %v", err)
	}
	got, err := s.AuditChanges(ctx, id)
	if err != nil || !reflect.DeepEqual(got, changes) {
		t.Fatalf("changes %+v %v", got, err)
	}

	// without migration 0002 the store says so
	if _, err := sc.Pool.Exec(ctx, `DROP TABLE rayctl_audit_task, rayctl_audit`); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AuditAvailable(ctx); ok {
		t.Fatal("audit available after dropping it")
	}
	if _, err := s.ListAudit(ctx, store.AuditFilter{}); !errors.Is(err, store.ErrNoAudit) {
		t.Fatalf("list without the table: %v", err)
	}
}

func TestServer(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := context.Background()
	i, err := s.Server(ctx)
	if err != nil || i.Version == "" || !i.Tables || time.Since(i.Clock).Abs() > time.Minute {
		t.Fatalf("server: %+v %v", i, err)
	}
	empty := store.New(storetest.EmptySchema(t).Pool)
	if i, err := empty.Server(ctx); err != nil || i.Tables {
		t.Fatalf("empty schema: %+v %v", i, err)
	}
}
