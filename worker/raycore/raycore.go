// Package raycore is rayworker's Ray Core runner (--runner ray_core; django-ray 0.2.0's
// --local and --cluster modes): one long-lived Python executor (package pyexec) is a Ray
// driver. It calls ray.init once, and each task is one Ray remote call of django-ray's own
// execution function on a warm Ray worker. Completions are pushed to the worker as soon as Ray
// has them (an ObjectRef future's callback), not on a poll interval.
//
// The row's ray_job_id gets 0.2.0's Ray Core format, `<ray job id>:<task ref>` (the first 48
// hex digits of the ObjectRef), reported by Poll for the loop to record. Cancel is ray.cancel
// (force=False, then force=True after CancelGrace). When the driver loses the cluster (its
// health check fails, or it dies), every attempt in flight ends as a failure under the retry
// policy with exception type RayConnectionError, as 0.2.0 routes stale Ray Core tasks, and a
// new driver is started with a backoff; claims are held until it is ready.
//
// Ray Core tasks belong to the driver: Ray stops them when the driver exits, and no other
// worker can adopt them. At shutdown the loop therefore cancels them and hands their rows back.
package raycore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/pyexec"
)

// ExcConnection is django-ray 0.2.0's exception type for tasks whose Ray connection was lost.
const ExcConnection = "RayConnectionError"

// Defaults for Config.
const (
	DefaultStartTimeout = 5 * time.Minute
	DefaultCancelGrace  = 5 * time.Second
	backoffMin          = time.Second
	backoffMax          = time.Minute
)

// Config configures a Runner.
type Config struct {
	// Python is the driver's interpreter; it must import ray (and django_ray only on the Ray
	// workers, which the start probe checks).
	Python string
	// Address is ray.init's address: a Ray Client address (ray://HOST:10001) or a GCS address
	// (HOST:6379). Empty means django-ray 0.2.0's --local: ray.init() with no address, which
	// joins a Ray already running on this machine or starts one for the driver.
	Address string
	// RuntimeEnv is the job's Ray runtime_env (DJANGO_RAY RAY_RUNTIME_ENV): every remote call
	// runs with it.
	RuntimeEnv map[string]any
	// Env is added to the driver's environment.
	Env map[string]string
	// Dir is the driver's working directory.
	Dir string
	// NumCPUs, with no Address, sizes the Ray the driver starts (0: Ray's default).
	NumCPUs int
	// StartTimeout bounds ray.init and the start probe (a remote call that imports django_ray
	// and sets Django up on a Ray worker), default 5 minutes.
	StartTimeout time.Duration
	// CancelGrace is how long a cancelled task gets before ray.cancel(force=True).
	CancelGrace time.Duration
	// HealthInterval and HealthTimeout pace the driver's cluster check (defaults 5 s and 10 s,
	// as django-ray 0.2.0's); a Ray-level task error (a worker or node died) checks at once.
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	Logger         *slog.Logger
}

// Runner is the Ray Core runner. It implements worker.Runner, worker.ReadinessReporter and
// prometheus.Collector.
type Runner struct {
	cfg    Config
	log    *slog.Logger
	events worker.Wake
	m      *pyexec.Metrics

	mu       sync.Mutex
	driver   *pyexec.Executor // nil while (re)starting
	jobID    string           // the driver's Ray job id
	attempts map[int64]*attempt
	startErr error
	closed   bool
	ready    pyexec.Message

	closeCtx    context.Context
	closeCancel context.CancelFunc
	wg          sync.WaitGroup
}

var (
	_ worker.Runner            = (*Runner)(nil)
	_ worker.ReadinessReporter = (*Runner)(nil)
	_ prometheus.Collector     = (*Runner)(nil)
)

type attempt struct {
	task      store.Task
	driver    *pyexec.Executor // the driver it was submitted to
	rayJobID  string
	cancelled bool
	forced    *time.Timer
	done      chan struct{}
	outcome   lifecycle.Outcome
	forgotten bool
}

// New starts the driver and waits until it is ready: ray.init succeeded and a probe task
// ran django-ray's setup on a Ray worker. Its failure (a *pyexec.StartError for
// configuration problems) means the worker should not start.
func New(ctx context.Context, cfg Config) (*Runner, error) {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.CancelGrace <= 0 {
		cfg.CancelGrace = DefaultCancelGrace
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 5 * time.Second
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{cfg: cfg, log: cfg.Logger, events: worker.NewWake(), attempts: map[int64]*attempt{}}
	r.m = pyexec.NewMetrics(r.executorStates, r.executorRSS)
	r.closeCtx, r.closeCancel = context.WithCancel(context.Background())
	d, err := r.m.Start(ctx, r.execConfig())
	if err != nil {
		r.closeCancel()
		return nil, err
	}
	r.ready = d.ReadyMessage()
	r.mu.Lock()
	r.attach(d)
	r.mu.Unlock()
	return r, nil
}

// ReadyInfo is the driver's ready message (versions, the Ray job id).
func (r *Runner) ReadyInfo() pyexec.Message { return r.ready }

func (r *Runner) execConfig() pyexec.Config {
	settings := map[string]any{
		"address":         r.cfg.Address,
		"probe_timeout":   r.cfg.StartTimeout.Seconds(),
		"health_interval": r.cfg.HealthInterval.Seconds(),
		"health_timeout":  r.cfg.HealthTimeout.Seconds(),
	}
	if len(r.cfg.RuntimeEnv) > 0 {
		settings["runtime_env"] = r.cfg.RuntimeEnv
	}
	if r.cfg.NumCPUs > 0 {
		settings["num_cpus"] = r.cfg.NumCPUs
	}
	return pyexec.Config{Python: r.cfg.Python, Mode: pyexec.ModeRayCore, Env: r.cfg.Env, Dir: r.cfg.Dir, Settings: settings,
		StartTimeout: r.cfg.StartTimeout + 30*time.Second,
		Log:          func(line string) { r.log.Warn("ray driver output", "line", line) }}
}

// attach makes d the driver and serves it. r.mu is held.
func (r *Runner) attach(d *pyexec.Executor) {
	r.driver, r.startErr = d, nil
	r.jobID = d.ReadyMessage().RayJobID
	r.wg.Add(1)
	go r.serve(d)
}

// serve handles the driver's messages until it is gone, then fails what it had in flight and
// starts another.
func (r *Runner) serve(d *pyexec.Executor) {
	defer r.wg.Done()
	reason := "crashed"
	lost := "Ray connection lost"
	for m := range d.Messages() {
		r.mu.Lock()
		a := r.attempts[m.ID]
		if a != nil && a.driver != d {
			a = nil // an attempt of an earlier driver (already failed)
		}
		switch m.Op {
		case "submitted":
			if a != nil {
				a.rayJobID = m.RayJobID
			}
		case "done":
			if a != nil {
				r.end(a, lifecycle.Interpret(lifecycle.RunOutput{Stdout: m.Data}))
			}
		case "cancelled":
			if a != nil {
				r.end(a, lifecycle.Outcome{Kind: lifecycle.Cancelled})
			}
		case "submit_failed":
			if a != nil {
				r.end(a, lifecycle.Fail(lifecycle.Failure{Message: m.Error, Traceback: m.Detail, ExceptionType: m.ExceptionType}))
			}
		case "disconnected":
			reason, lost = "disconnected", "Ray connection lost: "+m.Error
			r.log.Error("the Ray driver lost the cluster; tasks in flight are retried", "error", m.Error)
		default:
			r.log.Error("ray driver sent an unexpected message", "op", m.Op)
		}
		r.mu.Unlock()
	}
	<-d.Done()
	code, sig, _ := d.ExitStatus()
	r.mu.Lock()
	defer r.mu.Unlock()
	failed := 0
	for _, a := range r.attempts {
		if a.driver != d || isDone(a) {
			continue
		}
		if a.cancelled {
			r.end(a, lifecycle.Outcome{Kind: lifecycle.Cancelled})
			continue
		}
		failed++
		r.end(a, lifecycle.Fail(lifecycle.Failure{Message: lost, ExceptionType: ExcConnection}))
	}
	r.driver = nil
	if r.closed {
		return
	}
	if reason == "crashed" {
		r.log.Error("the Ray driver exited", "exit_code", code, "signal", sig, "in_flight", failed, "output", d.LastDiagnostic())
	}
	r.m.Restarts.WithLabelValues(reason).Inc()
	r.startErr = errors.New("the Ray driver is restarting after: " + lost)
	r.respawn()
}

// respawn starts a new driver in the background with a backoff. r.mu is held.
func (r *Runner) respawn() {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		d, ok := r.m.KeepStarting(r.closeCtx, r.execConfig,
			pyexec.Backoff{First: backoffMin, Min: backoffMin, Max: backoffMax},
			func(err error, wait time.Duration) {
				r.mu.Lock()
				r.startErr = err
				r.mu.Unlock()
				r.log.Error("the Ray driver could not start; retrying", "error", err, "retry_in", wait.String())
			})
		if !ok {
			return
		}
		r.mu.Lock()
		r.attach(d)
		r.mu.Unlock()
		r.log.Info("the Ray driver is connected again", "ray_job_id", r.jobIDLocked())
		r.events.Notify()
	}()
}

func (r *Runner) jobIDLocked() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.jobID
}

// end records an attempt's outcome. r.mu is held.
func (r *Runner) end(a *attempt, o lifecycle.Outcome) {
	if isDone(a) {
		return
	}
	if a.forced != nil {
		a.forced.Stop()
	}
	if a.cancelled && o.Kind != lifecycle.Succeeded {
		o = lifecycle.Outcome{Kind: lifecycle.Cancelled}
	}
	a.outcome = o
	close(a.done)
	if a.forgotten {
		delete(r.attempts, a.task.ID)
	}
	r.events.Notify()
}

func isDone(a *attempt) bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// Capabilities implements worker.Runner: event-driven; the claim records the Ray address
// (django-ray writes RAY_ADDRESS or "auto"); nothing to adopt; tasks end with the driver.
func (r *Runner) Capabilities() worker.Capabilities {
	addr := r.cfg.Address
	if addr == "" {
		addr = "auto"
	}
	return worker.Capabilities{Name: "ray_core", RayAddress: addr, Executors: 1}
}

// Events implements worker.Runner.
func (r *Runner) Events() <-chan struct{} { return r.events }

// Start implements worker.Runner: one remote call. Without a driver (it is reconnecting) the
// attempt fails at once under the retry policy (RayConnectionError), as in django-ray 0.2.0.
func (r *Runner) Start(_ context.Context, task store.Task) error {
	payload, err := lifecycle.Payload(task)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("the Ray Core runner is closed")
	}
	if old := r.attempts[task.ID]; old != nil && !isDone(old) {
		return fmt.Errorf("task %d is already running in this runner", task.ID)
	}
	d := r.driver
	if d == nil {
		return &lifecycle.FailureError{Failure: lifecycle.Failure{Message: "Ray cluster not available", ExceptionType: ExcConnection}}
	}
	a := &attempt{task: task, driver: d, done: make(chan struct{})}
	r.attempts[task.ID] = a
	name := task.CallablePath
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	r.m.Tasks.Inc()
	if err := d.Send(map[string]any{"op": "submit", "id": task.ID, "name": name}, []byte(payload)); err != nil {
		// The driver is going away; its serve loop fails every attempt it had, this one too.
		r.log.Warn("could not hand a task to the Ray driver", "task_id", task.ID, "error", err)
	}
	return nil
}

// Poll implements worker.Runner. A running attempt carries its Ray Core id for the loop to
// record in ray_job_id.
func (r *Runner) Poll(_ context.Context, tasks []store.Task) ([]worker.Status, error) {
	out := make([]worker.Status, len(tasks))
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range tasks {
		a := r.attempts[t.ID]
		switch {
		case a == nil:
			out[i] = worker.Status{Phase: worker.Unknown, Message: "not started by this worker's Ray driver (Ray Core tasks cannot be adopted)"}
		case isDone(a):
			out[i] = worker.Status{Phase: worker.Done, Outcome: a.outcome, RayJobID: a.rayJobID}
		default:
			out[i] = worker.Status{Phase: worker.Running, RayJobID: a.rayJobID}
		}
	}
	return out, nil
}

// Cancel implements worker.Runner: ray.cancel(force=False) now, force=True after CancelGrace.
// Poll reports Done once Ray says the task ended (or the driver is gone).
func (r *Runner) Cancel(_ context.Context, task store.Task) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.attempts[task.ID]
	if a == nil || isDone(a) || a.cancelled {
		return nil
	}
	a.cancelled = true
	d := a.driver
	if err := d.Send(map[string]any{"op": "cancel", "id": task.ID, "force": false}, nil); err != nil {
		return nil // the driver is gone: its serve loop ends the attempt
	}
	a.forced = time.AfterFunc(r.cfg.CancelGrace, func() {
		r.mu.Lock()
		done := isDone(a)
		r.mu.Unlock()
		if !done {
			_ = d.Send(map[string]any{"op": "cancel", "id": task.ID, "force": true}, nil)
		}
	})
	return nil
}

// Output implements worker.Runner: Ray Core tasks' output stays in Ray's worker logs.
func (r *Runner) Output(_ context.Context, task store.Task, _ int) ([]byte, error) {
	return nil, fmt.Errorf("task %d: Ray Core tasks print to the Ray workers' logs (Ray dashboard), not to the worker", task.ID)
}

// Forget implements worker.Runner.
func (r *Runner) Forget(task store.Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.attempts[task.ID]
	if a == nil {
		return
	}
	if isDone(a) {
		delete(r.attempts, task.ID)
		return
	}
	a.forgotten = true
}

// Ready implements worker.ReadinessReporter: claims are held while there is no driver.
func (r *Runner) Ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.driver != nil {
		return nil
	}
	if r.startErr != nil {
		return r.startErr
	}
	return errors.New("the Ray driver is starting")
}

// Close implements worker.Runner: the driver exits (ray.shutdown); Ray stops whatever it
// still ran. It waits until ctx ends.
func (r *Runner) Close(ctx context.Context) error {
	r.closeCancel()
	r.mu.Lock()
	r.closed = true
	d := r.driver
	r.mu.Unlock()
	if d != nil {
		go d.Stop(ctx, 10*time.Second)
	}
	if worker.WaitClosed(ctx, &r.wg) {
		return nil
	}
	if d != nil {
		d.Kill(0)
	}
	return fmt.Errorf("ray core runner: the driver is still stopping: %w", ctx.Err())
}

// Describe implements prometheus.Collector.
func (r *Runner) Describe(ch chan<- *prometheus.Desc) { r.m.Describe(ch) }

// Collect implements prometheus.Collector.
func (r *Runner) Collect(ch chan<- prometheus.Metric) { r.m.Collect(ch) }

func (r *Runner) executorStates() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.driver == nil {
		return map[string]int{"starting": 1}
	}
	for _, a := range r.attempts {
		if !isDone(a) {
			return map[string]int{"busy": 1}
		}
	}
	return map[string]int{"idle": 1}
}

func (r *Runner) executorRSS() int64 {
	r.mu.Lock()
	d := r.driver
	r.mu.Unlock()
	if d == nil {
		return 0
	}
	return d.RSS()
}

// DriverPid is the driver's process id, 0 while there is none (for tests).
func (r *Runner) DriverPid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.driver == nil {
		return 0
	}
	return r.driver.Pid()
}
