// Package poolrunner is rayworker's default --sync runner: a pool of long-lived Python
// executors (package pyexec) that load Django once and run one task at a time each, through
// django-ray 0.2.0's own execution function. A task costs what the task costs, not an
// interpreter start and django.setup().
//
// The pool has one executor per slot of the worker's concurrency. Each attempt gets a pair
// of pipes for its stdout and stderr (captured with the process runner's bounds), so what a
// task prints never mixes with the executor's messages or with another task's output. The
// result line travels over the control socket and is read with the same function as the
// process runner's output (lifecycle.Interpret), so outcomes are the same.
//
// A timeout or a cancel kills that executor's process group (SIGTERM, SIGKILL after
// KillGrace) and the attempt is reported Done only once the process is gone. An executor that
// dies (os._exit, a segfault, the OOM killer, kill -9 from outside) ends its attempt like a
// process that died (lifecycle.Interpret of its exit status and output: RayJobFailed under
// the retry policy) and is replaced. MaxTasksPerExecutor and MaxRSS recycle executors between
// tasks to bound leaks. Executors die with the worker (parent-death signal).
package poolrunner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/procrunner"
	"github.com/rayctl/rayctl/worker/pyexec"
)

// Defaults for Config.
const (
	DefaultKillGrace    = 3 * time.Second
	DefaultStartTimeout = settings.DefaultExecutorStartTimeout
	// MaxPayload bounds the payload of one task (there is no argument-length limit here, as
	// there is for a process's command line; this guards memory).
	MaxPayload = 64 << 20
	// pipeDrain bounds the wait for a task's output after it ended: a child process the task
	// left behind may hold its pipes open; its later output is then abandoned.
	pipeDrain = 2 * time.Second
	// restart backoff after a failed executor start
	backoffMin, backoffMax = time.Second, 30 * time.Second
)

// Config configures a Runner.
type Config struct {
	// Python is the interpreter (see pyexec.ResolvePython).
	Python string
	// Size is the number of executors: the worker's concurrency.
	Size int
	// Env is added to the executors' environment (the runtime env's env_vars).
	Env map[string]string
	// Dir is the executors' working directory; empty means the worker's.
	Dir string
	// MaxStdout and MaxStderr bound the output kept per task (defaults as the process runner).
	MaxStdout int
	MaxStderr int
	// KillGrace is how long a stopped executor gets between SIGTERM and SIGKILL.
	KillGrace time.Duration
	// MaxTasksPerExecutor recycles an executor after that many tasks (0: never).
	MaxTasksPerExecutor int
	// MaxRSS recycles an executor whose resident memory exceeds it after a task, in bytes
	// (0: never).
	MaxRSS int64
	// StartTimeout bounds each executor's start (default 2 minutes).
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// Runner is the pool. It implements worker.Runner, worker.ReadinessReporter and
// prometheus.Collector.
type Runner struct {
	cfg    Config
	log    *slog.Logger
	events worker.Wake
	m      *pyexec.Metrics

	mu       sync.Mutex
	slots    []*slot
	attempts map[int64]*attempt
	waiting  []*attempt // started, no executor free yet (FIFO)
	closed   bool
	startErr error // the last failed start, while no executor is live
	ready    pyexec.Message

	closeCtx    context.Context // ends when Close starts: interrupts executor starts
	closeCancel context.CancelFunc
	wg          sync.WaitGroup // slot goroutines and output drains
}

var (
	_ worker.Runner            = (*Runner)(nil)
	_ worker.ReadinessReporter = (*Runner)(nil)
	_ prometheus.Collector     = (*Runner)(nil)
)

type slotState int

const (
	slotStarting slotState = iota
	slotIdle
	slotBusy
	slotStopping // recycling or killed; a replacement follows
)

type slot struct {
	idx   int
	ex    *pyexec.Executor
	state slotState
	cur   *attempt
	ran   int // tasks run by the current executor
	// why the current executor is going away ("" while it is not): a restart reason
	stopReason string
}

type attempt struct {
	task   store.Task
	stdout *procrunner.Capture
	stderr *procrunner.Capture
	outR   *os.File
	errR   *os.File
	copies sync.WaitGroup

	// guarded by Runner.mu
	slot      *slot
	cancelled bool
	ended     bool // an outcome is being prepared (drain under way)
	forgotten bool // the loop is done with it: drop it once it ends

	done    chan struct{} // closed when outcome is set
	outcome lifecycle.Outcome
}

// New starts the pool: the first executor at once (its failure is returned, a
// *pyexec.StartError for configuration problems, so the worker refuses to start), the rest in
// the background. ctx bounds the first start.
func New(ctx context.Context, cfg Config) (*Runner, error) {
	if cfg.Size <= 0 {
		cfg.Size = 1
	}
	if cfg.MaxStdout <= 0 {
		cfg.MaxStdout = procrunner.DefaultMaxStdout
	}
	if cfg.MaxStderr <= 0 {
		cfg.MaxStderr = procrunner.DefaultMaxStderr
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{cfg: cfg, log: cfg.Logger, events: worker.NewWake(), attempts: map[int64]*attempt{}}
	r.m = pyexec.NewMetrics(r.executorStates, r.executorRSS)
	r.closeCtx, r.closeCancel = context.WithCancel(context.Background())
	for i := range cfg.Size {
		r.slots = append(r.slots, &slot{idx: i, state: slotStarting})
	}
	ex, err := r.m.Start(ctx, r.execConfig(r.slots[0]))
	if err != nil {
		r.closeCancel()
		return nil, err
	}
	r.ready = ex.ReadyMessage()
	r.mu.Lock()
	r.attach(r.slots[0], ex)
	r.mu.Unlock()
	for _, s := range r.slots[1:] {
		r.spawn(s)
	}
	return r, nil
}

// ReadyInfo is the first executor's ready message: interpreter, Django and django-ray
// versions.
func (r *Runner) ReadyInfo() pyexec.Message { return r.ready }

func (r *Runner) execConfig(s *slot) pyexec.Config {
	idx := s.idx
	return pyexec.Config{
		Python: r.cfg.Python, Mode: pyexec.ModePool, Env: r.cfg.Env, Dir: r.cfg.Dir,
		Settings:     map[string]any{"max_result_bytes": r.cfg.MaxStdout},
		StartTimeout: r.cfg.StartTimeout,
		Log: func(line string) {
			r.log.Warn("executor output", "executor", idx, "line", line)
		},
	}
}

// spawn starts an executor for slot s in the background, retrying with a backoff while
// starts fail. Close interrupts it.
func (r *Runner) spawn(s *slot) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ex, ok := r.m.KeepStarting(r.closeCtx, func() pyexec.Config { return r.execConfig(s) },
			pyexec.Backoff{Min: backoffMin, Max: backoffMax},
			func(err error, wait time.Duration) {
				r.mu.Lock()
				r.startErr = err
				r.mu.Unlock()
				r.log.Error("python executor could not start; retrying", "executor", s.idx, "error", err, "retry_in", wait.String())
			})
		if !ok {
			return
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			ex.Discard()
			return
		}
		r.startErr = nil
		r.attach(s, ex)
		r.mu.Unlock()
	}()
}

// attach makes ex slot s's executor and starts serving it. r.mu is held.
func (r *Runner) attach(s *slot, ex *pyexec.Executor) {
	s.ex, s.state, s.ran, s.stopReason, s.cur = ex, slotIdle, 0, "", nil
	r.wg.Add(1)
	go r.serve(s, ex)
	r.dispatch()
}

// dispatch gives waiting attempts to idle executors. r.mu is held.
func (r *Runner) dispatch() {
	for len(r.waiting) > 0 {
		var free *slot
		for _, s := range r.slots {
			if s.state == slotIdle {
				free = s
				break
			}
		}
		if free == nil {
			return
		}
		a := r.waiting[0]
		r.waiting = r.waiting[1:]
		r.run(free, a)
	}
}

// run sends attempt a to slot s's executor. r.mu is held.
func (r *Runner) run(s *slot, a *attempt) {
	s.state, s.cur, a.slot = slotBusy, a, s
	payload, _ := lifecycle.Payload(a.task) // validated by Start
	outR, outW, err := os.Pipe()
	if err != nil {
		r.endNow(a, startFailure(err))
		s.state, s.cur = slotIdle, nil
		return
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		r.endNow(a, startFailure(err))
		s.state, s.cur = slotIdle, nil
		return
	}
	a.outR, a.errR = outR, errR
	a.copies.Add(2)
	go func() { defer a.copies.Done(); _, _ = io.Copy(a.stdout, outR) }()
	go func() { defer a.copies.Done(); _, _ = io.Copy(a.stderr, errR) }()
	err = s.ex.Send(map[string]any{"op": "run", "id": a.task.ID}, []byte(payload), outW, errW)
	outW.Close() // the executor holds its own copies
	errW.Close()
	s.ran++
	r.m.Tasks.Inc()
	if err != nil {
		// The executor is going away (its serve loop will see the socket end): the attempt
		// ends with it, as a task whose process died.
		r.log.Warn("could not hand a task to its executor", "executor", s.idx, "task_id", a.task.ID, "error", err)
		s.ex.Kill(0)
	}
}

// serve reads one executor's messages until it is gone, then replaces it.
func (r *Runner) serve(s *slot, ex *pyexec.Executor) {
	defer r.wg.Done()
	var exitReport *pyexec.Message
	for m := range ex.Messages() {
		switch m.Op {
		case "done":
			r.mu.Lock()
			a := s.cur
			if a == nil || a.task.ID != m.ID {
				r.mu.Unlock()
				r.log.Error("executor reported a task it was not running; replacing it", "executor", s.idx, "task_id", m.ID)
				ex.Kill(0)
				continue
			}
			s.cur, a.slot = nil, nil
			// The result line, as the process runner would have read it last from stdout.
			run := lifecycle.RunOutput{Stdout: m.Data, StdoutTruncated: m.Truncated}
			if run.Stdout == nil {
				run.Stdout = []byte{}
			}
			r.finish(a, func(errOut []byte) lifecycle.RunOutput { run.Stderr = errOut; return run })
			r.afterTask(s, ex)
			r.mu.Unlock()
		case "exit":
			mm := m
			exitReport = &mm
			r.mu.Lock()
			if s.stopReason == "" {
				s.stopReason = "exited"
			}
			r.mu.Unlock()
		default:
			r.log.Error("executor sent an unexpected message; replacing it", "executor", s.idx, "op", m.Op)
			ex.Kill(0)
		}
	}
	<-ex.Done()
	code, sig, werr := ex.ExitStatus()
	if exitReport != nil && werr == nil && sig == "" && code == 0 {
		// A task's SystemExit (or KeyboardInterrupt): the executor exited as the process
		// would have; the attempt ends with that status.
		if exitReport.Signal != 0 {
			sig = fmt.Sprintf("%d (%s)", exitReport.Signal, syscall.Signal(exitReport.Signal))
			code = -1
		} else if exitReport.Code != nil {
			code = *exitReport.Code
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	reason := s.stopReason
	if a := s.cur; a != nil {
		s.cur, a.slot = nil, nil
		if reason == "" {
			reason = "crashed"
			r.log.Warn("python executor died while running a task", "executor", s.idx, "pid", ex.Pid(), "task_id", a.task.ID,
				"exit_code", code, "signal", sig)
		}
		r.finish(a, func([]byte) lifecycle.RunOutput {
			return lifecycle.RunOutput{ExitCode: code, Signal: sig, Err: werr}
		})
	} else if reason == "" {
		reason = "died_idle"
		r.log.Warn("python executor died while idle", "executor", s.idx, "pid", ex.Pid(), "exit_code", code, "signal", sig,
			"output", ex.LastDiagnostic())
	}
	s.ex, s.state, s.cur = nil, slotStarting, nil
	if !r.closed {
		r.m.Restarts.WithLabelValues(reason).Inc()
		r.spawn(s)
	}
}

// afterTask recycles the executor when it reached its task limit or its memory bound, or
// marks it idle and hands it the next waiting attempt. r.mu is held.
func (r *Runner) afterTask(s *slot, ex *pyexec.Executor) {
	if s.state == slotStopping || ex.Killed() {
		return
	}
	switch {
	case r.cfg.MaxTasksPerExecutor > 0 && s.ran >= r.cfg.MaxTasksPerExecutor:
		s.state, s.stopReason = slotStopping, "recycled_tasks"
	case r.cfg.MaxRSS > 0:
		if rss := ex.RSS(); rss > r.cfg.MaxRSS {
			s.state, s.stopReason = slotStopping, "recycled_rss"
			r.log.Info("recycling a python executor over its memory bound", "executor", s.idx, "rss_mb", rss>>20, "max_mb", r.cfg.MaxRSS>>20)
		}
	}
	if s.state == slotStopping {
		go ex.Stop(context.Background(), r.cfg.KillGrace)
		return
	}
	s.state = slotIdle
	r.dispatch()
}

// finish ends attempt a once its output is drained: run builds the RunOutput (given the
// captured stderr; without a result line the captured stdout is the output), then lifecycle.Interpret decides, and a cancelled attempt that
// did not succeed first is Cancelled. r.mu is held.
func (r *Runner) finish(a *attempt, run func(stderr []byte) lifecycle.RunOutput) {
	if a.ended {
		return
	}
	a.ended = true
	cancelled := a.cancelled
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		drained := make(chan struct{})
		go func() { a.copies.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(pipeDrain):
			a.outR.Close() // a child the task left holds the pipes: abandon its output
			a.errR.Close()
			<-drained
		}
		a.outR.Close()
		a.errR.Close()
		stderr, _ := a.stderr.Bytes()
		ro := run(stderr)
		if ro.Stdout == nil && ro.StdoutParts == nil && !ro.StdoutTruncated {
			// the executor died under the task: its output is what a process's would be
			ro.StdoutParts, ro.StdoutTruncated = a.stdout.Parts() // the capture itself, not a copy
			ro.StdoutDigest = a.stdout.Digest()
		}
		if ro.Stderr == nil {
			ro.Stderr = stderr
		}
		outcome := lifecycle.Interpret(ro)
		if cancelled && outcome.Kind != lifecycle.Succeeded {
			outcome = lifecycle.Outcome{Kind: lifecycle.Cancelled}
		}
		r.mu.Lock()
		a.outcome = outcome
		close(a.done)
		if a.forgotten && r.attempts[a.task.ID] == a {
			delete(r.attempts, a.task.ID)
		}
		r.mu.Unlock()
		r.events.Notify()
	}()
}

// endNow ends an attempt that never reached an executor. r.mu is held.
func (r *Runner) endNow(a *attempt, o lifecycle.Outcome) {
	if a.ended {
		return
	}
	a.ended = true
	a.outcome = o
	close(a.done)
	r.events.Notify()
}

func startFailure(err error) lifecycle.Outcome {
	return lifecycle.Interpret(lifecycle.RunOutput{Err: err})
}

// Capabilities implements worker.Runner: event-driven, nothing to adopt, executors die with
// the worker.
func (r *Runner) Capabilities() worker.Capabilities {
	return worker.Capabilities{Name: "pool", Executors: len(r.slots)}
}

// Events implements worker.Runner.
func (r *Runner) Events() <-chan struct{} { return r.events }

// Start implements worker.Runner: the attempt runs on the next free executor. A row that
// cannot be turned into a payload is a *lifecycle.FailureError.
func (r *Runner) Start(_ context.Context, task store.Task) error {
	payload, err := lifecycle.Payload(task)
	if err != nil {
		return err
	}
	if len(payload) > MaxPayload {
		return lifecycle.InvalidRow("the payload is %d bytes of base64, more than the %d bytes an executor takes", len(payload), MaxPayload)
	}
	a := &attempt{task: task, stdout: procrunner.NewCapture(r.cfg.MaxStdout, true), stderr: procrunner.NewCapture(r.cfg.MaxStderr, false),
		done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("the executor pool is closed")
	}
	if old := r.attempts[task.ID]; old != nil {
		select {
		case <-old.done:
		default:
			return fmt.Errorf("task %d is already running in this pool", task.ID)
		}
	}
	r.attempts[task.ID] = a
	r.waiting = append(r.waiting, a)
	r.dispatch()
	return nil
}

// Poll implements worker.Runner.
func (r *Runner) Poll(_ context.Context, tasks []store.Task) ([]worker.Status, error) {
	out := make([]worker.Status, len(tasks))
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range tasks {
		a := r.attempts[t.ID]
		if a == nil {
			out[i] = worker.Status{Phase: worker.Unknown, Message: "not started by this worker's executor pool"}
			continue
		}
		select {
		case <-a.done:
			out[i] = worker.Status{Phase: worker.Done, Outcome: a.outcome}
		default:
			out[i] = worker.Status{Phase: worker.Running}
		}
	}
	return out, nil
}

// Cancel implements worker.Runner: an attempt still waiting for an executor ends Cancelled
// at once; a running one has its executor's process group stopped (SIGTERM, SIGKILL after
// KillGrace) and is reported Done once the executor is gone.
func (r *Runner) Cancel(_ context.Context, task store.Task) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.attempts[task.ID]
	if a == nil || a.ended || a.cancelled {
		return nil
	}
	a.cancelled = true
	if a.slot == nil {
		for i, w := range r.waiting {
			if w == a {
				r.waiting = append(r.waiting[:i], r.waiting[i+1:]...)
				break
			}
		}
		r.endNow(a, lifecycle.Outcome{Kind: lifecycle.Cancelled})
		return nil
	}
	s := a.slot
	if s.stopReason == "" {
		s.stopReason = "killed"
	}
	s.state = slotStopping
	s.ex.Kill(r.cfg.KillGrace)
	return nil
}

// Output implements worker.Runner: the last max bytes of the task's stdout.
func (r *Runner) Output(_ context.Context, task store.Task, max int) ([]byte, error) {
	r.mu.Lock()
	a := r.attempts[task.ID]
	r.mu.Unlock()
	if a == nil {
		return nil, fmt.Errorf("task %d: no output: not started by this runner (or forgotten)", task.ID)
	}
	return a.stdout.Last(max), nil
}

// Forget implements worker.Runner.
func (r *Runner) Forget(task store.Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.attempts[task.ID]
	if a == nil {
		return
	}
	select {
	case <-a.done:
		delete(r.attempts, task.ID)
	default:
		a.forgotten = true // still stopping: dropped when it ends
	}
}

// Ready implements worker.ReadinessReporter: claims are held while no executor is live and
// the last start failed.
func (r *Runner) Ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.startErr == nil {
		return nil
	}
	for _, s := range r.slots {
		if s.state == slotIdle || s.state == slotBusy {
			return nil
		}
	}
	return fmt.Errorf("no python executor is running: %w", r.startErr)
}

// Close implements worker.Runner: it stops every executor (the loop has already cancelled or
// handed back whatever was running) and waits for them until ctx ends.
func (r *Runner) Close(ctx context.Context) error {
	r.closeCancel()
	r.mu.Lock()
	r.closed = true
	var stops []*pyexec.Executor
	for _, s := range r.slots {
		if s.ex == nil {
			continue
		}
		if s.cur != nil {
			s.cur.cancelled = true
			s.ex.Kill(r.cfg.KillGrace)
			continue
		}
		if s.stopReason == "" {
			s.stopReason = "closed"
		}
		stops = append(stops, s.ex)
	}
	for _, a := range r.waiting {
		r.endNow(a, lifecycle.Outcome{Kind: lifecycle.Cancelled})
	}
	r.waiting = nil
	r.mu.Unlock()
	for _, ex := range stops {
		go ex.Stop(ctx, r.cfg.KillGrace)
	}
	if worker.WaitClosed(ctx, &r.wg) {
		return nil
	}
	r.mu.Lock()
	for _, s := range r.slots {
		if s.ex != nil {
			s.ex.Kill(0)
		}
	}
	r.mu.Unlock()
	return fmt.Errorf("executor pool: executors still stopping: %w", ctx.Err())
}

// Describe implements prometheus.Collector.
func (r *Runner) Describe(ch chan<- *prometheus.Desc) { r.m.Describe(ch) }

// Collect implements prometheus.Collector.
func (r *Runner) Collect(ch chan<- prometheus.Metric) { r.m.Collect(ch) }

// executorStates counts the executors by state (rayworker_executors).
func (r *Runner) executorStates() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, s := range r.slots {
		out[[...]string{"starting", "idle", "busy", "stopping"}[s.state]]++
	}
	return out
}

func (r *Runner) executorRSS() int64 {
	var n int64
	for _, pid := range r.Pids() {
		n += pyexec.RSSOf(pid)
	}
	return n
}

// Size is the number of executors the pool keeps.
func (r *Runner) Size() int { return len(r.slots) }

// Pids returns the process ids of the live executors (for tests).
func (r *Runner) Pids() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, s := range r.slots {
		if s.ex != nil {
			out = append(out, s.ex.Pid())
		}
	}
	return out
}
