package procgroup_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rayctl/rayctl/worker/procgroup"
)

// TestMain makes this test binary able to act as the supervisor (procgroup.Main) and as a
// stand-in worker process for the kill -9 test (helperWorker).
func TestMain(m *testing.M) {
	procgroup.Main()
	if os.Getenv("PROCGROUP_HELPER_WORKER") != "" {
		helperWorker()
		return
	}
	goleak.VerifyTestMain(m)
}

// helperWorker starts PROCGROUP_HELPER_WORKER (a shell command) under procgroup, prints
// "running", and waits to be killed.
func helperWorker() {
	g, err := procgroup.Start(procgroup.Cmd{Path: "/bin/sh", Args: []string{"sh", "-c", os.Getenv("PROCGROUP_HELPER_WORKER")}, Stderr: os.Stderr})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("running", g.Pid())
	select {}
}

// family is a shell script that starts, in the group: a background sleep; outside it: a
// sleep in a new session (setsid). It writes every pid to dir/pids and then runs body.
func family(dir, body string) string {
	return fmt.Sprintf(`sleep 300 & echo $! >> %[1]s/pids
setsid sleep 301 & echo $! >> %[1]s/pids
echo $$ >> %[1]s/pids
touch %[1]s/ready
%[2]s`, dir, body)
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pids(t *testing.T, dir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func mustBeGone(t *testing.T, ps []int) {
	t.Helper()
	for _, p := range ps {
		if alive(p) {
			t.Errorf("process %d still runs", p)
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// waitGone waits until every pid is gone (the kill -9 test has no Wait to rely on).
func waitGone(t *testing.T, ps []int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		left := 0
		for _, p := range ps {
			if alive(p) {
				left++
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	mustBeGone(t, ps)
}

func start(t *testing.T, script string, out io.Writer) *procgroup.Group {
	t.Helper()
	g, err := procgroup.Start(procgroup.Cmd{Path: "sh", Args: []string{"sh", "-c", script}, Stdout: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Kill(); _, _ = g.Wait() })
	return g
}

// TestExitKillsWhatIsLeft: when the command exits, its group and the descendants that left
// the group are killed before Wait returns, and the exit status is the command's.
func TestExitKillsWhatIsLeft(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out bytes.Buffer
	g := start(t, family(dir, "echo done; exit 3"), &out)
	e, err := g.Wait()
	if err != nil || e != (procgroup.Exit{Code: 3}) || e.Signaled() {
		t.Fatalf("%v %v", e, err)
	}
	if out.String() != "done\n" {
		t.Fatalf("stdout %q", out.String())
	}
	mustBeGone(t, pids(t, dir))
}

// TestStopKillsAfterGrace: Stop sends SIGTERM to the group, then SIGKILL after the grace to
// a command that ignores SIGTERM; Wait reports the signal.
func TestStopKillsAfterGrace(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body string
		grace      time.Duration
		want       syscall.Signal
	}{
		// A process that honours SIGTERM ends at once; the long grace only leaves room for a
		// loaded machine to schedule it (200 ms was too short at load 30: SIGKILL came first).
		{"honours SIGTERM", "exec sleep 300", 10 * time.Second, syscall.SIGTERM},
		{"ignores SIGTERM", "trap '' TERM; sleep 300 & wait; sleep 300 & wait", 200 * time.Millisecond, syscall.SIGKILL},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			g := start(t, family(dir, c.body), nil)
			waitFile(t, filepath.Join(dir, "ready"))
			if err := g.Stop(c.grace); err != nil {
				t.Fatal(err)
			}
			e, err := g.Wait()
			if err != nil || e.Signal != c.want {
				t.Fatalf("%v %v", e, err)
			}
			mustBeGone(t, pids(t, dir))
			if err := g.Kill(); err != nil { // after the end: nothing, no error
				t.Fatal(err)
			}
		})
	}
}

// TestKillReachesEscapedDescendants: Kill ends the command, its group and a descendant in a
// session of its own.
func TestKillReachesEscapedDescendants(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := start(t, family(dir, "sleep 302"), nil)
	waitFile(t, filepath.Join(dir, "ready"))
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if e, err := g.Wait(); err != nil || e.Signal != syscall.SIGKILL {
		t.Fatalf("%v %v", e, err)
	}
	mustBeGone(t, pids(t, dir))
}

// TestStartErrors: a missing or non-executable program is Start's error, as with exec.
func TestStartErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]error{filepath.Join(dir, "missing"): syscall.ENOENT, plain: syscall.EACCES} {
		_, err := procgroup.Start(procgroup.Cmd{Path: path})
		var pe *os.PathError
		if !errors.As(err, &pe) || !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", path, err, want)
		}
	}
	if _, err := procgroup.Start(procgroup.Cmd{Path: "no-such-program-anywhere"}); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("lookup: %v", err)
	}
}

// TestExtraFilesEnvDir: extra files arrive as fds 3.., the environment and directory are the
// command's, and the supervisor's own pipes do not leak into it (the command sees the same
// file descriptors as under a plain exec).
func TestExtraFilesEnvDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const script = `echo "$GREETING" >&3; pwd; ls /proc/self/fd | sort -n | tr '\n' ' '`
	run := func(viaGroup bool) (fd3 string, lines []string) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out bytes.Buffer
		if viaGroup {
			g, err := procgroup.Start(procgroup.Cmd{Path: "/bin/sh", Args: []string{"sh", "-c", script},
				Env: []string{"GREETING=hello"}, Dir: dir, Stdout: &out, ExtraFiles: []*os.File{w}})
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			if e, err := g.Wait(); err != nil || e.Code != 0 {
				t.Fatalf("%v %v", e, err)
			}
		} else {
			cmd := exec.Command("/bin/sh", "-c", script)
			cmd.Env, cmd.Dir, cmd.Stdout, cmd.ExtraFiles = []string{"GREETING=hello"}, dir, &out, []*os.File{w}
			err := cmd.Run()
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		got, _ := io.ReadAll(r)
		return string(got), strings.Split(out.String(), "\n")
	}
	fd3, lines := run(true)
	if fd3 != "hello\n" || lines[0] != dir {
		t.Fatalf("fd 3 %q, dir %q", fd3, lines[0])
	}
	if _, plain := run(false); lines[1] != plain[1] {
		t.Fatalf("open fds %q, under a plain exec %q: the supervisor's pipes leaked", lines[1], plain[1])
	}
}

// TestWorkerKill9: a worker (this test binary in helper mode) starts a command with a child in
// its group and one in a session of its own, and is killed with SIGKILL: all of them die.
func TestWorkerKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PROCGROUP_HELPER_WORKER="+family(dir, "sleep 303"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if !strings.HasPrefix(line, "running ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper: %q", line)
	}
	waitFile(t, filepath.Join(dir, "ready"))
	ps := pids(t, dir)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, ps)
}
