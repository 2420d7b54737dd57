package main

// rayctl against a real Ray head (the real-Ray tier: scripts/test.sh with no arguments starts
// one). Needs RAY_ADDRESS and RAYCTL_PYTHON; without them the tests skip, except under
// CI=true, where they fail.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

type realRay struct {
	addr, pythonPath string
	c                *rayjobs.Client
}

func needRealRay(t *testing.T) realRay {
	r := raytest.NeedRealRay(t, "rayctl/realray-test")
	return realRay{addr: r.Client.Address(), pythonPath: r.PythonPath, c: r.Client}
}

// submit runs the task row's payload as a Ray Job with django-ray's real entrypoint and returns
// the submission id.
func (r realRay) submit(t *testing.T, task store.Task) string {
	t.Helper()
	payload, err := lifecycle.Payload(task)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	id := "raysubmit_rayctl_reconcile_" + hex.EncodeToString(b[:])
	_, err = r.c.Submit(t.Context(), rayjobs.SubmitRequest{
		Entrypoint: lifecycle.DefaultEntrypoint + " " + lifecycle.PayloadFlag + " " + payload, SubmissionID: id,
		RuntimeEnv: map[string]any{"env_vars": map[string]string{"DJANGO_SETTINGS_MODULE": "rayctl_testapp.settings", "PYTHONPATH": r.pythonPath}},
		Metadata:   map[string]string{"django_ray_task_id": "0", "callable_path": task.CallablePath},
	})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return id
}

func (r realRay) waitStatus(t *testing.T, id string, want ...rayjobs.Status) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		j, err := r.c.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if j.Status == w {
				return
			}
		}
		if j.Status.Terminal() || time.Now().After(deadline) {
			t.Fatalf("job %s is %s (%s), want %v", id, j.Status, j.Message, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestReconcileJobsRealRay: against a real Ray 2.60 head, a dead worker's task whose job
// succeeded is recorded with the result its log's last line carries, a dead worker's
// CANCELLING task whose job still runs is stopped in Ray and finalized, and a task whose job
// Ray never heard of is marked LOST and re-queued. The doctor reports the same Ray healthy.
func TestReconcileJobsRealRay(t *testing.T) {
	t.Parallel()
	r := needRealRay(t)
	s, sc := storetest.New(t)
	ctx := t.Context()
	vars := map[string]string{"DATABASE_URL": sc.DSN, "RAY_ADDRESS": r.addr, "RAY_AUTH_TOKEN": os.Getenv("RAY_AUTH_TOKEN")}
	row := func(state store.TaskState, callable, args string) store.Task {
		return storetest.Insert(t, s, store.Task{State: state, CallablePath: callable, ArgsJSON: args, ClaimedByWorker: storetest.Ptr("dead-worker"),
			StartedAt: storetest.Ago(10 * time.Minute), LastHeartbeatAt: storetest.Ago(10 * time.Minute)})
	}
	done := row(store.StateRunning, "rayctl_testapp.tasks.add", "[20, 22]")
	slow := row(store.StateCancelling, "rayctl_testapp.tasks.sleep", "[120]")
	lost := row(store.StateRunning, "rayctl_testapp.tasks.add", "[1, 1]")
	doneJob, slowJob := r.submit(t, done), r.submit(t, slow)
	lostJob := "raysubmit_rayctl_never_submitted_" + hex.EncodeToString([]byte(time.Now().Format("150405.000")))
	for id, job := range map[int64]string{done.ID: doneJob, slow.ID: slowJob, lost.ID: lostJob} {
		if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_raytaskexecution SET ray_job_id = $2 WHERE id = $1`, id, job); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = r.c.Stop(context.Background(), slowJob) })
	r.waitStatus(t, doneJob, rayjobs.StatusSucceeded)
	r.waitStatus(t, slowJob, rayjobs.StatusRunning)

	res := rayctlWith(t, runOpts{vars: vars}, "reconcile-jobs", "--apply", "--yes").expect(t, exitOK)
	for _, want := range []string{"Ray 2.", "record -> SUCCEEDED", "SUCCEEDED in Ray: record the 2-byte result inline", "stop_finalize -> CANCELLED",
		"mark_lost -> QUEUED", "applied 3 of 3 (1 now QUEUED, 1 now SUCCEEDED, 1 now CANCELLED, 1 Ray job asked to stop)"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	for _, c := range []struct {
		task  store.Task
		state store.TaskState
	}{{done, store.StateSucceeded}, {slow, store.StateCancelled}, {lost, store.StateQueued}} {
		got, err := s.GetTask(ctx, c.task.ID)
		if err != nil || got.State != c.state {
			t.Errorf("task %d: %+v %v, want %s", c.task.ID, got.State, err, c.state)
		}
		if c.state == store.StateSucceeded && (got.ResultData == nil || *got.ResultData != "42") {
			t.Errorf("result_data %v, want 42", got.ResultData)
		}
	}
	r.waitStatus(t, slowJob, rayjobs.StatusStopped)

	res = rayctlWith(t, runOpts{vars: vars}, "doctor", "-o", "jsonl")
	if !strings.Contains(res.stdout, `"name":"ray","status":"ok","summary":"Ray 2.`) {
		t.Errorf("doctor's ray check against the real head:\n%s", res.stdout)
	}
}
