package lifecycle

import (
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

func running(t *testing.T, s *store.Store, mod func(*store.Task)) store.Task {
	t.Helper()
	row := store.Task{
		State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w1"), StartedAt: storetest.Ago(time.Minute),
		LastHeartbeatAt: storetest.Ago(time.Minute), AttemptNumber: 1, QueueName: "q1",
		ErrorMessage: storetest.Ptr("an earlier attempt failed"), ErrorTraceback: storetest.Ptr("old traceback"),
	}
	if mod != nil {
		mod(&row)
	}
	return storetest.Insert(t, s, row)
}

// TestApply runs every outcome kind through the store and checks the row it leaves.
func TestApply(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := storetest.New(t)
	a := &Applier{Store: s, Policy: Policy{MaxAttempts: 3, Backoff: 10 * time.Second, Denylist: []string{"myapp.NoRetry"}},
		Results: Results{MaxInline: 16}, WorkerID: "w1", LeaseTTL: time.Minute, StuckAfter: 30 * time.Second}
	ok := func(v any) Outcome {
		o, err := Success(v)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	appErr := Fail(Failure{Message: "boom", Traceback: "Traceback ...\nValueError: boom", ExceptionType: "builtins.ValueError"})
	cases := []struct {
		name    string
		mod     func(*store.Task)
		outcome Outcome
		to      store.TaskState
		check   func(t *testing.T, tr Transition, row store.Task)
	}{
		{"success inline clears old errors", nil, ok([]any{"ok"}), store.StateSucceeded, func(t *testing.T, tr Transition, r store.Task) {
			if r.ResultData == nil || *r.ResultData != `["ok"]` || r.ResultReference != nil || r.ErrorMessage != nil || r.ErrorTraceback != nil || r.FinishedAt == nil {
				t.Fatalf("%+v", r)
			}
		}},
		{"success oversize", nil, ok(strings.Repeat("y", 20)), store.StateSucceeded, func(t *testing.T, tr Transition, r store.Task) {
			want := "oversize://sha256/" + digestHex([]byte(`"`+strings.Repeat("y", 20)+`"`)) + "?bytes=22"
			if r.ResultData != nil || r.ResultReference == nil || *r.ResultReference != want || tr.Stored.Reference != want {
				t.Fatalf("%+v", r)
			}
		}},
		{"app error retried with backoff", nil, appErr, store.StateQueued, func(t *testing.T, tr Transition, r store.Task) {
			if r.AttemptNumber != 2 || r.RunAfter == nil || r.ClaimedByWorker != nil || r.StartedAt != nil || *r.ErrorMessage != "boom" ||
				*r.ErrorTraceback != "Traceback ...\nValueError: boom" || tr.RetryDelay != 20*time.Second {
				t.Fatalf("%+v %+v", tr, r)
			}
			if wait := time.Until(*r.RunAfter); wait < 15*time.Second || wait > 21*time.Second {
				t.Fatalf("run_after in %s, want about 20s", wait)
			}
		}},
		{"app error at max attempts", func(r *store.Task) { r.AttemptNumber = 3 }, appErr, store.StateFailed, func(t *testing.T, tr Transition, r store.Task) {
			if *r.ErrorMessage != "boom" || !strings.Contains(*r.ErrorTraceback, "ValueError") || r.FinishedAt == nil || tr.NoRetry != "max attempts (3) reached" {
				t.Fatalf("%+v %+v", tr, r)
			}
		}},
		{"denylisted", nil, Fail(Failure{Message: "no", ExceptionType: "myapp.NoRetry"}), store.StateFailed, func(t *testing.T, tr Transition, r store.Task) {
			if r.AttemptNumber != 1 || r.ErrorTraceback != nil || !strings.Contains(tr.NoRetry, "denylist") {
				t.Fatalf("%+v %+v", tr, r)
			}
		}},
		{"permanent failure at the first attempt", nil, Fail(Failure{Message: "invalid task row: x", ExceptionType: ExcInvalidTask, Permanent: true}),
			store.StateFailed, func(t *testing.T, tr Transition, r store.Task) {
				if r.AttemptNumber != 1 || *r.ErrorMessage != "invalid task row: x" {
					t.Fatalf("%+v", r)
				}
			}},
		{"lost, retried", func(r *store.Task) { r.LastHeartbeatAt = storetest.Ago(time.Hour) }, Outcome{Kind: Lost}, store.StateQueued,
			func(t *testing.T, tr Transition, r store.Task) {
				if r.AttemptNumber != 2 || *r.ErrorMessage != store.LostMessage || r.ClaimedByWorker != nil || tr.ExceptionType != "TaskLost" {
					t.Fatalf("%+v", r)
				}
			}},
		{"lost, attempts exhausted", func(r *store.Task) { r.LastHeartbeatAt = storetest.Ago(time.Hour); r.AttemptNumber = 3 }, Outcome{Kind: Lost},
			store.StateLost, func(t *testing.T, tr Transition, r store.Task) {
				if r.AttemptNumber != 3 || r.FinishedAt == nil {
					t.Fatalf("%+v", r)
				}
			}},
		{"timed out", func(r *store.Task) { r.TimeoutSeconds = storetest.Ptr(int32(5)) }, Outcome{Kind: TimedOut}, store.StateFailed,
			func(t *testing.T, tr Transition, r store.Task) {
				if *r.ErrorMessage != "Task timed out after 5 seconds" || r.AttemptNumber != 1 || tr.ErrorMessage != *r.ErrorMessage {
					t.Fatalf("%+v %+v", tr, r)
				}
			}},
		{"cancelled from outside", nil, Outcome{Kind: Cancelled}, store.StateCancelled, func(t *testing.T, tr Transition, r store.Task) {
			if r.FinishedAt == nil {
				t.Fatalf("%+v", r)
			}
		}},
		{"read as CANCELLING: finalized whatever the outcome", func(r *store.Task) { r.State = store.StateCancelling }, ok(1), store.StateCancelled,
			func(t *testing.T, tr Transition, r store.Task) {
				if r.ResultData != nil {
					t.Fatalf("result written on a cancelled row: %+v", r)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			task := running(t, s, c.mod)
			pred := a.Predict(task, c.outcome)
			tr, err := a.Apply(ctx, task, c.outcome)
			if err != nil {
				t.Fatal(err)
			}
			// Predict (rayctl reconcile-jobs' plan) says what Apply then does
			if pred.To != tr.To || pred.RetryDelay != tr.RetryDelay || pred.NoRetry != tr.NoRetry || pred.ExceptionType != tr.ExceptionType ||
				pred.ErrorMessage != tr.ErrorMessage || pred.Applied {
				t.Fatalf("Predict %+v, Apply %+v", pred, tr)
			}
			row, err := s.GetTask(ctx, task.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !tr.Applied || tr.To != c.to || row.State != c.to || tr.TaskID != task.ID || tr.Queue != "q1" {
				t.Fatalf("transition %+v, row state %s; want %s", tr, row.State, c.to)
			}
			c.check(t, tr, row)
		})
	}
}

// TestApplyNeverOverwritesARowThatMovedOn: a late outcome for a claim that is no longer the
// row's (re-queued and re-claimed by another worker) is refused and the row is untouched; a
// row cancelled under the same claim is finalized CANCELLED instead (cancel wins).
func TestApplyNeverOverwritesARowThatMovedOn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := storetest.New(t)
	a := &Applier{Store: s, Policy: DefaultPolicy(), Results: Results{MaxInline: DefaultMaxInline}, WorkerID: "w1"}
	success, _ := Success("late")
	outcomes := map[string]Outcome{"success": success, "failure": Fail(Failure{Message: "late"}), "cancelled": {Kind: Cancelled}}

	for name, o := range outcomes {
		t.Run("reclaimed/"+name, func(t *testing.T) {
			seen := running(t, s, nil)
			if _, err := storetest.DB(s).Exec(ctx, `UPDATE django_ray_raytaskexecution SET claimed_by_worker = 'w2', started_at = now() WHERE id = $1`, seen.ID); err != nil {
				t.Fatal(err)
			}
			before, _ := s.GetTask(ctx, seen.ID)
			tr, err := a.Apply(ctx, seen, o)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := s.GetTask(ctx, seen.ID)
			if tr.Applied || tr.To != "" || tr.Current != store.StateRunning || tr.CancelWon {
				t.Fatalf("%+v", tr)
			}
			if *after.ClaimedByWorker != "w2" || after.State != store.StateRunning || after.ResultData != nil || *after.ErrorMessage != *before.ErrorMessage {
				t.Fatalf("row changed: %+v", after)
			}
		})
		t.Run("cancel wins/"+name, func(t *testing.T) {
			seen := running(t, s, nil)
			if _, err := s.RequestCancel(ctx, []int64{seen.ID}, []store.TaskState{store.StateRunning}); err != nil {
				t.Fatal(err)
			}
			tr, err := a.Apply(ctx, seen, o)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := s.GetTask(ctx, seen.ID)
			if !tr.Applied || !tr.CancelWon || tr.To != store.StateCancelled || after.State != store.StateCancelled || after.ResultData != nil {
				t.Fatalf("%+v %+v", tr, after)
			}
		})
	}
	t.Run("cancelled under another claim is not finalized", func(t *testing.T) {
		seen := running(t, s, nil)
		if _, err := storetest.DB(s).Exec(ctx, `UPDATE django_ray_raytaskexecution SET state = 'CANCELLING', claimed_by_worker = 'w2' WHERE id = $1`, seen.ID); err != nil {
			t.Fatal(err)
		}
		tr, err := a.Apply(ctx, seen, success)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := s.GetTask(ctx, seen.ID)
		if tr.Applied || after.State != store.StateCancelling {
			t.Fatalf("%+v %+v", tr, after)
		}
	})
	t.Run("a live owner's row is not marked lost", func(t *testing.T) {
		seen := running(t, s, func(r *store.Task) {
			r.ClaimedByWorker = storetest.Ptr("w9")
			r.LastHeartbeatAt = storetest.Ago(time.Hour)
		})
		if err := s.UpsertLease(ctx, store.Lease{WorkerID: "w9", Hostname: "h", PID: 1, QueueName: "q"}); err != nil {
			t.Fatal(err)
		}
		b := *a
		b.LeaseTTL, b.StuckAfter = time.Minute, time.Second
		tr, err := b.Apply(ctx, seen, Outcome{Kind: Lost})
		if err != nil || tr.Applied {
			t.Fatalf("%+v %v", tr, err)
		}
	})
	t.Run("a deleted row", func(t *testing.T) {
		seen := running(t, s, nil)
		if _, err := storetest.DB(s).Exec(ctx, `DELETE FROM django_ray_raytaskexecution WHERE id = $1`, seen.ID); err != nil {
			t.Fatal(err)
		}
		tr, err := a.Apply(ctx, seen, success)
		if err != nil || tr.Applied || tr.Current != "" {
			t.Fatalf("%+v %v", tr, err)
		}
	})
}
