package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker/workertest"
)

// These tests run the real rayworker binary, built once with a version stamped in by -X.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rayworker-e2e")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "rayworker")
		out, err := exec.Command("go", "build", "-ldflags", "-X main.version=e2e-test", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a running rayworker process.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	logs *workertest.LogBuffer
	done chan struct{}
	err  error
	// grace, when set, is how long the end of the test waits for the process to exit after
	// SIGTERM before it kills it; otherwise it is killed at once.
	grace time.Duration
}

// startBinary runs the binary with args, DATABASE_URL=dsn and env added to the test's
// environment, and its output in p.logs (shown should the test fail). The end of the test
// stops it (see proc.grace).
func startBinary(t *testing.T, dsn string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="+dsn), env...)
	p := &proc{t: t, cmd: cmd, logs: &workertest.LogBuffer{}, done: make(chan struct{})}
	cmd.Stderr, cmd.Stdout = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if p.grace > 0 {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(p.grace):
			}
		}
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("rayworker pid %d log:\n%s", cmd.Process.Pid, p.logs)
		}
	})
	return p
}

// startWorker runs the binary with --sync over the contract entrypoint, JSON logs, and args.
func startWorker(t *testing.T, dsn string, args ...string) *proc {
	t.Helper()
	return startWorkerWith(t, dsn, workertest.EntrypointCommand(t), args...)
}

// startWorkerWith runs the binary with --sync over entrypoint, JSON logs, and args.
func startWorkerWith(t *testing.T, dsn, entrypoint string, args ...string) *proc {
	t.Helper()
	return startBinary(t, dsn, nil, append([]string{"--sync", "--log-format", "json", "--entrypoint", entrypoint}, args...)...)
}

// logField returns the first value of key in a JSON log line whose msg is msg.
func (p *proc) logField(msg, key string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil || m["msg"] != msg {
			continue
		}
		if v, ok := m[key]; ok {
			return fmt.Sprint(v), true
		}
	}
	return "", false
}

func (p *proc) workerID() string {
	p.t.Helper()
	var id string
	workertest.Eventually(p.t, 30*time.Second, "the worker to start", func() bool {
		var ok bool
		id, ok = p.logField("worker started", "worker_id")
		return ok
	})
	return id
}

// exitCode waits for the process and returns its exit status.
func (p *proc) exitCode(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("rayworker did not exit within %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

func migratedDSN(t *testing.T) (*store.Store, string) {
	t.Helper()
	s, sc := storetest.New(t)
	return s, sc.DSN
}

func enqueueE2E(t *testing.T, s *store.Store, callable, args string) store.Task {
	t.Helper()
	task, err := s.Enqueue(t.Context(), store.NewTask{CallablePath: "tests.tasks." + callable, ArgsJSON: args})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func waitRow(t *testing.T, s *store.Store, id int64, what string, cond func(store.Task) bool) store.Task {
	t.Helper()
	var got store.Task
	workertest.Eventually(t, 60*time.Second, what, func() bool {
		var err error
		got, err = s.GetTask(t.Context(), id)
		return err == nil && cond(got)
	})
	return got
}

// TestBinaryGracefulShutdown: SIGTERM and SIGINT stop claiming, let running tasks finish up
// to --shutdown-timeout, hand the rest back without consuming an attempt, deactivate the
// lease, and exit 143 and 130.
func TestBinaryGracefulShutdown(t *testing.T) {
	t.Parallel()
	cases := []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 143}, {syscall.SIGINT, 130}}
	for _, c := range cases {
		t.Run(c.sig.String(), func(t *testing.T) {
			t.Parallel()
			s, dsn := migratedDSN(t)
			dir := t.TempDir()
			p := startWorker(t, dsn, "--shutdown-timeout", "5s")
			id := p.workerID()
			quick := enqueueE2E(t, s, "sleep", fmt.Sprintf(`[0.3, %q]`, filepath.Join(dir, "quick")))
			long := enqueueE2E(t, s, "sleep", fmt.Sprintf(`[60, %q]`, filepath.Join(dir, "long")))
			pids := workertest.ReadPIDs(t, filepath.Join(dir, "long"))
			workertest.ReadPIDs(t, filepath.Join(dir, "quick"))
			if err := p.cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			if code := p.exitCode(30 * time.Second); code != c.code {
				t.Fatalf("exit %d, want %d", code, c.code)
			}
			if got, _ := s.GetTask(t.Context(), quick.ID); got.State != store.StateSucceeded {
				t.Fatalf("the quick task did not finish during the drain: %+v", got)
			}
			got, _ := s.GetTask(t.Context(), long.ID)
			if got.State != store.StateQueued || got.AttemptNumber != 1 || got.ClaimedByWorker != nil {
				t.Fatalf("the long task was not handed back: %+v", got)
			}
			workertest.WaitGone(t, 10*time.Second, pids...)
			lease, err := s.GetLease(t.Context(), id)
			if err != nil || lease.IsActive {
				t.Fatalf("lease %+v %v", lease, err)
			}
		})
	}
}

// TestBinaryKill9Recovery: two workers share a database; one is killed with -9 while running
// tasks. Its task processes die with it (parent-death signal), and the other worker expires
// its lease, marks its RUNNING tasks LOST and runs them again to success.
func TestBinaryKill9Recovery(t *testing.T) {
	t.Parallel()
	s, dsn := migratedDSN(t)
	ctx := t.Context()
	dir := t.TempDir()
	release, started := filepath.Join(dir, "release"), filepath.Join(dir, "started")
	common := []string{"--worker-heartbeat-seconds", "1", "--worker-lease-seconds", "3", "--stuck-task-timeout-seconds", "30", "--retry-backoff-seconds", "0"}

	a := startWorker(t, dsn, append(common, "--concurrency", "3")...)
	aID := a.workerID()
	var ids []int64
	logs := make([]string, 3) // each task's runs: a start line and an end line per execution
	for i := range logs {
		logs[i] = filepath.Join(dir, fmt.Sprintf("runs%d", i))
		ids = append(ids, enqueueE2E(t, s, "block", fmt.Sprintf(`[%q, %q, %q]`, release, started, logs[i])).ID)
	}
	for _, id := range ids {
		waitRow(t, s, id, "worker A to run the task", func(r store.Task) bool {
			return r.State == store.StateRunning && r.ClaimedByWorker != nil && *r.ClaimedByWorker == aID
		})
	}
	var children []int
	workertest.Eventually(t, 30*time.Second, "A's three task processes", func() bool {
		entries, _ := os.ReadDir(started)
		children = children[:0]
		for _, e := range entries {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				children = append(children, pid)
			}
		}
		return len(children) == 3
	})
	aChildren := append([]int(nil), children...)
	t.Cleanup(func() { // should the test fail before they die, do not leave them blocking
		for _, c := range aChildren {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c)) // only our own task processes
			if workertest.Alive(c) && bytes.Contains(cmdline, []byte("contract_entrypoint.py")) {
				_ = syscall.Kill(c, syscall.SIGKILL)
			}
		}
	})
	for _, c := range children {
		if err := os.Remove(filepath.Join(started, strconv.Itoa(c))); err != nil {
			t.Fatal(err)
		}
	}

	b := startWorker(t, dsn, append(common, "--metrics-addr", "127.0.0.1:0")...)
	bID := b.workerID()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := a.exitCode(10 * time.Second); code != -1 {
		t.Fatalf("A exited %d, want killed", code)
	}
	workertest.WaitGone(t, 10*time.Second, children...) // they die with A, not run on beside the retry

	// Stand in for the 30 s stuck timeout passing: A's rows have not been heartbeated since.
	if _, err := storetest.DB(s).Exec(ctx, `UPDATE django_ray_raytaskexecution SET last_heartbeat_at = now() - interval '1 hour'
		WHERE claimed_by_worker = $1 AND state = 'RUNNING'`, aID); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		got := waitRow(t, s, id, "worker B to recover the task", func(r store.Task) bool { return r.State == store.StateSucceeded })
		if got.AttemptNumber != 2 || got.ClaimedByWorker == nil || *got.ClaimedByWorker != bID {
			t.Fatalf("%+v", got)
		}
	}
	// every task ran twice and finished once: A's run died with A (before B's began, see
	// WaitGone above), B's ran to its end; nothing lost, nothing run a third time, no slot held
	for i, log := range logs {
		text, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		if starts, ends := strings.Count(string(text), "start "), strings.Count(string(text), "end "); starts != 2 || ends != 1 {
			t.Errorf("task %d: %d runs started, %d ended; want 2 and 1:\n%s", ids[i], starts, ends, text)
		}
	}
	b.waitIdle()
	lease, err := s.GetLease(ctx, aID)
	if err != nil || lease.IsActive {
		t.Fatalf("A's lease %+v %v", lease, err)
	}
	if !strings.Contains(b.logs.String(), `"msg":"task lost, retry scheduled"`) || !strings.Contains(b.logs.String(), `"expired_worker_id":"`+aID+`"`) {
		t.Fatalf("B's log does not show the recovery:\n%s", b.logs)
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := b.exitCode(30 * time.Second); code != exitSIGTERM {
		t.Fatalf("B exit %d", code)
	}
}

// TestBinaryMetricsAndLogs: the binary serves /metrics, /healthz and /readyz, and never logs
// the database password or runtime_env values.
func TestBinaryMetricsAndLogs(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	// A password in the URL: the test server trusts local connections and ignores it; a
	// server that checks passwords has one in DATABASE_URL already.
	u, err := url.Parse(sc.DSN)
	if err != nil || u.User == nil {
		t.Skipf("DATABASE_URL is not a URL with a user: %s", store.RedactDSN(sc.DSN))
	}
	secret, has := u.User.Password()
	if !has {
		secret = "pw-s3cret-e2e"
		u.User = url.UserPassword(u.User.Username(), secret)
	}
	dsn := u.String()
	p := startWorker(t, dsn, "--metrics-addr", "127.0.0.1:0", "--ray-runtime-env", `{"env_vars": {"API_TOKEN": "tok-very-secret"}}`)
	p.workerID()
	addr, _ := p.logField("worker started", "metrics_addr")
	task := enqueueE2E(t, s, "env", `["API_TOKEN"]`)
	got := waitRow(t, s, task.ID, "the task", func(r store.Task) bool { return r.State == store.StateSucceeded })
	if got.ResultData == nil || *got.ResultData != `"tok-very-secret"` {
		t.Fatalf("runtime_env var not passed: %+v", got)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var code int
	var body string
	workertest.Eventually(t, 10*time.Second, "the outcome counter", func() bool {
		code, body = get("/metrics")
		return strings.Contains(body, `rayworker_task_outcomes_total{outcome="succeeded"} 1`)
	})
	for _, want := range []string{`django_ray_tasks_total{state="SUCCEEDED"} 1`, "django_ray_tasks_queued 0", "django_ray_tasks_running",
		`rayworker_task_outcomes_total{outcome="succeeded"} 1`, "rayworker_task_duration_seconds_bucket", "process_resident_memory_bytes"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics: %d, missing %q", code, want)
		}
	}
	if code, body := get("/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 || strings.TrimSpace(body) != "ready" {
		t.Errorf("/readyz %d %q", code, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.exitCode(30 * time.Second)
	logs := p.logs.String()
	if strings.Contains(logs, secret) || strings.Contains(logs, "tok-very-secret") {
		t.Fatalf("a secret was logged:\n%s", logs)
	}
	if !strings.Contains(logs, u.User.Username()+":xxxxx@") {
		t.Fatalf("the redacted database URL is not logged:\n%s", logs)
	}
}

func TestBinaryVersionAndDeadDatabase(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binary(t), "--version").CombinedOutput()
	// the version, then what identifies the build (internal/buildinfo)
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), "rayworker version e2e-test (") || !strings.Contains(string(out), runtime.Version()) {
		t.Fatalf("%q %v", out, err)
	}
	cmd := exec.Command(binary(t), "--sync")
	cmd.Env = append(os.Environ(), "DATABASE_URL=postgres://x:pw@127.0.0.1:1/db")
	out, err = cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailed || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "connection refused") {
		t.Fatalf("exit %v: %q", err, out)
	}
}

// TestBinaryKill9KillsTaskChildren: kill -9 of rayworker kills its tasks' whole process
// groups, the entrypoint's own children included (a parent-death signal reaches only the
// entrypoint itself; procgroup's supervisor reaches the rest).
func TestBinaryKill9KillsTaskChildren(t *testing.T) {
	t.Parallel()
	s, dsn := migratedDSN(t)
	dir := t.TempDir()
	p := startWorker(t, dsn)
	p.workerID()
	pidfile := filepath.Join(dir, "pids")
	enqueueE2E(t, s, "spawn_sleep", fmt.Sprintf(`[300, %q]`, pidfile))
	pids := workertest.ReadPIDs(t, pidfile) // the entrypoint and its child, same process group
	if len(pids) != 2 {
		t.Fatalf("pids %v", pids)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if workertest.Alive(pid) && (bytes.Contains(cmdline, []byte("sleep")) || bytes.Contains(cmdline, []byte("contract_entrypoint.py"))) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.exitCode(10 * time.Second)
	workertest.WaitGone(t, 30*time.Second, pids...)
}
