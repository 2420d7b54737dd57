// Package procgroup starts a command in a process group of its own that is guaranteed to die
// with the worker, even after kill -9 of the worker: the command, everything it starts in its
// group, and (on Linux) every descendant that left the group.
//
// # How
//
// On Linux, Start re-executes the current binary (/proc/self/exe) as a small supervisor (the
// "shim") in a process group of its own, and the shim starts the command in another new
// process group. The shim is a child subreaper (PR_SET_CHILD_SUBREAPER): every orphaned
// descendant of the command is re-parented to it, so it can always find and kill them. The
// worker holds the write end of a control pipe whose read end only the shim holds: when the
// worker dies, however it dies, the kernel closes the pipe, the shim reads EOF and kills the
// group and every descendant with SIGKILL. The command also gets a parent-death signal
// (SIGKILL) from the shim, should the shim itself be killed. The shim ignores the terminal's
// and the worker's process-group signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT): it obeys only
// the pipe, so a Ctrl-C or a signal to the worker's group leaves task processes to the
// worker's graceful shutdown.
//
// The shim exits only once the command's group and all its descendants are gone (it reaps
// them). Wait returning is therefore the confirmation that the execution is stopped: nothing
// it started is still running. Outside Linux there is no subreaper and no parent-death
// signal: the command runs in its own process group, Kill signals that group, and a worker
// killed with -9 leaves it running.
//
// What escapes: a process that leaves the group and is re-parented away from the shim before
// the shim looks (impossible on Linux while the shim lives, since it is the subreaper of every
// descendant); a process in uninterruptible sleep, which no signal ends (Wait then blocks
// until it ends); and a kill -9 of the shim itself, which kills the command (parent-death
// signal) but leaves the command's own children running.
//
// # Contract
//
//   - Call Main first thing in main() of every binary that calls Start, and in TestMain of
//     test binaries whose tests call Start (before m.Run). Start refuses to run otherwise:
//     without it the re-executed binary would not become the shim.
//   - Start returns once the command is running (or could not be started: a missing or
//     non-executable file is reported by Start, as exec.Cmd.Start does).
//   - Terminate sends SIGTERM to the command's process group; Kill sends SIGKILL to the group
//     and to every descendant; Stop does Terminate now and Kill after a grace period. They
//     return at once and are safe to call at any time, concurrently, and after the command
//     ended (then they do nothing). They never signal a recycled process id.
//   - Wait (or Done) reports the end: the command's exit status once the command, its group
//     and every descendant are gone. Output pipes given as Stdout/Stderr see EOF by then.
//   - Each Group must be waited for (Wait or Done) to release its resources.
package procgroup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// shimArg is the first argument that turns the re-executed binary into the shim. Nothing
// else passes it: rayworker's flags never take it, test binaries neither.
const shimArg = "__rayworker_procgroup_shim__"

var mainCalled atomic.Bool

// Main turns this process into the shim and exits, when Start re-executed the binary for
// that; otherwise it returns at once. See the package comment.
func Main() {
	mainCalled.Store(true)
	if len(os.Args) > 1 && os.Args[1] == shimArg {
		os.Exit(runShim(os.Args[2:]))
	}
}

// Cmd is the command to start.
type Cmd struct {
	// Path is the program; without a slash it is looked up in this process's PATH.
	Path string
	// Args are the command line, Args[0] included (default: Path).
	Args []string
	// Env is the environment; nil means this process's.
	Env []string
	// Dir is the working directory; empty means this process's.
	Dir string
	// Stdin, Stdout and Stderr are as in exec.Cmd: nil is the null device, an *os.File is
	// passed as is, any other value is copied through a pipe (and Wait waits for the copy).
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// ExtraFiles become file descriptors 3, 4, ... of the command.
	ExtraFiles []*os.File
}

// Exit is how the command ended.
type Exit struct {
	Code   int            // exit status; -1 when a signal ended it
	Signal syscall.Signal // the signal that ended it; 0 when it exited
}

// Signaled reports whether a signal ended the command.
func (e Exit) Signaled() bool { return e.Signal != 0 }

func (e Exit) String() string {
	if e.Signal != 0 {
		return fmt.Sprintf("killed by signal %d (%s)", int(e.Signal), e.Signal)
	}
	return fmt.Sprintf("exited with status %d", e.Code)
}

// ErrNoMain: Start was called in a binary whose main (or TestMain) did not call Main.
var ErrNoMain = errors.New("procgroup: Main was not called first in this binary's main (or TestMain)")

// Group is a started command and everything it starts.
type Group struct {
	pid  int
	ctl  ctl
	done chan struct{}

	mu        sync.Mutex
	stopTimer *time.Timer
	exit      Exit
	err       error
}

// ctl is how a Group's signals reach its processes (the shim's pipe, or kill(2) directly).
type ctl interface {
	terminate() error
	kill() error
}

// Pid returns the command's process id, which is also its process group id.
func (g *Group) Pid() int { return g.pid }

// Done is closed once the command and every process it started are gone.
func (g *Group) Done() <-chan struct{} { return g.done }

// Wait waits until the command and every process it started are gone and returns how the
// command ended. The error is set only when the end could not be observed (the supervisor
// itself was killed, or the process could not be waited for); Exit is then the best known.
func (g *Group) Wait() (Exit, error) {
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.exit, g.err
}

func (g *Group) ended() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// Terminate sends SIGTERM to the command's process group.
func (g *Group) Terminate() error {
	if g.ended() {
		return nil
	}
	return g.ctl.terminate()
}

// Kill sends SIGKILL to the command's process group and every descendant.
func (g *Group) Kill() error {
	if g.ended() {
		return nil
	}
	return g.ctl.kill()
}

// Stop terminates the group now and kills it after grace unless it is gone by then. A
// second Stop does nothing more.
func (g *Group) Stop(grace time.Duration) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopTimer != nil || g.ended() {
		return nil
	}
	err := g.ctl.terminate()
	g.stopTimer = time.AfterFunc(grace, func() { _ = g.Kill() })
	return err
}

func (g *Group) finish(e Exit, err error) {
	g.mu.Lock()
	g.exit, g.err = e, err
	if g.stopTimer != nil {
		g.stopTimer.Stop()
	}
	g.mu.Unlock()
	close(g.done)
}

// resolve resolves c.Path as exec.Command would, once Main has been called (ErrNoMain).
func (c Cmd) resolve() (path string, args []string, err error) {
	if !mainCalled.Load() {
		return "", nil, ErrNoMain
	}
	path = c.Path
	if path == "" {
		return "", nil, errors.New("procgroup: empty command")
	}
	if !containsSlash(path) {
		if path, err = exec.LookPath(path); err != nil {
			return "", nil, err
		}
	}
	args = c.Args
	if len(args) == 0 {
		args = []string{c.Path}
	}
	return path, args, nil
}

// command is an exec.Cmd running name with argv in a process group of its own (a signal to
// the worker's group does not reach it), with c's environment, directory and stdio.
func (c Cmd) command(name string, argv ...string) *exec.Cmd {
	cmd := exec.Command(name, argv...)
	cmd.Env, cmd.Dir = c.Env, c.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.Stdin, c.Stdout, c.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// exitOf turns a wait status into an Exit.
func exitOf(ws syscall.WaitStatus) Exit {
	if ws.Signaled() {
		return Exit{Code: -1, Signal: ws.Signal()}
	}
	return Exit{Code: ws.ExitStatus()}
}
