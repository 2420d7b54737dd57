// Package scripts_test tests the project's shell scripts (pg.sh, ray.sh, demo.sh) the way
// people and CI use them: that a throwaway server never outlives the command it was started
// for, however that command ends, and that they work from directories they once failed in.
package scripts_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// script returns a command running scripts/NAME with the test's environment minus the
// variables that make the scripts reuse an existing server.
func script(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("./"+name, args...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "DATABASE_URL" || k == "RAYCTL_PG_DIR" || k == "RAY_ADDRESS" || k == "RAYCTL_RAY_DIR" {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	return cmd
}

func havePostgres(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("initdb"); err == nil {
		return
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) > 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no PostgreSQL server binaries, and CI=true")
	}
	t.Skip("no PostgreSQL server binaries")
}

// serverGone fails the test unless the server at dsn refuses connections and dir is gone.
func serverGone(t *testing.T, dsn, dir string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("DATABASE_URL %q: %v", dsn, err)
	}
	if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		c.Close()
		t.Errorf("the throwaway PostgreSQL at %s still accepts connections", u.Host)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there (%v)", dir, err)
	}
}

// reportEnv is a shell command that prints the throwaway server's DATABASE_URL and directory.
const reportEnv = `echo "$DATABASE_URL"; echo "$RAYCTL_PG_DIR"`

func readTwo(t *testing.T, out *bufio.Reader) (string, string) {
	t.Helper()
	var lines [2]string
	for i := range lines {
		l, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the command's output: %v (got %q)", err, l)
		}
		lines[i] = strings.TrimSpace(l)
	}
	return lines[0], lines[1]
}

// TestPgRunStopsServerWhenCommandFails: `pg.sh run CMD` exits with CMD's status and leaves no
// server behind when CMD fails (its EXIT trap once gave up half-way: a bare `return` in the
// trap returned the failed command's status under set -e).
func TestPgRunStopsServerWhenCommandFails(t *testing.T) {
	t.Parallel()
	havePostgres(t)
	cmd := script(t, "pg.sh", "run", "sh", "-c", reportEnv+"; exit 7")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("pg.sh run (CMD exits 7): %v, want exit 7\n%s", err, stderr.String())
	}
	dsn, dir := readTwo(t, bufio.NewReader(bytes.NewReader(out)))
	serverGone(t, dsn, dir)
}

// TestPgRunStopsServerWhenInterrupted: Ctrl-C (SIGINT to the foreground process group) while
// CMD runs ends pg.sh with 130 and stops the server.
func TestPgRunStopsServerWhenInterrupted(t *testing.T) {
	t.Parallel()
	havePostgres(t)
	cmd := script(t, "pg.sh", "run", "sh", "-c", reportEnv+"; exec sleep 60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a process group, as a shell's job
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dsn, dir := readTwo(t, bufio.NewReader(pipe))
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("pg.sh run after SIGINT: %v, want exit 130\n%s", err, stderr.String())
	}
	serverGone(t, dsn, dir)
}

// TestPgStartBehindClosedParent: as root, `pg.sh start DIR` works when DIR's parent is mode
// 0700 (the postgres user cannot traverse it): the server's files go where it can reach them,
// and `pg.sh stop DIR` removes both places.
func TestPgStartBehindClosedParent(t *testing.T) {
	t.Parallel()
	havePostgres(t)
	if os.Geteuid() != 0 {
		t.Skip("only root runs the server as another user")
	}
	parent, err := os.MkdirTemp("", "cli-pg-closed-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "db")
	var stderr bytes.Buffer
	cmd := script(t, "pg.sh", "start", dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Cleanup(func() { _ = script(t, "pg.sh", "stop", dir).Run() })
	if err != nil {
		t.Fatalf("pg.sh start %s: %v\n%s", dir, err, stderr.String())
	}
	var dsn string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "export DATABASE_URL="); ok {
			dsn = strings.Trim(v, "'")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", dsn, err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("SELECT 1: %d, %v", one, err)
	}
	conn.Close(ctx)
	home, err := os.ReadFile(filepath.Join(dir, "home"))
	if err != nil {
		t.Fatalf("the server's files should be named in %s/home: %v", dir, err)
	}
	if out, err := script(t, "pg.sh", "stop", dir).CombinedOutput(); err != nil {
		t.Fatalf("pg.sh stop: %v\n%s", err, out)
	}
	serverGone(t, dsn, dir)
	if _, err := os.Stat(strings.TrimSpace(string(home))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the server's files in %s are still there (%v)", home, err)
	}
}

// TestRayStartLongDir: `ray.sh start DIR` works for a DIR far longer than Ray's Unix socket
// paths allow below it (Ray's temp dir is a short one of its own), and stop removes both.
func TestRayStartLongDir(t *testing.T) {
	t.Parallel()
	if os.Getenv("RAYCTL_PYTHON") == "" && os.Getenv("RAYCTL_VENV") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("RAYCTL_PYTHON/RAYCTL_VENV unset under CI=true: the Ray scripts need the venv (scripts/test.sh sets it up)")
		}
		t.Skip("no venv with Ray (RAYCTL_VENV or RAYCTL_PYTHON)")
	}
	parent, err := os.MkdirTemp("", "cli-ray-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	dir := filepath.Join(parent, strings.Repeat("a-long-directory-name-", 4))
	cmd := script(t, "ray.sh", "start", dir)
	if py := os.Getenv("RAYCTL_PYTHON"); py != "" && os.Getenv("RAYCTL_VENV") == "" {
		cmd.Env = append(cmd.Env, "RAYCTL_VENV="+filepath.Dir(filepath.Dir(py)))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Cleanup(func() { _ = script(t, "ray.sh", "stop", dir).Run() })
	if err != nil {
		t.Fatalf("ray.sh start %s (%d characters): %v\n%s", dir, len(dir), err, stderr.String())
	}
	if !strings.Contains(string(out), "export RAY_ADDRESS='http://127.0.0.1:") {
		t.Fatalf("ray.sh start printed %q", out)
	}
	tmp, err := os.ReadFile(filepath.Join(dir, "tempdir"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := script(t, "ray.sh", "stop", dir).CombinedOutput(); err != nil {
		t.Fatalf("ray.sh stop: %v\n%s", err, out)
	}
	for _, d := range []string{dir, strings.TrimSpace(string(tmp))} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after stop (%v)", d, err)
		}
	}
}

// TestDemoNeedsTerminal: `make demo | tee log` stops at once with a clear message and exit 2,
// before it starts a database, workers or top.
func TestDemoNeedsTerminal(t *testing.T) {
	t.Parallel()
	cmd := script(t, "demo.sh")
	cmd.Stdin = strings.NewReader("")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("demo.sh without a terminal: %v, want exit 2\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "rayctl top needs a terminal") || strings.Contains(stderr.String(), "throwaway PostgreSQL") {
		t.Errorf("stderr: %s", stderr.String())
	}
}
