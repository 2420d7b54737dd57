package interop_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store/storetest"
)

// The README's "against a database of your own" steps live in docs/django.md (the README links
// there); this file runs them as written.
const readmeDoc = "docs/django.md"

// readmeBlock is one fenced sh block of a doc section and the prose line before it.
type readmeBlock struct {
	label string
	lines []string
}

// readmeSection returns the fenced sh blocks under a heading of readmeDoc, in order.
func readmeSection(t *testing.T, heading string) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", readmeDoc))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	in, fence, label := false, false, ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in:
			in = line == heading
		case fence && strings.HasPrefix(line, "```"):
			fence = false
		case fence:
			blocks[len(blocks)-1].lines = append(blocks[len(blocks)-1].lines, line)
		case strings.HasPrefix(line, "```sh"):
			fence = true
			blocks = append(blocks, readmeBlock{label: label})
		case strings.HasPrefix(line, "#"):
			return blocks // the next heading ends the section
		case strings.TrimSpace(line) != "":
			label = line
		}
	}
	if !in {
		t.Fatalf("%s has no heading %q", readmeDoc, heading)
	}
	return blocks
}

// The values of the README's setup block that are the reader's own: the test supplies its own
// database, project directory and Python. Every other line runs as written.
var yourValues = regexp.MustCompile(`^export (DATABASE_URL|PYTHONPATH|DJANGO_RAY_PYTHON)=\S+`)

// mysite is a minimal Django project as the README's placeholders name it: settings module
// mysite.settings, a task myapp.tasks.add, PostgreSQL from DATABASE_URL (its search_path
// parameter selects the test's schema).
var mysite = map[string]string{
	"mysite/__init__.py": "",
	"mysite/settings.py": `import os
from urllib.parse import parse_qs, unquote, urlsplit

SECRET_KEY = "readme-test-only"
USE_TZ = True
INSTALLED_APPS = ["django_ray", "myapp"]


def _database(url):
    u = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(u.query).items()}
    options = {}
    if "search_path" in query:
        options["options"] = "-c search_path=" + query["search_path"]
    if "sslmode" in query:
        options["sslmode"] = query["sslmode"]
    return {"ENGINE": "django.db.backends.postgresql", "NAME": unquote(u.path.lstrip("/")) or "postgres",
            "USER": unquote(u.username or ""), "PASSWORD": unquote(u.password or ""),
            "HOST": u.hostname or "", "PORT": str(u.port or ""), "OPTIONS": options}


DATABASES = {"default": _database(os.environ["DATABASE_URL"])}
TASKS = {"default": {"BACKEND": "django_ray.backends.RayTaskBackend", "QUEUES": ["default"], "OPTIONS": {"RAY_ADDRESS": "auto"}}}
DJANGO_RAY = {"RAY_ADDRESS": "auto"}
`,
	"myapp/__init__.py": "",
	"myapp/tasks.py": `from django.tasks import task


@task
def add(a, b):
    return a + b
`,
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReadmeOwnDatabase runs the "Against a database of your own" steps (docs/django.md, linked
// from the README's quick start) verbatim on a database Django's migrate created: the setup
// block in each terminal (with the test's own DATABASE_URL, PYTHONPATH and DJANGO_RAY_PYTHON),
// terminal 1's blocks in order under `set -e`,
// terminal 2's worker in the background until the task it enqueued has succeeded, and
// `rayctl top` in a tmux terminal, quit with q. The doc cannot drift from what works.
func TestReadmeOwnDatabase(t *testing.T) {
	d := needDjango(t)
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is required to run the README's `rayctl top` step")
		}
		t.Skip("tmux not installed")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeSection(t, "## Against a database of your own")
	if len(blocks) < 3 || !strings.HasPrefix(blocks[0].label, "In each terminal") {
		t.Fatalf("the docs/django.md section's shape changed (want a setup block \"In each terminal...\", then Terminal 1/2 blocks); update this test with it: %+v", blocks)
	}

	// the project and a database Django migrated
	proj := t.TempDir()
	for name, text := range mysite {
		path := filepath.Join(proj, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sc := storetest.EmptySchema(t)
	migrate := exec.Command(d.python, "-m", "django", "migrate", "django_ray")
	migrate.Dir = proj
	migrate.Env = append(os.Environ(), "DATABASE_URL="+sc.DSN, "DJANGO_SETTINGS_MODULE=mysite.settings", "PYTHONPATH="+proj, "PYTHONDONTWRITEBYTECODE=1")
	if out, err := migrate.CombinedOutput(); err != nil || !strings.Contains(string(out), "Applying django_ray.0001_initial... OK") {
		t.Fatalf("Django's migrate: %v\n%s", err, out)
	}

	// the setup block, with the test's values for the reader's own
	ours := map[string]string{"DATABASE_URL": sc.DSN, "PYTHONPATH": proj, "DJANGO_RAY_PYTHON": d.python}
	var setup []string
	replaced := map[string]bool{}
	for _, line := range blocks[0].lines {
		if m := yourValues.FindStringSubmatch(line); m != nil {
			line = fmt.Sprintf("export %s=%q", m[1], ours[m[1]])
			replaced[m[1]] = true
		}
		setup = append(setup, line)
	}
	if len(replaced) != len(ours) {
		t.Fatalf("the setup block sets %v of %v; update this test with docs/django.md", replaced, ours)
	}
	script := func(lines []string) string {
		return "set -euo pipefail\n" + strings.Join(setup, "\n") + "\n" + strings.Join(lines, "\n") + "\n"
	}
	baseEnv := []string{}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "DATABASE_URL" && k != "DJANGO_SETTINGS_MODULE" && k != "DJANGO_RAY_PYTHON" && !strings.HasPrefix(k, "PG") {
			baseEnv = append(baseEnv, kv)
		}
	}
	runTerminal1 := func(lines []string) string {
		t.Helper()
		cmd := exec.Command("bash", "-c", script(lines))
		cmd.Dir, cmd.Env = root, baseEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("terminal 1:\n%s\nfailed: %v\n%s", strings.Join(lines, "\n"), err, out)
		}
		return string(out)
	}

	var worker *exec.Cmd
	workerLog := &syncBuffer{}
	workerDone := make(chan error, 1)
	t.Cleanup(func() {
		if worker == nil {
			return
		}
		select {
		case <-workerDone:
		default:
			_ = syscall.Kill(-worker.Process.Pid, syscall.SIGKILL)
			<-workerDone
		}
	})
	ctx := t.Context()
	var t1 strings.Builder
	for _, b := range blocks[1:] {
		switch {
		case strings.HasPrefix(b.label, "Terminal 2"):
			worker = exec.Command("bash", "-c", script(b.lines))
			worker.Dir, worker.Env, worker.Stdout, worker.Stderr = root, baseEnv, workerLog, workerLog
			worker.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := worker.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { workerDone <- worker.Wait() }()
			// like a person, wait until it has started: its lease is there
			deadline := time.Now().Add(2 * time.Minute)
			for {
				var n int
				if err := sc.Pool.QueryRow(ctx, `SELECT count(*) FROM django_ray_taskworkerlease WHERE is_active`).Scan(&n); err == nil && n > 0 {
					break
				}
				select {
				case err := <-workerDone:
					workerDone <- err
					t.Fatalf("the worker exited (%v):\n%s", err, workerLog.String())
				case <-time.After(200 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("the worker never registered a lease:\n%s", workerLog.String())
				}
			}
		case strings.HasPrefix(b.label, "Terminal 1"):
			var pending []string
			for _, line := range b.lines {
				if cmd, _, _ := strings.Cut(line, "#"); strings.TrimSpace(cmd) == "rayctl top" {
					if len(pending) > 0 {
						t1.WriteString(runTerminal1(pending))
						pending = nil
					}
					runTop(t, tmux, root, baseEnv, script([]string{"set +e", line}))
					continue
				}
				pending = append(pending, line)
			}
			if len(pending) > 0 {
				t1.WriteString(runTerminal1(pending))
			}
		default:
			t.Fatalf("a docs/django.md block whose terminal is not named (%q); update this test with docs/django.md", b.label)
		}
	}
	out := t1.String()
	t.Logf("terminal 1:\n%s", out)
	for _, want := range []string{"schema is current and matches django-ray 0.2.0", "0001_initial: created by Django, nothing to do", `"states"`} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal 1's output lacks %q:\n%s", want, out)
		}
	}
	if worker == nil {
		t.Fatal("the docs/django.md section starts no worker")
	}

	// the task the README enqueued runs on the README's worker
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var state string
		var result *string
		err := sc.Pool.QueryRow(ctx, `SELECT state, result_data FROM django_ray_raytaskexecution WHERE callable_path = 'myapp.tasks.add'`).Scan(&state, &result)
		if err == nil && state == "SUCCEEDED" {
			if result == nil || *result != "5" {
				t.Fatalf("myapp.tasks.add(2, 3) = %v", result)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the README's task is %s (%v) after 2 minutes; worker:\n%s", state, err, workerLog.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Ctrl-C in terminal 2
	if err := syscall.Kill(-worker.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-workerDone:
		workerDone <- err
	case <-time.After(time.Minute):
		t.Fatalf("the worker did not stop on Ctrl-C:\n%s", workerLog.String())
	}
	var n int
	if err := sc.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relname LIKE 'rayctl%'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the README's steps added %d tables of rayctl's own to Django's database (%v)", n, err)
	}
}

// runTop runs one README line that starts rayctl top in a tmux terminal of its own, waits for
// its screen, quits it with q and checks it exited 0.
func runTop(t *testing.T, tmux, dir string, env []string, script string) {
	t.Helper()
	tmp := t.TempDir()
	exitFile := filepath.Join(tmp, "exit")
	file := filepath.Join(tmp, "top.sh")
	if err := os.WriteFile(file, []byte(script+fmt.Sprintf("echo $? > %q\nsleep 60\n", exitFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := fmt.Sprintf("rayctl-readme-%d", os.Getpid())
	tm := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(tmux, append([]string{"-L", sock}, args...)...)
		cmd.Env = append(env, "TERM=xterm-256color")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tm("-f", "/dev/null", "new-session", "-d", "-s", "readme", "-x", "100", "-y", "30", "-c", dir, "bash", "+e", file)
	defer func() { _ = exec.Command(tmux, "-L", sock, "kill-server").Run() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(tm("capture-pane", "-p", "-t", "readme"), "Overview") {
		if time.Now().After(deadline) {
			t.Fatalf("rayctl top never drew its screen:\n%s", tm("capture-pane", "-p", "-t", "readme"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	keys := [][]string{{"q"}, {"y"}, {"C-c"}} // q quits from the top level (or asks first)
	for i := 0; ; i++ {
		if i < len(keys) {
			tm(append([]string{"send-keys", "-t", "readme"}, keys[i]...)...)
		}
		wait := time.Now().Add(5 * time.Second)
		for time.Now().Before(wait) {
			if b, err := os.ReadFile(exitFile); err == nil && strings.TrimSpace(string(b)) != "" {
				if code := strings.TrimSpace(string(b)); code != "0" {
					t.Fatalf("rayctl top exited %s:\n%s", code, tm("capture-pane", "-p", "-t", "readme"))
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		if i >= len(keys) {
			t.Fatalf("rayctl top did not quit on q:\n%s", tm("capture-pane", "-p", "-t", "readme"))
		}
	}
}
