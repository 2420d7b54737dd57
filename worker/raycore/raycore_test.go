package raycore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/procgroup"
	"github.com/rayctl/rayctl/worker/procrunner"
	"github.com/rayctl/rayctl/worker/pyexec"
	"github.com/rayctl/rayctl/worker/workertest"
)

// TestMain lets this test binary act as procgroup's supervisor: the process runner the
// outcomes are compared with re-executes it.
func TestMain(m *testing.M) {
	procgroup.Main()
	os.Exit(m.Run())
}

var nextID atomic.Int64

func task(callable, args, kwargs string) store.Task {
	return store.Task{ID: 1_000_000 + nextID.Add(1), CallablePath: "rayctl_testapp.tasks." + callable, ArgsJSON: args, KwargsJSON: kwargs,
		AttemptNumber: 1, State: store.StateRunning}
}

// needGCS returns the real-Ray tier's GCS address (scripts/ray.sh exports RAYCTL_RAY_GCS).
func needGCS(t *testing.T) string {
	t.Helper()
	raytest.NeedRealRay(t, "raycore-test")
	addr := os.Getenv("RAYCTL_RAY_GCS")
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("RAYCTL_RAY_GCS is not set (scripts/ray.sh exports it); CI=true, so this is a failure")
		}
		t.Skip("RAYCTL_RAY_GCS is not set: run through scripts/test.sh (RAYCTL_RAY=1)")
	}
	return addr
}

func runtimeEnv() map[string]any {
	return map[string]any{"env_vars": workertest.DjangoEnv()}
}

func newRunner(t *testing.T, address string, mod func(*Config)) *Runner {
	t.Helper()
	cfg := Config{Python: raytest.NeedVenvPython(t), Address: address, RuntimeEnv: runtimeEnv(), CancelGrace: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	r, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	workertest.CloseAtEnd(t, r, 30*time.Second)
	return r
}

func wait(t *testing.T, r worker.Runner, tk store.Task) worker.Status {
	t.Helper()
	return workertest.WaitDone(t, r, tk, 2*time.Minute)
}

func run(t *testing.T, r worker.Runner, tk store.Task) worker.Status {
	t.Helper()
	return workertest.Run(t, r, tk, 2*time.Minute)
}

var coreID = regexp.MustCompile(`^[0-9a-f]{8}:[0-9a-f]{48}$`)

// TestRayCoreOutcomes: tasks run as Ray remote calls of django-ray's execution function, so
// their outcomes are those of the process runner with django-ray's own entrypoint, and each
// gets a Ray Core id in 0.2.0's format.
func TestRayCoreOutcomes(t *testing.T) {
	addr := needGCS(t)
	r := newRunner(t, addr, nil)
	py := raytest.NeedVenvPython(t)
	proc, err := procrunner.New(procrunner.Config{Entrypoint: []string{py, "-m", "django_ray.runtime.entrypoint"},
		Env: workertest.DjangoEnv()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Close(context.Background()) })

	for _, c := range []struct{ name, callable, args, kwargs string }{
		{"success", "add", "[2, 3]", "{}"},
		{"kwargs and unicode", "echo", "[]", `{"text": "h\u00e9llo \ud83d\ude00 \"q\"", "n": [1.5, 1e22]}`},
		{"app exception", "fail_value", `["bad value"]`, "{}"},
		{"unserializable result", "unserializable", "[]", "{}"},
		{"result over 1 MiB", "oversize", "[2097157]", "{}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tk := task(c.callable, c.args, c.kwargs)
			st := run(t, r, tk)
			if !coreID.MatchString(st.RayJobID) {
				t.Errorf("ray_job_id %q: want <job id>:<48 hex>", st.RayJobID)
			}
			if want := run(t, proc, tk).Outcome; !reflect.DeepEqual(st.Outcome, want) {
				t.Errorf("Ray Core outcome differs from the process runner's:\n core:    %+v\n process: %+v", st.Outcome, want)
			}
		})
	}

	// A Ray worker that dies: django-ray 0.2.0's rule, the error from ray.get is the failure.
	st := run(t, r, task("exit_now", "[3]", "{}"))
	if st.Outcome.Kind != lifecycle.Failed || st.Outcome.Failure.ExceptionType != "ray.exceptions.WorkerCrashedError" {
		t.Fatalf("os._exit on a Ray worker: %+v", st.Outcome)
	}
}

// TestRayCoreCancel: Cancel is ray.cancel; the attempt is Done (Cancelled) once Ray says so.
func TestRayCoreCancel(t *testing.T) {
	r := newRunner(t, needGCS(t), nil)
	for _, c := range []struct{ name, callable, args string }{{"sleeping", "sleep", "[60]"}, {"spinning", "spin", "[]"}} {
		t.Run(c.name, func(t *testing.T) {
			tk := task(c.callable, c.args, "{}")
			if err := r.Start(t.Context(), tk); err != nil {
				t.Fatal(err)
			}
			workertest.Eventually(t, time.Minute, "the task's Ray id", func() bool {
				st, _ := r.Poll(t.Context(), []store.Task{tk})
				return st[0].RayJobID != ""
			})
			time.Sleep(time.Second) // let it start on a Ray worker
			if err := r.Cancel(t.Context(), tk); err != nil {
				t.Fatal(err)
			}
			if st := wait(t, r, tk); st.Outcome.Kind != lifecycle.Cancelled {
				t.Fatalf("outcome %+v", st.Outcome)
			}
			r.Forget(tk)
		})
	}
	// the driver still works
	if st := run(t, r, task("add", "[1, 2]", "{}")); string(st.Outcome.Result.JSON) != "3" {
		t.Fatalf("%+v", st.Outcome)
	}
}

// TestRayCoreDriverDeath: a driver that dies fails its tasks in flight under the retry policy
// (RayConnectionError), holds claims while it restarts, and comes back.
func TestRayCoreDriverDeath(t *testing.T) {
	r := newRunner(t, needGCS(t), nil)
	tk := task("sleep", "[60]", "{}")
	if err := r.Start(t.Context(), tk); err != nil {
		t.Fatal(err)
	}
	pid := r.DriverPid()
	p, _ := os.FindProcess(pid)
	_ = p.Kill()
	st := wait(t, r, tk)
	if st.Outcome.Kind != lifecycle.Failed || st.Outcome.Failure.ExceptionType != ExcConnection {
		t.Fatalf("outcome %+v", st.Outcome)
	}
	r.Forget(tk)
	if err := r.Ready(); err == nil && r.DriverPid() == pid {
		t.Fatal("the dead driver is still reported ready")
	}
	workertest.Eventually(t, 3*time.Minute, "a new driver", func() bool { return r.Ready() == nil })
	if st := run(t, r, task("add", "[2, 2]", "{}")); string(st.Outcome.Result.JSON) != "4" {
		t.Fatalf("%+v", st.Outcome)
	}
}

// TestRayCoreStartErrors: a cluster that cannot run django-ray tasks is a start error (the
// worker exits 2), found by the probe before any task is claimed.
func TestRayCoreStartErrors(t *testing.T) {
	addr := needGCS(t)
	py := raytest.NeedVenvPython(t)
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"settings module missing on the workers", Config{Python: py, Address: addr,
			RuntimeEnv: map[string]any{"env_vars": map[string]any{"PYTHONPATH": filepath.Join(workertest.RepoRoot(), "python")}}},
			"DJANGO_SETTINGS_MODULE is not set on the Ray worker"},
		{"broken settings module", Config{Python: py, Address: addr,
			RuntimeEnv: map[string]any{"env_vars": map[string]any{"DJANGO_SETTINGS_MODULE": "rayctl_testapp.nope", "PYTHONPATH": filepath.Join(workertest.RepoRoot(), "python")}}},
			"a Ray worker cannot run django-ray tasks"},
		{"no cluster there", Config{Python: py, Address: "127.0.0.1:1", StartTimeout: 20 * time.Second}, "cannot reach the Ray cluster at 127.0.0.1:1: [Errno 111] Connection refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			_, err := New(ctx, c.cfg)
			var se *pyexec.StartError
			if !errors.As(err, &se) || !strings.Contains(se.Msg, c.want) || strings.Contains(se.Msg, "\n") {
				t.Fatalf("error %v; want one line containing %q", err, c.want)
			}
		})
	}
}
