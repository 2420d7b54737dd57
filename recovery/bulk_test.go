package recovery_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

func TestSelectionNormalize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		a    recovery.Action
		sel  recovery.Selection
		want string // error substring; "" = ok
	}{
		{"no filter", recovery.ActionRequeue, recovery.Selection{}, "a filter is required"},
		{"limit alone is no filter", recovery.ActionRequeue, recovery.Selection{Limit: 5}, "a filter is required"},
		{"negative limit", recovery.ActionRequeue, recovery.Selection{States: []store.TaskState{store.StateFailed}, Limit: -1}, "invalid limit -1"},
		{"huge limit", recovery.ActionRequeue, recovery.Selection{States: []store.TaskState{store.StateFailed}, Limit: 10001}, "invalid limit 10001 (want 1..10000)"},
		{"requeue RUNNING", recovery.ActionRequeue, recovery.Selection{States: []store.TaskState{store.StateRunning}}, "cannot requeue RUNNING tasks: a worker owns them"},
		{"requeue QUEUED", recovery.ActionRequeue, recovery.Selection{States: []store.TaskState{store.StateQueued}}, "cannot requeue QUEUED tasks: they are queued already"},
		{"requeue SUCCEEDED", recovery.ActionRequeue, recovery.Selection{States: []store.TaskState{store.StateSucceeded}}, "requeue takes FAILED, LOST, CANCELLED"},
		{"cancel FAILED", recovery.ActionCancel, recovery.Selection{States: []store.TaskState{store.StateFailed}}, "cannot cancel FAILED tasks: they are finished already"},
		{"bad id", recovery.ActionCancel, recovery.Selection{IDs: []int64{3, -1}}, "invalid id -1"},
		{"negative age", recovery.ActionCancel, recovery.Selection{OlderThan: -time.Second}, "invalid older-than"},
		{"empty queue", recovery.ActionCancel, recovery.Selection{Queues: []string{""}}, "empty queue name"},
		{"unknown action", "delete", recovery.Selection{IDs: []int64{1}}, `unknown action "delete"`},
		{"ok", recovery.ActionRequeue, recovery.Selection{Queues: []string{"default"}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.sel.Normalize(tc.a)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, recovery.ErrBadSelection) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrBadSelection containing %q", err, tc.want)
			}
		})
	}
	got, err := recovery.Selection{IDs: []int64{5, 2, 5}, States: []store.TaskState{store.StateLost, store.StateFailed, store.StateLost}}.Normalize(recovery.ActionRequeue)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.IDs, []int64{2, 5}) || !reflect.DeepEqual(got.States, []store.TaskState{store.StateFailed, store.StateLost}) ||
		got.Limit != recovery.DefaultLimit || got.LeaseTTL != 0 {
		t.Fatalf("normalized: %+v", got)
	}
	got, _ = recovery.Selection{Queues: []string{"q"}}.Normalize(recovery.ActionRequeue)
	if !reflect.DeepEqual(got.States, []store.TaskState{store.StateFailed, store.StateLost}) {
		t.Fatalf("requeue default states: %v", got.States)
	}
	got, _ = recovery.Selection{Queues: []string{"q"}}.Normalize(recovery.ActionCancel)
	if !reflect.DeepEqual(got.States, []store.TaskState{store.StateQueued, store.StateRunning}) || got.LeaseTTL != recovery.DefaultLeaseTTL {
		t.Fatalf("cancel defaults: %+v", got)
	}
}

// failedRow stages a FAILED row with every column a previous attempt leaves behind.
func failedRow(t *testing.T, s *store.Store, mod func(*store.Task)) store.Task {
	t.Helper()
	row := store.Task{
		State: store.StateFailed, AttemptNumber: 3, ClaimedByWorker: storetest.Ptr("w-old"), RayJobID: storetest.Ptr("raysubmit_old"),
		RayAddress: storetest.Ptr("http://ray:8265"), StartedAt: storetest.Ago(2 * time.Hour), FinishedAt: storetest.Ago(time.Hour),
		LastHeartbeatAt: storetest.Ago(time.Hour), RunAfter: storetest.Ago(3 * time.Hour), ErrorMessage: storetest.Ptr("ValueError: bad"),
		ErrorTraceback: storetest.Ptr("Traceback ..."), ResultReference: storetest.Ptr("oversize://sha256/x"),
		ArgsJSON: "[1, 2]", KwargsJSON: `{"a": 1}`,
	}
	if mod != nil {
		mod(&row)
	}
	return storetest.Insert(t, s, row)
}

func TestRequeuePlanAndApply(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	var failed []store.Task
	for i := 0; i < 5; i++ {
		failed = append(failed, failedRow(t, s, nil))
	}
	lost := failedRow(t, s, func(r *store.Task) { r.State = store.StateLost; r.QueueName = "emails" })
	cancelled := failedRow(t, s, func(r *store.Task) { r.State = store.StateCancelled })
	running := storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w1")})

	sel := recovery.Selection{States: []store.TaskState{store.StateFailed, store.StateLost}, Limit: 4}
	p, err := recovery.PlanAction(ctx, s, recovery.ActionRequeue, sel, recovery.PlanOptions{SampleSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if p.Matched != 6 || len(p.Targets) != 4 || p.Remaining() != 2 || len(p.Sample) != 2 || !p.Audited {
		t.Fatalf("plan: matched %d targets %d remaining %d sample %d audited %v", p.Matched, len(p.Targets), p.Remaining(), len(p.Sample), p.Audited)
	}
	if p.Targets[0].ID != failed[0].ID || p.Sample[0].ID != failed[0].ID || p.Sample[0].ErrorMessage == nil {
		t.Fatalf("plan is not oldest first: %+v / %+v", p.Targets[0], p.Sample[0])
	}
	// planning wrote nothing
	if n, _ := s.CountTasks(ctx, store.TaskFilter{States: []store.TaskState{store.StateQueued}}); n != 0 {
		t.Fatalf("plan changed %d rows", n)
	}

	var batches []recovery.BatchStat
	out, err := recovery.Apply(ctx, s, p, recovery.ApplyOptions{Batch: 3, Actor: "op@host", Reason: "INC-1 fixed",
		Hooks: recovery.Hooks{AfterBatch: func(_ context.Context, b recovery.BatchStat) { batches = append(batches, b) }}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Changed != 4 || out.Skipped != 0 || out.Batches != 2 || out.ToStates[store.StateQueued] != 4 || out.AuditID == nil ||
		out.Elapsed < out.LongestBatch || out.RowsPerSecond() <= 0 {
		t.Fatalf("outcome: %+v", out)
	}
	if len(batches) != 2 || batches[0].Size != 3 || batches[1].Size != 1 || out.LongestBatch < max(batches[0].Duration, batches[1].Duration) {
		t.Fatalf("batches: %+v, longest %s", batches, out.LongestBatch)
	}
	want := []int64{failed[0].ID, failed[1].ID, failed[2].ID, failed[3].ID}
	if !reflect.DeepEqual(out.ChangedIDs, want) {
		t.Fatalf("changed %v, want %v", out.ChangedIDs, want)
	}
	for _, id := range want {
		got, _ := s.GetTask(ctx, id)
		// the runbook's manual action resets these; we also clear the heartbeat, run_after and any result
		if got.State != store.StateQueued || got.StartedAt != nil || got.FinishedAt != nil || got.ErrorMessage != nil ||
			got.ErrorTraceback != nil || got.ClaimedByWorker != nil || got.RayJobID != nil || got.LastHeartbeatAt != nil ||
			got.RunAfter != nil || got.ResultData != nil || got.ResultReference != nil {
			t.Fatalf("task %d not reset: %+v", id, got)
		}
		// kept: attempts (without --reset-attempts), payload, queue, address
		if got.AttemptNumber != 3 || got.ArgsJSON != "[1, 2]" || got.KwargsJSON != `{"a": 1}` || *got.RayAddress != "http://ray:8265" {
			t.Fatalf("task %d lost data: %+v", id, got)
		}
	}
	for _, id := range []int64{failed[4].ID, lost.ID, cancelled.ID, running.ID} {
		if got, _ := s.GetTask(ctx, id); got.State == store.StateQueued {
			t.Fatalf("task %d beyond the limit or outside the filter was requeued", id)
		}
	}
	entries, _ := s.ListAudit(ctx, store.AuditFilter{})
	if len(entries) != 1 || entries[0].ID != *out.AuditID || *entries[0].Reason != "INC-1 fixed" || entries[0].Actor != "op@host" ||
		entries[0].Changed != 4 || entries[0].Matched != 6 || entries[0].Selected != 4 || entries[0].FinishedAt == nil {
		t.Fatalf("audit: %+v", entries)
	}
	changes, _ := s.AuditChanges(ctx, *out.AuditID)
	if len(changes) != 4 || changes[0] != (store.AuditChange{ID: failed[0].ID, From: store.StateFailed, To: store.StateQueued}) {
		t.Fatalf("audit changes: %+v", changes)
	}

	// the rest, with --reset-attempts
	p, _ = recovery.PlanAction(ctx, s, recovery.ActionRequeue, sel, recovery.PlanOptions{})
	out, err = recovery.Apply(ctx, s, p, recovery.ApplyOptions{ResetAttempts: true})
	if err != nil || out.Changed != 2 || out.Batches != 1 {
		t.Fatalf("second run: %+v %v", out, err)
	}
	if got, _ := s.GetTask(ctx, lost.ID); got.State != store.StateQueued || got.AttemptNumber != 1 || got.QueueName != "emails" {
		t.Fatalf("reset attempts: %+v", got)
	}
	// nothing left
	p, _ = recovery.PlanAction(ctx, s, recovery.ActionRequeue, sel, recovery.PlanOptions{})
	if p.Matched != 0 || len(p.Targets) != 0 {
		t.Fatalf("third plan: %+v", p)
	}
	if out, err := recovery.Apply(ctx, s, p, recovery.ApplyOptions{}); err != nil || out.Changed != 0 || out.AuditID != nil {
		t.Fatalf("empty apply: %+v %v", out, err)
	}
}

// TestApplySkipsRowsChangedMeanwhile stages, between selection and each batch, the changes
// other operators or workers could make: each such row is skipped and counted, never
// overwritten.
func TestApplySkipsRowsChangedMeanwhile(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	var rows []store.Task
	for i := 0; i < 6; i++ {
		rows = append(rows, failedRow(t, s, nil))
	}
	p, err := recovery.PlanAction(ctx, s, recovery.ActionRequeue, recovery.Selection{States: []store.TaskState{store.StateFailed}}, recovery.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int][]int64{}
	out, err := recovery.Apply(ctx, s, p, recovery.ApplyOptions{Batch: 3, Hooks: recovery.Hooks{
		BeforeBatch: func(ctx context.Context, n int, ids []int64) error {
			seen[n] = ids
			switch n {
			case 0: // someone else requeued it, and a worker already claimed it
				_, err := sc.Pool.Exec(ctx, `UPDATE django_ray_raytaskexecution SET state = 'RUNNING', claimed_by_worker = 'w9', error_message = NULL WHERE id = $1`, ids[1])
				return err
			case 1: // requeued and succeeded, and one deleted
				if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_raytaskexecution SET state = 'SUCCEEDED', result_data = '1' WHERE id = $1`, ids[0]); err != nil {
					return err
				}
				_, err := sc.Pool.Exec(ctx, `DELETE FROM django_ray_raytaskexecution WHERE id = $1`, ids[2])
				return err
			}
			return nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Changed != 3 || out.Skipped != 3 {
		t.Fatalf("changed %d skipped %d, want 3 and 3", out.Changed, out.Skipped)
	}
	wantSkipped := []int64{rows[1].ID, rows[3].ID, rows[5].ID}
	if !reflect.DeepEqual(out.SkippedIDs, wantSkipped) || !reflect.DeepEqual(seen[0], []int64{rows[0].ID, rows[1].ID, rows[2].ID}) {
		t.Fatalf("skipped %v, want %v (batches %v)", out.SkippedIDs, wantSkipped, seen)
	}
	if got, _ := s.GetTask(ctx, rows[1].ID); got.State != store.StateRunning || *got.ClaimedByWorker != "w9" {
		t.Fatalf("a concurrently claimed row was overwritten: %+v", got)
	}
	if got, _ := s.GetTask(ctx, rows[3].ID); got.State != store.StateSucceeded || *got.ResultData != "1" {
		t.Fatalf("a concurrently finished row was overwritten: %+v", got)
	}
	changes, _ := s.AuditChanges(ctx, *out.AuditID)
	if len(changes) != 3 {
		t.Fatalf("audit recorded %d changes, want exactly the 3 made", len(changes))
	}
}

func TestRequeueNamedIDs(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	f := failedRow(t, s, nil)
	c := failedRow(t, s, func(r *store.Task) { r.State = store.StateCancelled })
	r := storetest.Insert(t, s, store.Task{State: store.StateRunning})
	sel := recovery.Selection{IDs: []int64{f.ID, c.ID, r.ID, 999999}}
	p, err := recovery.PlanAction(ctx, s, recovery.ActionRequeue, sel, recovery.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Matched != 1 || p.Targets[0].ID != f.ID || !reflect.DeepEqual(p.MissingIDs, []int64{999999}) ||
		!reflect.DeepEqual(p.Unmatched, []store.TaskRef{{ID: c.ID, State: store.StateCancelled}, {ID: r.ID, State: store.StateRunning}}) {
		t.Fatalf("plan: %+v", p)
	}
	// naming CANCELLED explicitly makes the cancelled one eligible
	sel.States = []store.TaskState{store.StateFailed, store.StateCancelled}
	p, _ = recovery.PlanAction(ctx, s, recovery.ActionRequeue, sel, recovery.PlanOptions{})
	if p.Matched != 2 || len(p.Unmatched) != 1 {
		t.Fatalf("with CANCELLED: %+v", p)
	}
	// a limit below the number of named matches
	sel.Limit = 1
	p, _ = recovery.PlanAction(ctx, s, recovery.ActionRequeue, sel, recovery.PlanOptions{})
	if p.Matched != 2 || len(p.Targets) != 1 || p.Remaining() != 1 || len(p.Unmatched) != 1 {
		t.Fatalf("limited: %+v", p)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "alive", Hostname: "h", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	queued := storetest.Insert(t, s, store.Task{})
	running := storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("alive"), StartedAt: storetest.Ago(time.Minute),
		RayJobID: storetest.Ptr("raysubmit_r")})
	liveCancelling := storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("alive")})
	deadCancelling := storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("gone"), RayJobID: storetest.Ptr("raysubmit_x")})
	done := storetest.Insert(t, s, store.Task{State: store.StateSucceeded})

	// default states: QUEUED and RUNNING
	p, err := recovery.PlanAction(ctx, s, recovery.ActionCancel, recovery.Selection{Queues: []string{"default"}}, recovery.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Matched != 2 {
		t.Fatalf("matched %d, want the QUEUED and the RUNNING row", p.Matched)
	}
	out, err := recovery.Apply(ctx, s, p, recovery.ApplyOptions{})
	if err != nil || out.Changed != 2 || out.ToStates[store.StateCancelled] != 1 || out.ToStates[store.StateCancelling] != 1 ||
		!reflect.DeepEqual(out.UnstoppedJobs, []string{"raysubmit_r"}) {
		t.Fatalf("cancel: %+v %v", out, err)
	}
	if got, _ := s.GetTask(ctx, queued.ID); got.State != store.StateCancelled || got.FinishedAt == nil {
		t.Fatalf("queued: %+v", got)
	}
	if got, _ := s.GetTask(ctx, running.ID); got.State != store.StateCancelling || *got.ClaimedByWorker != "alive" || got.FinishedAt != nil {
		t.Fatalf("running: %+v", got)
	}

	// CANCELLING: only the dead owner's row, and its Ray job is reported as not stopped
	p, _ = recovery.PlanAction(ctx, s, recovery.ActionCancel, recovery.Selection{States: []store.TaskState{store.StateCancelling}}, recovery.PlanOptions{})
	if p.Matched != 1 || p.Targets[0].ID != deadCancelling.ID {
		t.Fatalf("orphaned cancelling plan: %+v", p.Targets)
	}
	// the owner comes back before the batch: skipped
	_, err = recovery.Apply(ctx, s, p, recovery.ApplyOptions{Hooks: recovery.Hooks{BeforeBatch: func(ctx context.Context, _ int, _ []int64) error {
		return s.UpsertLease(ctx, store.Lease{WorkerID: "gone", Hostname: "h", QueueName: "default"})
	}}})
	if got, _ := s.GetTask(ctx, deadCancelling.ID); err != nil || got.State != store.StateCancelling {
		t.Fatalf("a revived owner's row was finalized: %+v %v", got, err)
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET is_active = false WHERE worker_id = 'gone'`); err != nil {
		t.Fatal(err)
	}
	out, err = recovery.Apply(ctx, s, p, recovery.ApplyOptions{})
	if err != nil || out.Changed != 1 || !reflect.DeepEqual(out.UnstoppedJobs, []string{"raysubmit_x"}) {
		t.Fatalf("finalize: %+v %v", out, err)
	}
	if got, _ := s.GetTask(ctx, liveCancelling.ID); got.State != store.StateCancelling {
		t.Fatalf("a live owner's CANCELLING row was finalized")
	}
	if got, _ := s.GetTask(ctx, done.ID); got.State != store.StateSucceeded {
		t.Fatalf("finished row touched")
	}
}

func TestApplyReasonNeedsAudit(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	row := failedRow(t, s, nil)
	if _, err := sc.Pool.Exec(ctx, `DROP TABLE rayctl_audit_task, rayctl_audit`); err != nil {
		t.Fatal(err)
	}
	p, err := recovery.PlanAction(ctx, s, recovery.ActionRequeue, recovery.Selection{IDs: []int64{row.ID}}, recovery.PlanOptions{})
	if err != nil || p.Audited {
		t.Fatalf("plan: audited=%v %v", p.Audited, err)
	}
	if _, err := recovery.Apply(ctx, s, p, recovery.ApplyOptions{Reason: "why"}); !errors.Is(err, store.ErrNoAudit) {
		t.Fatalf("reason without the audit table: %v", err)
	}
	if got, _ := s.GetTask(ctx, row.ID); got.State != store.StateFailed {
		t.Fatal("refused apply wrote the row")
	}
	// without a reason it runs, unaudited
	out, err := recovery.Apply(ctx, s, p, recovery.ApplyOptions{})
	if err != nil || out.Changed != 1 || out.AuditID != nil {
		t.Fatalf("unaudited apply: %+v %v", out, err)
	}
}

func TestApplyInterrupted(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for i := 0; i < 5; i++ {
		failedRow(t, s, nil)
	}
	p, _ := recovery.PlanAction(ctx, s, recovery.ActionRequeue, recovery.Selection{States: []store.TaskState{store.StateFailed}}, recovery.PlanOptions{})
	out, err := recovery.Apply(ctx, s, p, recovery.ApplyOptions{Batch: 2, Hooks: recovery.Hooks{
		AfterBatch: func(context.Context, recovery.BatchStat) { cancel() }, // Ctrl-C after the first batch
	}})
	if !errors.Is(err, recovery.ErrInterrupted) || !out.Interrupted || out.Changed != 2 || out.Batches != 1 {
		t.Fatalf("interrupted: %+v %v", out, err)
	}
	entries, _ := s.ListAudit(t.Context(), store.AuditFilter{})
	if len(entries) != 1 || entries[0].Changed != 2 || entries[0].Error == nil || entries[0].FinishedAt == nil {
		t.Fatalf("the audit entry does not record the interruption: %+v", entries)
	}
	if _, err := recovery.Apply(t.Context(), s, p, recovery.ApplyOptions{Batch: 10001}); !errors.Is(err, recovery.ErrBadSelection) {
		t.Fatalf("huge batch: %v", err)
	}
}

// TestRequeueEndsRayJobsFirst: with Ray, a requeue stops each selected row's Ray job and waits
// until Ray reports it over (or does not know it) before the row is requeued; a row whose job
// cannot be confirmed over is left as it is and reported. Without Ray the plan lists the jobs
// nobody checked.
func TestRequeueEndsRayJobsFirst(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	fake := raytest.New(t, raytest.WithStopAfter(2)) // a stop takes effect a little later, as in Ray
	stuck := raytest.New(t, raytest.WithStopAfter(1_000_000))
	withJob := func(job string) store.Task {
		return failedRow(t, s, func(r *store.Task) { r.RayJobID = storetest.Ptr(job) })
	}
	running := withJob("raysubmit_running")
	ended := withJob("raysubmit_ended")
	unknown := withJob("raysubmit_unknown")
	plain := failedRow(t, s, func(r *store.Task) { r.RayJobID = nil })
	fake.AddJob(raytest.Job{SubmissionID: "raysubmit_running", Status: raytest.Running})
	fake.AddJob(raytest.Job{SubmissionID: "raysubmit_ended", Status: raytest.Succeeded})

	p, err := recovery.PlanAction(ctx, s, recovery.ActionRequeue, recovery.Selection{States: []store.TaskState{store.StateFailed}}, recovery.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []recovery.JobRef{{ID: running.ID, RayJobID: "raysubmit_running"}, {ID: ended.ID, RayJobID: "raysubmit_ended"}, {ID: unknown.ID, RayJobID: "raysubmit_unknown"}}
	if !reflect.DeepEqual(p.RayJobs, want) {
		t.Fatalf("plan's Ray jobs %+v", p.RayJobs)
	}
	out, err := recovery.Apply(ctx, s, p, recovery.ApplyOptions{Ray: rayClient(t, fake.URL)})
	if err != nil || out.Changed != 4 || len(out.Ended) != 3 || len(out.NotEnded) != 0 {
		t.Fatalf("%+v %v", out, err)
	}
	if j, _ := fake.Job("raysubmit_running"); j.Status != raytest.Stopped || j.StopRequests != 1 {
		t.Fatalf("the running job was not stopped before the requeue: %+v", j)
	}
	for _, id := range []int64{running.ID, ended.ID, unknown.ID, plain.ID} {
		if got, _ := s.GetTask(ctx, id); got.State != store.StateQueued {
			t.Fatalf("%d: %+v", id, got)
		}
	}

	// a job that does not stop keeps its row FAILED
	stubborn := withJob("raysubmit_stubborn")
	stuck.AddJob(raytest.Job{SubmissionID: "raysubmit_stubborn", Status: raytest.Running})
	p, _ = recovery.PlanAction(ctx, s, recovery.ActionRequeue, recovery.Selection{IDs: []int64{stubborn.ID}}, recovery.PlanOptions{})
	out, err = recovery.Apply(ctx, s, p, recovery.ApplyOptions{Ray: rayClient(t, stuck.URL), EndWait: 300 * time.Millisecond})
	if err != nil || out.Changed != 0 || out.Skipped != 1 || len(out.NotEnded) != 1 || !strings.Contains(out.NotEnded[0].Error, "still RUNNING") {
		t.Fatalf("%+v %v", out, err)
	}
	if got, _ := s.GetTask(ctx, stubborn.ID); got.State != store.StateFailed {
		t.Fatalf("requeued beside its running job: %+v", got)
	}
	// and Ray down keeps it FAILED too
	stuck.SetOutage(raytest.Refused)
	out, err = recovery.Apply(ctx, s, p, recovery.ApplyOptions{Ray: rayClient(t, stuck.URL)})
	if err != nil || out.Changed != 0 || len(out.NotEnded) != 1 || !strings.HasPrefix(out.NotEnded[0].Error, "stop:") {
		t.Fatalf("%+v %v", out, err)
	}
	stuck.SetOutage(raytest.NoOutage)
}

// TestCancelFinalizationEndsRayJobsFirst: with Ray, a dead worker's CANCELLING row is
// finalized only once its job is confirmed over.
func TestCancelFinalizationEndsRayJobsFirst(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	fake := raytest.New(t, raytest.WithStopAfter(1_000_000))
	row := storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("gone"), RayJobID: storetest.Ptr("raysubmit_c")})
	fake.AddJob(raytest.Job{SubmissionID: "raysubmit_c", Status: raytest.Running})
	p, _ := recovery.PlanAction(ctx, s, recovery.ActionCancel, recovery.Selection{States: []store.TaskState{store.StateCancelling}}, recovery.PlanOptions{})
	if !reflect.DeepEqual(p.RayJobs, []recovery.JobRef{{ID: row.ID, RayJobID: "raysubmit_c"}}) {
		t.Fatalf("plan %+v", p.RayJobs)
	}
	out, err := recovery.Apply(ctx, s, p, recovery.ApplyOptions{Ray: rayClient(t, fake.URL), EndWait: 300 * time.Millisecond})
	if err != nil || out.Changed != 0 || len(out.NotEnded) != 1 {
		t.Fatalf("%+v %v", out, err)
	}
	fake.Set(t, "raysubmit_c", raytest.Stopped, "", "")
	out, err = recovery.Apply(ctx, s, p, recovery.ApplyOptions{Ray: rayClient(t, fake.URL)})
	if err != nil || out.Changed != 1 || len(out.Ended) != 1 || len(out.UnstoppedJobs) != 0 {
		t.Fatalf("%+v %v", out, err)
	}
	if got, _ := s.GetTask(ctx, row.ID); got.State != store.StateCancelled {
		t.Fatalf("%+v", got)
	}
}
