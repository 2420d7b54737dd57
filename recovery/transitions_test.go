package recovery_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestPlanTransitions: a plan says what will change by from-state -> to-state and why the
// other named rows are left alone (the TUI's dialog shows exactly this), and Apply then makes
// exactly those moves.
func TestPlanTransitions(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	q := storetest.Insert(t, s, store.Task{})
	r := storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w"), StartedAt: storetest.Ago(time.Minute)})
	orphan := storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("gone"), StartedAt: storetest.Ago(time.Hour)})
	done := storetest.Insert(t, s, store.Task{State: store.StateSucceeded})
	ids := []int64{q.ID, r.ID, orphan.ID, done.ID}
	p, err := recovery.PlanAction(ctx, s, recovery.ActionCancel, recovery.Selection{IDs: ids,
		States: []store.TaskState{store.StateQueued, store.StateRunning, store.StateCancelling}, Limit: len(ids)}, recovery.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []recovery.Transition{{From: store.StateQueued, To: store.StateCancelled, N: 1}, {From: store.StateRunning, To: store.StateCancelling, N: 1},
		{From: store.StateCancelling, To: store.StateCancelled, N: 1}}
	if got := p.Transitions(); !reflect.DeepEqual(got, want) {
		t.Fatalf("transitions %+v", got)
	}
	if got := p.LeftAlone(); len(got) != 1 || got[0].State != store.StateSucceeded || got[0].Why != "it is finished already" {
		t.Fatalf("left alone %+v", got)
	}
	out, err := recovery.Apply(ctx, s, p, recovery.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range want {
		if out.ToStates[tr.To] == 0 {
			t.Errorf("apply made no move to %s: %+v", tr.To, out.ToStates)
		}
	}
	if out.ToStates[store.StateCancelled] != 2 || out.ToStates[store.StateCancelling] != 1 || out.Changed != 3 {
		t.Fatalf("outcome %+v", out)
	}
	// requeue: a RUNNING row is left alone with what to do instead
	p, err = recovery.PlanAction(ctx, s, recovery.ActionRequeue, recovery.Selection{IDs: []int64{r.ID}, States: []store.TaskState{store.StateFailed, store.StateLost, store.StateCancelled}, Limit: 1}, recovery.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.LeftAlone(); len(got) != 1 || got[0].State != store.StateCancelling {
		// r is CANCELLING now (the cancel above)
		t.Fatalf("left alone %+v", got)
	}
	if w := recovery.WhyLeft(recovery.ActionRequeue, store.StateRunning, false); w != "a worker owns it: cancel it, or reconcile it with Ray (a stuck one becomes LOST, then requeue it)" {
		t.Fatalf("why %q", w)
	}
}
