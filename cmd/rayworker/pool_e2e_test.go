package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker/workertest"
)

// These tests run the real rayworker binary in its default --sync mode, the executor pool,
// on the real Django test project (python/rayctl_testapp) with django-ray 0.2.0 from the
// venv (RAYCTL_PYTHON).

func djangoRuntimeEnv() string {
	b, _ := json.Marshal(map[string]any{"env_vars": workertest.DjangoEnv()})
	return string(b)
}

// startPool runs `rayworker --sync` (the executor pool) with the venv's Python.
func startPool(t *testing.T, dsn string, args ...string) *proc {
	t.Helper()
	py := raytest.NeedVenvPython(t)
	all := append([]string{"--sync", "--log-format", "json", "--python", py, "--ray-runtime-env", djangoRuntimeEnv()}, args...)
	return startBinary(t, dsn, nil, all...)
}

func enqueueApp(t *testing.T, s *store.Store, callable, args, kwargs string, timeout int32) store.Task {
	t.Helper()
	n := store.NewTask{CallablePath: "rayctl_testapp.tasks." + callable, ArgsJSON: args, KwargsJSON: kwargs}
	if timeout > 0 {
		n.TimeoutSeconds = &timeout
	}
	task, err := s.Enqueue(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func terminal(r store.Task) bool {
	switch r.State {
	case store.StateSucceeded, store.StateFailed, store.StateCancelled, store.StateLost:
		return true
	}
	return false
}

// executorPids lists the worker's child processes (its executors), from every thread's
// /proc children list.
func executorPids(t *testing.T, workerPid int) []int {
	t.Helper()
	var out []int
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", workerPid))
	for _, e := range entries {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", workerPid, e.Name()))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// TestPoolRowsMatchProcessRows: the same tasks, run by the executor pool and by the process
// runner with django-ray 0.2.0's own entrypoint, leave byte-identical rows: state, attempts,
// result_data, result_reference, error_message, error_traceback.
func TestPoolRowsMatchProcessRows(t *testing.T) {
	t.Parallel()
	py := raytest.NeedVenvPython(t)
	type spec struct{ callable, args, kwargs string }
	specs := []spec{
		{"add", "[2, 3]", "{}"},
		{"echo", "[]", `{"text": "h\u00e9llo \u2713 \ud83d\ude00 \"q\" </tag> \\", "floats": [1.5, 0.30000000000000004, 1e-07, 1e22], "big": 100000000000000000000}`},
		{"unicode_text", "[]", "{}"},
		{"noisy", "[]", `{"lines": 2, "value": "done"}`},
		{"oversize", "[2097157]", "{}"},
		{"fail_value", `["bad value"]`, "{}"},     // retried, then FAILED
		{"fail_custom", `["do not retry"]`, "{}"}, // denylisted: FAILED at once
		{"unserializable", "[]", "{}"},            // builtins.TypeError, retried
		{"no_such_task", "[]", "{}"},              // import error
		{"sys_exit", "[4]", "{}"},                 // RayJobFailed
		{"exit_now", "[5]", "{}"},                 // os._exit: RayJobFailed
		{"segfault", "[]", "{}"},                  // signal 11: RayJobFailed
	}
	common := []string{"--max-task-attempts", "2", "--retry-backoff-seconds", "0", "--concurrency", "2",
		"--retry-exception-denylist", "rayctl_testapp.tasks.NonRetryableError"}
	rows := map[string][]store.Task{}
	for _, mode := range []string{"pool", "process"} {
		s, dsn := migratedDSN(t)
		var ids []int64
		for _, sp := range specs {
			ids = append(ids, enqueueApp(t, s, sp.callable, sp.args, sp.kwargs, 0).ID)
		}
		var p *proc
		if mode == "pool" {
			p = startPool(t, dsn, common...)
		} else {
			p = startBinary(t, dsn, nil, append([]string{"--sync", "--log-format", "json", "--ray-runtime-env", djangoRuntimeEnv(),
				"--entrypoint", py + " -m django_ray.runtime.entrypoint"}, common...)...)
		}
		for _, id := range ids {
			rows[mode] = append(rows[mode], waitRow(t, s, id, "a terminal state", terminal))
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		p.exitCode(30 * time.Second)
	}
	for i, sp := range specs {
		got, want := rows["pool"][i], rows["process"][i]
		if sp.callable == "fail_custom" && (got.State != store.StateFailed || got.AttemptNumber != 1) {
			t.Errorf("denylisted exception: %s attempt %d", got.State, got.AttemptNumber)
		}
		if sp.callable == "fail_value" && (got.State != store.StateFailed || got.AttemptNumber != 2) {
			t.Errorf("retried exception: %s attempt %d", got.State, got.AttemptNumber)
		}
		g, w := rowFacts(got), rowFacts(want)
		w.ErrorMessage = strings.Replace(w.ErrorMessage, ": "+runpyWarning, "", 1)
		w.ErrorTraceback = strings.Replace(strings.Replace(w.ErrorTraceback, runpyWarning+"\n", "", 1), "--- stderr ---\n--- stdout ---", "--- stdout ---", 1)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: the pool's row differs from the process runner's:\n pool:    %+v\n process: %+v", sp.callable, g, w)
		}
	}
}

// runpyWarning: see worker/poolrunner's test; `python -m django_ray.runtime.entrypoint`
// prints it on stderr at every start, the pool never starts an interpreter per task.
const runpyWarning = "<frozen runpy>:128: RuntimeWarning: 'django_ray.runtime.entrypoint' found in sys.modules after import of package 'django_ray.runtime', but prior to execution of 'django_ray.runtime.entrypoint'; this may result in unpredictable behaviour"

type facts struct {
	State                                     store.TaskState
	Attempt                                   int32
	ResultData, ResultReference               string
	ErrorMessage, ErrorTraceback, RayJobIDSet string
}

func rowFacts(r store.Task) facts {
	deref := func(p *string) string {
		if p == nil {
			return "<NULL>"
		}
		return *p
	}
	f := facts{State: r.State, Attempt: r.AttemptNumber, ResultData: deref(r.ResultData), ResultReference: deref(r.ResultReference),
		ErrorMessage: deref(r.ErrorMessage), ErrorTraceback: deref(r.ErrorTraceback)}
	if len(f.ResultData) > 300 {
		f.ResultData = fmt.Sprintf("%d bytes %q...", len(f.ResultData), f.ResultData[:100])
	}
	return f
}

// TestPoolFaults: the pool's failure paths through the real binary, each attempt ending
// exactly once (counted by a task that records every run): a timeout on an infinite loop, a
// cancel while running, a task that forks a child and is then timed out (the child dies too),
// an executor killed with kill -9 from outside (retried), a leaking task (its executor
// recycled), and SIGTERM with tasks in flight (handed back, not lost).
func TestPoolFaults(t *testing.T) {
	t.Parallel()
	s, dsn := migratedDSN(t)
	ctx := t.Context()
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	p := startPool(t, dsn, "--concurrency", "3", "--retry-backoff-seconds", "0", "--executor-max-rss-mb", "200",
		"--metrics-addr", "127.0.0.1:0", "--shutdown-timeout", "2s")
	p.workerID()
	workerPid := p.cmd.Process.Pid

	// timeout on an infinite loop: terminal FAILED, its executor gone before the row says so
	spin := enqueueApp(t, s, "spin", "[]", "{}", 2)
	// a task that forks a child, then times out: the child dies with the executor's group
	pidfile := filepath.Join(dir, "child.pid")
	// (a timeout long enough for the child to start on a loaded machine)
	forker := enqueueApp(t, s, "fork_child", fmt.Sprintf("[%q, 600]", pidfile), "{}", 15)
	child := workertest.ReadPIDs(t, pidfile)[0]
	got := waitRow(t, s, spin.ID, "the spinning task to time out", terminal)
	if got.State != store.StateFailed || got.ErrorMessage == nil || *got.ErrorMessage != "Task timed out after 2 seconds" {
		t.Fatalf("spin: %s %v", got.State, deref(got.ErrorMessage))
	}
	got = waitRow(t, s, forker.ID, "the forking task to time out", terminal)
	if got.State != store.StateFailed || *got.ErrorMessage != "Task timed out after 15 seconds" {
		t.Fatalf("fork_child: %s %v", got.State, deref(got.ErrorMessage))
	}
	workertest.WaitGone(t, 15*time.Second, child)

	// cancel while running
	long := enqueueApp(t, s, "record", fmt.Sprintf("[%q, %q, 600]", runs, "cancelled"), "{}", 0)
	waitRuns(t, runs, "cancelled start", 1)
	if _, err := s.RequestCancel(ctx, []int64{long.ID}, []store.TaskState{store.StateRunning}); err != nil {
		t.Fatal(err)
	}
	if got := waitRow(t, s, long.ID, "the cancel", terminal); got.State != store.StateCancelled {
		t.Fatalf("cancel: %s", got.State)
	}

	// kill -9 of the executor running a task: the attempt fails (RayJobFailed) and is retried
	victim := enqueueApp(t, s, "record", fmt.Sprintf("[%q, %q, 3]", runs, "victim"), "{}", 0)
	line := waitRuns(t, runs, "victim start", 1)[0]
	execPid, _ := strconv.Atoi(strings.Fields(line)[2])
	if err := syscall.Kill(execPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	got = waitRow(t, s, victim.ID, "the victim to succeed on its retry", terminal)
	if got.State != store.StateSucceeded || got.AttemptNumber != 2 {
		t.Fatalf("victim: %s attempt %d %v", got.State, got.AttemptNumber, deref(got.ErrorMessage))
	}

	// a leaking task: the executor is recycled past --executor-max-rss-mb
	for i := 0; i < 6; i++ {
		tk := enqueueApp(t, s, "leak", "[60]", "{}", 0)
		if r := waitRow(t, s, tk.ID, "the leak", terminal); r.State != store.StateSucceeded {
			t.Fatalf("leak: %s %s", r.State, deref(r.ErrorMessage))
		}
	}
	metrics := scrape(t, p)
	if !strings.Contains(metrics, `rayworker_executor_restarts_total{reason="recycled_rss"}`) {
		t.Errorf("no recycled_rss restart in the metrics:\n%s", grepLines(metrics, "rayworker_executor"))
	}
	for _, want := range []string{`rayworker_executor_restarts_total{reason="crashed"} 1`, `rayworker_executor_restarts_total{reason="killed"} 3`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(metrics, "rayworker_executor"))
		}
	}

	// SIGTERM with tasks in flight: handed back QUEUED on the same attempt; the executors exit
	var inflight []int64
	for i := 0; i < 3; i++ {
		inflight = append(inflight, enqueueApp(t, s, "record", fmt.Sprintf("[%q, \"drain%d\", 600]", runs, i), "{}", 0).ID)
	}
	for i := 0; i < 3; i++ {
		waitRuns(t, runs, fmt.Sprintf("drain%d start", i), 1)
	}
	executors := executorPids(t, workerPid)
	if len(executors) != 3 {
		t.Fatalf("executors %v, want 3", executors)
	}
	// the gauges say what runs: three busy executors, their memory summed
	if v := p.metricValue(`rayworker_executors{state="busy"}`); v != 3 {
		t.Errorf("busy executors %v, want 3:\n%s", v, grepLines(scrape(t, p), "rayworker_executor"))
	}
	if v := p.metricValue("rayworker_executor_rss_bytes"); v < 3*10<<20 {
		t.Errorf("executor RSS %v bytes, want at least 10 MiB for each of 3 Python executors", v)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(60 * time.Second); code != 143 {
		t.Fatalf("exit %d, want 143", code)
	}
	for _, id := range inflight {
		r, _ := s.GetTask(ctx, id)
		if r.State != store.StateQueued || r.AttemptNumber != 1 || r.ClaimedByWorker != nil {
			t.Fatalf("task %d not handed back: %s attempt %d", id, r.State, r.AttemptNumber)
		}
	}
	workertest.WaitGone(t, 15*time.Second, executors...)

	// every recorded run started once per attempt: cancelled 1, victim 2, drain* 1 each
	counts := countRuns(t, runs)
	want := map[string]int{"cancelled start": 1, "victim start": 2, "victim end": 1, "drain0 start": 1, "drain1 start": 1, "drain2 start": 1}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%q recorded %d times, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
	if counts["cancelled end"] != 0 || counts["drain0 end"] != 0 {
		t.Errorf("a stopped task ran to its end: %v", counts)
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// waitRuns waits until the runs file has n lines starting with prefix and returns them.
func waitRuns(t *testing.T, path, prefix string, n int) []string {
	t.Helper()
	var lines []string
	workertest.Eventually(t, 60*time.Second, fmt.Sprintf("%d %q lines in %s", n, prefix, path), func() bool {
		lines = lines[:0]
		f, err := os.Open(path)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), prefix+" ") {
				lines = append(lines, sc.Text())
			}
		}
		return len(lines) >= n
	})
	return lines
}

// countRuns counts "<tag> start" and "<tag> end" lines.
func countRuns(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 {
			out[f[0]+" "+f[1]]++
		}
	}
	return out
}

func scrape(t *testing.T, p *proc) string {
	t.Helper()
	var addr string
	workertest.Eventually(t, 10*time.Second, "the metrics address", func() bool {
		var ok bool
		addr, ok = p.logField("worker started", "metrics_addr")
		return ok && addr != ""
	})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPoolStartErrors: a configuration the executors cannot start with is refused at start,
// exit 2 with one line, and no task is claimed (their attempts are never burnt).
func TestPoolStartErrors(t *testing.T) {
	t.Parallel()
	py := raytest.NeedVenvPython(t)
	s, dsn := migratedDSN(t)
	task := enqueueApp(t, s, "add", "[1, 2]", "{}", 0)
	pythonpath := filepath.Join(workertest.RepoRoot(), "python")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing interpreter", []string{"--python", "/nonexistent/python3"}, "python interpreter not found"},
		{"no settings module", []string{"--python", py, "--ray-runtime-env", fmt.Sprintf(`{"env_vars": {"PYTHONPATH": %q}}`, pythonpath)},
			"DJANGO_SETTINGS_MODULE is not set"},
		{"broken settings module", []string{"--python", py, "--ray-runtime-env",
			fmt.Sprintf(`{"env_vars": {"PYTHONPATH": %q, "DJANGO_SETTINGS_MODULE": "rayctl_testapp.broken"}}`, pythonpath)},
			"django.setup() failed with DJANGO_SETTINGS_MODULE=rayctl_testapp.broken: ModuleNotFoundError"},
		{"settings that raise", []string{"--python", py, "--ray-runtime-env",
			fmt.Sprintf(`{"env_vars": {"PYTHONPATH": %q, "DJANGO_SETTINGS_MODULE": "rayctl_testapp.broken_settings"}}`, pythonpath)},
			"django.setup() failed with DJANGO_SETTINGS_MODULE=rayctl_testapp.broken_settings: RuntimeError: broken settings on purpose"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(binary(t), append([]string{"--sync"}, c.args...)...)
			cmd.Env = append(os.Environ(), "DATABASE_URL="+dsn, "DJANGO_SETTINGS_MODULE=")
			out, err := cmd.Output() // stdout: nothing; stderr below
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
				t.Fatalf("exit %v, want 2; stdout %q", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(ee.Stderr)), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "rayworker: ") || !strings.Contains(lines[0], c.want) {
				t.Fatalf("stderr %q, want one line with %q", ee.Stderr, c.want)
			}
		})
	}
	if r, _ := s.GetTask(t.Context(), task.ID); r.State != store.StateQueued || r.AttemptNumber != 1 {
		t.Fatalf("the task was touched: %s attempt %d", r.State, r.AttemptNumber)
	}
}

// TestPoolKill9: kill -9 of the worker takes its executors with it, and what their tasks
// started: nothing it ran keeps running beside a retry elsewhere.
func TestPoolKill9(t *testing.T) {
	t.Parallel()
	s, dsn := migratedDSN(t)
	dir := t.TempDir()
	p := startPool(t, dsn, "--concurrency", "2")
	p.workerID()
	pidfile := filepath.Join(dir, "child.pid")
	enqueueApp(t, s, "fork_child", fmt.Sprintf("[%q, 600]", pidfile), "{}", 0)
	child := workertest.ReadPIDs(t, pidfile)[0]
	executors := executorPids(t, p.cmd.Process.Pid)
	if len(executors) == 0 {
		t.Fatal("no executor processes")
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.exitCode(10 * time.Second)
	workertest.WaitGone(t, 15*time.Second, append(executors, child)...)
}
