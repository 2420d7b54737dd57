// Package procrunner is the worker's process runner (rayworker --sync): each task attempt
// runs `<entrypoint> --payload-b64 <payload>` as a subprocess, with django-ray 0.2.0's payload
// and its last-line result contract, so no Ray is needed and the same entrypoint that runs as
// a Ray Job runs here.
//
// Each process runs in its own process group (package procgroup: on Linux under a small
// supervisor that kills the group and every descendant when the worker dies, even by kill -9)
// with the runtime environment's env_vars added to the worker's environment. Its output is captured with bounded memory: stdout keeps at most
// MaxStdout bytes from its end (enough for the result line; a task printing gigabytes costs
// no more), with the digest of the whole stream computed as it passes in case django-ray's
// rule for a non-JSON last line needs it; stderr keeps its last 64 KiB. Cancel, the loop's
// timeouts and shutdown stop the whole process group: SIGTERM, then SIGKILL after KillGrace.
// When the entrypoint's main process exits, anything it left running in its group (or started
// outside it) is killed. Poll reports an execution Done only once all of that is gone, so an
// outcome the worker records is never that of a process still running.
//
// A binary using this runner must call procgroup.Main first in main (and test binaries in
// TestMain).
package procrunner

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/procgroup"
)

// Defaults for Config.
const (
	DefaultMaxStdout = 32 << 20
	DefaultMaxStderr = 64 << 10
	DefaultKillGrace = 3 * time.Second
	// pipeDrain bounds the wait for output after the process group is gone: a process that
	// escaped the supervisor (only possible outside Linux) may hold the pipe open; its output
	// is then abandoned.
	pipeDrain = 2 * time.Second
)

// Config configures a Runner.
type Config struct {
	// Entrypoint is the command, as arguments, that PayloadFlag and the payload are appended
	// to. Default: lifecycle.DefaultEntrypoint split into words.
	Entrypoint []string
	// Env is added to the worker's environment (runtime_env "env_vars"); it overrides
	// variables of the same name.
	Env map[string]string
	// Dir is the working directory; empty means the worker's.
	Dir string
	// MaxStdout is how many bytes of stdout are kept (from its end); MaxStderr likewise.
	MaxStdout int
	MaxStderr int
	// KillGrace is how long a stopped process group gets between SIGTERM and SIGKILL.
	KillGrace time.Duration
}

// Runner runs each attempt as a local process. It implements worker.Runner.
type Runner struct {
	cfg    Config
	events worker.Wake

	mu    sync.Mutex
	procs map[int64]*proc
	wg    sync.WaitGroup // one per process still being reaped
}

var _ worker.Runner = (*Runner)(nil)

// New returns a Runner.
func New(cfg Config) (*Runner, error) {
	if len(cfg.Entrypoint) == 0 {
		argv, err := SplitCommand(lifecycle.DefaultEntrypoint)
		if err != nil {
			return nil, err
		}
		cfg.Entrypoint = argv
	}
	if cfg.MaxStdout <= 0 {
		cfg.MaxStdout = DefaultMaxStdout
	}
	if cfg.MaxStderr <= 0 {
		cfg.MaxStderr = DefaultMaxStderr
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	return &Runner{cfg: cfg, events: worker.NewWake(), procs: map[int64]*proc{}}, nil
}

type proc struct {
	task   store.Task
	group  *procgroup.Group
	stdout *Capture
	stderr *Capture
	done   chan struct{}

	mu        sync.Mutex
	cancelled bool
	outcome   lifecycle.Outcome // set before done is closed
}

// Capabilities implements worker.Runner: event-driven, no Ray job ids, nothing to adopt, and
// processes die with the worker.
func (r *Runner) Capabilities() worker.Capabilities {
	return worker.Capabilities{Name: "process"}
}

// Events implements worker.Runner: it fires when a process has exited and its outcome is ready.
func (r *Runner) Events() <-chan struct{} { return r.events }

// Start implements worker.Runner. A row that cannot be turned into a payload, a payload too
// long to pass as an argument, and a command that cannot be started are reported as a
// *lifecycle.FailureError.
func (r *Runner) Start(_ context.Context, task store.Task) error {
	payload, err := lifecycle.Payload(task)
	if err != nil {
		return err
	}
	if len(payload) > lifecycle.MaxPayloadArg {
		return lifecycle.InvalidRow("the payload is %d bytes of base64, more than the %d bytes one process argument can hold",
			len(payload), lifecycle.MaxPayloadArg)
	}
	argv := append(append([]string(nil), r.cfg.Entrypoint...), lifecycle.PayloadFlag, payload)
	cmd := procgroup.Cmd{Path: argv[0], Args: argv, Dir: r.cfg.Dir}
	if len(r.cfg.Env) > 0 {
		keys := make([]string, 0, len(r.cfg.Env))
		for k := range r.cfg.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		env := os.Environ()
		for _, k := range keys {
			env = append(env, k+"="+r.cfg.Env[k]) // exec keeps the last value of a duplicate
		}
		cmd.Env = env
	}
	p := &proc{task: task, stdout: NewCapture(r.cfg.MaxStdout, true), stderr: NewCapture(r.cfg.MaxStderr, false), done: make(chan struct{})}

	outR, outW, err := os.Pipe()
	if err != nil {
		return startFailure(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return startFailure(err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	p.group, err = procgroup.Start(cmd)
	outW.Close() // the child holds its own copies
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return startFailure(err)
	}
	r.mu.Lock()
	r.procs[task.ID] = p
	r.wg.Add(1)
	r.mu.Unlock()
	go r.reap(p, outR, errR)
	return nil
}

func startFailure(err error) error {
	return &lifecycle.FailureError{Failure: lifecycle.Interpret(lifecycle.RunOutput{Err: err}).Failure}
}

// reap copies the output, waits until the process group and every descendant are gone, and
// records the outcome.
func (r *Runner) reap(p *proc, outR, errR *os.File) {
	defer r.wg.Done()
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); _, _ = io.Copy(p.stdout, outR) }()
	go func() { defer copies.Done(); _, _ = io.Copy(p.stderr, errR) }()

	exit, waitErr := p.group.Wait()
	drained := make(chan struct{})
	go func() { copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(pipeDrain):
		outR.Close() // unblocks the copies
		errR.Close()
		<-drained
	}
	outR.Close()
	errR.Close()

	run := lifecycle.RunOutput{}
	run.StdoutParts, run.StdoutTruncated = p.stdout.Parts() // the capture itself, not a copy
	run.StdoutDigest = p.stdout.Digest()
	run.Stderr, _ = p.stderr.Bytes()
	switch {
	case waitErr != nil:
		run.Err = waitErr
	case exit.Signaled():
		run.Signal = fmt.Sprintf("%d (%s)", int(exit.Signal), exit.Signal)
		run.ExitCode = -1
	default:
		run.ExitCode = exit.Code
	}
	outcome := lifecycle.Interpret(run)

	p.mu.Lock()
	if p.cancelled && outcome.Kind != lifecycle.Succeeded {
		// Stopped on request. A run that completed successfully before the signal landed
		// keeps its result (the caller decides whether a cancellation still wins).
		outcome = lifecycle.Outcome{Kind: lifecycle.Cancelled}
	}
	p.outcome = outcome
	p.mu.Unlock()
	close(p.done)
	r.events.Notify()
}

func (r *Runner) get(id int64) *proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.procs[id]
}

// Poll implements worker.Runner.
func (r *Runner) Poll(_ context.Context, tasks []store.Task) ([]worker.Status, error) {
	out := make([]worker.Status, len(tasks))
	for i, t := range tasks {
		p := r.get(t.ID)
		if p == nil {
			out[i] = worker.Status{Phase: worker.Unknown, Message: "not started by this worker's process runner"}
			continue
		}
		select {
		case <-p.done:
			p.mu.Lock()
			out[i] = worker.Status{Phase: worker.Done, Outcome: p.outcome}
			p.mu.Unlock()
		default:
			out[i] = worker.Status{Phase: worker.Running}
		}
	}
	return out, nil
}

// Cancel implements worker.Runner: SIGTERM to the process group now, SIGKILL after KillGrace.
// Poll reports the execution Done once the group and its descendants are gone.
func (r *Runner) Cancel(_ context.Context, task store.Task) error {
	p := r.get(task.ID)
	if p == nil {
		return nil
	}
	r.stop(p)
	return nil
}

func (r *Runner) stop(p *proc) {
	select {
	case <-p.done:
		return
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancelled {
		return
	}
	p.cancelled = true
	_ = p.group.Stop(r.cfg.KillGrace)
}

// Output implements worker.Runner: the last max bytes of the task's stdout.
func (r *Runner) Output(_ context.Context, task store.Task, max int) ([]byte, error) {
	p := r.get(task.ID)
	if p == nil {
		return nil, fmt.Errorf("task %d: no output: not started by this runner (or forgotten)", task.ID)
	}
	return p.stdout.Last(max), nil
}

// Forget implements worker.Runner. A process still running keeps being reaped.
func (r *Runner) Forget(task store.Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.procs, task.ID)
}

// Close implements worker.Runner: it stops every process still running and waits for them
// (until ctx ends).
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	procs := make([]*proc, 0, len(r.procs))
	for _, p := range r.procs {
		procs = append(procs, p)
	}
	r.mu.Unlock()
	for _, p := range procs {
		r.stop(p)
	}
	if !worker.WaitClosed(ctx, &r.wg) {
		return fmt.Errorf("process runner: %d process(es) still stopping: %w", len(procs), ctx.Err())
	}
	return nil
}

// Running returns how many processes have not exited yet (for tests and metrics).
func (r *Runner) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.procs {
		select {
		case <-p.done:
		default:
			n++
		}
	}
	return n
}
