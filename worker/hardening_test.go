package worker_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
)

// TestUnstorableOutputIsStored runs tasks whose error, traceback, stderr and result hold what
// PostgreSQL text columns refuse (NUL, lone surrogates, bytes that are not UTF-8) through the
// real worker and database. Each attempt ends with its outcome stored (escaped), and one slot
// is enough for all of them: none stays RUNNING holding it.
func TestUnstorableOutputIsStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(func(c *worker.Config) {
		c.Concurrency = 1
		c.Policy = lifecycle.Policy{MaxAttempts: 1}
	}, nil)
	cases := []struct {
		kind    string
		state   store.TaskState
		message string // a substring of error_message
		tb      string // a substring of error_traceback
		result  string // result_data, exactly
	}{
		{kind: "nul", state: store.StateFailed, message: `NUL\x00here`, tb: `ValueError: NUL\x00here`},
		{kind: "surrogate", state: store.StateFailed, message: `bad name caf\udce9 \udcff`, tb: `ValueError: bad name caf\udce9 \udcff`},
		{kind: "stderr", state: store.StateFailed, message: "entrypoint exited with status 1 without printing a result line: fatal\\x00error caf\ufffd",
			tb: "--- stderr ---\nfatal\\x00error caf\ufffd"},
		// json.dumps escapes both: result_data is Python's text, byte for byte
		{kind: "result", state: store.StateSucceeded, result: `"NUL\u0000 and caf\udce9 \udcff"`},
	}
	ids := make([]int64, len(cases))
	for i, c := range cases {
		ids[i] = enqueue(t, e.s, store.NewTask{CallablePath: "unstorable", ArgsJSON: `["` + c.kind + `"]`}).ID
	}
	for i, c := range cases {
		row := waitState(t, e.s, ids[i], store.StateFailed, store.StateSucceeded)
		if row.State != c.state {
			t.Errorf("%s: %s, want %s (error %q)", c.kind, row.State, c.state, str(row.ErrorMessage))
			continue
		}
		if c.message != "" && !strings.Contains(str(row.ErrorMessage), c.message) {
			t.Errorf("%s: error_message %q, want it to contain %q", c.kind, str(row.ErrorMessage), c.message)
		}
		if c.tb != "" && !strings.Contains(str(row.ErrorTraceback), c.tb) {
			t.Errorf("%s: error_traceback %q, want it to contain %q", c.kind, str(row.ErrorTraceback), c.tb)
		}
		if c.result != "" && str(row.ResultData) != c.result {
			t.Errorf("%s: result_data %q, want %q", c.kind, str(row.ResultData), c.result)
		}
	}
}

// TestRefusedOutcomeFreesTheSlot: when PostgreSQL refuses an outcome for what it holds (here
// a CHECK constraint an operator added), the attempt ends FAILED with UnstorableOutcome; when
// it refuses that too, the worker drops the execution anyway. Either way the worker's only
// slot is free for the next task.
func TestRefusedOutcomeFreesTheSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.sc.Pool.Exec(ctx, `ALTER TABLE django_ray_raytaskexecution
		ADD CONSTRAINT no_echo_success CHECK (callable_path <> 'tests.tasks.echo' OR state <> 'SUCCEEDED'),
		ADD CONSTRAINT add_never_ends CHECK (callable_path <> 'tests.tasks.add' OR state IN ('QUEUED', 'RUNNING'))`); err != nil {
		t.Fatal(err)
	}
	h := e.start(func(c *worker.Config) { c.Concurrency = 1 }, nil)
	echo := enqueue(t, e.s, store.NewTask{CallablePath: "echo", ArgsJSON: `[1]`})
	row := waitState(t, e.s, echo.ID, store.StateFailed)
	if msg := str(row.ErrorMessage); !strings.Contains(msg, "outcome could not be stored: PostgreSQL refused it") || !strings.Contains(msg, "no_echo_success") {
		t.Errorf("error_message %q does not say the outcome was refused", msg)
	}
	h.waitLines(1, "recorded as FAILED instead", "UnstorableOutcome")

	add := enqueue(t, e.s, store.NewTask{CallablePath: "add", ArgsJSON: `[1, 2]`})
	h.waitLines(1, "its slot is freed", `"task_id":`+strconv.FormatInt(add.ID, 10))
	next := enqueue(t, e.s, store.NewTask{CallablePath: "sleep", ArgsJSON: `[0]`})
	waitState(t, e.s, next.ID, store.StateSucceeded)
	// the refused row stays RUNNING, no longer heartbeated, for stuck-task recovery
	if got := waitState(t, e.s, add.ID, store.StateRunning); got.ClaimedByWorker == nil || *got.ClaimedByWorker != h.w.ID() {
		t.Fatalf("the refused row: %+v", got)
	}
}

// TestPoisonRowsInAClaimBatch: one claim batch holds rows nobody should have written
// (run_after and created_at '-infinity', args_json that is not JSON) between ordinary ones.
// Every row of the batch ends: the poison ones run or fail on their own, none is left RUNNING.
func TestPoisonRowsInAClaimBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	var ids []int64
	for i, set := range []string{"", `run_after = '-infinity', created_at = '-infinity'`, `args_json = '[1,'`, "", `state = 'weird'`} {
		row := enqueue(t, e.s, store.NewTask{CallablePath: "add", ArgsJSON: `[1, 2]`})
		if set != "" {
			if _, err := e.sc.Pool.Exec(ctx, `UPDATE django_ray_raytaskexecution SET `+set+` WHERE id = $1`, row.ID); err != nil {
				t.Fatal(err)
			}
		}
		if i != 4 {
			ids = append(ids, row.ID)
		}
	}
	e.start(nil, nil) // 4 slots: the four runnable rows are claimed in one batch
	want := []store.TaskState{store.StateSucceeded, store.StateSucceeded, store.StateFailed, store.StateSucceeded}
	for i, id := range ids {
		row := waitState(t, e.s, id, store.StateSucceeded, store.StateFailed)
		if row.State != want[i] {
			t.Errorf("row %d: %s (%s), want %s", id, row.State, str(row.ErrorMessage), want[i])
		}
	}
	if bad := rowOf(t, e, ids[2]); !strings.Contains(str(bad.ErrorMessage), "args_json is not valid JSON") {
		t.Errorf("the malformed row failed with %q", str(bad.ErrorMessage))
	}
}

func rowOf(t *testing.T, e env, id int64) store.Task {
	t.Helper()
	row, err := e.s.GetTask(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return row
}
