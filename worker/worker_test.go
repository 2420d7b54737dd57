package worker_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/pyjson"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/procrunner"
	"github.com/rayctl/rayctl/worker/workertest"
)

func TestSuccessWithArgsAndKwargs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.start(nil, nil)
	add := enqueue(t, e.s, store.NewTask{CallablePath: "add", ArgsJSON: "[2, 3]"})
	echo := enqueue(t, e.s, store.NewTask{CallablePath: "echo", ArgsJSON: `[1, "caf\u00e9", 1e16, [true, null]]`,
		KwargsJSON: `{"z": 0.00001, "a": {"nested": "\ud83d\ude00"}}`})

	got := waitState(t, e.s, add.ID, store.StateSucceeded)
	if str(got.ResultData) != "5" || got.ResultReference != nil || str(got.ClaimedByWorker) != h.w.ID() ||
		got.FinishedAt == nil || got.ErrorMessage != nil || got.AttemptNumber != 1 {
		t.Fatalf("add: %+v", got)
	}
	got = waitState(t, e.s, echo.ID, store.StateSucceeded)
	want := `{"args": [1, "caf\u00e9", 1e+16, [true, null]], "kwargs": {"z": 1e-05, "a": {"nested": "\ud83d\ude00"}}}`
	if str(got.ResultData) != want {
		t.Fatalf("echo result\n got %s\nwant %s", str(got.ResultData), want)
	}
	// one event per transition, with task id, attempt and queue
	for _, msg := range []string{"task claimed", "task succeeded"} {
		lines := h.waitLines(1, `"msg":"`+msg+`"`, fmt.Sprintf(`"task_id":%d,`, add.ID))
		if !strings.Contains(lines[0], `"attempt":1`) || !strings.Contains(lines[0], `"queue":"default"`) {
			t.Fatalf("%q log line: %q", msg, lines)
		}
	}
}

// TestRetryColumns: a failed attempt goes back to QUEUED with attempt+1, run_after = now +
// min(base*2^attempt, 1h), the error and traceback recorded, and the claim cleared.
func TestRetryColumns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(func(c *worker.Config) { c.Policy = lifecycle.Policy{MaxAttempts: 3, Backoff: 100 * time.Second} }, nil)
	before := dbNow(t, e.s)
	task := enqueue(t, e.s, store.NewTask{CallablePath: "fail", ArgsJSON: `["boom"]`})
	var got store.Task
	workertest.Eventually(t, 30*time.Second, "the retry", func() bool {
		got = workertest.Row(t, e.s, task.ID)
		return got.AttemptNumber == 2
	})
	after := dbNow(t, e.s)
	if got.State != store.StateQueued || got.ClaimedByWorker != nil || got.StartedAt != nil || got.FinishedAt != nil ||
		str(got.ErrorMessage) != "boom" || !strings.Contains(str(got.ErrorTraceback), "ValueError: boom") || got.RunAfter == nil {
		t.Fatalf("%+v", got)
	}
	delay := 200 * time.Second // 100 s * 2^1
	if got.RunAfter.Before(before.Add(delay)) || got.RunAfter.After(after.Add(delay)) {
		t.Fatalf("run_after %s, want between %s and %s", got.RunAfter, before.Add(delay), after.Add(delay))
	}
}

// TestRetriedWithBackoffThenFailed: an application exception is retried after the backoff
// until MAX_TASK_ATTEMPTS, then ends FAILED with its traceback.
func TestRetriedWithBackoffThenFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := 150 * time.Millisecond
	h := e.start(func(c *worker.Config) { c.Policy = lifecycle.Policy{MaxAttempts: 3, Backoff: base} }, nil)
	log := filepath.Join(h.dir, "attempts")
	task := enqueue(t, e.s, store.NewTask{CallablePath: "fail", ArgsJSON: fmt.Sprintf(`["boom", %q]`, log)})
	got := waitState(t, e.s, task.ID, store.StateFailed)
	if got.AttemptNumber != 3 || str(got.ErrorMessage) != "boom" || !strings.Contains(str(got.ErrorTraceback), "raise ValueError(msg)") || got.FinishedAt == nil {
		t.Fatalf("%+v", got)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var starts []float64
	for _, f := range strings.Fields(string(b)) {
		v, _ := strconv.ParseFloat(f, 64)
		starts = append(starts, v)
	}
	if len(starts) != 3 {
		t.Fatalf("ran %d times, want 3", len(starts))
	}
	// attempt 1 fails -> wait base*2, attempt 2 fails -> wait base*4: never earlier
	for i, want := range []time.Duration{2 * base, 4 * base} {
		gap := time.Duration((starts[i+1] - starts[i]) * float64(time.Second))
		if gap < want {
			t.Errorf("attempt %d started %s after attempt %d, before its backoff of %s", i+2, gap, i+1, want)
		}
	}
	h.waitLines(2, `"msg":"task failed, retry scheduled"`)
}

func TestDenylistedNotRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(func(c *worker.Config) {
		c.Policy = lifecycle.Policy{MaxAttempts: 3, Denylist: []string{"tests.tasks.NoRetryError", "ValueError"}}
	}, nil)
	for _, callable := range []string{"no_retry", "fail"} {
		task := enqueue(t, e.s, store.NewTask{CallablePath: callable})
		got := waitState(t, e.s, task.ID, store.StateFailed)
		if got.AttemptNumber != 1 || got.ErrorMessage == nil || got.ErrorTraceback == nil {
			t.Fatalf("%s: %+v", callable, got)
		}
	}
}

func TestTimeoutIsTerminalAndKillsTheProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.start(nil, nil)
	pidfile := filepath.Join(h.dir, "pid")
	task := enqueue(t, e.s, store.NewTask{CallablePath: "sleep", ArgsJSON: fmt.Sprintf(`[60, %q]`, pidfile), TimeoutSeconds: storetest.Ptr(int32(1))})
	var got store.Task
	workertest.Eventually(t, 60*time.Second, "the timeout", func() bool {
		got = workertest.Row(t, e.s, task.ID)
		return got.State == store.StateFailed || got.AttemptNumber > 1 // a retry would be wrong
	})
	if got.State != store.StateFailed || str(got.ErrorMessage) != "Task timed out after 1 seconds" || got.AttemptNumber != 1 {
		t.Fatalf("%+v", got)
	}
	// The 60 s process was killed: the runner reaped it (nothing in flight) long before.
	waitIdle(t, h)
	if b, err := os.ReadFile(pidfile); err == nil { // it may have been killed before writing it
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		workertest.WaitGone(t, 10*time.Second, pid)
	}
	// the killed process's late outcome did not overwrite the row
	if again := workertest.Row(t, e.s, task.ID); str(again.ErrorMessage) != "Task timed out after 1 seconds" || again.State != store.StateFailed {
		t.Fatalf("row changed after the kill: %+v", again)
	}
}

// TestTimeoutRecordedOnceStopped: a timed-out task whose process ignores SIGTERM stays
// RUNNING until the SIGKILL after the kill grace has ended it, so the row is never FAILED (and
// requeueable) while the process is alive.
func TestTimeoutRecordedOnceStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.start(nil, func(c *procrunner.Config) { c.KillGrace = 2 * time.Second })
	pidfile := filepath.Join(h.dir, "pid")
	task := enqueue(t, e.s, store.NewTask{CallablePath: "ignore_term", ArgsJSON: fmt.Sprintf(`[60, %q]`, pidfile), TimeoutSeconds: storetest.Ptr(int32(1))})
	pid := workertest.ReadPIDs(t, pidfile)[0]
	sawStopping := false
	workertest.Eventually(t, 60*time.Second, "the timeout to be recorded", func() bool {
		got := workertest.Row(t, e.s, task.ID)
		alive := workertest.Alive(pid) // read after the row: alive now means alive when the row was read
		switch {
		case got.State == store.StateRunning:
			if len(h.logs.Lines(`"msg":"task timed out; stopping it"`)) > 0 && alive {
				sawStopping = true
			}
			return false
		case got.State != store.StateFailed || str(got.ErrorMessage) != "Task timed out after 1 seconds":
			t.Fatalf("%+v", got)
		case alive:
			t.Fatalf("the row is FAILED while its process %d still runs", pid)
		}
		return true
	})
	if !sawStopping {
		t.Fatal("never saw the row RUNNING while its timed-out process was being stopped")
	}
	h.waitLines(1, `"msg":"task timed out"`, `"state":"FAILED"`)
}

// waitIdle waits until the worker has nothing in flight (per its metrics).
func waitIdle(t *testing.T, h *running) {
	t.Helper()
	workertest.Eventually(t, 30*time.Second, "the worker to be idle", func() bool {
		return scrape(t, h.w)["rayworker_tasks_in_flight"] == 0
	})
}

func TestCancelRunningTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.start(nil, nil)
	pidfile := filepath.Join(h.dir, "pid")
	task := enqueue(t, e.s, store.NewTask{CallablePath: "spawn_sleep", ArgsJSON: fmt.Sprintf(`[60, %q]`, pidfile)})
	pids := workertest.ReadPIDs(t, pidfile)
	if _, err := e.s.RequestCancel(t.Context(), []int64{task.ID}, []store.TaskState{store.StateRunning}); err != nil {
		t.Fatal(err)
	}
	got := waitState(t, e.s, task.ID, store.StateCancelled)
	if got.FinishedAt == nil || got.ResultData != nil {
		t.Fatalf("%+v", got)
	}
	workertest.WaitGone(t, 10*time.Second, pids...)
	h.waitLines(1, `"msg":"task cancelled"`)
}

func TestQueueFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(func(c *worker.Config) { c.Queues = []string{"a", "b"} }, nil)
	ta := enqueue(t, e.s, store.NewTask{CallablePath: "add", Queue: "a"})
	tb := enqueue(t, e.s, store.NewTask{CallablePath: "add", Queue: "b"})
	tc := enqueue(t, e.s, store.NewTask{CallablePath: "add", Queue: "c"})
	waitState(t, e.s, ta.ID, store.StateSucceeded)
	waitState(t, e.s, tb.ID, store.StateSucceeded)
	// a task enqueued after c and claimed proves the worker claimed again since c existed
	later := enqueue(t, e.s, store.NewTask{CallablePath: "add", Queue: "a"})
	waitState(t, e.s, later.ID, store.StateSucceeded)
	if got := workertest.Row(t, e.s, tc.ID); got.State != store.StateQueued || got.ClaimedByWorker != nil {
		t.Fatalf("queue c was touched: %+v", got)
	}
}

// TestConcurrencyLimit: with concurrency 2, five blocking tasks never run more than two at a
// time (per the processes' own start/end times), and the first claim took only two.
func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	release, started, log := filepath.Join(dir, "release"), filepath.Join(dir, "started"), filepath.Join(dir, "log")
	var ids []int64
	for i := 0; i < 5; i++ {
		ids = append(ids, enqueue(t, e.s, store.NewTask{CallablePath: "block", ArgsJSON: fmt.Sprintf(`[%q, %q, %q]`, release, started, log)}).ID)
	}
	h := e.start(func(c *worker.Config) { c.Concurrency = 2 }, nil)
	workertest.Eventually(t, 30*time.Second, "two tasks to start", func() bool {
		entries, _ := os.ReadDir(started)
		return len(entries) >= 2
	})
	counts := map[store.TaskState]int{}
	for _, id := range ids {
		counts[workertest.Row(t, e.s, id).State]++
	}
	if counts[store.StateRunning] != 2 || counts[store.StateQueued] != 3 {
		t.Fatalf("states %v, want 2 RUNNING and 3 QUEUED", counts)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		waitState(t, e.s, id, store.StateSucceeded)
	}
	if overlap := maxOverlap(t, log); overlap != 2 {
		t.Fatalf("at most %d tasks ran at once, want exactly 2", overlap)
	}
	if got := scrape(t, h.w)["rayworker_concurrency"]; got != 2 {
		t.Fatalf("rayworker_concurrency %v", got)
	}
}

// maxOverlap reads "start T" / "end T" lines and returns the most intervals open at once.
func maxOverlap(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		at    float64
		delta int
	}
	var evs []ev
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		kind, at, _ := strings.Cut(line, " ")
		v, err := strconv.ParseFloat(at, 64)
		if err != nil {
			t.Fatalf("log line %q", line)
		}
		d := 1
		if kind == "end" {
			d = -1
		}
		evs = append(evs, ev{v, d})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].delta < evs[j].delta // an end before a start at the same instant
	})
	open, most := 0, 0
	for _, e := range evs {
		open += e.delta
		most = max(most, open)
	}
	return most
}

// TestPriorityOrder: django-ray 0.2.0 claim order with one slot: rows without run_after
// first, by queue priority (high-priority/urgent, others, low-priority/background/batch),
// then created_at; due deferred rows after all of those.
func TestPriorityOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	order := filepath.Join(dir, "order")
	rec := func(queue, name string, runAfter *time.Time) {
		enqueue(t, e.s, store.NewTask{CallablePath: "record", Queue: queue, ArgsJSON: fmt.Sprintf(`[%q, %q]`, order, name), RunAfter: runAfter})
	}
	rec("high-priority", "deferred-high", storetest.Ago(time.Minute))
	rec("low-priority", "low", nil)
	rec("default", "default-1", nil)
	rec("batch", "batch", nil)
	rec("high-priority", "high", nil)
	rec("default", "default-2", nil)
	rec("urgent", "urgent", nil)
	rec("background", "background", nil)
	e.start(func(c *worker.Config) { c.Concurrency = 1 }, nil)
	want := []string{"high", "urgent", "default-1", "default-2", "low", "batch", "background", "deferred-high"}
	var got []string
	workertest.Eventually(t, 60*time.Second, "all tasks to run", func() bool {
		b, _ := os.ReadFile(order)
		got = strings.Fields(string(b))
		return len(got) == len(want)
	})
	if !slices.Equal(got, want) {
		t.Fatalf("ran in order %v, want %v", got, want)
	}
}

func TestRunAfterDeferred(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(nil, nil)
	runAfter := dbNow(t, e.s).Add(2 * time.Second)
	deferred := enqueue(t, e.s, store.NewTask{CallablePath: "add", RunAfter: &runAfter})
	now := enqueue(t, e.s, store.NewTask{CallablePath: "add"})
	first := waitState(t, e.s, now.ID, store.StateSucceeded)
	got := waitState(t, e.s, deferred.ID, store.StateSucceeded)
	if got.StartedAt == nil || got.StartedAt.Before(runAfter) || !got.StartedAt.After(*first.StartedAt) {
		t.Fatalf("started at %v, run_after %v", got.StartedAt, runAfter)
	}
}

// TestOversizeResults: results over MAX_RESULT_SIZE_BYTES become django-ray references whose
// size and digest are over Python's json.dumps text; a storage error falls back to the
// digest reference and the task still succeeds.
func TestOversizeResults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	root := t.TempDir()
	blocked := filepath.Join(root, "not-a-directory")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	text := []byte(`"` + strings.Repeat("x", 5000) + `"`)
	sum := sha256.Sum256(text)
	hexsum := hex.EncodeToString(sum[:])
	digestRef := "oversize://sha256/" + hexsum + "?bytes=5002"
	fsRef := "resultfs://sha256/" + hexsum + "?rel=" + hexsum[:2] + "/" + hexsum[2:4] + "/" + hexsum + ".json&bytes=5002"
	cases := []struct {
		name    string
		backend lifecycle.Backend
		ref     string
	}{
		{"digest", lifecycle.DigestBackend{}, digestRef},
		{"filesystem", lifecycle.FilesystemBackend{Root: root}, fsRef},
		{"filesystem error falls back", lifecycle.FilesystemBackend{Root: blocked}, digestRef},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			h := e.start(func(cfg *worker.Config) { cfg.Results = lifecycle.Results{MaxInline: 1024, Backend: c.backend} }, nil)
			small := enqueue(t, e.s, store.NewTask{CallablePath: "big_result", ArgsJSON: "[1000]"})
			big := enqueue(t, e.s, store.NewTask{CallablePath: "big_result", ArgsJSON: "[5000]"})
			if got := waitState(t, e.s, small.ID, store.StateSucceeded); str(got.ResultData) != `"`+strings.Repeat("x", 1000)+`"` || got.ResultReference != nil {
				t.Fatalf("small result: %+v", got)
			}
			got := waitState(t, e.s, big.ID, store.StateSucceeded)
			if got.ResultData != nil || str(got.ResultReference) != c.ref {
				t.Fatalf("reference %s, want %s", str(got.ResultReference), c.ref)
			}
			if c.ref == fsRef {
				stored, err := os.ReadFile(filepath.Join(root, hexsum[:2], hexsum[2:4], hexsum+".json"))
				if err != nil || string(stored) != string(text) {
					t.Fatalf("stored file: %v", err)
				}
			}
			if strings.Contains(c.name, "falls back") {
				h.waitLines(1, "result storage failed")
			}
		})
	}
	_ = e
}

// TestBadInput: each malformed input ends its task in a defined state with a clear
// error_message, and the worker keeps running (a normal task succeeds afterwards).
func TestBadInput(t *testing.T) {
	t.Parallel()
	whole := `{"success": true, "result": "ignored", "error": null, "traceback": null, "exception_type": null}` + "\nnot json at all\n"
	cases := []struct {
		name   string
		entry  []string // nil: the contract entrypoint
		row    func(t *testing.T, s *store.Store) store.Task
		state  store.TaskState
		result string // SUCCEEDED: result_data
		msg    string // FAILED: error_message prefix
	}{
		{"non-JSON last line", nil, func(t *testing.T, s *store.Store) store.Task {
			return enqueue(t, s, store.NewTask{CallablePath: "non_json_last", ArgsJSON: `["not json at all"]`})
		}, store.StateSucceeded, string(pyjson.EncodeBytes([]byte(whole))), ""},
		{"empty output", nil, func(t *testing.T, s *store.Store) store.Task {
			return enqueue(t, s, store.NewTask{CallablePath: "silent"})
		}, store.StateFailed, "", "entrypoint exited with status 0 but printed nothing (expected a JSON result line last)"},
		{"payload the entrypoint rejects", nil, func(t *testing.T, s *store.Store) store.Task {
			return storetest.Insert(t, s, store.Task{CallablePath: "not a path!"})
		}, store.StateFailed, "", "entrypoint exited with status 2 without printing a result line: error: invalid payload: callable_path 'not a path!' is not a dotted path"},
		{"entrypoint does not exist", []string{"/nonexistent/rayworker-python"}, func(t *testing.T, s *store.Store) store.Task {
			return enqueue(t, s, store.NewTask{CallablePath: "add"})
		}, store.StateFailed, "", "could not run the entrypoint: fork/exec /nonexistent/rayworker-python: no such file or directory"},
		{"malformed args_json written by someone else", nil, func(t *testing.T, s *store.Store) store.Task {
			return storetest.Insert(t, s, store.Task{CallablePath: "tests.tasks.add", ArgsJSON: `[1, 2`})
		}, store.StateFailed, "", "invalid task row: args_json is not valid JSON"},
		{"args_json that is not an array", nil, func(t *testing.T, s *store.Store) store.Task {
			return storetest.Insert(t, s, store.Task{CallablePath: "tests.tasks.add", ArgsJSON: `{"a": 1}`})
		}, store.StateFailed, "", "invalid task row: args_json is not a JSON array"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.start(func(cfg *worker.Config) { cfg.Policy = lifecycle.Policy{MaxAttempts: 2} }, func(rc *procrunner.Config) {
				if c.entry != nil {
					rc.Entrypoint = c.entry
				}
			})
			task := c.row(t, e.s)
			got := waitState(t, e.s, task.ID, c.state)
			switch c.state {
			case store.StateSucceeded:
				if str(got.ResultData) != c.result {
					t.Fatalf("result %s, want %s", str(got.ResultData), c.result)
				}
			case store.StateFailed:
				if !strings.HasPrefix(str(got.ErrorMessage), c.msg) {
					t.Fatalf("error_message %q, want %q", str(got.ErrorMessage), c.msg)
				}
			}
			if c.entry != nil {
				return // no entrypoint: nothing can succeed, but the worker went on (both attempts ran)
			}
			ok := enqueue(t, e.s, store.NewTask{CallablePath: "add", ArgsJSON: "[40, 2]"})
			if got := waitState(t, e.s, ok.ID, store.StateSucceeded); str(got.ResultData) != "42" {
				t.Fatalf("the worker did not keep working: %+v", got)
			}
		})
	}
	t.Run("malformed rows are not retried", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.start(func(cfg *worker.Config) { cfg.Policy = lifecycle.Policy{MaxAttempts: 3} }, nil)
		task := storetest.Insert(t, e.s, store.Task{CallablePath: "tests.tasks.add", KwargsJSON: `[]`})
		if got := waitState(t, e.s, task.ID, store.StateFailed); got.AttemptNumber != 1 {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("a runner failure is retried as RayJobFailed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.start(func(cfg *worker.Config) { cfg.Policy = lifecycle.Policy{MaxAttempts: 2} }, nil)
		task := enqueue(t, e.s, store.NewTask{CallablePath: "exit", ArgsJSON: `[9, "crashed"]`})
		got := waitState(t, e.s, task.ID, store.StateFailed)
		if got.AttemptNumber != 2 || !strings.Contains(str(got.ErrorTraceback), "crashed") {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("RayJobFailed can be denylisted", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.start(func(cfg *worker.Config) {
			cfg.Policy = lifecycle.Policy{MaxAttempts: 3, Denylist: []string{"RayJobFailed"}}
		}, nil)
		task := enqueue(t, e.s, store.NewTask{CallablePath: "silent"})
		if got := waitState(t, e.s, task.ID, store.StateFailed); got.AttemptNumber != 1 {
			t.Fatalf("%+v", got)
		}
	})
}

// TestGracefulShutdown: on shutdown the worker stops claiming, lets in-flight work finish
// within the timeout, stops the rest and hands it back to the queue without consuming an
// attempt, and deactivates its lease.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.start(func(c *worker.Config) { c.ShutdownTimeout = 4 * time.Second }, nil)
	pidfile := filepath.Join(h.dir, "pid")
	long := enqueue(t, e.s, store.NewTask{CallablePath: "sleep", ArgsJSON: fmt.Sprintf(`[60, %q]`, pidfile)})
	shortPid := filepath.Join(h.dir, "short")
	short := enqueue(t, e.s, store.NewTask{CallablePath: "sleep", ArgsJSON: fmt.Sprintf(`[0.5, %q]`, shortPid)})
	pids := workertest.ReadPIDs(t, pidfile)
	workertest.ReadPIDs(t, shortPid)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	late := enqueue(t, e.s, store.NewTask{CallablePath: "add"})

	if got := workertest.Row(t, e.s, short.ID); got.State != store.StateSucceeded {
		t.Fatalf("the short task did not finish during the drain: %+v", got)
	}
	got := workertest.Row(t, e.s, long.ID)
	if got.State != store.StateQueued || got.AttemptNumber != 1 || got.ClaimedByWorker != nil || got.StartedAt != nil || got.RayJobID != nil {
		t.Fatalf("the long task was not handed back: %+v", got)
	}
	workertest.WaitGone(t, 10*time.Second, pids...)
	lease, err := e.s.GetLease(t.Context(), h.w.ID())
	if err != nil || lease.IsActive || lease.StoppedAt == nil {
		t.Fatalf("lease %+v, %v", lease, err)
	}
	if workertest.Row(t, e.s, late.ID).State != store.StateQueued {
		t.Fatal("claimed after shutdown")
	}
	if len(h.logs.Lines(`"msg":"task released to the queue"`, fmt.Sprintf(`"task_id":%d`, long.ID))) != 1 {
		t.Fatalf("no release event:\n%s", h.logs)
	}
}
