package store_test

import (
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

var ptr = storetest.Ptr[string]

func TestExceptionType(t *testing.T) {
	t.Parallel()
	tb := "Traceback (most recent call last):\n  File \"/app/x.py\", line 3, in f\n    int('x')\nValueError: invalid literal for int() with base 10: 'x'\n"
	tests := []struct {
		name      string
		traceback *string
		message   *string
		want      string
	}{
		// django-ray 0.2.0's get_result derivation
		{"builtin from traceback", ptr(tb), ptr("invalid literal"), "builtins.ValueError"},
		{"dotted class", ptr("Traceback...\nmyapp.errors.PaymentDeclined: card declined"), ptr("card declined"), "myapp.errors.PaymentDeclined"},
		{"trailing blank lines and CRLF", ptr("Traceback\r\nKeyError: 'k'\r\n\r\n"), ptr("'k'"), "builtins.KeyError"},
		{"no colon on the last line", ptr("Traceback\nSystemExit"), ptr("x"), "builtins.Exception"},
		{"colon first", ptr("Traceback\n: odd"), ptr("x"), "builtins."},
		{"no traceback", nil, ptr("something broke: badly"), "builtins.Exception"},
		{"empty traceback", ptr(""), ptr("oops"), "builtins.Exception"},
		{"whitespace traceback", ptr(" \n\t "), ptr("oops"), "builtins.Exception"},
		{"only the first colon counts", ptr("Traceback\nurllib.error.URLError: <urlopen error: refused>"), ptr("x"), "urllib.error.URLError"},
		// no error message: no failure, whatever the traceback says (get_result too)
		{"nothing", nil, nil, ""},
		{"traceback without message", ptr(tb), ptr(""), ""},
		// what the workers record themselves, as the retry policy saw it
		{"lost", nil, ptr(store.LostMessage), "TaskLost"},
		{"lost: Ray forgot the job", nil, ptr("Ray has no job raysubmit_t1_a1_x (HTTP 404) after it was seen: the Ray head restarted"), "TaskLost"},
		{"timed out", nil, ptr("Task timed out after 30 seconds"), "TaskTimedOut"},
		{"not quite a timeout", nil, ptr("Task timed out after 30 seconds, sort of"), "builtins.Exception"},
		{"invalid row", nil, ptr("invalid task row: args_json is not a JSON array: {}"), "InvalidTask"},
		{"unstorable", nil, ptr("The attempt ended (failed), but its outcome could not be stored: PostgreSQL refused it: x"), "UnstorableOutcome"},
		{"ray core disconnect", nil, ptr("Ray connection lost"), "RayConnectionError"},
		{"ray core disconnect detail", nil, ptr("Ray connection lost: raylet died"), "RayConnectionError"},
		{"0.2.0 reconnect", nil, ptr("Ray connection lost - task state unknown"), "RayConnectionError"},
		{"ray job failed, logs as traceback", ptr("some log\nModuleNotFoundError: No module named 'x'"), ptr("Ray job failed"), "RayJobFailed"},
		{"ray's message", ptr("log"), ptr("Job entrypoint command failed with exit code 1, last available logs:\nx"), "RayJobFailed"},
		{"process runner", ptr("--- stderr ---\nKilled\n"), ptr("entrypoint was killed by signal killed without printing a result line"), "RayJobFailed"},
		{"submission, rayworker", nil, ptr("Failed to submit to Ray: connection refused"), "RayJobFailed"},
		{"submission, 0.2.0 with its traceback", ptr("Traceback\nrequests.exceptions.ConnectionError: refused"), ptr("Failed to submit to Ray: refused"), "requests.exceptions.ConnectionError"},
	}
	s, _ := storetest.New(t)
	ctx := t.Context()
	for _, tt := range tests {
		if got := store.ExceptionType(tt.traceback, tt.message); got != tt.want {
			t.Errorf("%s: ExceptionType = %q, want %q", tt.name, got, tt.want)
		}
		// the SQL used for grouping must agree with the Go function on every case
		row := storetest.Insert(t, s, store.Task{CallablePath: "parity." + tt.name, State: store.StateFailed,
			ErrorTraceback: tt.traceback, ErrorMessage: tt.message, FinishedAt: storetest.Ago(time.Second)})
		groups, err := s.FailureGroups(ctx, store.FailureParams{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, g := range groups {
			if g.CallablePath == row.CallablePath {
				found = true
				if g.ExceptionType != tt.want {
					t.Errorf("%s: SQL exception type %q, want %q", tt.name, g.ExceptionType, tt.want)
				}
			}
		}
		if !found {
			t.Errorf("%s: no failure group for the row", tt.name)
		}
	}
}

// testThresholds are the dashboard thresholds the tests read with (recovery.Thresholds gives
// the real ones; store has none of its own).
var testThresholds = store.DashboardParams{LeaseTTL: time.Minute, StuckAfter: 10 * time.Minute,
	FailureWindow: 5 * time.Minute, StallAfter: 2 * time.Minute, ResultWindow: time.Hour}

// withThresholds fills p's zero thresholds from testThresholds.
func withThresholds(p store.DashboardParams) store.DashboardParams {
	t := testThresholds
	t.Buckets, t.HeartbeatSlack, t.WithTotals = p.Buckets, p.HeartbeatSlack, p.WithTotals
	for _, f := range []struct{ v, def *time.Duration }{{&p.LeaseTTL, &t.LeaseTTL}, {&p.StuckAfter, &t.StuckAfter},
		{&p.FailureWindow, &t.FailureWindow}, {&p.StallAfter, &t.StallAfter}, {&p.ResultWindow, &t.ResultWindow}} {
		if *f.v > 0 {
			*f.def = *f.v
		}
	}
	return t
}

// TestDashboardNeedsThresholds: the store has no signal thresholds of its own to fall back on.
func TestDashboardNeedsThresholds(t *testing.T) {
	s, _ := storetest.New(t)
	p := testThresholds
	p.StuckAfter = 0
	if _, err := s.Dashboard(t.Context(), p); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Dashboard without StuckAfter: %v, want ErrInvalid", err)
	}
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	ins := func(n int, row store.Task) {
		for range n {
			storetest.Insert(t, s, row)
		}
	}
	ago := storetest.Ago
	w := ptr
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "live", Hostname: "h1", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "stale", Hostname: "h2", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "gone", Hostname: "h3", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '5 minutes' WHERE worker_id IN ('stale', 'gone')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeactivateLease(ctx, "gone"); err != nil {
		t.Fatal(err)
	}

	// default: 3 runnable (oldest 10m), 2 deferred, 1 retrying (deferred too) after a failure
	ins(1, store.Task{QueueName: "default", CreatedAt: time.Now().Add(-10 * time.Minute)})
	ins(2, store.Task{QueueName: "default", CreatedAt: time.Now().Add(-time.Minute)})
	ins(2, store.Task{QueueName: "default", RunAfter: storetest.Ptr(time.Now().Add(time.Hour))})
	ins(1, store.Task{QueueName: "default", CallablePath: "app.flaky", AttemptNumber: 2, ErrorMessage: w("boom"),
		RunAfter: storetest.Ptr(time.Now().Add(30 * time.Second)), CreatedAt: time.Now().Add(-2 * time.Minute)})
	// running: one fresh on a live worker, one stale on a stale worker, one with no owner
	ins(1, store.Task{QueueName: "default", State: store.StateRunning, ClaimedByWorker: w("live"), StartedAt: ago(time.Minute), LastHeartbeatAt: ago(time.Second)})
	ins(1, store.Task{QueueName: "emails", State: store.StateRunning, ClaimedByWorker: w("stale"), StartedAt: ago(time.Hour), LastHeartbeatAt: ago(20 * time.Minute)})
	ins(1, store.Task{QueueName: "emails", State: store.StateRunning, StartedAt: ago(time.Minute)})
	// cancelling: one on a live worker (fine), one on a deactivated worker (stuck)
	ins(1, store.Task{QueueName: "emails", State: store.StateCancelling, ClaimedByWorker: w("live"), StartedAt: ago(time.Minute), LastHeartbeatAt: ago(time.Second)})
	ins(1, store.Task{QueueName: "emails", State: store.StateCancelling, ClaimedByWorker: w("gone"), StartedAt: ago(time.Minute), LastHeartbeatAt: ago(time.Minute)})
	// finished: throughput buckets. 2 succeeded in the current minute, 1 failed 3.5 minutes ago,
	// 1 lost 30s ago, 1 succeeded 2 hours ago (outside), 1 succeeded recently without heartbeat
	// (not found through the heartbeat index: documented).
	ins(2, store.Task{QueueName: "default", State: store.StateSucceeded, LastHeartbeatAt: ago(40 * time.Second), FinishedAt: ago(20 * time.Second)})
	ins(1, store.Task{QueueName: "default", State: store.StateFailed, CallablePath: "app.flaky", LastHeartbeatAt: ago(4 * time.Minute),
		FinishedAt: ago(210 * time.Second), ErrorMessage: w("boom")})
	ins(1, store.Task{QueueName: "emails", State: store.StateLost, CallablePath: "app.flaky", LastHeartbeatAt: ago(15 * time.Minute),
		FinishedAt: ago(30 * time.Second), ErrorMessage: w(store.LostMessage)})
	ins(1, store.Task{QueueName: "default", State: store.StateSucceeded, LastHeartbeatAt: ago(2*time.Hour + time.Minute), FinishedAt: ago(2 * time.Hour)})
	ins(1, store.Task{QueueName: "default", State: store.StateSucceeded, FinishedAt: ago(time.Minute)})
	ins(3, store.Task{QueueName: "batch", State: store.StateCancelled, FinishedAt: ago(time.Hour)})
	// an old failure outside the failure window
	ins(1, store.Task{QueueName: "batch", State: store.StateFailed, CallablePath: "app.old", LastHeartbeatAt: ago(48 * time.Hour),
		FinishedAt: ago(48 * time.Hour), ErrorMessage: w("old")})

	d, err := s.Dashboard(ctx, withThresholds(store.DashboardParams{Buckets: 5}))
	if err != nil {
		t.Fatal(err)
	}
	if d.HasTotals {
		t.Fatal("totals counted without WithTotals")
	}
	wantStates := map[store.TaskState]int64{store.StateQueued: 6, store.StateRunning: 3, store.StateCancelling: 2, store.StateFailed: 2, store.StateLost: 1}
	if !reflect.DeepEqual(d.States, wantStates) {
		t.Errorf("states %v, want %v", d.States, wantStates)
	}
	if d.Leases != (store.LeaseCounts{Live: 1, Stale: 1, Inactive: 1}) {
		t.Errorf("leases %+v", d.Leases)
	}
	if d.StaleRunning != 1 || d.OrphanedRunning != 2 || d.StuckCancelling != 1 {
		t.Errorf("stale running %d (want 1), orphaned running %d (want 2: no owner, stale owner), stuck cancelling %d (want 1)",
			d.StaleRunning, d.OrphanedRunning, d.StuckCancelling)
	}
	byName := map[string]store.QueueActivity{}
	for _, q := range d.Queues {
		byName[q.Name] = q
	}
	def := byName["default"]
	if def.Queued != 6 || def.Deferred != 3 || def.Running != 1 || def.Failed != 1 || def.Lost != 0 {
		t.Errorf("default queue %+v", def)
	}
	if def.OldestQueuedAt == nil || d.Now.Sub(*def.OldestQueuedAt) < 9*time.Minute || d.Now.Sub(*def.OldestQueuedAt) > 11*time.Minute {
		t.Errorf("default oldest runnable %v (now %v), want about 10m ago", def.OldestQueuedAt, d.Now)
	}
	if want := []int64{0, 1, 0, 0, 2}; !reflect.DeepEqual(def.Done, want) {
		t.Errorf("default done per minute %v, want %v", def.Done, want)
	}
	if want := []int64{0, 1, 0, 0, 0}; !reflect.DeepEqual(def.Failing, want) {
		t.Errorf("default failing per minute %v, want %v", def.Failing, want)
	}
	em := byName["emails"]
	if em.Running != 2 || em.Cancelling != 2 || em.Lost != 1 || em.Queued != 0 || em.OldestQueuedAt != nil {
		t.Errorf("emails queue %+v", em)
	}
	if want := []int64{0, 0, 0, 0, 1}; !reflect.DeepEqual(em.Failing, want) {
		t.Errorf("emails failing per minute %v, want %v", em.Failing, want)
	}
	if _, ok := byName["batch"]; !ok {
		t.Errorf("batch queue (only old failures) missing: %v", d.Queues)
	}
	wantFails := []store.CallableFailures{{CallablePath: "app.flaky", Failed: 1, Lost: 1, Retrying: 1}}
	if !reflect.DeepEqual(d.RecentFailures, wantFails) {
		t.Errorf("recent failures %+v, want %+v", d.RecentFailures, wantFails)
	}

	d, err = s.Dashboard(ctx, withThresholds(store.DashboardParams{WithTotals: true}))
	if err != nil {
		t.Fatal(err)
	}
	if !d.HasTotals || d.States[store.StateSucceeded] != 4 || d.States[store.StateCancelled] != 3 || len(d.Queues[0].Done) != store.DefaultBuckets {
		t.Errorf("with totals: %v %v", d.HasTotals, d.States)
	}
}

func TestDashboardEmpty(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	d, err := s.Dashboard(t.Context(), withThresholds(store.DashboardParams{WithTotals: true}))
	if err != nil {
		t.Fatal(err)
	}
	if d.Now.IsZero() || len(d.Queues) != 0 || len(d.States) != len(store.AllStates) {
		t.Fatalf("empty dashboard: %+v", d)
	}
	for st, n := range d.States {
		if n != 0 {
			t.Errorf("%s = %d on an empty table", st, n)
		}
	}
}

func TestFailureGroups(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	ago := storetest.Ago
	var valueErrIDs []int64
	for i := range 3 {
		r := storetest.Insert(t, s, store.Task{CallablePath: "app.charge", QueueName: []string{"default", "payments", "default"}[i],
			State: store.StateFailed, ErrorMessage: ptr("bad amount " + string(rune('a'+i))),
			ErrorTraceback:  ptr("Traceback\nValueError: bad amount " + string(rune('a'+i))),
			LastHeartbeatAt: ago(time.Minute), FinishedAt: ago(time.Duration(3-i) * time.Second)})
		valueErrIDs = append(valueErrIDs, r.ID)
	}
	storetest.Insert(t, s, store.Task{CallablePath: "app.charge", State: store.StateLost, ErrorMessage: ptr(store.LostMessage),
		LastHeartbeatAt: ago(time.Minute), FinishedAt: ago(time.Second)})
	storetest.Insert(t, s, store.Task{CallablePath: "app.mail", State: store.StateFailed, ErrorMessage: ptr("smtp down"),
		ErrorTraceback: ptr("Traceback\nsmtplib.SMTPException: smtp down"), LastHeartbeatAt: ago(3 * time.Hour), FinishedAt: ago(3 * time.Hour)})
	// not failures
	storetest.Insert(t, s, store.Task{CallablePath: "app.charge", State: store.StateQueued, AttemptNumber: 2, ErrorMessage: ptr("bad amount")})
	storetest.Insert(t, s, store.Task{CallablePath: "app.charge", State: store.StateSucceeded})

	all, err := s.FailureGroups(ctx, store.FailureParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("groups %+v, want 3", all)
	}
	g := all[0]
	if g.CallablePath != "app.charge" || g.ExceptionType != "builtins.ValueError" || g.Count != 3 || g.Failed != 3 || g.Lost != 0 ||
		!reflect.DeepEqual(g.Queues, []string{"default", "payments"}) || g.LatestID != valueErrIDs[2] || g.LatestError != "bad amount c" {
		t.Errorf("largest group %+v", g)
	}
	var types []string
	for _, g := range all[1:] {
		types = append(types, g.CallablePath+" "+g.ExceptionType)
	}
	sort.Strings(types)
	if want := []string{"app.charge TaskLost", "app.mail smtplib.SMTPException"}; !reflect.DeepEqual(types, want) {
		t.Errorf("other groups %v, want %v", types, want)
	}

	recent, err := s.FailureGroups(ctx, store.FailureParams{Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(recent) != 2 {
		t.Errorf("groups within an hour: %+v, want the two app.charge groups", recent)
	}

	ids, total, err := s.FailureGroupTaskIDs(ctx, "app.charge", "builtins.ValueError", store.FailureParams{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if total != 3 || !reflect.DeepEqual(ids, []int64{valueErrIDs[2], valueErrIDs[1]}) {
		t.Errorf("group ids %v of %d, want newest two of 3 %v", ids, total, valueErrIDs)
	}
	ids, total, err = s.FailureGroupTaskIDs(ctx, "app.mail", "smtplib.SMTPException", store.FailureParams{Window: time.Hour})
	if err != nil || len(ids) != 0 || total != 0 {
		t.Errorf("window excludes the old failure: %v %d %v", ids, total, err)
	}
}

func TestWorkers(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	for _, id := range []string{"live", "stale", "off"} {
		if err := s.UpsertLease(ctx, store.Lease{WorkerID: id, Hostname: "host-" + id, PID: 7, QueueName: "default"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '10 minutes' WHERE worker_id = 'stale'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeactivateLease(ctx, "off"); err != nil {
		t.Fatal(err)
	}
	storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: ptr("live")})
	storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: ptr("stale")})
	storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: ptr("stale")})
	storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: ptr("ghost")})
	storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ClaimedByWorker: ptr("live")})

	now, ws, err := s.Workers(ctx, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if now.IsZero() {
		t.Error("no database clock")
	}
	type row struct {
		id              string
		status          store.LeaseStatus
		running, cancel int64
		hasLease        bool
	}
	var got []row
	for _, w := range ws {
		got = append(got, row{w.WorkerID, w.Status, w.Running, w.Cancelling, w.Lease != nil})
	}
	want := []row{
		{"ghost", store.LeaseMissing, 1, 0, false},
		{"stale", store.LeaseStale, 1, 1, true},
		{"live", store.LeaseLive, 1, 0, true},
		{"off", store.LeaseInactive, 0, 0, true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("workers\n got %+v\nwant %+v", got, want)
	}
	if l := ws[1].Lease; l == nil || l.Hostname != "host-stale" || l.PID != 7 || !l.IsActive {
		t.Errorf("stale lease %+v", l)
	}
}
