package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/tui"
)

func TestTopNeedsATerminal(t *testing.T) {
	t.Parallel()
	_, vars := migrated(t)
	r := rayctl(t, vars, "", "top").expect(t, exitUsage)
	if !strings.Contains(r.stderr, "top: needs a terminal") {
		t.Fatalf("stderr: %q", r.stderr)
	}
	r = rayctl(t, vars, "", "top", "--refresh", "100ms").expect(t, exitUsage)
	if !strings.Contains(r.stderr, "invalid --refresh 100ms (want at least 1s)") {
		t.Fatalf("stderr: %q", r.stderr)
	}
}

// topPlan plans a TUI request and fails the test on an error.
func topPlan(t *testing.T, a tui.Actions, r tui.Request) tui.Proposal {
	t.Helper()
	p, err := a.Plan(t.Context(), r)
	if err != nil {
		t.Fatalf("plan %+v: %v", r, err)
	}
	return p
}

// TestTopActions: the TUI writes through recovery, with the CLI's semantics: the dialog's
// counts are the plan's moves by from-state -> to-state, Apply carries out that plan, a
// requeue keeps attempt_number unless asked (issue 11, findings 3, 4 and 5), and cancel
// finalizes CANCELLING rows whose worker is gone.
func TestTopActions(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	failed := storetest.Insert(t, s, store.Task{State: store.StateFailed, AttemptNumber: 3, ErrorMessage: storetest.Ptr("boom")})
	lost := storetest.Insert(t, s, store.Task{State: store.StateLost, AttemptNumber: 2, ErrorMessage: storetest.Ptr(store.LostMessage)})
	queued := storetest.Insert(t, s, store.Task{})
	running := storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w1"), StartedAt: storetest.Ago(time.Second)})
	done := storetest.Insert(t, s, store.Task{State: store.StateSucceeded})
	orphan := storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("gone"), StartedAt: storetest.Ago(time.Hour)})
	a := newTopActions(s, "ops@host", nil, recovery.ReconcileOptions{LeaseTTL: time.Minute})
	all := []int64{failed.ID, lost.ID, queued.ID, running.ID, done.ID, 999999}

	p := topPlan(t, a, tui.Request{Kind: tui.ActionRequeue, IDs: all, Label: "6 marked tasks"})
	wantChanges := []tui.Change{{From: store.StateFailed, To: store.StateQueued, N: 1}, {From: store.StateLost, To: store.StateQueued, N: 1}}
	wantLeft := []string{"1 task QUEUED: it is queued already",
		"1 task RUNNING: a worker owns it: cancel it, or reconcile it with Ray (a stuck one becomes LOST, then requeue it)",
		"1 task SUCCEEDED: it succeeded (requeue takes FAILED, LOST and CANCELLED)", "1 task no longer exist"}
	if p.Total != 2 || !reflect.DeepEqual(p.Changes, wantChanges) || !reflect.DeepEqual(p.Left, wantLeft) {
		t.Fatalf("requeue plan %+v", p)
	}
	if got, _ := s.GetTask(ctx, failed.ID); got.State != store.StateFailed {
		t.Fatal("the plan wrote")
	}
	o, err := a.Apply(ctx, p)
	if err != nil || o.Applied != 2 || o.Skipped != 0 || o.Detail != "2 QUEUED" {
		t.Fatalf("requeue %+v %v", o, err)
	}
	got, _ := s.GetTask(ctx, failed.ID)
	if got.State != store.StateQueued || got.AttemptNumber != 3 || got.ErrorMessage != nil {
		t.Fatalf("requeued row %+v (attempt_number must be kept, as rayctl requeue)", got)
	}
	// reset attempts, as --reset-attempts
	if _, err := storetest.DB(s).Exec(ctx, `UPDATE django_ray_raytaskexecution SET state = 'FAILED' WHERE id = $1`, lost.ID); err != nil {
		t.Fatal(err)
	}
	p = topPlan(t, a, tui.Request{Kind: tui.ActionRequeue, IDs: []int64{lost.ID}, ResetAttempts: true})
	if _, err := a.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetTask(ctx, lost.ID); got.AttemptNumber != 1 {
		t.Fatalf("reset attempts: %d", got.AttemptNumber)
	}

	// cancel: the moves of what was chosen, the orphaned CANCELLING row finalized
	p = topPlan(t, a, tui.Request{Kind: tui.ActionCancel, IDs: []int64{queued.ID, running.ID, done.ID, orphan.ID}})
	wantChanges = []tui.Change{{From: store.StateQueued, To: store.StateCancelled, N: 1},
		{From: store.StateRunning, To: store.StateCancelling, N: 1, Note: "its worker stops it and finalizes CANCELLED"},
		{From: store.StateCancelling, To: store.StateCancelled, N: 1, Note: "its worker is gone"}}
	if p.Total != 3 || !reflect.DeepEqual(p.Changes, wantChanges) || !reflect.DeepEqual(p.Left, []string{"1 task SUCCEEDED: it is finished already"}) {
		t.Fatalf("cancel plan %+v", p)
	}
	// a row that moves on between the dialog and the confirmation is skipped, not overwritten
	if _, err := storetest.DB(s).Exec(ctx, `UPDATE django_ray_raytaskexecution SET state = 'SUCCEEDED' WHERE id = $1`, running.ID); err != nil {
		t.Fatal(err)
	}
	o, err = a.Apply(ctx, p)
	if err != nil || o.Applied != 2 || o.Skipped != 1 || o.Detail != "2 CANCELLED" {
		t.Fatalf("cancel %+v %v", o, err)
	}
	if got, _ := s.GetTask(ctx, running.ID); got.State != store.StateSucceeded {
		t.Fatalf("a row that moved on was overwritten: %s", got.State)
	}
	// :finalize: every CANCELLING row whose owner is gone, none whose owner is live
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "alive", Hostname: "h", QueueName: "*"}); err != nil {
		t.Fatal(err)
	}
	kept := storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("alive"), StartedAt: storetest.Ago(time.Minute)})
	gone := storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("gone"), StartedAt: storetest.Ago(time.Hour)})
	p = topPlan(t, a, tui.Request{Kind: tui.ActionCancel, States: []store.TaskState{store.StateCancelling}})
	if p.Total != 1 || p.Changes[0].From != store.StateCancelling {
		t.Fatalf("finalize plan %+v", p)
	}
	if _, err := a.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.GetTask(ctx, gone.ID); g.State != store.StateCancelled {
		t.Fatalf("orphan %s", g.State)
	}
	if k, _ := s.GetTask(ctx, kept.ID); k.State != store.StateCancelling {
		t.Fatalf("a live owner's row was finalized: %s", k.State)
	}
	// more ids than one batch, and the audit trail records who did it
	many := make([]store.NewTask, recovery.DefaultBatch+7)
	for i := range many {
		many[i] = store.NewTask{CallablePath: "bulk.f"}
	}
	ids, err := s.EnqueueMany(ctx, many)
	if err != nil {
		t.Fatal(err)
	}
	p = topPlan(t, a, tui.Request{Kind: tui.ActionCancel, IDs: ids})
	if o, err := a.Apply(ctx, p); err != nil || o.Applied != len(ids) || p.Changes[0].N != len(ids) {
		t.Fatalf("batched cancel %+v %v", o, err)
	}
	entries, err := s.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(entries) != 5 || entries[0].Actor != "ops@host" || entries[0].Reason == nil || *entries[0].Reason != "rayctl top" {
		t.Fatalf("audit %+v %v", entries, err)
	}
	// an empty selection changes nothing (it must never mean "every FAILED row")
	if p := topPlan(t, a, tui.Request{Kind: tui.ActionRequeue}); p.Total != 0 || p.Plan != nil {
		t.Fatalf("empty plan %+v", p)
	}
	if o, err := a.Apply(ctx, tui.Proposal{}); err != nil || o.Applied != 0 {
		t.Fatalf("empty apply %+v %v", o, err)
	}
	// reconcile without Ray says how to get one
	if _, err := a.Plan(ctx, tui.Request{Kind: tui.ActionReconcile}); err == nil || !strings.Contains(err.Error(), "--ray-address") {
		t.Fatalf("reconcile without Ray: %v", err)
	}
}

// TestTopInTerminal drives the real rayctl binary in a tmux terminal against a real
// database: it starts `rayctl top`, switches views, filters, requeues one task through the
// confirmation dialog, quits with q, and checks the exit status and the row.
func TestTopInTerminal(t *testing.T) {
	t.Parallel()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is required for the terminal test (apt-get install tmux)")
		}
		t.Skip("tmux not installed")
	}
	s, sc := storetest.New(t)
	ctx := t.Context()
	dir := t.TempDir()
	bin := filepath.Join(dir, "rayctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build rayctl: %v\n%s", err, out)
	}

	for i := range 5 {
		storetest.Insert(t, s, store.Task{CallablePath: "e2e.tasks.ok", QueueName: "default", CreatedAt: time.Now().Add(-time.Duration(i) * time.Minute)})
	}
	storetest.Insert(t, s, store.Task{CallablePath: "e2e.tasks.ok", State: store.StateSucceeded, FinishedAt: storetest.Ago(time.Minute)})
	victim := storetest.Insert(t, s, store.Task{CallablePath: "e2e.tasks.flaky", QueueName: "emails", State: store.StateFailed, AttemptNumber: 3,
		ErrorMessage: storetest.Ptr("boom"), ErrorTraceback: storetest.Ptr("Traceback (most recent call last):\nValueError: boom"),
		StartedAt: storetest.Ago(2 * time.Minute), FinishedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Minute)})
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "e2e-worker", Hostname: "e2e-host", PID: 7, QueueName: "default"}); err != nil {
		t.Fatal(err)
	}

	sock := fmt.Sprintf("rayctl-top-test-%d", os.Getpid())
	exitFile := filepath.Join(dir, "exit")
	logFile := filepath.Join(dir, "top.log")
	script := fmt.Sprintf("%q top --database-url %q --log-file %q --refresh 1s; echo $? > %q; sleep 60",
		bin, sc.DSN, logFile, exitFile)
	tm := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-L", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tm("-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "100", "-y", "30", "env", "TERM=xterm-256color", "NO_COLOR=1", "sh", "-c", script)
	t.Cleanup(func() { _ = exec.Command(tmux, "-L", sock, "kill-server").Run() })

	screen := func() string { return tm("capture-pane", "-p", "-t", "top") }
	waitFor := func(what string) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			sc := screen()
			if strings.Contains(sc, what) {
				return sc
			}
			if time.Now().After(deadline) {
				t.Fatalf("the screen never showed %q; it shows:\n%s", what, sc)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	keys := func(k ...string) { tm(append([]string{"send-keys", "-t", "top"}, k...)...) }
	typeText := func(text string) { tm("send-keys", "-t", "top", "-l", text) }

	sc1 := waitFor("runbook signals")
	if !strings.Contains(sc1, "[1 Overview]") || !strings.Contains(sc1, "emails") {
		t.Fatalf("overview:\n%s", sc1)
	}
	keys("3")
	waitFor("e2e.tasks.flaky")
	waitFor("builtins.ValueError")
	keys("4")
	waitFor("e2e-worker")
	keys("2")
	waitFor("e2e.tasks.ok")
	keys("/")
	typeText("state:failed")
	keys("Enter")
	sc2 := waitFor("filter: state:failed")
	waitFor(fmt.Sprint(victim.ID))
	if strings.Contains(sc2, "e2e.tasks.ok") {
		t.Fatalf("the filter shows other tasks:\n%s", sc2)
	}
	keys("R")
	waitFor("Requeue 1 task?")
	if got, _ := s.GetTask(ctx, victim.ID); got.State != store.StateFailed {
		t.Fatalf("requeued before confirmation: %s", got.State)
	}
	keys("y")
	waitFor(fmt.Sprintf("requeued 1 of task %d", victim.ID))
	got, err := s.GetTask(ctx, victim.ID)
	if err != nil || got.State != store.StateQueued || got.ErrorMessage != nil || got.AttemptNumber != 3 {
		t.Fatalf("task after requeue: %+v %v", got, err)
	}
	keys("q") // back a level, to the view before (workers); q quits only from the overview
	waitFor("[4 Workers]")
	typeText(":q")
	keys("Enter")
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(exitFile)
		if err == nil && strings.TrimSpace(string(b)) != "" {
			if code := strings.TrimSpace(string(b)); code != "0" {
				t.Fatalf("rayctl top exited %s; screen:\n%s", code, screen())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rayctl top did not exit on q; screen:\n%s", screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"top started", "action applied", "action=Requeue", fmt.Sprintf("ids=[%d]", victim.ID), "top quit"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestTopActionsRayJobs: the TUI's requeue handles tasks' old Ray jobs as rayctl requeue does:
// with a Ray address the job is stopped and confirmed over first; without one the
// confirmation says nobody checks it. Its reconcile is rayctl reconcile-jobs --apply.
func TestTopActionsRayJobs(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	fake := raytest.New(t)
	row := storetest.Insert(t, s, store.Task{State: store.StateFailed, RayJobID: storetest.Ptr("raysubmit_old")})
	fake.AddJob(raytest.Job{SubmissionID: "raysubmit_old", Status: raytest.Running})
	r := tui.Request{Kind: tui.ActionRequeue, IDs: []int64{row.ID}}
	if p := topPlan(t, newTopActions(s, "ops@host", nil, recovery.ReconcileOptions{}), r); !reflect.DeepEqual(p.Notes,
		[]string{"1 Ray job nobody checks (no --ray-address): one still running would run on"}) {
		t.Fatalf("plan without Ray %+v", p)
	}
	c, err := rayjobs.New(rayjobs.Options{Address: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := newTopActions(s, "ops@host", c, recovery.ReconcileOptions{Address: fake.URL})
	p := topPlan(t, a, r)
	if !reflect.DeepEqual(p.Notes, []string{"1 old Ray job: stopped in Ray and confirmed over first (a task whose job is not is left as it is)"}) {
		t.Fatalf("plan with Ray %+v", p)
	}
	if o, err := a.Apply(ctx, p); err != nil || o.Applied != 1 {
		t.Fatalf("requeue %+v %v", o, err)
	}
	if j, _ := fake.Job("raysubmit_old"); j.Status != raytest.Stopped {
		t.Fatalf("job %+v", j)
	}
	// reconcile: a RUNNING row of a dead owner whose job Ray never heard of becomes LOST
	gone := storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("gone"), StartedAt: storetest.Ago(time.Hour),
		LastHeartbeatAt: storetest.Ago(time.Hour), RayJobID: storetest.Ptr("raysubmit_forgotten")})
	p = topPlan(t, a, tui.Request{Kind: tui.ActionReconcile})
	if p.Total != 1 || len(p.Changes) != 1 || p.Changes[0].From != store.StateRunning || p.Changes[0].N != 1 ||
		p.Changes[0].Note != "unknown to Ray, owner dead" {
		t.Fatalf("reconcile plan %+v", p)
	}
	if o, err := a.Apply(ctx, p); err != nil || o.Applied != 1 {
		t.Fatalf("reconcile %+v %v", o, err)
	}
	if got, _ := s.GetTask(ctx, gone.ID); got.State == store.StateRunning {
		t.Fatalf("reconciled row still RUNNING")
	}
}
