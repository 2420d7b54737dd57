package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// runningRow stages a RUNNING row owned by w1 under Ray job raysubmit_job1.
func runningRow(t *testing.T, s *store.Store, mod func(*store.Task)) store.Task {
	t.Helper()
	row := store.Task{
		State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w1"), RayJobID: storetest.Ptr("raysubmit_job1"),
		StartedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Minute),
		ErrorMessage: storetest.Ptr("earlier attempt failed"), ErrorTraceback: storetest.Ptr("Traceback ..."),
		AttemptNumber: 2,
	}
	if mod != nil {
		mod(&row)
	}
	return storetest.Insert(t, s, row)
}

// staleGuards are guards that must never apply to a row read as task: the row moved on.
func staleGuards(task store.Task) map[string]store.Guard {
	g := task.Guard()
	wrongOwner, noOwner, staleJob, noJob, otherClaim, wrongState := g, g, g, g, g, g
	wrongOwner.WorkerID = storetest.Ptr("w2")
	noOwner.WorkerID = nil
	staleJob.JobID = storetest.Ptr("raysubmit_old")
	noJob.JobID = nil
	otherClaim.StartedAt = storetest.Ptr(task.StartedAt.Add(-time.Second))
	wrongState.State = store.StateQueued
	return map[string]store.Guard{
		"wrong owner": wrongOwner, "no owner": noOwner, "stale job id": staleJob, "no job id": noJob,
		"other claim": otherClaim, "wrong state": wrongState,
	}
}

// TestTransitionsApplyAndRefuse runs every guarded RUNNING transition once with the guard the
// owner saw (it applies, with the expected columns) and once per stale guard (it is refused
// and the row is unchanged).
func TestTransitionsApplyAndRefuse(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	data := storetest.Ptr(`{"answer": 42}`)
	tb := storetest.Ptr("Traceback (most recent call last): ...")
	cases := []struct {
		name  string
		do    func(s *store.Store, g store.Guard) (bool, error)
		check func(t *testing.T, before, after store.Task)
	}{
		{"succeed", func(s *store.Store, g store.Guard) (bool, error) {
			return s.Succeed(ctx, g, store.Result{Data: data})
		}, func(t *testing.T, before, after store.Task) {
			if after.State != store.StateSucceeded || after.FinishedAt == nil || *after.ResultData != *data || after.ResultReference != nil {
				t.Errorf("succeeded row: %+v", after)
			}
			if after.ErrorMessage != nil || after.ErrorTraceback != nil {
				t.Errorf("a successful attempt kept the earlier error: %v / %v", *after.ErrorMessage, after.ErrorTraceback)
			}
		}},
		{"succeed many", func(s *store.Store, g store.Guard) (bool, error) {
			ids, err := s.SucceedMany(ctx, []store.Completion{{Guard: g, Result: store.Result{Reference: storetest.Ptr("oversize://sha256/ab?bytes=3")}}})
			return len(ids) == 1, err
		}, func(t *testing.T, before, after store.Task) {
			if after.State != store.StateSucceeded || after.ResultData != nil || *after.ResultReference != "oversize://sha256/ab?bytes=3" || after.ErrorMessage != nil {
				t.Errorf("succeeded row: %+v", after)
			}
		}},
		{"fail", func(s *store.Store, g store.Guard) (bool, error) {
			return s.Fail(ctx, g, store.ErrorInfo{Message: "boom", Traceback: tb})
		}, func(t *testing.T, before, after store.Task) {
			if after.State != store.StateFailed || after.FinishedAt == nil || *after.ErrorMessage != "boom" || *after.ErrorTraceback != *tb {
				t.Errorf("failed row: %+v", after)
			}
			if after.AttemptNumber != before.AttemptNumber || *after.ClaimedByWorker != "w1" {
				t.Errorf("fail changed attempt or owner: %+v", after)
			}
		}},
		{"retry", func(s *store.Store, g store.Guard) (bool, error) {
			return s.Retry(ctx, g, 120*time.Second, store.ErrorInfo{Message: "again", Traceback: tb})
		}, func(t *testing.T, before, after store.Task) {
			if after.State != store.StateQueued || after.AttemptNumber != before.AttemptNumber+1 || *after.ErrorMessage != "again" {
				t.Errorf("retried row: %+v", after)
			}
			if after.StartedAt != nil || after.FinishedAt != nil || after.ClaimedByWorker != nil || after.LastHeartbeatAt != nil {
				t.Errorf("retry left claim columns: %+v", after)
			}
			if d := time.Until(*after.RunAfter); d < 110*time.Second || d > 130*time.Second {
				t.Errorf("run_after is %v away, want ~120s", d)
			}
		}},
		{"release", func(s *store.Store, g store.Guard) (bool, error) { return s.Release(ctx, g) },
			func(t *testing.T, before, after store.Task) {
				if after.State != store.StateQueued || after.AttemptNumber != before.AttemptNumber || after.ClaimedByWorker != nil ||
					after.StartedAt != nil || after.RayJobID != nil {
					t.Errorf("released row: %+v", after)
				}
			}},
		{"record job id", func(s *store.Store, g store.Guard) (bool, error) {
			return s.RecordJobID(ctx, g, "raysubmit_new", "http://head:8265")
		}, func(t *testing.T, before, after store.Task) {
			if *after.RayJobID != "raysubmit_new" || *after.RayAddress != "http://head:8265" || after.State != store.StateRunning {
				t.Errorf("recorded row: %+v", after)
			}
		}},
		{"mark cancelled", func(s *store.Store, g store.Guard) (bool, error) { return s.MarkCancelled(ctx, g) },
			func(t *testing.T, before, after store.Task) {
				if after.State != store.StateCancelled || after.FinishedAt == nil {
					t.Errorf("cancelled row: %+v", after)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := storetest.New(t)
			task := runningRow(t, s, nil)
			for name, g := range staleGuards(task) {
				ok, err := tc.do(s, g)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if ok {
					t.Fatalf("%s: applied to a row that moved on", name)
				}
				now, _ := s.GetTask(ctx, task.ID)
				if !reflect.DeepEqual(now, task) {
					t.Fatalf("%s: row changed by a refused write:\n%+v\n%+v", name, task, now)
				}
			}
			ok, err := tc.do(s, task.Guard())
			if err != nil || !ok {
				t.Fatalf("owner's write: applied=%v err=%v", ok, err)
			}
			after, _ := s.GetTask(ctx, task.ID)
			tc.check(t, task, after)
			// the same write again is refused: the row moved on
			if ok, err := tc.do(s, task.Guard()); ok || err != nil {
				t.Fatalf("second write: applied=%v err=%v", ok, err)
			}
		})
	}
}

// TestLateCompletionAfterRequeue is river#1302's race: a row re-queued by someone else must
// not be overwritten by its old owner's late completion.
func TestLateCompletionAfterRequeue(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	task := runningRow(t, s, nil)
	retry := 0 * time.Second
	ok, err := s.MarkLost(ctx, task.Guard(), store.LostParams{Self: "w2", StuckAfter: time.Second, LeaseTTL: time.Minute, RetryDelay: &retry})
	if err != nil || !ok {
		t.Fatalf("mark lost: %v %v", ok, err)
	}
	claimed, err := s.Claim(ctx, store.ClaimParams{WorkerID: "w1", Limit: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("reclaim: %v %v", claimed, err)
	}
	// the same worker holds the row again, but for a new claim: the old attempt's result loses
	if ok, _ := s.Succeed(ctx, task.Guard(), store.Result{Data: storetest.Ptr("1")}); ok {
		t.Fatal("late completion of the old claim applied to the new claim")
	}
	if ok, _ := s.Succeed(ctx, claimed[0].Guard(), store.Result{Data: storetest.Ptr("2")}); !ok {
		t.Fatal("the current claim's completion was refused")
	}
}

func TestMarkLost(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	delay := 240 * time.Second
	cases := []struct {
		name      string
		row       func(*store.Task)
		lease     *store.Lease // the owner's lease, fresh
		staleBy   time.Duration
		retry     *time.Duration
		applied   bool
		wantState store.TaskState
	}{
		{"dead owner, retry", nil, nil, 0, &delay, true, store.StateQueued},
		{"dead owner, retries exhausted", nil, nil, 0, nil, true, store.StateLost},
		{"no owner", func(r *store.Task) { r.ClaimedByWorker = nil }, nil, 0, nil, true, store.StateLost},
		{"own row", func(r *store.Task) { r.ClaimedByWorker = storetest.Ptr("sweeper") }, &store.Lease{WorkerID: "sweeper"}, 0, nil, true, store.StateLost},
		{"live owner", nil, &store.Lease{WorkerID: "w1"}, 0, nil, false, store.StateRunning},
		{"fresh heartbeat", func(r *store.Task) { r.LastHeartbeatAt = storetest.Ago(time.Second) }, nil, 0, nil, false, store.StateRunning},
		{"no heartbeat, old start", func(r *store.Task) { r.LastHeartbeatAt = nil }, nil, 0, nil, true, store.StateLost},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := storetest.New(t)
			task := runningRow(t, s, tc.row)
			if tc.lease != nil {
				tc.lease.Hostname, tc.lease.QueueName = "h", "default"
				if err := s.UpsertLease(ctx, *tc.lease); err != nil {
					t.Fatal(err)
				}
			}
			ok, err := s.MarkLost(ctx, task.Guard(), store.LostParams{Self: "sweeper", StuckAfter: 30 * time.Second, LeaseTTL: time.Minute, RetryDelay: tc.retry})
			if err != nil || ok != tc.applied {
				t.Fatalf("applied=%v err=%v, want applied=%v", ok, err, tc.applied)
			}
			after, _ := s.GetTask(ctx, task.ID)
			if after.State != tc.wantState {
				t.Fatalf("state %s, want %s", after.State, tc.wantState)
			}
			if !tc.applied {
				return
			}
			if *after.ErrorMessage != store.LostMessage || after.ErrorTraceback != nil {
				t.Errorf("error columns: %v %v", after.ErrorMessage, after.ErrorTraceback)
			}
			switch tc.wantState {
			case store.StateQueued:
				if after.AttemptNumber != task.AttemptNumber+1 || after.ClaimedByWorker != nil || after.StartedAt != nil || after.RunAfter == nil {
					t.Errorf("lost-and-retried row: %+v", after)
				}
			case store.StateLost:
				if after.FinishedAt == nil || after.AttemptNumber != task.AttemptNumber {
					t.Errorf("lost row: %+v", after)
				}
			}
		})
	}
}

func TestMarkTimedOut(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	over := runningRow(t, s, func(r *store.Task) { r.TimeoutSeconds = storetest.Ptr(int32(30)) })
	within := runningRow(t, s, func(r *store.Task) { r.TimeoutSeconds = storetest.Ptr(int32(3600)) })
	none := runningRow(t, s, nil)
	for _, tc := range []struct {
		task store.Task
		want bool
	}{{within, false}, {none, false}, {over, true}} {
		ok, err := s.MarkTimedOut(ctx, tc.task.Guard())
		if err != nil || ok != tc.want {
			t.Fatalf("task %d: applied=%v err=%v, want %v", tc.task.ID, ok, err, tc.want)
		}
	}
	after, _ := s.GetTask(ctx, over.ID)
	if after.State != store.StateFailed || *after.ErrorMessage != "Task timed out after 30 seconds" || after.FinishedAt == nil || after.ErrorTraceback != nil {
		t.Fatalf("timed-out row: %+v", after)
	}
}

func TestAdopt(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	orphan := runningRow(t, s, nil) // owner w1 has no lease
	live := runningRow(t, s, func(r *store.Task) { r.ClaimedByWorker = storetest.Ptr("w-live") })
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "w-live", Hostname: "h", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Adopt(ctx, live.Guard(), "w9", time.Minute); ok || err != nil {
		t.Fatalf("adopted a live worker's row: %v %v", ok, err)
	}
	stale := orphan.Guard()
	stale.JobID = storetest.Ptr("raysubmit_other")
	if ok, _ := s.Adopt(ctx, stale, "w9", time.Minute); ok {
		t.Fatal("adopted under a different job id")
	}
	if ok, err := s.Adopt(ctx, orphan.Guard(), "w9", time.Minute); !ok || err != nil {
		t.Fatalf("adopt orphan: %v %v", ok, err)
	}
	after, _ := s.GetTask(ctx, orphan.ID)
	if *after.ClaimedByWorker != "w9" || *after.RayJobID != "raysubmit_job1" || !after.StartedAt.Equal(*orphan.StartedAt) ||
		!after.LastHeartbeatAt.After(*orphan.LastHeartbeatAt) {
		t.Fatalf("adopted row: %+v", after)
	}
	if ok, _ := s.Adopt(ctx, orphan.Guard(), "w8", time.Minute); ok {
		t.Fatal("second adopter won with the first's stale guard")
	}
}

func TestHeartbeatTasks(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	mine := runningRow(t, s, nil)
	other := runningRow(t, s, func(r *store.Task) { r.ClaimedByWorker = storetest.Ptr("w2") })
	done := runningRow(t, s, func(r *store.Task) { r.State = store.StateSucceeded })
	n, err := s.HeartbeatTasks(ctx, "w1", []int64{mine.ID, other.ID, done.ID})
	if err != nil || n != 1 {
		t.Fatalf("heartbeat touched %d rows (%v), want 1", n, err)
	}
	after, _ := s.GetTask(ctx, mine.ID)
	if !after.LastHeartbeatAt.After(*mine.LastHeartbeatAt) {
		t.Fatal("heartbeat not advanced")
	}
}

func TestCancellation(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	queued := storetest.Insert(t, s, store.Task{})
	running := runningRow(t, s, nil)
	failed := storetest.Insert(t, s, store.Task{State: store.StateFailed})
	out, err := s.RequestCancel(ctx, []int64{queued.ID, running.ID, failed.ID}, []store.TaskState{store.StateQueued, store.StateRunning})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]store.TaskState{}
	for _, o := range out {
		got[o.ID] = o.State
	}
	want := map[int64]store.TaskState{queued.ID: store.StateCancelled, running.ID: store.StateCancelling}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cancel outcomes %v, want %v", got, want)
	}
	q, _ := s.GetTask(ctx, queued.ID)
	if q.FinishedAt == nil {
		t.Error("cancelled QUEUED row has no finished_at")
	}
	if f, _ := s.GetTask(ctx, failed.ID); f.State != store.StateFailed {
		t.Errorf("FAILED row changed to %s", f.State)
	}
	if _, err := s.RequestCancel(ctx, []int64{failed.ID}, []store.TaskState{store.StateFailed}); err == nil {
		t.Error("cancel accepted FAILED as a source state")
	}

	r, _ := s.GetTask(ctx, running.ID)
	wrong := r.Guard()
	wrong.WorkerID = storetest.Ptr("w2")
	if ok, _ := s.FinalizeCancel(ctx, wrong); ok {
		t.Fatal("finalized with the wrong owner")
	}
	if ok, err := s.FinalizeCancel(ctx, r.Guard()); !ok || err != nil {
		t.Fatalf("finalize: %v %v", ok, err)
	}
	r, _ = s.GetTask(ctx, running.ID)
	if r.State != store.StateCancelled || r.FinishedAt == nil {
		t.Fatalf("finalized row: %+v", r)
	}
	// a completion racing the cancellation loses: the row is no longer RUNNING
	if ok, _ := s.Succeed(ctx, running.Guard(), store.Result{Data: storetest.Ptr("1")}); ok {
		t.Fatal("completion overwrote a cancellation")
	}
}

func TestRequeue(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	failed := storetest.Insert(t, s, store.Task{State: store.StateFailed, AttemptNumber: 3, ClaimedByWorker: storetest.Ptr("w1"),
		RayJobID: storetest.Ptr("raysubmit_x"), StartedAt: storetest.Ago(time.Hour), FinishedAt: storetest.Ago(time.Minute),
		ErrorMessage: storetest.Ptr("boom"), ErrorTraceback: storetest.Ptr("tb"), RunAfter: storetest.Ago(time.Hour)})
	lost := storetest.Insert(t, s, store.Task{State: store.StateLost, AttemptNumber: 2})
	running := runningRow(t, s, nil)

	got, err := s.Requeue(ctx, []int64{failed.ID, lost.ID, running.ID}, []store.TaskState{store.StateFailed}, store.RequeueOptions{})
	if err != nil || !reflect.DeepEqual(got, []int64{failed.ID}) {
		t.Fatalf("requeue applied to %v (%v), want only the FAILED row", got, err)
	}
	after, _ := s.GetTask(ctx, failed.ID)
	if after.State != store.StateQueued || after.AttemptNumber != 3 || after.StartedAt != nil || after.FinishedAt != nil ||
		after.ErrorMessage != nil || after.ErrorTraceback != nil || after.ClaimedByWorker != nil || after.RayJobID != nil ||
		after.RunAfter != nil || after.LastHeartbeatAt != nil {
		t.Fatalf("requeued row: %+v", after)
	}
	got, err = s.Requeue(ctx, []int64{lost.ID}, []store.TaskState{store.StateLost}, store.RequeueOptions{ResetAttempts: true})
	if err != nil || len(got) != 1 {
		t.Fatal(got, err)
	}
	if after, _ := s.GetTask(ctx, lost.ID); after.AttemptNumber != 1 {
		t.Fatalf("reset attempts: %d", after.AttemptNumber)
	}
	if _, err := s.Requeue(ctx, []int64{running.ID}, []store.TaskState{store.StateRunning}, store.RequeueOptions{}); err == nil {
		t.Fatal("requeue accepted RUNNING as a source state")
	}
	if r, _ := s.GetTask(ctx, running.ID); r.State != store.StateRunning {
		t.Fatalf("RUNNING row was requeued")
	}
}

// TestReclaim: the worker that held a claim when its row was marked LOST (an outage cut it
// off) gets the row back exactly as it claimed it, unless anyone has taken the row since.
func TestReclaim(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	retryNow, retryLater := 0*time.Second, time.Hour
	lost := func(s *store.Store, task store.Task, retry *time.Duration) {
		t.Helper()
		if ok, err := s.MarkLost(ctx, task.Guard(), store.LostParams{Self: "sweeper", StuckAfter: time.Second, LeaseTTL: time.Minute, RetryDelay: retry}); err != nil || !ok {
			t.Fatalf("mark lost: %v %v", ok, err)
		}
	}
	claim := func(s *store.Store) store.Task {
		t.Helper()
		got, err := s.Claim(ctx, store.ClaimParams{WorkerID: "w2", Limit: 1, AssignJobIDs: true})
		if err != nil || len(got) != 1 {
			t.Fatalf("claim: %v %v", got, err)
		}
		return got[0]
	}
	cases := []struct {
		name    string
		then    func(s *store.Store, task store.Task)
		applied bool
	}{
		{"lost and re-queued", func(s *store.Store, task store.Task) { lost(s, task, &retryLater) }, true},
		{"lost, retries exhausted", func(s *store.Store, task store.Task) { lost(s, task, nil) }, true},
		{"still running", func(*store.Store, store.Task) {}, false},
		{"re-queued and claimed", func(s *store.Store, task store.Task) { lost(s, task, &retryNow); claim(s) }, false},
		{"re-queued, claimed and handed back", func(s *store.Store, task store.Task) {
			lost(s, task, &retryNow)
			if ok, err := s.Release(ctx, claim(s).Guard()); err != nil || !ok {
				t.Fatalf("release: %v %v", ok, err)
			}
		}, false},
		{"re-queued, claimed, failed and re-queued", func(s *store.Store, task store.Task) {
			lost(s, task, &retryNow)
			if ok, err := s.Retry(ctx, claim(s).Guard(), time.Hour, store.ErrorInfo{Message: store.LostMessage}); err != nil || !ok {
				t.Fatalf("retry: %v %v", ok, err)
			}
		}, false},
		{"re-queued and cancelled", func(s *store.Store, task store.Task) {
			lost(s, task, &retryLater)
			if _, err := s.RequestCancel(ctx, []int64{task.ID}, []store.TaskState{store.StateQueued}); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"lost and requeued by an operator", func(s *store.Store, task store.Task) {
			lost(s, task, nil)
			if _, err := s.Requeue(ctx, []int64{task.ID}, []store.TaskState{store.StateLost}, store.RequeueOptions{}); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"succeeded", func(s *store.Store, task store.Task) {
			if ok, err := s.Succeed(ctx, task.Guard(), store.Result{Data: storetest.Ptr("1")}); err != nil || !ok {
				t.Fatal(ok, err)
			}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := storetest.New(t)
			task := runningRow(t, s, func(r *store.Task) { r.RunAfter = storetest.Ago(time.Hour) })
			tc.then(s, task)
			before, _ := s.GetTask(ctx, task.ID)
			ok, err := s.Reclaim(ctx, task)
			if err != nil || ok != tc.applied {
				t.Fatalf("applied=%v err=%v, want %v", ok, err, tc.applied)
			}
			after, _ := s.GetTask(ctx, task.ID)
			if !tc.applied {
				if !reflect.DeepEqual(before, after) {
					t.Fatalf("row changed:\n%+v\n%+v", before, after)
				}
				return
			}
			// exactly the claim again, with a fresh heartbeat
			if after.LastHeartbeatAt == nil || !after.LastHeartbeatAt.After(*task.LastHeartbeatAt) {
				t.Fatalf("heartbeat %v", after.LastHeartbeatAt)
			}
			after.LastHeartbeatAt = task.LastHeartbeatAt
			if !reflect.DeepEqual(after, task) {
				t.Fatalf("reclaimed row\n%+v\nwant the claim\n%+v", after, task)
			}
			// and the claim's outcome applies
			if ok, err := s.Succeed(ctx, task.Guard(), store.Result{Data: storetest.Ptr("1")}); err != nil || !ok {
				t.Fatalf("succeed after reclaim: %v %v", ok, err)
			}
		})
	}
	s, _ := storetest.New(t)
	if _, err := s.Reclaim(ctx, store.Task{ID: 1, State: store.StateQueued}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a row that is not a claim: %v", err)
	}
}

func TestFinalizeOrphanedCancels(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
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
