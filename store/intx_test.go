package store_test

import (
	"errors"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestInTx: the Store InTx hands fn writes in one transaction: all of them commit when fn
// returns nil, none when it returns an error (which InTx returns as it is).
func TestInTx(t *testing.T) {
	ctx := t.Context()
	s, _ := storetest.New(t)
	a := storetest.Insert(t, s, store.Task{State: store.StateFailed})
	b := storetest.Insert(t, s, store.Task{State: store.StateFailed})
	failed := []store.TaskState{store.StateFailed}

	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx *store.Store) error {
		if got, err := tx.Requeue(ctx, []int64{a.ID}, failed, store.RequeueOptions{}); err != nil || len(got) != 1 {
			t.Fatalf("requeue in tx: %v %v", got, err)
		}
		if got, _ := tx.GetTask(ctx, a.ID); got.State != store.StateQueued {
			t.Errorf("in tx: %s, want its own write (QUEUED)", got.State)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: %v, want fn's error", err)
	}
	if got, _ := s.GetTask(ctx, a.ID); got.State != store.StateFailed {
		t.Errorf("after an error: %s, want the write rolled back (FAILED)", got.State)
	}

	err = s.InTx(ctx, func(tx *store.Store) error {
		_, err := tx.Requeue(ctx, []int64{a.ID, b.ID}, failed, store.RequeueOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{a.ID, b.ID} {
		if got, _ := s.GetTask(ctx, id); got.State != store.StateQueued {
			t.Errorf("task %d after commit: %s, want QUEUED", id, got.State)
		}
	}
}
