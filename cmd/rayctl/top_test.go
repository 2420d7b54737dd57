package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
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

// TestTopActions: the TUI writes through recovery, like rayctl requeue and cancel.
func TestTopActions(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := context.Background()
	failed := storetest.Insert(t, s, store.Task{State: store.StateFailed, AttemptNumber: 3, ErrorMessage: storetest.Ptr("boom")})
	lost := storetest.Insert(t, s, store.Task{State: store.StateLost, ErrorMessage: storetest.Ptr(store.LostMessage)})
	queued := storetest.Insert(t, s, store.Task{})
	running := storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w1"), StartedAt: storetest.Ago(time.Second)})
	done := storetest.Insert(t, s, store.Task{State: store.StateSucceeded})
	a := newTopActions(s, "ops@host", nil)
	all := []int64{failed.ID, lost.ID, queued.ID, running.ID, done.ID, 999999}

	p, err := a.PreviewRequeue(ctx, all)
	if err != nil || p.Chosen != 6 || p.Eligible != 2 || p.Note != "3 in other states will be left alone; 1 no longer exist" {
		t.Fatalf("requeue preview %+v %v", p, err)
	}
	if got, _ := s.GetTask(ctx, failed.ID); got.State != store.StateFailed {
		t.Fatal("the preview wrote")
	}
	o, err := a.Requeue(ctx, all)
	if err != nil || o.Applied != 2 || o.Skipped != 4 {
		t.Fatalf("requeue %+v %v", o, err)
	}
	got, _ := s.GetTask(ctx, failed.ID)
	if got.State != store.StateQueued || got.AttemptNumber != 1 || got.ErrorMessage != nil {
		t.Fatalf("requeued row %+v", got)
	}
	p, err = a.PreviewCancel(ctx, []int64{queued.ID, running.ID, done.ID})
	if err != nil || p.Eligible != 2 {
		t.Fatalf("cancel preview %+v %v", p, err)
	}
	o, err = a.Cancel(ctx, []int64{queued.ID, running.ID, done.ID})
	if err != nil || o.Applied != 2 || o.Skipped != 1 || o.Detail != "1 CANCELLED, 1 CANCELLING" {
		t.Fatalf("cancel %+v %v", o, err)
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
	o, err = a.Cancel(ctx, ids)
	if err != nil || o.Applied != len(ids) {
		t.Fatalf("batched cancel %+v %v", o, err)
	}
	entries, err := s.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(entries) != 3 || entries[0].Actor != "ops@host" || entries[0].Reason == nil || *entries[0].Reason != "rayctl top" {
		t.Fatalf("audit %+v %v", entries, err)
	}
	// an empty selection changes nothing (it must never mean "every FAILED row")
	if p, err := a.PreviewRequeue(ctx, nil); err != nil || p.Eligible != 0 {
		t.Fatalf("empty preview %+v %v", p, err)
	}
	if o, err := a.Requeue(ctx, nil); err != nil || o.Applied != 0 {
		t.Fatalf("empty requeue %+v %v", o, err)
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
	ctx := context.Background()
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
	if err != nil || got.State != store.StateQueued || got.ErrorMessage != nil || got.AttemptNumber != 1 {
		t.Fatalf("task after requeue: %+v %v", got, err)
	}
	keys("q")
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
// confirmation says nobody checks it.
func TestTopActionsRayJobs(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := context.Background()
	fake := raytest.New(t)
	row := storetest.Insert(t, s, store.Task{State: store.StateFailed, RayJobID: storetest.Ptr("raysubmit_old")})
	fake.AddJob(raytest.Job{SubmissionID: "raysubmit_old", Status: raytest.Running})
	if p, err := newTopActions(s, "ops@host", nil).PreviewRequeue(ctx, []int64{row.ID}); err != nil ||
		p.Note != "1 name Ray jobs nobody checks (no Ray address): one still running would run on" {
		t.Fatalf("preview without Ray %+v %v", p, err)
	}
	c, err := rayjobs.New(rayjobs.Options{Address: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := newTopActions(s, "ops@host", c)
	if p, err := a.PreviewRequeue(ctx, []int64{row.ID}); err != nil || p.Note != "1 Ray jobs are stopped and confirmed over first" {
		t.Fatalf("preview with Ray %+v %v", p, err)
	}
	if o, err := a.Requeue(ctx, []int64{row.ID}); err != nil || o.Applied != 1 {
		t.Fatalf("requeue %+v %v", o, err)
	}
	if j, _ := fake.Job("raysubmit_old"); j.Status != raytest.Stopped {
		t.Fatalf("job %+v", j)
	}
}
