package store_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

func TestOwnedCountsAndOrphans(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
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

}
