package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

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
