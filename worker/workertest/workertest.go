// Package workertest helps tests run the worker against the contract entrypoint script
// (testdata/contract_entrypoint.py), python3 and the real PostgreSQL.
package workertest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
)

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ScriptPath is the contract entrypoint script.
func ScriptPath() string { return filepath.Join(RepoRoot(), "testdata", "contract_entrypoint.py") }

var (
	pythonOnce sync.Once
	pythonPath string
)

// Python returns the python3 interpreter itself (sys.executable), not a wrapper such as a
// pyenv shim, which costs more than the test task. Without python3 the test is skipped, or
// fails under CI=true.
func Python(t testing.TB) string {
	t.Helper()
	pythonOnce.Do(func() {
		py, err := exec.LookPath("python3")
		if err != nil {
			return
		}
		out, err := exec.Command(py, "-c", "import sys; print(sys.executable)").Output()
		if p := strings.TrimSpace(string(out)); err == nil && p != "" {
			py = p
		}
		pythonPath = py
	})
	if pythonPath == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required for the worker tests (CI=true)")
		}
		t.Skip("python3 not found")
	}
	return pythonPath
}

// Entrypoint returns the command that runs the contract entrypoint with python3.
func Entrypoint(t testing.TB) []string {
	t.Helper()
	return []string{Python(t), ScriptPath()}
}

// EntrypointCommand is Entrypoint as one --entrypoint string (each word single-quoted).
func EntrypointCommand(t testing.TB) string {
	t.Helper()
	words := Entrypoint(t)
	for i, w := range words {
		words[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(words, " ")
}

// DjangoEnv is the environment the test Django project (python/rayctl_testapp) needs: its
// settings module and the directory that holds it (a runtime env's env_vars).
func DjangoEnv() map[string]string {
	return map[string]string{
		"DJANGO_SETTINGS_MODULE": "rayctl_testapp.settings",
		"PYTHONPATH":             filepath.Join(RepoRoot(), "python"),
	}
}

// Eventually polls cond every 20ms until it returns true, failing the test after timeout.
// It is for waiting on a condition, never for timing assertions.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ReadPIDs reads the space-separated process ids a task wrote to path, waiting for it.
func ReadPIDs(t testing.TB, path string) []int {
	t.Helper()
	var pids []int
	Eventually(t, 30*time.Second, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return false
			}
			pids = append(pids, n)
		}
		return len(pids) > 0
	})
	return pids
}

// Alive reports whether a process exists and is not a zombie.
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err) // no /proc (not Linux): trust kill(0)
	}
	// field 3 is the state; Z is a zombie (dead, not yet reaped by its parent)
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// WithEnv returns the processes, other than this one, whose environment holds kv
// ("NAME=value", such as a marker a test gives everything it starts).
func WithEnv(kv string) []int {
	var pids []int
	paths, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if slices.Contains(strings.Split(string(b), "\x00"), kv) {
			if pid, _ := strconv.Atoi(strings.Split(p, "/")[2]); pid != os.Getpid() {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// WaitGone waits until none of pids is alive.
func WaitGone(t testing.TB, timeout time.Duration, pids ...int) {
	t.Helper()
	Eventually(t, timeout, fmt.Sprintf("processes %v to exit", pids), func() bool {
		for _, p := range pids {
			if Alive(p) {
				return false
			}
		}
		return true
	})
}

// LogBuffer is a buffer safe for concurrent use: a worker's slog handler or a subprocess's
// output writes to it while the test reads.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Lines returns the non-empty lines that contain every one of subs.
func (l *LogBuffer) Lines(subs ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// Enqueue inserts a task through the store and returns its row.
func Enqueue(t testing.TB, s *store.Store, n store.NewTask) store.Task {
	t.Helper()
	task, err := s.Enqueue(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// Row reads a task row.
func Row(t testing.TB, s *store.Store, id int64) store.Task {
	t.Helper()
	task, err := s.GetTask(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// WaitState waits until the row is in one of states and returns it.
func WaitState(t testing.TB, s *store.Store, id int64, within time.Duration, states ...store.TaskState) store.Task {
	t.Helper()
	var task store.Task
	Eventually(t, within, fmt.Sprintf("task %d to reach %v", id, states), func() bool {
		task = Row(t, s, id)
		return slices.Contains(states, task.State)
	})
	return task
}

// Runs is what the contract entrypoint's exec_once recorded of one task's executions.
type Runs struct {
	Starts, Ends, Overlaps int
}

// ReadRuns reads dir/runs.log (written by exec_once) into runs per task key.
func ReadRuns(t testing.TB, dir string) map[string]Runs {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "runs.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[string]Runs{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		r := out[f[1]]
		switch f[0] {
		case "start":
			r.Starts++
		case "end":
			r.Ends++
		case "overlap":
			r.Overlaps++
		}
		out[f[1]] = r
	}
	return out
}

// Postgres is a private PostgreSQL server for one test (scripts/pg.sh), which the test may
// stop and start again: a real database outage and restart.
type Postgres struct {
	DSN string
	dir string
}

// PrivatePostgres starts a throwaway server for the test and removes it when the test ends.
// Without PostgreSQL's server binaries the test is skipped (it fails under CI=true).
func PrivatePostgres(t testing.TB) *Postgres {
	t.Helper()
	dir, err := os.MkdirTemp("", "rayctl-pg-test")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(RepoRoot(), "scripts", "pg.sh")
	out, err := exec.Command(script, "start", dir).CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		if os.Getenv("CI") == "true" {
			t.Fatalf("pg.sh start: %v\n%s", err, out)
		}
		t.Skipf("cannot start a private PostgreSQL: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(script, "stop", dir).Run() })
	p := &Postgres{dir: dir}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "export DATABASE_URL="); ok {
			p.DSN = strings.Trim(v, "'")
		}
	}
	if p.DSN == "" {
		t.Fatalf("pg.sh start printed no DATABASE_URL:\n%s", out)
	}
	return p
}

// Down stops the server (fast shutdown: every client is cut off).
func (p *Postgres) Down(t testing.TB) {
	t.Helper()
	if out, err := exec.Command(filepath.Join(RepoRoot(), "scripts", "pg.sh"), "down", p.dir).CombinedOutput(); err != nil {
		t.Fatalf("pg.sh down: %v\n%s", err, out)
	}
}

// Up starts the server again on the same port.
func (p *Postgres) Up(t testing.TB) {
	t.Helper()
	if out, err := exec.Command(filepath.Join(RepoRoot(), "scripts", "pg.sh"), "up", p.dir).CombinedOutput(); err != nil {
		t.Fatalf("pg.sh up: %v\n%s", err, out)
	}
}
