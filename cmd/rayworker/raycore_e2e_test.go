package main

// The Ray Core tier: the real rayworker binary with --runner ray_core drives a real Ray head
// (scripts/ray.sh exports its GCS address as RAYCTL_RAY_GCS) through its Python driver, running
// django-ray 0.2.0's execution function on Ray workers.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs/localray"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker/workertest"
)

func needGCS(t *testing.T) (realRay, string) {
	t.Helper()
	ray := needRealRay(t)
	gcs := os.Getenv("RAYCTL_RAY_GCS")
	if gcs == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("RAYCTL_RAY_GCS is not set (scripts/ray.sh exports it); CI=true, so this is a failure")
		}
		t.Skip("RAYCTL_RAY_GCS is not set: run through scripts/test.sh")
	}
	return ray, gcs
}

func startRayCore(t *testing.T, dsn string, ray realRay, address string, args ...string) *proc {
	t.Helper()
	all := append([]string{"--runner", "ray_core", "--cluster", address, "--python", ray.python, "--ray-runtime-env", ray.runtimeEnv(),
		"--log-format", "json", "--retry-backoff-seconds", "0", "--max-task-attempts", "3"}, args...)
	return startBinary(t, dsn, nil, all...)
}

var rayCoreID = regexp.MustCompile(`^[0-9a-f]{8}:[0-9a-f]{48}$`)

// TestRayCoreBinary: results, retries, a timeout and a cancel, with the row carrying 0.2.0's
// Ray Core id and the Ray address.
func TestRayCoreBinary(t *testing.T) {
	t.Parallel()
	ray, gcs := needGCS(t)
	s, dsn := migratedDSN(t)
	p := startRayCore(t, dsn, ray, gcs, "--concurrency", "4", "--metrics-addr", "127.0.0.1:0")
	p.workerID()
	ok := enqueueApp(t, s, "add", "[20, 22]", "{}", 0)
	fails := enqueueApp(t, s, "fail_value", `["ray core boom"]`, "{}", 0)
	slow := enqueueApp(t, s, "sleep", "[60.25]", "{}", 2)
	cancelled := enqueueApp(t, s, "sleep", "[60.5]", "{}", 0)

	got := waitRow(t, s, ok.ID, "success", terminal)
	if got.State != store.StateSucceeded || deref(got.ResultData) != "42" || got.RayJobID == nil || !rayCoreID.MatchString(*got.RayJobID) ||
		deref(got.RayAddress) != gcs {
		t.Fatalf("success row: %s %q job %q address %q", got.State, deref(got.ResultData), deref(got.RayJobID), deref(got.RayAddress))
	}
	got = waitRow(t, s, fails.ID, "the failure to run out of attempts", terminal)
	if got.State != store.StateFailed || got.AttemptNumber != 3 || deref(got.ErrorMessage) != "ray core boom" ||
		!strings.Contains(deref(got.ErrorTraceback), "ValueError: ray core boom") {
		t.Fatalf("failure row: %s attempt %d %q", got.State, got.AttemptNumber, deref(got.ErrorMessage))
	}
	got = waitRow(t, s, slow.ID, "the timeout", terminal)
	if got.State != store.StateFailed || deref(got.ErrorMessage) != "Task timed out after 2 seconds" {
		t.Fatalf("timeout row: %s %q", got.State, deref(got.ErrorMessage))
	}
	waitRow(t, s, cancelled.ID, "the sleeper to run", func(r store.Task) bool { return r.RayJobID != nil })
	if _, err := s.RequestCancel(t.Context(), []int64{cancelled.ID}, []store.TaskState{store.StateRunning}); err != nil {
		t.Fatal(err)
	}
	if got := waitRow(t, s, cancelled.ID, "the cancel", terminal); got.State != store.StateCancelled {
		t.Fatalf("cancel row: %s", got.State)
	}
	metrics := scrapeAt(t, p)
	for _, want := range []string{`rayworker_executors{state="idle"} 1`, `rayworker_executor_tasks_total 6`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(metrics, "rayworker_executor"))
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(60 * time.Second); code != 143 {
		t.Fatalf("exit %d", code)
	}
}

func scrapeAt(t *testing.T, p *proc) string {
	t.Helper()
	if _, ok := p.logField("worker started", "metrics_addr"); !ok {
		t.Fatal("no metrics address")
	}
	return scrape(t, p)
}

// TestRayCoreHeadRestart: the Ray head restarts while tasks run. The driver loses the
// cluster, the tasks it had in flight fail with RayConnectionError and go back through the
// retry policy, the driver reconnects to the new head, and every task succeeds: none lost,
// none completed twice, no run overlapping another run of the same task.
func TestRayCoreHeadRestart(t *testing.T) {
	t.Parallel()
	ray, _ := needGCS(t) // for the venv; this test runs a head of its own, which it restarts
	rayCLI := filepath.Join(filepath.Dir(ray.python), "ray")
	ports := freeTCPPorts(t, 2)
	ctx := t.Context()
	start := func() *localray.Head {
		h, err := localray.Start(ctx, localray.Options{Ray: rayCLI, Port: ports[0], GCSPort: ports[1], CPUs: 2})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	head := start()
	t.Cleanup(func() { _ = head.Stop(context.Background()) })

	s, dsn := migratedDSN(t)
	runs := filepath.Join(t.TempDir(), "runs")
	p := startRayCore(t, dsn, ray, head.GCSAddress, "--concurrency", "3", "--max-task-attempts", "5", "--metrics-addr", "127.0.0.1:0")
	p.workerID()
	var ids []int64
	for i := range 6 {
		ids = append(ids, enqueueApp(t, s, "record", fmt.Sprintf("[%q, \"t%d\", 12]", runs, i), "{}", 0).ID)
	}
	// three run (concurrency 3), mid-sleep: stop the head under them
	for i := range 3 {
		waitRuns(t, runs, fmt.Sprintf("t%d start", i), 1)
	}
	if err := head.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	head = start()
	for _, id := range ids {
		got := waitRowWithin(t, s, id, 5*time.Minute, terminal)
		if got.State != store.StateSucceeded {
			t.Fatalf("task %d: %s %q", id, got.State, deref(got.ErrorMessage))
		}
	}
	counts := countRuns(t, runs)
	retried := 0
	for i := range 6 {
		tag := fmt.Sprintf("t%d", i)
		if counts[tag+" end"] != 1 {
			t.Errorf("%s completed %d times", tag, counts[tag+" end"])
		}
		if counts[tag+" start"] > 1 {
			retried++
		}
	}
	// Which runs the head's stop kills, and when the driver notices, is Ray's business (a
	// worker killed under a task is WorkerCrashedError, as in django-ray 0.2.0; tasks the driver
	// had in flight when it lost the cluster are RayConnectionError): at least one ran again.
	if retried == 0 {
		t.Errorf("no task ran again after the restart (runs: %v)", counts)
	}
	assertNoOverlap(t, runs)
	conn := len(p.logs.Lines(`"exception_type":"RayConnectionError"`, "retry scheduled"))
	crashed := len(p.logs.Lines(`"exception_type":"ray.exceptions.WorkerCrashedError"`, "retry scheduled"))
	if conn+crashed == 0 {
		t.Error("no retry under RayConnectionError or WorkerCrashedError was logged")
	}
	t.Logf("restart: %d tasks ran again; %d RayConnectionError and %d WorkerCrashedError retries", retried, conn, crashed)
}

func waitRowWithin(t *testing.T, s *store.Store, id int64, within time.Duration, cond func(store.Task) bool) store.Task {
	t.Helper()
	var got store.Task
	workertest.Eventually(t, within, fmt.Sprintf("task %d", id), func() bool {
		var err error
		got, err = s.GetTask(t.Context(), id)
		return err == nil && cond(got)
	})
	return got
}

// assertNoOverlap checks that no task ran twice at once: a run that never recorded its end
// must be dead (killed with the head) — had it lived on beside its retry, it would have
// recorded an end too, which the caller counts.
func assertNoOverlap(t *testing.T, path string) {
	t.Helper()
	b, _ := os.ReadFile(path)
	open := map[string]int{} // "tag pid" -> starts without an end
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		key := f[0] + " " + f[2]
		if f[1] == "start" {
			open[key]++
		} else {
			open[key]--
		}
	}
	for key, n := range open {
		pid, _ := strconv.Atoi(strings.Fields(key)[1])
		if n > 0 && workertest.Alive(pid) {
			t.Errorf("run %s never ended and is still alive", key)
		}
	}
}

func freeTCPPorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}
