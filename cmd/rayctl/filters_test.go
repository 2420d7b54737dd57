package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// planIDs runs a dry-run bulk command with JSON output and returns the ids it selected.
func planIDs(t *testing.T, vars map[string]string, args ...string) []int64 {
	t.Helper()
	r := rayctl(t, vars, "", append(args, "--dry-run", "-o", "json")...)
	if r.code != exitOK && r.code != exitNoMatch {
		t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	var rep struct {
		Plan struct {
			IDs []int64 `json:"ids"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, r.stdout)
	}
	return rep.Plan.IDs
}

// TestBulkNewFilters: requeue and cancel select by --exception (as the retry policy saw it),
// --newer-than and --worker; tasks count --by exception groups a failure type in one row
// whatever its messages; tasks ls selects results stored by reference and shows RUN AFTER.
func TestBulkNewFilters(t *testing.T) {
	t.Parallel()
	s, vars := migrated(t)
	ago, p := storetest.Ago, storetest.Ptr[string]
	valueErr := func(msg string) *string { return p("Traceback (most recent call last):\n  ...\nValueError: " + msg) }
	oldVE := storetest.Insert(t, s, store.Task{State: store.StateFailed, CallablePath: "app.charge", ErrorMessage: p("bad amount 1"), ErrorTraceback: valueErr("bad amount 1"),
		ClaimedByWorker: p("w1"), FinishedAt: ago(2 * time.Hour)})
	newVE := storetest.Insert(t, s, store.Task{State: store.StateFailed, CallablePath: "app.charge", ErrorMessage: p("bad amount 2"), ErrorTraceback: valueErr("bad amount 2"),
		ClaimedByWorker: p("w2"), FinishedAt: ago(5 * time.Minute)})
	lost := storetest.Insert(t, s, store.Task{State: store.StateLost, CallablePath: "app.charge", ErrorMessage: p(store.LostMessage),
		ClaimedByWorker: p("w2"), FinishedAt: ago(5 * time.Minute)})
	timedOut := storetest.Insert(t, s, store.Task{State: store.StateFailed, CallablePath: "app.mail", ErrorMessage: p("Task timed out after 30 seconds"), FinishedAt: ago(time.Minute)})
	jobFailed := storetest.Insert(t, s, store.Task{State: store.StateFailed, CallablePath: "app.mail", ErrorMessage: p("Ray job failed"),
		ErrorTraceback: p("log line\nModuleNotFoundError: No module named 'app'"), FinishedAt: ago(time.Minute)})
	custom := storetest.Insert(t, s, store.Task{State: store.StateFailed, CallablePath: "app.mail", ErrorMessage: p("declined"),
		ErrorTraceback: p("Traceback\napp.errors.CardDeclined: declined"), FinishedAt: ago(time.Minute)})
	ref := storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ResultReference: p("oversize://sha256/" + strings.Repeat("ab", 32) + "?bytes=5000000")})
	storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ResultData: p("[1]")})
	deferred := storetest.Insert(t, s, store.Task{State: store.StateQueued, CallablePath: "app.later", RunAfter: storetest.Ptr(time.Now().Add(10 * time.Minute))})
	running := storetest.Insert(t, s, store.Task{State: store.StateRunning, CallablePath: "app.long", ClaimedByWorker: p("w3"), StartedAt: ago(time.Minute)})

	tests := []struct {
		args []string
		want []int64
	}{
		{[]string{"requeue", "--exception", "ValueError"}, []int64{oldVE.ID, newVE.ID}},
		{[]string{"requeue", "--exception", "builtins.ValueError", "--newer-than", "1h"}, []int64{newVE.ID}},
		{[]string{"requeue", "--exception", "TaskLost"}, []int64{lost.ID}},
		{[]string{"requeue", "--exception", "TaskTimedOut"}, []int64{timedOut.ID}},
		{[]string{"requeue", "--exception", "RayJobFailed"}, []int64{jobFailed.ID}},
		{[]string{"requeue", "--exception", "app.errors.*"}, []int64{custom.ID}},
		{[]string{"requeue", "--worker", "w2"}, []int64{newVE.ID, lost.ID}},
		{[]string{"requeue", "--newer-than", "30m", "--callable", "app.mail"}, []int64{timedOut.ID, jobFailed.ID, custom.ID}},
		{[]string{"requeue", "--older-than", "1h"}, []int64{oldVE.ID}},
		{[]string{"requeue", "--newer-than", "3h", "--older-than", "1h"}, []int64{oldVE.ID}},
		{[]string{"cancel", "--worker", "w3"}, []int64{running.ID}},
		{[]string{"cancel", "--newer-than", "1h", "--state", "QUEUED"}, []int64{deferred.ID}},
	}
	for _, tt := range tests {
		if got := planIDs(t, vars, tt.args...); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%v selected %v, want %v", tt.args, got, tt.want)
		}
	}
	rayctl(t, vars, "", "requeue", "--newer-than", "1h", "--older-than", "2h").expect(t, exitUsage).oneLine(t, "select nothing")
	rayctl(t, vars, "", "requeue", "--newer-than", "soon").expect(t, exitUsage).oneLine(t, `invalid --newer-than "soon"`)

	// the filter applies: requeue --exception TaskLost changes that row only
	r := rayctl(t, vars, "", "requeue", "--exception", "TaskLost", "--yes").expect(t, exitOK)
	if !strings.Contains(r.stdout, "requeued 1 of 1") || !strings.Contains(r.stdout, `exception "TaskLost"`) {
		t.Errorf("requeue --exception:\n%s", r.stdout)
	}
	if got, _ := s.GetTask(t.Context(), lost.ID); got.State != store.StateQueued {
		t.Errorf("lost task is %s", got.State)
	}

	// one row per exception type, however the messages vary
	r = rayctl(t, vars, "", "tasks", "count", "--by", "exception", "--state", "FAILED", "-o", "json").expect(t, exitOK)
	var counts struct {
		Groups []struct {
			Key   string `json:"key"`
			Count int64  `json:"count"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &counts); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, g := range counts.Groups {
		got[g.Key] = g.Count
	}
	if want := map[string]int64{"builtins.ValueError": 2, "TaskTimedOut": 1, "RayJobFailed": 1, "app.errors.CardDeclined": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("count --by exception = %v, want %v", got, want)
	}
	r = rayctl(t, vars, "", "tasks", "count", "--by", "error", "--state", "FAILED", "--callable", "app.charge").expect(t, exitOK)
	if strings.Count(r.stdout, "bad amount") != 2 {
		t.Errorf("--by error splits the messages (which is why --by exception exists):\n%s", r.stdout)
	}

	// results stored by reference
	for _, flag := range []string{"--result-ref", "--has-reference"} {
		r = rayctl(t, vars, "", "tasks", "ls", flag, "-o", "json").expect(t, exitOK)
		var page struct {
			Tasks []struct {
				ID int64 `json:"id"`
			} `json:"tasks"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Tasks) != 1 || page.Tasks[0].ID != ref.ID {
			t.Errorf("tasks ls %s: %s (%v)", flag, r.stdout, err)
		}
	}
	// RUN AFTER: a deferred task says when it may run
	r = rayctl(t, vars, "", "tasks", "ls", "--state", "QUEUED").expect(t, exitOK)
	lines := strings.Split(r.stdout, "\n")
	if !strings.Contains(lines[0], "AGE  RUN AFTER  WORKER") {
		t.Errorf("header: %q", lines[0])
	}
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, fmt.Sprint(deferred.ID)+" ") })
	if i < 0 || !strings.Contains(lines[i], " in 9m") && !strings.Contains(lines[i], " in 10m") {
		t.Errorf("deferred row: %q", r.stdout)
	}
}

// TestBulkRate: --rps spaces the batches so no more than that many rows are tried per second
// on average (the wait comes before each batch after the first), an interrupt during the
// wait stops the run safely (exit 5, the committed batch reported, nothing more written), and
// a rate must be above 0.
func TestBulkRate(t *testing.T) {
	t.Parallel()
	s, vars := migrated(t)
	var ids []int64
	for range 5 {
		ids = append(ids, storetest.Insert(t, s, store.Task{State: store.StateFailed, ErrorMessage: storetest.Ptr("x")}).ID)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var slept []time.Duration
	now := func() time.Time {
		t := base
		for _, d := range slept {
			t = t.Add(d)
		}
		return t
	}
	sleep := func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
	r := rayctlWith(t, runOpts{vars: vars, paceNow: now, paceSleep: sleep}, "requeue", "--state", "FAILED", "--batch", "2", "--rps", "4", "--yes").expect(t, exitOK)
	if want := []time.Duration{500 * time.Millisecond, 500 * time.Millisecond}; !reflect.DeepEqual(slept, want) {
		t.Errorf("waits %v, want %v (2 rows per batch at 4 rows/s)", slept, want)
	}
	if !strings.Contains(r.stdout, "requeued 5 of 5") {
		t.Errorf("output:\n%s", r.stdout)
	}

	// interrupted while waiting: the first batch stays done, the rest untouched
	for _, id := range ids {
		if _, err := storetest.DB(s).Exec(t.Context(), `UPDATE django_ray_raytaskexecution SET state = 'FAILED' WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	interrupt := func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() }
	r = rayctlWith(t, runOpts{vars: vars, ctx: ctx, paceSleep: interrupt}, "requeue", "--state", "FAILED", "--batch", "2", "--rps", "1", "--yes").expect(t, exitPartial)
	r.oneLine(t, "interrupted after 1 of 3 batches (while pacing to 1 rows/s): requeued 2, skipped 0, 3 not reached")
	queued, err := s.CountTasks(t.Context(), store.TaskFilter{States: []store.TaskState{store.StateQueued}})
	if err != nil || queued != 2 {
		t.Errorf("queued after the interrupt: %d (%v), want 2", queued, err)
	}

	for _, bad := range []string{"0", "-1", "fast"} {
		r = rayctl(t, vars, "", "requeue", "--state", "FAILED", "--rps", bad, "--yes").expect(t, exitUsage)
		if !strings.Contains(r.stderr, "--rps") {
			t.Errorf("--rps %s: %s", bad, r.stderr)
		}
	}
}
