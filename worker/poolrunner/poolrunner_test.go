package poolrunner

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker/procgroup"
	"github.com/rayctl/rayctl/worker/procrunner"
	"github.com/rayctl/rayctl/worker/pyexec"
	"github.com/rayctl/rayctl/worker/workertest"
)

// TestMain lets this test binary act as procgroup's supervisor: the process runner the
// outcomes are compared with re-executes it.
func TestMain(m *testing.M) {
	procgroup.Main()
	goleak.VerifyTestMain(m)
}

var nextID atomic.Int64

// task is a row for rayctl_testapp.tasks.<callable> (python/rayctl_testapp/tasks.py).
func task(callable, args, kwargs string) store.Task {
	return store.Task{ID: nextID.Add(1), CallablePath: "rayctl_testapp.tasks." + callable, ArgsJSON: args, KwargsJSON: kwargs,
		AttemptNumber: 1, State: store.StateRunning}
}

func newPool(t *testing.T, mod func(*Config)) *Runner {
	t.Helper()
	cfg := Config{Python: raytest.NeedVenvPython(t), Size: 1, Env: workertest.DjangoEnv(), KillGrace: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	workertest.CloseAtEnd(t, r, 20*time.Second)
	return r
}

// run starts a task and waits for its outcome through Events and Poll, as the loop does.
func run(t *testing.T, r workertest.Runner, tk store.Task) lifecycle.Outcome {
	t.Helper()
	return workertest.Run(t, r, tk, 90*time.Second).Outcome
}

func wait(t *testing.T, r workertest.Runner, tk store.Task) lifecycle.Outcome {
	t.Helper()
	return workertest.WaitDone(t, r, tk, 90*time.Second).Outcome
}

// TestOutcomesMatchTheProcessRunner runs the same tasks through the pool and through the
// process runner with django-ray 0.2.0's own entrypoint, and requires the same outcome, byte
// for byte: what the worker writes to the row does not depend on the runner.
func TestOutcomesMatchTheProcessRunner(t *testing.T) {
	py := raytest.NeedVenvPython(t)
	pool := newPool(t, nil)
	proc, err := procrunner.New(procrunner.Config{Entrypoint: []string{py, "-m", "django_ray.runtime.entrypoint"}, Env: workertest.DjangoEnv()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Close(context.Background()) })

	cases := []struct {
		name, callable, args, kwargs string
		want                         lifecycle.Kind
	}{
		{"success", "add", "[2, 3]", "{}", lifecycle.Succeeded},
		{"kwargs and unicode", "echo", "[]", `{"text": "h\u00e9llo \u2713 \ud83d\ude00 \"q\" \\", "n": [1.5, 1e22, null]}`, lifecycle.Succeeded},
		{"unicode result", "unicode_text", "[]", "{}", lifecycle.Succeeded},
		{"app exception", "fail_value", `["bad value"]`, "{}", lifecycle.Failed},
		{"custom exception", "fail_custom", `["do not retry"]`, "{}", lifecycle.Failed},
		{"unserializable result", "unserializable", "[]", "{}", lifecycle.Failed},
		{"result over 1 MiB", "oversize", "[2097157]", "{}", lifecycle.Succeeded},
		{"noise before the result", "noisy", "[]", `{"lines": 3}`, lifecycle.Succeeded},
		{"missing callable", "no_such_task", "[]", "{}", lifecycle.Failed},
		{"os._exit", "exit_now", "[3]", "{}", lifecycle.Failed},
		{"os._exit(0)", "exit_now", "[0]", "{}", lifecycle.Succeeded}, // 0.2.0's rule: a non-JSON last line after a clean exit
		{"segfault", "segfault", "[]", "{}", lifecycle.Failed},
		{"sys.exit", "sys_exit", "[2]", "{}", lifecycle.Failed},
		{"sys.exit with a message", "sys_exit", `["goodbye"]`, "{}", lifecycle.Failed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk := task(c.callable, c.args, c.kwargs)
			want := withoutRunpyWarning(run(t, proc, tk))
			got := run(t, pool, tk)
			if got.Kind != c.want {
				t.Errorf("kind %v, want %v (%+v)", got.Kind, c.want, got.Failure)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("pool outcome differs from the process runner's:\n pool:    %s\n process: %s", show(got), show(want))
			}
		})
	}
}

// runpyWarning is what `python -m django_ray.runtime.entrypoint` prints to stderr on every
// run (django_ray.runtime's __init__ imports the entrypoint module before runpy executes it).
// It is the process runner's interpreter start talking, not the task: the pool, which starts
// no interpreter per task, does not print it. A crash's message quotes stderr's last line, and
// its traceback holds stderr, so the comparison drops that line from the process runner's.
const runpyWarning = "<frozen runpy>:128: RuntimeWarning: 'django_ray.runtime.entrypoint' found in sys.modules after import of package 'django_ray.runtime', but prior to execution of 'django_ray.runtime.entrypoint'; this may result in unpredictable behaviour"

func withoutRunpyWarning(o lifecycle.Outcome) lifecycle.Outcome {
	f := &o.Failure
	f.Message = strings.Replace(f.Message, ": "+runpyWarning, "", 1)
	f.Traceback = strings.Replace(f.Traceback, runpyWarning+"\n", "", 1)
	f.Traceback = strings.Replace(f.Traceback, "--- stderr ---\n--- stdout ---", "--- stdout ---", 1)
	return o
}

func show(o lifecycle.Outcome) string {
	r := o.Result
	return o.Kind.String() + " result=" + clipped(string(r.JSON)) + " sha=" + r.SHA256 + " bytes=" + strconv.FormatInt(r.Bytes, 10) +
		" failure=" + clipped(o.Failure.Message) + " | " + clipped(o.Failure.Traceback) + " | " + o.Failure.ExceptionType
}

func clipped(s string) string {
	if len(s) > 400 {
		return s[:200] + "..." + s[len(s)-200:]
	}
	return s
}

// TestExecutorIsReused checks the point of the pool: Django is set up once per executor,
// and tasks run one after another in the same process.
func TestExecutorIsReused(t *testing.T) {
	pool := newPool(t, nil)
	first := run(t, pool, task("pid", "[]", "{}"))
	for range 5 {
		o := run(t, pool, task("pid", "[]", "{}"))
		if string(o.Result.JSON) != string(first.Result.JSON) {
			t.Fatalf("task ran in process %s, the one before in %s: the executor was not reused", o.Result.JSON, first.Result.JSON)
		}
	}
	if want := strconv.Itoa(pool.Pids()[0]); string(first.Result.JSON) != want {
		t.Fatalf("task ran in process %s, the executor is %s", first.Result.JSON, want)
	}
}

// TestTaskOutputIsCaptured: what a task prints is its own output, bounded, never mixed
// with the executor's messages or the next task's output.
func TestTaskOutputIsCaptured(t *testing.T) {
	pool := newPool(t, func(c *Config) { c.MaxStdout = 64 << 10 })
	tk := task("noisy", "[]", `{"lines": 2, "value": "v"}`)
	if err := pool.Start(t.Context(), tk); err != nil {
		t.Fatal(err)
	}
	if o := wait(t, pool, tk); o.Kind != lifecycle.Succeeded || string(o.Result.JSON) != `"v"` {
		t.Fatalf("outcome %+v", o)
	}
	out, err := pool.Output(t.Context(), tk, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := "noise line 0\nnoise line 1\n{\"success\": false, \"note\": \"not the last line\"}\n"
	if string(out) != want {
		t.Fatalf("output %q, want %q", out, want)
	}
	pool.Forget(tk)

	// 3 MiB of output through a 64 KiB capture: the result still arrives, the output is its tail
	big := task("print_lots", "[3]", `{"value": "big"}`)
	if err := pool.Start(t.Context(), big); err != nil {
		t.Fatal(err)
	}
	if o := wait(t, pool, big); o.Kind != lifecycle.Succeeded || string(o.Result.JSON) != `"big"` {
		t.Fatalf("outcome %+v", o)
	}
	out, _ = pool.Output(t.Context(), big, 1<<20)
	if len(out) != 64<<10 || !strings.HasSuffix(string(out), strings.Repeat("y", 1023)+"\n") {
		t.Fatalf("output tail: %d bytes ending %q", len(out), out[max(len(out)-20, 0):])
	}
}

// TestCrashedExecutorIsReplaced: an executor that dies (os._exit, segfault, kill -9 from
// outside) ends its attempt and is replaced; the next task runs in a new process.
func TestCrashedExecutorIsReplaced(t *testing.T) {
	pool := newPool(t, nil)
	before := pool.Pids()
	if o := run(t, pool, task("segfault", "[]", "{}")); o.Kind != lifecycle.Failed || !strings.Contains(o.Failure.Message, "signal 11") {
		t.Fatalf("segfault: %+v", o.Failure)
	}
	o := run(t, pool, task("pid", "[]", "{}"))
	if o.Kind != lifecycle.Succeeded || string(o.Result.JSON) == strconv.Itoa(before[0]) {
		t.Fatalf("after a crash the task ran in %s (old executor %d): %+v", o.Result.JSON, before[0], o)
	}
	workertest.WaitGone(t, 10*time.Second, before...)

	// kill -9 from outside while a task runs
	tk := task("sleep", "[30]", "{}")
	if err := pool.Start(t.Context(), tk); err != nil {
		t.Fatal(err)
	}
	var victim int
	workertest.Eventually(t, 30*time.Second, "the task to be running", func() bool {
		pids := pool.Pids()
		if len(pids) == 0 {
			return false
		}
		victim = pids[0]
		return pool.executorStates()["busy"] == 1
	})
	if err := killPID(victim); err != nil {
		t.Fatal(err)
	}
	o = wait(t, pool, tk)
	pool.Forget(tk)
	if o.Kind != lifecycle.Failed || o.Failure.ExceptionType != lifecycle.ExcRunnerFailed || !strings.Contains(o.Failure.Message, "signal 9") {
		t.Fatalf("killed executor: %+v", o)
	}
	if o := run(t, pool, task("add", "[1, 1]", "{}")); string(o.Result.JSON) != "2" {
		t.Fatalf("after kill -9: %+v", o)
	}
}

// TestCancelKillsTheExecutorGroup: a cancel (or a timeout) stops the task's executor and
// every process the task started; the attempt is Done only once they are gone.
func TestCancelKillsTheExecutorGroup(t *testing.T) {
	pool := newPool(t, nil)
	pidfile := filepath.Join(t.TempDir(), "child.pid")
	tk := task("fork_child", `["`+pidfile+`", 600]`, "{}")
	if err := pool.Start(t.Context(), tk); err != nil {
		t.Fatal(err)
	}
	child := workertest.ReadPIDs(t, pidfile)[0]
	executor := pool.Pids()[0]
	if err := pool.Cancel(t.Context(), tk); err != nil {
		t.Fatal(err)
	}
	o := wait(t, pool, tk)
	if o.Kind != lifecycle.Cancelled {
		t.Fatalf("outcome %+v", o)
	}
	if workertest.Alive(executor) {
		t.Fatalf("executor %d still alive after its cancelled attempt was reported done", executor)
	}
	workertest.WaitGone(t, 10*time.Second, child)

	// an infinite loop is stopped the same way
	spin := task("spin", "[]", "{}")
	if err := pool.Start(t.Context(), spin); err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, 30*time.Second, "the loop to run", func() bool { return pool.executorStates()["busy"] == 1 })
	_ = pool.Cancel(t.Context(), spin)
	if o := wait(t, pool, spin); o.Kind != lifecycle.Cancelled {
		t.Fatalf("spin: %+v", o)
	}
}

// TestCancelWhileWaiting: an attempt waiting for a free executor is cancelled at once.
func TestCancelWhileWaiting(t *testing.T) {
	pool := newPool(t, nil)
	busy := task("sleep", "[30]", "{}")
	queued := task("add", "[1, 2]", "{}")
	for _, tk := range []store.Task{busy, queued} {
		if err := pool.Start(t.Context(), tk); err != nil {
			t.Fatal(err)
		}
	}
	_ = pool.Cancel(t.Context(), queued)
	if o := wait(t, pool, queued); o.Kind != lifecycle.Cancelled {
		t.Fatalf("queued: %+v", o)
	}
	_ = pool.Cancel(t.Context(), busy)
	if o := wait(t, pool, busy); o.Kind != lifecycle.Cancelled {
		t.Fatalf("busy: %+v", o)
	}
}

// TestRecycling: --max-tasks-per-executor and --executor-max-rss-mb replace executors
// between tasks, so a leaking task cannot grow one without bound.
func TestRecycling(t *testing.T) {
	t.Run("tasks", func(t *testing.T) {
		pool := newPool(t, func(c *Config) { c.MaxTasksPerExecutor = 2 })
		var pids []string
		for range 4 {
			pids = append(pids, string(run(t, pool, task("pid", "[]", "{}")).Result.JSON))
		}
		if pids[0] != pids[1] || pids[1] == pids[2] || pids[2] != pids[3] {
			t.Fatalf("pids %v: want two tasks per executor", pids)
		}
	})
	t.Run("rss", func(t *testing.T) {
		pool := newPool(t, func(c *Config) { c.MaxRSS = 150 << 20 })
		first := string(run(t, pool, task("pid", "[]", "{}")).Result.JSON)
		leaked := 0
		for i := 0; i < 10; i++ {
			o := run(t, pool, task("leak", "[40]", "{}"))
			if o.Kind != lifecycle.Succeeded {
				t.Fatalf("leak: %+v", o)
			}
			if n, _ := strconv.Atoi(string(o.Result.JSON)); n <= leaked {
				leaked = n // a fresh executor: the leak started over
				break
			} else {
				leaked = n
			}
		}
		if leaked > 4 { // 4 x 40 MiB on top of Django passes 150 MiB
			t.Fatalf("the leak grew to %d x 40 MiB in one executor", leaked)
		}
		if now := string(run(t, pool, task("pid", "[]", "{}")).Result.JSON); now == first {
			t.Fatalf("the leaking executor %s was never recycled", first)
		}
	})
}

// TestStartErrors: configuration problems are start errors (the worker exits 2), never a
// task's failure.
func TestStartErrors(t *testing.T) {
	py := raytest.NeedVenvPython(t)
	cases := []struct {
		name   string
		python string
		env    map[string]string
		want   string
	}{
		{"no interpreter", "/nonexistent/python3", workertest.DjangoEnv(), "cannot run python interpreter /nonexistent/python3"},
		{"no DJANGO_SETTINGS_MODULE", py, map[string]string{"DJANGO_SETTINGS_MODULE": "", "PYTHONPATH": workertest.DjangoEnv()["PYTHONPATH"]}, "DJANGO_SETTINGS_MODULE is not set"},
		{"broken settings", py, map[string]string{"DJANGO_SETTINGS_MODULE": "rayctl_testapp.no_such_settings", "PYTHONPATH": workertest.DjangoEnv()["PYTHONPATH"]},
			"django.setup() failed with DJANGO_SETTINGS_MODULE=rayctl_testapp.no_such_settings: ModuleNotFoundError"},
		{"settings that raise", py, map[string]string{"DJANGO_SETTINGS_MODULE": "rayctl_testapp.broken_settings", "PYTHONPATH": workertest.DjangoEnv()["PYTHONPATH"]},
			"django.setup() failed with DJANGO_SETTINGS_MODULE=rayctl_testapp.broken_settings: RuntimeError: broken settings on purpose"},
		{"no django_ray", "python3", workertest.DjangoEnv(), "cannot import django_ray.runtime.entrypoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.python == "python3" {
				if out, err := execOutput("python3", "-c", "import django_ray"); err == nil {
					t.Skipf("the system python3 has django_ray: %s", out)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			_, err := New(ctx, Config{Python: c.python, Size: 2, Env: c.env})
			var se *pyexec.StartError
			if !errors.As(err, &se) || !strings.Contains(se.Msg, c.want) {
				t.Fatalf("error %v, want a StartError containing %q", err, c.want)
			}
			if strings.Contains(se.Msg, "\n") {
				t.Fatalf("start error is not one line: %q", se.Msg)
			}
		})
	}
}

// TestPoolSpreadsTasks: with N executors, N tasks run at once.
func TestPoolSpreadsTasks(t *testing.T) {
	pool := newPool(t, func(c *Config) { c.Size = 3 })
	workertest.Eventually(t, time.Minute, "three executors", func() bool { return pool.executorStates()["idle"] == 3 })
	var tasks []store.Task
	for range 3 {
		tk := task("sleep", "[1]", "{}")
		tasks = append(tasks, tk)
		if err := pool.Start(t.Context(), tk); err != nil {
			t.Fatal(err)
		}
	}
	workertest.Eventually(t, 30*time.Second, "three busy executors", func() bool { return pool.executorStates()["busy"] == 3 })
	for _, tk := range tasks {
		if o := wait(t, pool, tk); o.Kind != lifecycle.Succeeded {
			t.Fatalf("%+v", o)
		}
	}
}

func execOutput(name string, args ...string) (string, error) {
	b, err := execCommand(name, args...).CombinedOutput()
	return string(b), err
}

func killPID(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

var execCommand = exec.Command
