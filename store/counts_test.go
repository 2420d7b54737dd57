package store_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

func TestCountByAndQueueState(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
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

func TestGauges(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	for _, r := range []store.Task{{}, {}, {QueueName: "emails"}, {State: store.StateRunning}, {State: store.StateFailed, QueueName: "emails"}} {
		storetest.Insert(t, s, r)
	}
	g, err := s.Gauges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.States) != 7 || g.States[store.StateLost] != 0 || g.States[store.StateQueued] != 3 || g.Queued != 3 || g.Running != 1 ||
		!reflect.DeepEqual(g.QueueDepth, map[string]int64{"default": 2, "emails": 1}) {
		t.Fatalf("gauges: %+v", g)
	}
}
