package raytest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"time"
)

// WithExecutor makes the fake run every submitted job for real, as Ray does: the entrypoint
// runs as `/bin/sh -c <entrypoint>` in a process group of its own, with env and the
// runtime_env's env_vars added to the test's environment. The job is RUNNING while the
// process runs, then SUCCEEDED (exit 0) or FAILED (Ray's message for a failed entrypoint),
// with stdout and stderr as its log and the exit code as driver_exit_code. A stop sends
// SIGTERM to the group and SIGKILL 3 s later (Ray's defaults); the job is STOPPED once the
// process has exited. Outages (SetOutage) do not stop the processes; Restart and Close kill
// them. Lifecycle scripts do not apply to executed jobs.
func WithExecutor(env ...string) Option {
	return func(s *Server) { s.exec = &executor{env: env, procs: map[string]*execProc{}} }
}

type executor struct {
	env []string

	mu     sync.Mutex
	procs  map[string]*execProc // running, by submission id
	wg     sync.WaitGroup
	closed bool
}

type execProc struct {
	cmd      *exec.Cmd
	out      *lockedBuffer
	stopping bool
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs j's entrypoint. Called with s.mu held.
func (e *executor) start(s *Server, j *Job) {
	e.mu.Lock()
	defer e.mu.Unlock()
	env := append(os.Environ(), e.env...)
	if ev, ok := j.RuntimeEnv["env_vars"].(map[string]any); ok {
		keys := make([]string, 0, len(ev))
		for k := range ev {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			env = append(env, fmt.Sprintf("%s=%v", k, ev[k]))
		}
	}
	cmd := exec.Command("/bin/sh", "-c", j.Entrypoint)
	cmd.Env = env
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if e.closed {
		j.Status, j.Message, j.EndTime = Failed, "raytest: the executor is closed", time.Now()
		return
	}
	if err := cmd.Start(); err != nil {
		j.Status, j.Message, j.EndTime = Failed, "Job entrypoint command failed: "+err.Error(), time.Now()
		return
	}
	j.Status = Running
	p := &execProc{cmd: cmd, out: out}
	id := j.SubmissionID
	e.procs[id] = p
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		err := cmd.Wait()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what it left in its group
		e.mu.Lock()
		stopping := p.stopping
		if e.procs[id] == p {
			delete(e.procs, id)
		}
		e.mu.Unlock()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok && ee.Exited() {
				code = ee.ExitCode()
			}
		}
		logs := out.String()
		s.mu.Lock()
		defer s.mu.Unlock()
		cur, ok := s.jobs[id]
		if !ok || cur != j || terminal(j.Status) {
			return // forgotten by a Restart, or already ended
		}
		j.Logs, j.EndTime = logs, time.Now()
		switch {
		case stopping:
			j.Status, j.Message = Stopped, "Job was intentionally stopped."
		case code == 0:
			j.Status, j.Message, j.ExitCode = Succeeded, "", ptr(0)
		default:
			j.Status, j.ErrorType, j.ExitCode = Failed, "JOB_ENTRYPOINT_COMMAND_ERROR", ptr(code)
			j.Message = fmt.Sprintf("Job entrypoint command failed with exit code %d, last available logs (truncated to 20,000 chars):\n%s", code, lastLines(logs, 10))
		}
	}()
}

// stop signals the job's process group and reports whether it had a process to stop.
func (e *executor) stop(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.procs[id]
	if !ok {
		return false
	}
	if !p.stopping {
		p.stopping = true
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		time.AfterFunc(3*time.Second, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.procs[id] == p {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		})
	}
	return true
}

// killAll kills every running job's process group (a head restart).
func (e *executor) killAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, p := range e.procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		delete(e.procs, id)
	}
}

func (e *executor) close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.killAll()
	e.wg.Wait()
}

// Running returns how many jobs an executor (WithExecutor) is running now.
func (s *Server) Running() int {
	if s.exec == nil {
		return 0
	}
	s.exec.mu.Lock()
	defer s.exec.mu.Unlock()
	return len(s.exec.procs)
}
