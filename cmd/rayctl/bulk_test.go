package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// runOpts is everything rayctlWith can set up for one in-process run.
type runOpts struct {
	vars  map[string]string
	stdin string
	tty   bool
	hooks recovery.Hooks
	ctx   context.Context
	clock func() time.Time
	// stdout, when set, replaces the stdout buffer (the result's stdout is then empty).
	stdout io.Writer
	// paceNow and paceSleep replace the clock and the wait of --rps.
	paceNow   func() time.Time
	paceSleep func(context.Context, time.Duration) error
}

// rayctlWith runs the app in-process with buffers, a fake terminal answer and hooks.
func rayctlWith(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	appMu.Lock()
	defer appMu.Unlock()
	var out, errb bytes.Buffer
	var stdout io.Writer = &out
	if o.stdout != nil {
		stdout = o.stdout
	}
	e := env{
		stdin: strings.NewReader(o.stdin), stdout: stdout, stderr: &errb,
		getenv:     func(k string) string { return o.vars[k] },
		stdinIsTTY: func() bool { return o.tty },
		hooks:      o.hooks,
		clock:      o.clock,
		paceNow:    o.paceNow,
		paceSleep:  o.paceSleep,
	}
	ctx := o.ctx
	if ctx == nil {
		ctx = t.Context()
	}
	code := e.run(ctx, append([]string{"rayctl"}, args...))
	return result{out.String(), errb.String(), code}
}

// oneLine checks stderr is one "rayctl: ..." line containing want.
func (r result) oneLine(t *testing.T, want string) result {
	t.Helper()
	if !strings.HasPrefix(r.stderr, "rayctl: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr %q, want one line containing %q", r.stderr, want)
	}
	return r
}

// snapshot is every task row as text, in id order: equal snapshots mean nothing was written.
func snapshot(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT row_to_json(t)::text FROM django_ray_raytaskexecution t ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// dirtyFailed stages a FAILED row with everything an attempt leaves behind.
func dirtyFailed(t *testing.T, s *store.Store, queue string, state store.TaskState) store.Task {
	t.Helper()
	return storetest.Insert(t, s, store.Task{
		State: state, QueueName: queue, CallablePath: "billing.tasks.charge", AttemptNumber: 3,
		ClaimedByWorker: storetest.Ptr("w-old"), RayJobID: storetest.Ptr("raysubmit_old"), RayAddress: storetest.Ptr("http://ray:8265"),
		StartedAt: storetest.Ago(2 * time.Hour), FinishedAt: storetest.Ago(time.Hour), LastHeartbeatAt: storetest.Ago(time.Hour),
		RunAfter: storetest.Ago(3 * time.Hour), ErrorMessage: storetest.Ptr("ValueError: card declined"),
		ErrorTraceback: storetest.Ptr("Traceback (most recent call last): ..."), ArgsJSON: "[42]", KwargsJSON: `{"cents": 100}`,
	})
}

func states(t *testing.T, s *store.Store, ids ...int64) []store.TaskState {
	t.Helper()
	var out []store.TaskState
	for _, id := range ids {
		task, err := s.GetTask(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, task.State)
	}
	return out
}

// TestRequeueConfirmationPaths: dry run, refusal without --yes (not a terminal; JSON
// output), a declined and an accepted prompt on a terminal. Only the accepted run writes,
// exactly the selected rows, with exactly the runbook's columns reset.
func TestRequeueConfirmationPaths(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN, "USER": "oncall"}
	var target []store.Task
	for i := 0; i < 5; i++ {
		target = append(target, dirtyFailed(t, s, "default", store.StateFailed))
	}
	other := []store.Task{
		dirtyFailed(t, s, "emails", store.StateFailed),
		dirtyFailed(t, s, "default", store.StateCancelled),
		storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w1")}),
		storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ResultData: storetest.Ptr("1")}),
	}
	args := []string{"requeue", "--state", "FAILED", "--queue", "default"}
	before := snapshot(t, sc.Pool)

	r := rayctlWith(t, runOpts{vars: vars}, append(args, "--dry-run")...).expect(t, exitOK)
	if !strings.Contains(r.stdout, "requeue: 5 tasks match (FAILED, queue default)") || !strings.Contains(r.stdout, "dry run: nothing changed") ||
		!strings.Contains(r.stdout, "ValueError: card declined") || strings.Count(r.stdout, "billing.tasks.charge") != 5 {
		t.Fatalf("dry run output:\n%s", r.stdout)
	}
	if snapshot(t, sc.Pool) != before {
		t.Fatal("dry run wrote")
	}

	r = rayctlWith(t, runOpts{vars: vars}, args...).expect(t, exitDeclined)
	r.oneLine(t, "refusing to requeue 5 tasks without --yes: stdin is not a terminal")
	if !strings.Contains(r.stdout, "5 tasks match") {
		t.Fatalf("the refusal should still show the plan:\n%s", r.stdout)
	}
	if snapshot(t, sc.Pool) != before {
		t.Fatal("refused run wrote")
	}

	// JSON output refuses without --yes even on a terminal, and prints the plan as JSON
	r = rayctlWith(t, runOpts{vars: vars, tty: true, stdin: "y\n"}, append(args, "-o", "json")...).expect(t, exitDeclined)
	r.oneLine(t, "output is json")
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil || raw["applied"] != false || raw["outcome"] != nil {
		t.Fatalf("refusal JSON %q: %v", r.stdout, err)
	}
	if snapshot(t, sc.Pool) != before {
		t.Fatal("refused JSON run wrote")
	}

	for _, answer := range []string{"n\n", "\n", "", "nope\n"} {
		r = rayctlWith(t, runOpts{vars: vars, tty: true, stdin: answer}, args...).expect(t, exitDeclined)
		// the prompt, then (after the answer the terminal echoes) the one-line error
		const prompt = "Requeue 5 tasks? [y/N] "
		if !strings.HasPrefix(r.stderr, prompt) {
			t.Fatalf("no prompt: %q", r.stderr)
		}
		result{stderr: strings.TrimPrefix(strings.TrimPrefix(r.stderr, prompt), "\n")}.oneLine(t, "requeue: declined; nothing changed")
		if snapshot(t, sc.Pool) != before {
			t.Fatalf("declined run (answer %q) wrote", answer)
		}
	}

	r = rayctlWith(t, runOpts{vars: vars, tty: true, stdin: "yes\n"}, append(args, "--reason", "INC-7 card processor fixed")...).expect(t, exitOK)
	if !strings.Contains(r.stderr, "Requeue 5 tasks? [y/N]") || !strings.Contains(r.stdout, "requeued 5 of 5") || !strings.Contains(r.stdout, "audit: entry") {
		t.Fatalf("accepted run:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	ctx := t.Context()
	for _, want := range target {
		got, _ := s.GetTask(ctx, want.ID)
		if got.State != store.StateQueued || got.StartedAt != nil || got.FinishedAt != nil || got.ErrorMessage != nil ||
			got.ErrorTraceback != nil || got.ClaimedByWorker != nil || got.RayJobID != nil || got.LastHeartbeatAt != nil || got.RunAfter != nil {
			t.Fatalf("task %d not reset: %+v", want.ID, got)
		}
		if got.AttemptNumber != 3 || got.ArgsJSON != "[42]" || got.KwargsJSON != `{"cents": 100}` || got.TaskID != want.TaskID ||
			!got.CreatedAt.Equal(want.CreatedAt) || got.QueueName != "default" {
			t.Fatalf("task %d lost data: %+v", want.ID, got)
		}
	}
	for _, o := range other {
		got, _ := s.GetTask(ctx, o.ID)
		if !reflect.DeepEqual(got, o) {
			t.Fatalf("task %d outside the selection changed:\n%+v\n%+v", o.ID, o, got)
		}
	}
	entries, _ := s.ListAudit(ctx, store.AuditFilter{})
	if len(entries) != 1 || *entries[0].Reason != "INC-7 card processor fixed" || !strings.HasPrefix(entries[0].Actor, "oncall@") || entries[0].Changed != 5 {
		t.Fatalf("audit: %+v", entries)
	}

	// --yes with JSON: one document with stable field names; --reset-attempts
	r = rayctlWith(t, runOpts{vars: vars}, "requeue", "--state", "CANCELLED", "--reset-attempts", "-o", "json", "--yes").expect(t, exitOK)
	var rep struct {
		DryRun  bool `json:"dry_run"`
		Applied bool `json:"applied"`
		Plan    struct {
			Action   string            `json:"action"`
			Matched  int64             `json:"matched"`
			Selected int               `json:"selected"`
			IDs      []int64           `json:"ids"`
			ByState  map[string]int64  `json:"selected_by_state"`
			Sample   []json.RawMessage `json:"sample"`
		} `json:"plan"`
		Outcome struct {
			Changed    int64            `json:"changed"`
			Skipped    int64            `json:"skipped"`
			ToStates   map[string]int64 `json:"to_states"`
			ChangedIDs []int64          `json:"changed_ids"`
			Batches    int              `json:"batches"`
			Longest    float64          `json:"longest_batch_seconds"`
			AuditID    *int64           `json:"audit_id"`
		} `json:"outcome"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if !rep.Applied || rep.DryRun || rep.Plan.Action != "requeue" || rep.Plan.Matched != 1 || rep.Plan.ByState["CANCELLED"] != 1 ||
		rep.Outcome.Changed != 1 || rep.Outcome.ToStates["QUEUED"] != 1 || rep.Outcome.ChangedIDs[0] != other[1].ID ||
		rep.Outcome.Batches != 1 || rep.Outcome.Longest <= 0 || rep.Outcome.AuditID == nil || len(rep.Plan.Sample) != 1 {
		t.Fatalf("json report: %+v", rep)
	}
	if got, _ := s.GetTask(ctx, other[1].ID); got.AttemptNumber != 1 {
		t.Fatalf("--reset-attempts: attempt %d", got.AttemptNumber)
	}
}

// TestRequeueLimitAndBatches: --limit caps the rows (oldest first), --batch sizes the
// transactions, and each batch is committed before the next starts.
func TestRequeueLimitAndBatches(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN}
	var ids []int64
	for i := 0; i < 25; i++ {
		ids = append(ids, dirtyFailed(t, s, "default", store.StateFailed).ID)
	}
	var sizes []int
	var committedBefore []int64
	hooks := recovery.Hooks{
		BeforeBatch: func(ctx context.Context, n int, _ []int64) error {
			// another connection sees the earlier batches already committed
			var q int64
			err := sc.Pool.QueryRow(ctx, `SELECT count(*) FROM django_ray_raytaskexecution WHERE state = 'QUEUED'`).Scan(&q)
			committedBefore = append(committedBefore, q)
			return err
		},
		AfterBatch: func(_ context.Context, b recovery.BatchStat) { sizes = append(sizes, b.Size) },
	}
	r := rayctlWith(t, runOpts{vars: vars, hooks: hooks}, "requeue", "--state", "FAILED", "--limit", "10", "--batch", "3", "--yes").expect(t, exitOK)
	if !reflect.DeepEqual(sizes, []int{3, 3, 3, 1}) || !reflect.DeepEqual(committedBefore, []int64{0, 3, 6, 9}) {
		t.Fatalf("batches %v, committed before each %v", sizes, committedBefore)
	}
	for _, want := range []string{"25 tasks match (FAILED); the oldest 10 selected (--limit 10), 15 left for another run", "requeued 10 of 10",
		"4 batches of up to 3 rows", "15 more match: run the command again to continue"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	got := states(t, s, ids...)
	for i, st := range got {
		if want := map[bool]store.TaskState{true: store.StateQueued, false: store.StateFailed}[i < 10]; st != want {
			t.Fatalf("task %d (#%d) is %s, want %s: the limit takes the oldest", ids[i], i, st, want)
		}
	}
	// the default limit is 100 and the default batch 100: the other 15 in one transaction
	sizes = nil
	rayctlWith(t, runOpts{vars: vars, hooks: recovery.Hooks{AfterBatch: hooks.AfterBatch}}, "requeue", "--state", "FAILED", "--yes").expect(t, exitOK)
	if !reflect.DeepEqual(sizes, []int{15}) {
		t.Fatalf("default batch: %v", sizes)
	}
	rayctlWith(t, runOpts{vars: vars}, "requeue", "--state", "FAILED", "--yes").expect(t, exitNoMatch).oneLine(t, "nothing matched the filter")
}

// TestRequeueSkipsConcurrentChanges stages, between selection and the first batch, a claim
// by a worker and a delete; both rows are skipped and counted, neither is overwritten.
func TestRequeueSkipsConcurrentChanges(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN}
	var ids []int64
	for i := 0; i < 6; i++ {
		ids = append(ids, dirtyFailed(t, s, "default", store.StateFailed).ID)
	}
	hooks := recovery.Hooks{BeforeBatch: func(ctx context.Context, n int, batch []int64) error {
		if n != 0 {
			return nil
		}
		if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_raytaskexecution SET state = 'RUNNING', claimed_by_worker = 'w-fast' WHERE id = $1`, batch[1]); err != nil {
			return err
		}
		_, err := sc.Pool.Exec(ctx, `DELETE FROM django_ray_raytaskexecution WHERE id = $1`, batch[4])
		return err
	}}
	r := rayctlWith(t, runOpts{vars: vars, hooks: hooks}, "requeue", "--state", "FAILED", "--batch", "5", "--yes", "-o", "json").expect(t, exitPartial)
	r.oneLine(t, "requeued 4, skipped 2 that changed after selection")
	var rep struct {
		Outcome struct {
			Changed    int64   `json:"changed"`
			Skipped    int64   `json:"skipped"`
			SkippedIDs []int64 `json:"skipped_ids"`
		} `json:"outcome"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Outcome.Changed != 4 || rep.Outcome.Skipped != 2 || !reflect.DeepEqual(rep.Outcome.SkippedIDs, []int64{ids[1], ids[4]}) {
		t.Fatalf("outcome %+v", rep.Outcome)
	}
	got, _ := s.GetTask(t.Context(), ids[1])
	if got.State != store.StateRunning || *got.ClaimedByWorker != "w-fast" {
		t.Fatalf("the claimed row was overwritten: %+v", got)
	}
	if want := []store.TaskState{store.StateQueued, store.StateRunning, store.StateQueued, store.StateQueued, store.StateQueued}; !reflect.DeepEqual(states(t, s, ids[0], ids[1], ids[2], ids[3], ids[5]), want) {
		t.Fatalf("states %v", states(t, s, ids[0], ids[1], ids[2], ids[3], ids[5]))
	}
	// text mode names the skipped rows
	dirtyFailed(t, s, "default", store.StateFailed)
	r = rayctlWith(t, runOpts{vars: vars, hooks: recovery.Hooks{BeforeBatch: func(ctx context.Context, _ int, batch []int64) error {
		_, err := sc.Pool.Exec(ctx, `UPDATE django_ray_raytaskexecution SET state = 'SUCCEEDED' WHERE id = $1`, batch[0])
		return err
	}}}, "requeue", "--state", "FAILED", "--yes").expect(t, exitPartial)
	if !strings.Contains(r.stdout, "requeued 0 of 1; skipped 1 that changed after selection") {
		t.Fatalf("text: %s", r.stdout)
	}
}

// TestBulkBadInput: every bad input is one clear line with a defined exit code, and writes
// nothing; SQL metacharacters in filters are only ever data.
func TestBulkBadInput(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN}
	dirtyFailed(t, s, "default", store.StateFailed)
	pct := storetest.Insert(t, s, store.Task{State: store.StateFailed, ErrorMessage: storetest.Ptr("disk 100% full")})
	storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w1")})
	before := snapshot(t, sc.Pool)

	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"requeue", "--state", "BROKEN"}, exitUsage, `unknown state "BROKEN"`},
		{[]string{"requeue", "--state", "RUNNING", "--yes"}, exitUsage, "cannot requeue RUNNING tasks: a worker owns them"},
		{[]string{"requeue", "--state", "failed,running", "--yes"}, exitUsage, "cannot requeue RUNNING tasks"},
		{[]string{"requeue", "--yes"}, exitUsage, "a filter is required"},
		{[]string{"requeue", "--limit", "50", "--yes"}, exitUsage, "a filter is required"},
		{[]string{"requeue", "--state", "FAILED", "--limit", "-1"}, exitUsage, "invalid limit -1 (want 1..10000)"},
		{[]string{"requeue", "--state", "FAILED", "--limit", "0"}, exitUsage, "invalid --limit 0 (want 1..10000)"},
		{[]string{"requeue", "--state", "FAILED", "--limit", "10001"}, exitUsage, "invalid limit 10001 (want 1..10000)"},
		{[]string{"requeue", "--state", "FAILED", "--limit", "99999999999999999999"}, exitUsage, `invalid --limit "99999999999999999999": want a whole number`},
		{[]string{"requeue", "--state", "FAILED", "--batch", "0"}, exitUsage, "invalid --batch 0"},
		{[]string{"requeue", "--state", "FAILED", "--batch", "20000"}, exitUsage, "invalid --batch 20000"},
		{[]string{"requeue", "--state", "FAILED", "--older-than", "5x"}, exitUsage, `invalid --older-than "5x": want a duration such as 90s, 10m, 2h or 3d`},
		{[]string{"requeue", "--state", "FAILED", "--older-than", "-5m"}, exitUsage, `invalid --older-than "-5m"`},
		{[]string{"requeue", "--id", "abc"}, exitUsage, `invalid --id "abc": want a task's row id`},
		{[]string{"requeue", "--id", "0"}, exitUsage, "invalid id 0"},
		{[]string{"requeue", "17"}, exitUsage, `unexpected argument "17" (select tasks with flags, e.g. --id 17)`},
		{[]string{"requeue", "--state", "FAILED", "--frobnicate"}, exitUsage, "unknown flag --frobnicate"},
		{[]string{"cancel", "--state", "FAILED"}, exitUsage, "cannot cancel FAILED tasks: they are finished already"},
		{[]string{"cancel", "--id", "1", "--stop", "--yes"}, exitUsage, "--stop needs a Ray address"},
		{[]string{"cancel", "--state", "QUEUED", "--lease-ttl", "0s"}, exitUsage, "invalid --lease-ttl"},
		{[]string{"requeue", "--state", "FAILED", "-o", "yaml"}, exitUsage, `invalid --output "yaml"`},
		// SQL metacharacters are data: nothing matches, nothing is dropped
		{[]string{"requeue", "--queue", "default'; DROP TABLE django_ray_raytaskexecution; --", "--yes"}, exitNoMatch, "nothing matched"},
		{[]string{"requeue", "--callable", "%", "--yes"}, exitNoMatch, "nothing matched"},
		{[]string{"requeue", "--callable", "x' OR '1'='1", "--yes"}, exitNoMatch, "nothing matched"},
		{[]string{"requeue", "--error-contains", "_%\\'; --", "--yes"}, exitNoMatch, "nothing matched"},
		{[]string{"cancel", "--queue", "default\") OR true; --", "--yes"}, exitNoMatch, "nothing matched"},
	}
	for _, tc := range cases {
		r := rayctlWith(t, runOpts{vars: vars}, tc.args...)
		if r.code != tc.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", tc.args, r.code, tc.code, r.stderr)
			continue
		}
		if !strings.HasPrefix(r.stderr, "rayctl: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: stderr %q, want one line containing %q", tc.args, r.stderr, tc.want)
		}
		if snapshot(t, sc.Pool) != before {
			t.Fatalf("%q wrote", tc.args)
		}
	}
	var exists bool
	if err := sc.Pool.QueryRow(t.Context(), `SELECT to_regclass('django_ray_raytaskexecution') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		t.Fatalf("the task table is gone: %v", err)
	}

	// a LIKE metacharacter in --error-contains is literal: only the row with a real "%" matches
	r := rayctlWith(t, runOpts{vars: vars}, "requeue", "--error-contains", "0% f", "--dry-run", "-o", "json").expect(t, exitOK)
	var plan struct {
		Plan struct {
			IDs []int64 `json:"ids"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || !reflect.DeepEqual(plan.Plan.IDs, []int64{pct.ID}) {
		t.Fatalf("literal %%: %s %v", r.stdout, err)
	}

	// a dead database: a clear error, exit 1
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	rayctlWith(t, runOpts{vars: map[string]string{"DATABASE_URL": "postgres://u:secret@" + dead + "/x"}}, "requeue", "--state", "FAILED", "--yes").
		expect(t, exitFailed).oneLine(t, "cannot connect to database "+dead)

	// --reason without the audit table is refused before anything is written
	if _, err := sc.Pool.Exec(t.Context(), `DROP TABLE rayctl_audit_task, rayctl_audit`); err != nil {
		t.Fatal(err)
	}
	rayctlWith(t, runOpts{vars: vars}, "requeue", "--state", "FAILED", "--yes", "--reason", "x").
		expect(t, exitFailed).oneLine(t, "--reason cannot be recorded: the rayctl_audit table does not exist (the audit trail is optional: `rayctl migrate up --audit` creates it)")
	if snapshot(t, sc.Pool) != before {
		t.Fatal("--reason refusal wrote")
	}
	// without --reason it runs and says it was not audited
	r = rayctlWith(t, runOpts{vars: vars}, "requeue", "--id", itoa(pct.ID), "--yes").expect(t, exitOK)
	if !strings.Contains(r.stdout, "audit: not recorded, the rayctl_audit table does not exist") {
		t.Fatalf("unaudited run: %s", r.stdout)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRequeueNamedIDs: ids that are missing or in another state are reported, and make the
// run partial.
func TestRequeueNamedIDs(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN}
	f := dirtyFailed(t, s, "default", store.StateFailed)
	running := storetest.Insert(t, s, store.Task{State: store.StateRunning})
	c := dirtyFailed(t, s, "default", store.StateCancelled)
	r := rayctlWith(t, runOpts{vars: vars}, "requeue", "--id", itoa(f.ID), "--id", itoa(running.ID)+","+itoa(c.ID), "--id", "999999", "--yes").expect(t, exitPartial)
	r.oneLine(t, "requeued 1; 3 named tasks were missing or not eligible")
	for _, want := range []string{"not found: 999999", itoa(running.ID) + " (RUNNING)", itoa(c.ID) + " (CANCELLED)", "see --state"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if got := states(t, s, f.ID, running.ID, c.ID); !reflect.DeepEqual(got, []store.TaskState{store.StateQueued, store.StateRunning, store.StateCancelled}) {
		t.Fatalf("states %v", got)
	}
}

func TestCancelCommand(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	vars := map[string]string{"DATABASE_URL": sc.DSN}
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "alive", Hostname: "h", QueueName: "default"}); err != nil {
		t.Fatal(err)
	}
	q1 := storetest.Insert(t, s, store.Task{QueueName: "reports"})
	q2 := storetest.Insert(t, s, store.Task{QueueName: "reports"})
	run := storetest.Insert(t, s, store.Task{QueueName: "reports", State: store.StateRunning, ClaimedByWorker: storetest.Ptr("alive"), StartedAt: storetest.Ago(time.Minute),
		RayJobID: storetest.Ptr("raysubmit_run")})
	keep := storetest.Insert(t, s, store.Task{QueueName: "default"})
	r := rayctlWith(t, runOpts{vars: vars}, "cancel", "--queue", "reports", "--yes", "-o", "jsonl").expect(t, exitOK)
	if strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("jsonl is not one line: %q", r.stdout)
	}
	var rep struct {
		Outcome struct {
			ToStates  map[string]int64 `json:"to_states"`
			Unstopped []string         `json:"unstopped_ray_jobs"`
		} `json:"outcome"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || !reflect.DeepEqual(rep.Outcome.ToStates, map[string]int64{"CANCELLED": 2, "CANCELLING": 1}) ||
		!reflect.DeepEqual(rep.Outcome.Unstopped, []string{"raysubmit_run"}) {
		t.Fatalf("outcome %+v %v", rep.Outcome, err)
	}
	if got := states(t, s, q1.ID, q2.ID, run.ID, keep.ID); !reflect.DeepEqual(got, []store.TaskState{store.StateCancelled, store.StateCancelled, store.StateCancelling, store.StateQueued}) {
		t.Fatalf("states %v", got)
	}
	// the live worker's CANCELLING row is its own; a dead worker's is finalized, its job reported
	dead := storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("gone"), RayJobID: storetest.Ptr("raysubmit_zz")})
	r = rayctlWith(t, runOpts{vars: vars}, "cancel", "--state", "CANCELLING", "--yes").expect(t, exitOK)
	for _, want := range []string{"cancel: 1 task matches (CANCELLING)", "cancelled 1 of 1 (1 now CANCELLED)", "Ray jobs not stopped (add --stop to stop them, or stop them in the Ray dashboard if they must not run on): raysubmit_zz"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if got := states(t, s, run.ID, dead.ID); !reflect.DeepEqual(got, []store.TaskState{store.StateCancelling, store.StateCancelled}) {
		t.Fatalf("states %v", got)
	}
	// prompt wording on a terminal
	r = rayctlWith(t, runOpts{vars: vars, tty: true, stdin: "n\n"}, "cancel", "--id", itoa(keep.ID)).expect(t, exitDeclined)
	if !strings.Contains(r.stderr, "Cancel 1 task? [y/N] ") {
		t.Fatalf("prompt: %q", r.stderr)
	}
}

func TestAuditCommands(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN, "USER": "alice"}
	f := dirtyFailed(t, s, "default", store.StateFailed)
	rayctlWith(t, runOpts{vars: vars}, "requeue", "--id", itoa(f.ID), "--yes", "--reason", "INC-9").expect(t, exitOK)
	r := rayctlWith(t, runOpts{vars: vars}, "audit", "ls", "--task", itoa(f.ID)).expect(t, exitOK)
	if !strings.Contains(r.stdout, "INC-9") || !strings.Contains(r.stdout, "alice@") || !strings.Contains(r.stdout, "requeue") {
		t.Fatalf("audit ls:\n%s", r.stdout)
	}
	r = rayctlWith(t, runOpts{vars: vars}, "audit", "ls", "--task", "999999", "-o", "json").expect(t, exitOK)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("filtered audit: %q", r.stdout)
	}
	r = rayctlWith(t, runOpts{vars: vars}, "audit", "show", "1", "-o", "json").expect(t, exitOK)
	var e struct {
		Reason string              `json:"reason"`
		Tasks  []store.AuditChange `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Reason != "INC-9" || len(e.Tasks) != 1 || e.Tasks[0].ID != f.ID || e.Tasks[0].From != store.StateFailed {
		t.Fatalf("audit show: %s %v", r.stdout, err)
	}
	rayctlWith(t, runOpts{vars: vars}, "audit", "show", "42").expect(t, exitNoMatch).oneLine(t, "no entry 42")
	rayctlWith(t, runOpts{vars: vars}, "audit", "ls", "--action", "delete").expect(t, exitUsage).oneLine(t, `invalid --action "delete"`)
}

func TestBulkHelpDocumentsExitCodes(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"requeue", "cancel", "inspect-leases", "doctor", "tasks ls", "tasks show", "metrics serve", "completion"} {
		r := rayctl(t, nil, "", append(strings.Fields(cmd), "--help")...).expect(t, exitOK)
		if !strings.Contains(r.stdout, "EXIT CODES") {
			t.Errorf("%s --help lacks EXIT CODES", cmd)
		}
	}
	r := rayctl(t, nil, "", "requeue", "--help").expect(t, exitOK)
	for _, want := range []string{"--reset-attempts", "--dry-run", "refuses without --yes", "error_message, error_traceback, claimed_by_worker, ray_job_id", "4  declined"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("requeue --help lacks %q", want)
		}
	}
}

// blockingReader never answers, like a person who presses Ctrl-C instead.
type blockingReader struct{ release chan struct{} }

func (b blockingReader) Read([]byte) (int, error) { <-b.release; return 0, context.Canceled }

// TestPromptInterrupted: Ctrl-C at the prompt declines (main cancels the context on SIGINT).
func TestPromptInterrupted(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	f := dirtyFailed(t, s, "default", store.StateFailed)
	before := snapshot(t, sc.Pool)
	ctx, cancel := context.WithCancel(t.Context())
	in := blockingReader{release: make(chan struct{})}
	defer close(in.release)
	var out, errb bytes.Buffer
	e := env{stdin: in, stdout: &out, stderr: &errb, getenv: func(k string) string { return map[string]string{"DATABASE_URL": sc.DSN}[k] },
		stdinIsTTY: func() bool { return true }}
	time.AfterFunc(200*time.Millisecond, cancel)
	appMu.Lock()
	code := e.run(ctx, []string{"rayctl", "requeue", "--id", itoa(f.ID)})
	appMu.Unlock()
	if code != exitDeclined || !strings.Contains(errb.String(), "declined; nothing changed") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if snapshot(t, sc.Pool) != before {
		t.Fatal("an interrupted prompt wrote")
	}
}

// TestRequeueRayJobs: with a Ray address, requeue stops a task's old Ray job and waits until
// Ray reports it over before requeueing the task; Ray down refuses before writing; without a
// Ray address the plan warns that nobody checked the jobs. (A job that cannot be confirmed
// over keeps its task unchanged: recovery's TestRequeueEndsRayJobsFirst.)
func TestRequeueRayJobs(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	fake := raytest.New(t)
	row := dirtyFailed(t, s, "default", store.StateFailed) // names raysubmit_old
	fake.AddJob(raytest.Job{SubmissionID: "raysubmit_old", Status: raytest.Running})
	vars := map[string]string{"DATABASE_URL": sc.DSN, "USER": "oncall", "RAY_ADDRESS": "auto"}

	r := rayctlWith(t, runOpts{vars: vars}, "requeue", "--id", itoa(row.ID), "--dry-run").expect(t, exitOK)
	if !strings.Contains(r.stdout, "warning: 1 selected task names a Ray job that rayctl did not check (give --ray-address or set RAY_ADDRESS to stop them first)") {
		t.Fatalf("no warning:\n%s", r.stdout)
	}
	dead := "http://127.0.0.1:1"
	rayctlWith(t, runOpts{vars: vars}, "requeue", "--id", itoa(row.ID), "--ray-address", dead, "--yes").expect(t, exitFailed).
		oneLine(t, "requeue: 1 selected task names a Ray job to stop first, but Ray at "+dead+" does not answer")
	if got := states(t, s, row.ID); got[0] != store.StateFailed {
		t.Fatalf("changed with Ray down: %v", got)
	}

	vars["RAY_ADDRESS"] = fake.URL
	r = rayctlWith(t, runOpts{vars: vars}, "requeue", "--id", itoa(row.ID), "--yes").expect(t, exitOK)
	for _, want := range []string{"1 task names a Ray job: each job is stopped and confirmed over at " + fake.URL, "requeued 1 of 1",
		"1 Ray job confirmed over (stopped first where still running) before their tasks changed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if j, _ := fake.Job("raysubmit_old"); j.Status != raytest.Stopped || j.StopRequests != 1 {
		t.Fatalf("job %+v", j)
	}
	if got := states(t, s, row.ID); got[0] != store.StateQueued {
		t.Fatalf("%v", got)
	}
}
