package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// pipeOut is a stdout whose reader can go away: once closed, every write fails with EPIPE,
// as a pipe's does after `head` exits.
type pipeOut struct {
	mu     sync.Mutex
	closed bool
	buf    bytes.Buffer
}

func (p *pipeOut) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, &os.PathError{Op: "write", Path: "|1", Err: syscall.EPIPE}
	}
	return p.buf.Write(b)
}

func (p *pipeOut) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

// TestClosedStdoutStopsBulk: `rayctl requeue ... --yes | head -3`. A stdout whose reader went
// away stops the change safely: before it starts (exit 4, nothing written), or before the
// next batch (exit 5, the committed batches kept and summarized on stderr); a change that
// completed before the closed stdout was noticed reports on stderr and exits 0.
func TestClosedStdoutStopsBulk(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN}
	stage := func() {
		if _, err := sc.Pool.Exec(t.Context(), `DELETE FROM django_ray_raytaskexecution`); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			storetest.Insert(t, s, store.Task{State: store.StateFailed, ErrorMessage: storetest.Ptr("x")})
		}
	}
	queued := func() int64 {
		n, err := s.CountTasks(t.Context(), store.TaskFilter{States: []store.TaskState{store.StateQueued}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// closed before the change: the plan went nowhere, nothing is written
	stage()
	out := &pipeOut{closed: true}
	r := rayctlWith(t, runOpts{vars: vars, stdout: out}, "requeue", "--state", "FAILED", "--yes").expect(t, exitDeclined)
	r.oneLine(t, "requeue: stdout was closed (the reader of rayctl's output exited, e.g. head) before the change started; nothing changed (5 tasks selected)")
	if n := queued(); n != 0 {
		t.Fatalf("%d requeued with nobody reading", n)
	}

	// the reader leaves during the change (a real pipe: nothing is written meanwhile, the
	// kernel reports it): the run stops before its next batch
	stage()
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	var plan bytes.Buffer
	hooks := recovery.Hooks{AfterBatch: func(context.Context, recovery.BatchStat) {
		// like head: read what is there, then exit
		if err := rd.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Error(err)
		}
		buf := make([]byte, 64<<10)
		n, _ := rd.Read(buf)
		plan.Write(buf[:n])
		rd.Close()
	}}
	r = rayctlWith(t, runOpts{vars: vars, stdout: wr, hooks: hooks}, "requeue", "--state", "FAILED", "--batch", "2", "--yes").expect(t, exitPartial)
	r.oneLine(t, "stopped before batch 2 of 3: requeued 2, skipped 0, 3 not reached (run the command again for the rest)")
	if n := queued(); n != 2 {
		t.Fatalf("%d requeued, want the first batch's 2", n)
	}
	if !strings.Contains(plan.String(), "requeue: 5 tasks match") {
		t.Errorf("the plan was not written before the reader left:\n%s", plan.String())
	}

	// JSON is written at the end: the change completes, and stderr says what it did
	stage()
	out = &pipeOut{closed: true}
	r = rayctlWith(t, runOpts{vars: vars, stdout: out}, "requeue", "--state", "FAILED", "--yes", "-o", "json").expect(t, exitOK)
	r.oneLine(t, "requeue: stdout was closed (the reader of rayctl's output exited, e.g. head); the change completed: requeued 5 of 5, skipped 0")
	if n := queued(); n != 5 {
		t.Fatalf("%d requeued, want 5", n)
	}

	// a listing into a closed pipe ends quietly
	rayctlWith(t, runOpts{vars: vars, stdout: &pipeOut{closed: true}}, "tasks", "ls").expect(t, exitOK)
}

// TestClosedStdoutProcess: the real binary with stdout a pipe nobody reads is not killed by
// SIGPIPE (exit 141 with the change half-done): it exits 4 and writes nothing.
func TestClosedStdoutProcess(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	for range 3 {
		storetest.Insert(t, s, store.Task{State: store.StateFailed, ErrorMessage: storetest.Ptr("x")})
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	rd.Close() // the reader is gone before rayctl writes anything
	defer wr.Close()
	cmd := subprocess(t, []string{"DATABASE_URL=" + sc.DSN, "PATH=" + os.Getenv("PATH")}, "requeue", "--state", "FAILED", "--yes")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = wr, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitDeclined {
		t.Fatalf("exit: %v, want %d (stderr %q)", err, exitDeclined, stderr.String())
	}
	if !strings.Contains(stderr.String(), "stdout was closed") || !strings.Contains(stderr.String(), "nothing changed") {
		t.Errorf("stderr: %q", stderr.String())
	}
	n, err := s.CountTasks(t.Context(), store.TaskFilter{States: []store.TaskState{store.StateQueued}})
	if err != nil || n != 0 {
		t.Fatalf("%d requeued (%v)", n, err)
	}
}

// TestClosedStdoutStopsReconcile: reconcile-jobs --apply stops before its next task once
// stdout's reader is gone (exit 5, what was applied stays), and applies nothing when it was
// gone before the first (exit 4).
func TestClosedStdoutStopsReconcile(t *testing.T) {
	t.Parallel()
	st := stageReconcile(t)
	before := snapshot(t, st.sc.Pool)
	rayctlWith(t, runOpts{vars: st.vars, stdout: &pipeOut{closed: true}}, "reconcile-jobs", "--apply", "--yes").
		expect(t, exitDeclined).oneLine(t, "before anything was applied; nothing changed (8 actions planned)")
	if snapshot(t, st.sc.Pool) != before {
		t.Fatal("applied with nobody reading")
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	n := 0
	hooks := recovery.Hooks{BeforeJob: func(context.Context, recovery.JobEntry) error {
		if n++; n == 2 {
			rd.Close() // the reader leaves while the second task is applied
		}
		return nil
	}}
	r := rayctlWith(t, runOpts{vars: st.vars, stdout: wr, hooks: hooks}, "reconcile-jobs", "--apply", "--yes").expect(t, exitPartial)
	r.oneLine(t, "stopped: applied 2, skipped 0, failed 0, 6 not reached (run it again for the rest)")
}
