package main

// The real-Ray tier for Ray Job mode: the real rayworker binary runs tasks on a real Ray head
// with the REAL django-ray 0.2.0 entrypoint (scripts/test.sh starts the head; RAY_ADDRESS and
// RAYCTL_PYTHON come from scripts/ray.sh). Without them the tests skip, except under CI=true,
// where they fail.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/localray"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker/workertest"
)

type realRay struct {
	addr       string
	python     string
	pythonPath string
	c          *rayjobs.Client
}

func needRealRay(t *testing.T) realRay {
	r := raytest.NeedRealRay(t, "rayctl/rayrunner-realray-test")
	return realRay{addr: r.Address, python: r.Python, pythonPath: r.PythonPath, c: r.Client}
}

func (r realRay) runtimeEnv() string {
	b, _ := json.Marshal(map[string]any{"env_vars": map[string]string{
		"DJANGO_SETTINGS_MODULE": "rayctl_testapp.settings", "PYTHONPATH": r.pythonPath}})
	return string(b)
}

type procOpts struct {
	maxAttempts int
	resultDir   string
	queues      string
}

// startRealRayWorker runs the binary in the default Ray Job mode against RAY_ADDRESS, with
// short heartbeats and leases so that recovery is quick.
func startRealRayWorker(t *testing.T, dsn string, ray realRay, o procOpts) *proc {
	t.Helper()
	if o.maxAttempts == 0 {
		o.maxAttempts = 2
	}
	args := []string{"--ray-address", ray.addr, "--ray-runtime-env", ray.runtimeEnv(), "--concurrency", "8",
		"--max-task-attempts", strconv.Itoa(o.maxAttempts), "--retry-backoff-seconds", "0",
		"--worker-heartbeat-seconds", "1", "--worker-lease-seconds", "3", "--metrics-addr", "127.0.0.1:0"}
	if o.resultDir != "" {
		args = append(args, "--result-storage-backend", "filesystem", "--result-storage-filesystem-path", o.resultDir)
	}
	if o.queues != "" {
		args = append(args, "--queue", o.queues)
	}
	return startRayWorker(t, dsn, nil, args...)
}

// jobsOf lists the Ray jobs that ran a task: same metadata and payload, submitted after the
// row was created. Tests sharing the Ray run at once (row ids repeat across schemas), so each
// gives its tasks arguments no other real-Ray test uses.
func (r realRay) jobsOf(t *testing.T, row store.Task) []rayjobs.JobDetails {
	t.Helper()
	all, err := r.c.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	payload, err := lifecycle.Payload(row)
	if err != nil {
		t.Fatal(err)
	}
	var out []rayjobs.JobDetails
	for _, j := range all {
		if j.Metadata["django_ray_task_id"] == strconv.FormatInt(row.ID, 10) && j.Metadata["callable_path"] == row.CallablePath &&
			strings.HasSuffix(j.Entrypoint, " "+payload) && j.StartTime.After(row.CreatedAt.Add(-2*time.Second)) {
			out = append(out, j)
		}
	}
	return out
}

func (r realRay) job(t *testing.T, id string) *rayjobs.JobDetails {
	t.Helper()
	j, err := r.c.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (r realRay) waitJobStatus(t *testing.T, id string, within time.Duration, want ...rayjobs.Status) {
	t.Helper()
	workertest.Eventually(t, within, fmt.Sprintf("Ray job %s to be %v", id, want), func() bool {
		j, err := r.c.Get(t.Context(), id)
		if errors.Is(err, rayjobs.ErrNotFound) {
			return false // not submitted yet
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if j.Status == w {
				return true
			}
		}
		return false
	})
}

// rayctl builds the rayctl binary once per test binary.
func rayctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rayctl")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rayctl")
	cmd.Dir = workertest.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build rayctl: %v\n%s", err, out)
	}
	return bin
}

// TestRealRay runs the django-ray 0.2.0 entrypoint on a real Ray through a worker process:
// success, an app error retried under a new id, a timeout that stops the job, `rayctl cancel`
// stopping the job, an oversized result stored byte-compatibly by reference.
func TestRealRay(t *testing.T) {
	ray := needRealRay(t)
	t.Parallel()
	s, sc := storetest.New(t)
	results := t.TempDir()
	w := startRealRayWorker(t, sc.DSN, ray, procOpts{resultDir: results})
	ctx := t.Context()
	enq := func(callable, args, kwargs string, timeout int32) store.Task {
		n := store.NewTask{CallablePath: "rayctl_testapp.tasks." + callable, ArgsJSON: args, KwargsJSON: kwargs}
		if timeout > 0 {
			n.TimeoutSeconds = &timeout
		}
		task, err := s.Enqueue(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
	// Arguments unlike any other real-Ray test's: jobsOf tells a task's jobs by their payload.
	const big = 1_500_017
	add := enq("add", "[20002, 3]", "{}", 0)
	noisy := enq("noisy", "[]", `{"value": "d\u00e9j\u00e0 vu"}`, 0)
	fail := enq("fail_value", "[]", `{"message": "boom"}`, 0)
	timeout := enq("sleep", "[60]", "{}", 4)
	cancel := enq("sleep", "[61]", "{}", 0)
	oversize := enq("oversize", fmt.Sprintf("[%d]", big), "{}", 0)

	if got := workertest.WaitState(t, s, add.ID, 2*time.Minute, store.StateSucceeded); str(got.ResultData) != "20005" {
		t.Fatalf("add: %+v", got)
	}
	if got := workertest.WaitState(t, s, noisy.ID, 2*time.Minute, store.StateSucceeded); str(got.ResultData) != `"d\u00e9j\u00e0 vu"` {
		t.Fatalf("noisy: %s", str(got.ResultData))
	}

	// app error: retried once under a new submission id, then FAILED with the app's error
	got := workertest.WaitState(t, s, fail.ID, 3*time.Minute, store.StateFailed)
	if got.AttemptNumber != 2 || str(got.ErrorMessage) != "boom" || !strings.Contains(str(got.ErrorTraceback), "ValueError: boom") {
		t.Fatalf("fail_value: %+v", got)
	}
	if jobs := ray.jobsOf(t, got); len(jobs) != 2 || jobs[0].SubmissionID == jobs[1].SubmissionID {
		t.Fatalf("fail_value ran as %d jobs, want 2 with distinct ids", len(jobs))
	}

	// timeout: FAILED, never retried, and the Ray job stopped
	got = workertest.WaitState(t, s, timeout.ID, 2*time.Minute, store.StateFailed)
	if str(got.ErrorMessage) != "Task timed out after 4 seconds" || got.AttemptNumber != 1 {
		t.Fatalf("timeout: %+v", got)
	}
	ray.waitJobStatus(t, str(got.RayJobID), time.Minute, rayjobs.StatusStopped)

	// rayctl cancel: CANCELLING -> the Ray job stopped -> CANCELLED
	row := workertest.WaitState(t, s, cancel.ID, time.Minute, store.StateRunning)
	ray.waitJobStatus(t, str(row.RayJobID), 2*time.Minute, rayjobs.StatusRunning)
	out, err := exec.CommandContext(ctx, rayctl(t), "cancel", "--database-url", sc.DSN, "--id", strconv.FormatInt(cancel.ID, 10), "--yes").CombinedOutput()
	if err != nil {
		t.Fatalf("rayctl cancel: %v\n%s", err, out)
	}
	workertest.WaitState(t, s, cancel.ID, time.Minute, store.StateCancelled)
	ray.waitJobStatus(t, str(row.RayJobID), time.Minute, rayjobs.StatusStopped)

	// oversize: resultfs:// reference; the file holds Python's json.dumps text
	got = workertest.WaitState(t, s, oversize.ID, 2*time.Minute, store.StateSucceeded)
	text := `"` + strings.Repeat("x", big) + `"`
	sum := sha256.Sum256([]byte(text))
	hx := hex.EncodeToString(sum[:])
	want := fmt.Sprintf("resultfs://sha256/%s?rel=%s/%s/%s.json&bytes=%d", hx, hx[:2], hx[2:4], hx, len(text))
	if got.ResultData != nil || str(got.ResultReference) != want {
		t.Fatalf("oversize: reference %s, want %s", str(got.ResultReference), want)
	}
	file, err := os.ReadFile(filepath.Join(results, hx[:2], hx[2:4], hx+".json"))
	if err != nil || string(file) != text {
		t.Fatalf("result file: %d bytes, %v", len(file), err)
	}

	// every other task ran as exactly one Ray job
	for _, tk := range []store.Task{add, noisy, timeout, cancel, oversize} {
		if jobs := ray.jobsOf(t, workertest.Row(t, s, tk.ID)); len(jobs) != 1 {
			t.Fatalf("task %d ran as %d Ray jobs", tk.ID, len(jobs))
		}
	}
	if v := w.metricValue("rayworker_ray_submit_duration_seconds_count"); v != 7 {
		t.Fatalf("%v submissions timed, want 7 (six tasks, one retry)", v)
	}
	if v := w.metricValue(`rayworker_ray_submissions_total{result="accepted"}`); v != 7 {
		t.Fatalf("%v accepted submissions, want 7", v)
	}
}

// TestRealRayKilledWorker: a rayworker killed (SIGKILL) while its job runs on Ray; a second
// rayworker adopts the job, and the task ends once, from that one job.
func TestRealRayKilledWorker(t *testing.T) {
	ray := needRealRay(t)
	t.Parallel()
	s, sc := storetest.New(t)
	a := startRealRayWorker(t, sc.DSN, ray, procOpts{})
	aID := a.workerID()
	task := workertest.Enqueue(t, s, store.NewTask{CallablePath: "rayctl_testapp.tasks.sleep", ArgsJSON: "[8.5]"})
	row := workertest.WaitState(t, s, task.ID, time.Minute, store.StateRunning)
	ray.waitJobStatus(t, str(row.RayJobID), 2*time.Minute, rayjobs.StatusRunning)
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.exitCode(10 * time.Second)

	b := startRealRayWorker(t, sc.DSN, ray, procOpts{})
	bID := b.workerID()
	workertest.Eventually(t, time.Minute, "adoption by B", func() bool {
		return str(workertest.Row(t, s, task.ID).ClaimedByWorker) == bID
	})
	got := workertest.WaitState(t, s, task.ID, 2*time.Minute, store.StateSucceeded, store.StateFailed, store.StateQueued)
	if got.State != store.StateSucceeded || got.AttemptNumber != 1 || str(got.RayJobID) != str(row.RayJobID) || str(got.ResultData) != `{"slept": 8.5}` {
		t.Fatalf("%+v (A was %s)", got, aID)
	}
	if jobs := ray.jobsOf(t, got); len(jobs) != 1 {
		t.Fatalf("the task ran as %d Ray jobs", len(jobs))
	}
	if v := b.metricValue(`rayworker_tasks_recovered_total{kind="adopted"}`); v != 1 {
		t.Fatalf("adopted metric %v", v)
	}
}

// pythonWorker is django-ray 0.2.0's own worker (`manage.py django_ray_worker`) on the test
// schema, with its lease and heartbeat shortened through rayctl_testapp.worker_settings.
type pythonWorker struct {
	cmd *exec.Cmd
	out *workertest.LogBuffer
}

func startPythonWorker(t *testing.T, sc storetest.Schema, ray realRay, queue string) *pythonWorker {
	t.Helper()
	cmd := exec.Command(ray.python, "-u", "manage.py", "django_ray_worker", "--queue", queue, "--concurrency", "4")
	cmd.Dir = filepath.Join(workertest.RepoRoot(), "python")
	cmd.Env = append(os.Environ(), "RAYCTL_TEST_DATABASE_URL="+sc.DSN, "RAY_ADDRESS="+ray.addr, "RAYCTL_PYTHONPATH="+ray.pythonPath,
		"RAYCTL_WORKER_LEASE_SECONDS=3", "RAYCTL_WORKER_HEARTBEAT_SECONDS=1", "DJANGO_SETTINGS_MODULE=rayctl_testapp.worker_settings")
	p := &pythonWorker{cmd: cmd, out: &workertest.LogBuffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("python worker log:\n%s", p.out.String())
		}
	})
	return p
}

func (p *pythonWorker) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// TestMixedFleet: django-ray 0.2.0's Python worker and rayworker share one database and one
// Ray. A Go worker dies with a job running: the Python worker adopts it and records its
// result. The Python worker then dies with a job of its own running: a Go worker adopts it and
// records its result. Each task runs as exactly one Ray job.
func TestMixedFleet(t *testing.T) {
	ray := needRealRay(t)
	t.Parallel()
	s, sc := storetest.New(t)
	// the Go worker's job
	g := startRealRayWorker(t, sc.DSN, ray, procOpts{})
	gID := g.workerID()
	goTask := workertest.Enqueue(t, s, store.NewTask{CallablePath: "rayctl_testapp.tasks.sleep", ArgsJSON: "[15.5]"})
	row := workertest.WaitState(t, s, goTask.ID, time.Minute, store.StateRunning)
	ray.waitJobStatus(t, str(row.RayJobID), 2*time.Minute, rayjobs.StatusRunning)
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	g.exitCode(10 * time.Second)
	pyTask := workertest.Enqueue(t, s, store.NewTask{CallablePath: "rayctl_testapp.tasks.sleep", ArgsJSON: "[45.5]", Queue: "py-only"})
	time.Sleep(4 * time.Second) // the Go worker's lease goes stale for the Python worker (3 s)

	p := startPythonWorker(t, sc, ray, "py-only")
	workertest.Eventually(t, time.Minute, "the Python worker to adopt the Go worker's job", func() bool {
		c := str(workertest.Row(t, s, goTask.ID).ClaimedByWorker)
		return c != gID && c != "<nil>"
	})
	// ... and to record it: its reconcile runs every 30 s (hard-coded in 0.2.0)
	got := workertest.WaitState(t, s, goTask.ID, 2*time.Minute, store.StateSucceeded, store.StateFailed, store.StateQueued)
	if got.State != store.StateSucceeded || got.AttemptNumber != 1 || str(got.RayJobID) != str(row.RayJobID) || str(got.ResultData) != `{"slept": 15.5}` {
		t.Fatalf("the Go worker's task, finished by the Python worker: %+v", got)
	}
	pythonID := str(got.ClaimedByWorker)

	// the Python worker's own job, still running when it dies
	pyRow := workertest.WaitState(t, s, pyTask.ID, time.Minute, store.StateRunning)
	workertest.Eventually(t, time.Minute, "the Python worker to submit", func() bool {
		pyRow = workertest.Row(t, s, pyTask.ID)
		return strings.HasPrefix(str(pyRow.RayJobID), "raysubmit_") && str(pyRow.ClaimedByWorker) == pythonID
	})
	if strings.HasPrefix(str(pyRow.RayJobID), "raysubmit_t") {
		t.Fatalf("the Python worker's job id %s looks like ours", str(pyRow.RayJobID))
	}
	ray.waitJobStatus(t, str(pyRow.RayJobID), 2*time.Minute, rayjobs.StatusRunning)
	p.kill()
	h := startRealRayWorker(t, sc.DSN, ray, procOpts{queues: "default"})
	hID := h.workerID()
	workertest.Eventually(t, time.Minute, "the Go worker to adopt the Python worker's job", func() bool {
		return str(workertest.Row(t, s, pyTask.ID).ClaimedByWorker) == hID
	})
	got = workertest.WaitState(t, s, pyTask.ID, 2*time.Minute, store.StateSucceeded, store.StateFailed, store.StateQueued)
	if got.State != store.StateSucceeded || got.AttemptNumber != 1 || str(got.RayJobID) != str(pyRow.RayJobID) || str(got.ResultData) != `{"slept": 45.5}` {
		t.Fatalf("the Python worker's task, finished by the Go worker: %+v", got)
	}
	for _, tk := range []store.Task{goTask, pyTask} {
		if jobs := ray.jobsOf(t, workertest.Row(t, s, tk.ID)); len(jobs) != 1 {
			t.Fatalf("task %d ran as %d Ray jobs", tk.ID, len(jobs))
		}
	}
}

// TestRealRayLocal: --local with nothing answering at 127.0.0.1:8265 starts a Ray head with
// the ray CLI (the venv's, first on PATH), runs tasks on it with the real entrypoint, and stops
// that head, all of its processes, when the worker exits.
func TestRealRayLocal(t *testing.T) {
	ray := needRealRay(t)
	if c, err := net.DialTimeout("tcp", "127.0.0.1:8265", time.Second); err == nil {
		c.Close()
		msg := "something already listens on 127.0.0.1:8265: --local would use it instead of starting a head"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s, sc := storetest.New(t)
	venvBin := filepath.Dir(ray.python)
	w := startRayWorker(t, sc.DSN, []string{"PATH=" + venvBin + string(os.PathListSeparator) + os.Getenv("PATH")},
		"--local", "--ray-runtime-env", ray.runtimeEnv(), "--metrics-addr", "127.0.0.1:0")
	var dir string
	workertest.Eventually(t, 3*time.Minute, "the local head to start", func() bool {
		var ok bool
		dir, ok = w.logField("local Ray head started", "dir")
		return ok
	})
	task := workertest.Enqueue(t, s, store.NewTask{CallablePath: "rayctl_testapp.tasks.add", ArgsJSON: "[20, 22]"})
	if got := workertest.WaitState(t, s, task.ID, 2*time.Minute, store.StateSucceeded, store.StateFailed); str(got.ResultData) != "42" ||
		str(got.RayAddress) != "http://127.0.0.1:8265" {
		t.Fatalf("%+v", got)
	}
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := w.exitCode(time.Minute); code != exitSIGTERM {
		t.Fatalf("exit %d", code)
	}
	if _, ok := w.logField("stopped the local Ray head this worker started", "address"); !ok {
		t.Fatalf("no stop line:\n%s", w.logs)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:8265", time.Second); err == nil {
		c.Close()
		t.Fatal("the dashboard still answers after the worker exited")
	}
	for _, pid := range workertest.WithEnv(localray.Marker + "=" + dir) {
		if workertest.Alive(pid) {
			t.Fatalf("process %d of the local head survived", pid)
		}
	}
}
