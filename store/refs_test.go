package store_test

import (
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
	ctx := t.Context()
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
