package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
)

// Worker is one rayworker process: it claims tasks, runs them through its Runner, and ends
// each attempt through lifecycle.
type Worker struct {
	cfg     Config
	store   *store.Store
	runner  Runner
	caps    Capabilities
	applier *lifecycle.Applier
	log     *slog.Logger
	m       *metrics

	// loop state: touched only by the loop goroutine
	inflight  map[int64]*execution
	draining  bool
	retryPoll bool // an outcome is waiting to be written
	dbErrLog  map[string]time.Time
	heldBy    string    // why the runner holds claims (its ReadinessReporter error); "" when not
	heldUntil time.Time // when to ask the runner again
	// dbSince is when this worker's view of the database last began (its start, or the
	// first call that worked after one that could not reach it); zero while unreachable.
	// Other workers' rows are swept only once it is a lease TTL old (see sweep).
	dbSince time.Time
	// stopAsked: dead workers' CANCELLING rows whose jobs this worker asked to stop.
	stopAsked map[int64]bool

	// shared with the HTTP handlers
	leaseOK   atomic.Bool
	dbOK      atomic.Bool
	stopping  atomic.Bool
	lastTick  atomic.Int64 // unix nanoseconds of the loop's last iteration
	listening atomic.Value // string: the metrics address actually bound
}

// execution is an attempt this worker runs or monitors.
type execution struct {
	task     store.Task // the row as claimed or adopted (its Guard fences every write)
	started  time.Time  // local clock
	deadline time.Time  // zero: no timeout_seconds
	// cancelling: the row went CANCELLING and Cancel was called; the outcome finalizes it.
	cancelling bool
	// abandoned: the row already moved on without this worker (finished or re-queued by
	// someone else); the runner was told to stop and its outcome is dropped.
	abandoned bool
	// timingOut: the execution ran past timeout_seconds and the runner was told to stop it.
	// The row stays RUNNING (heartbeated) until the runner confirms the stop; then it is
	// FAILED as timed out (or SUCCEEDED, if the run completed first).
	timingOut bool
	// handBack: stopped at shutdown; unless it succeeded first, its row is released.
	handBack bool
	// unknown: the runner's last Poll could not tell this execution's state (a Ray job whose
	// status is unavailable). Its row is not heartbeated until the runner knows again (it
	// shows as stuck), but this worker never marks it LOST: it waits for the runner.
	unknown bool
	// pending is an outcome to write on the next poll: one the runner never held (the
	// attempt could not start) and the database did not take, or a timeout of a stopped
	// execution that the database's clock does not see yet.
	pending *lifecycle.Outcome
}

// New returns a Worker over s that runs attempts with r. It validates cfg after applying
// the defaults.
func New(cfg Config, s *store.Store, r Runner) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.WorkerID == "" {
		cfg.WorkerID = store.NewUUID()
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.PID == 0 {
		cfg.PID = os.Getpid()
	}
	w := &Worker{
		cfg: cfg, store: s, runner: r, caps: r.Capabilities(), log: cfg.Logger,
		applier: &lifecycle.Applier{Store: s, Policy: cfg.Policy, Results: cfg.Results, WorkerID: cfg.WorkerID,
			LeaseTTL: cfg.LeaseTTL, StuckAfter: cfg.StuckAfter},
		m:         newMetrics(s, cfg.StatsTTL, cfg.DBTimeout, cfg.Clock),
		inflight:  map[int64]*execution{},
		dbErrLog:  map[string]time.Time{},
		stopAsked: map[int64]bool{},
	}
	w.m.concurrency.Set(float64(cfg.Concurrency))
	if c, ok := r.(prometheus.Collector); ok {
		if err := w.m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("runner metrics: %w", err)
		}
	}
	w.listening.Store("")
	return w, nil
}

// runnerReady is the runner's ReadinessReporter answer (nil for runners without one).
func (w *Worker) runnerReady() error {
	if rr, ok := w.runner.(ReadinessReporter); ok {
		return rr.Ready()
	}
	return nil
}

// ID returns the worker id (the lease's worker_id).
func (w *Worker) ID() string { return w.cfg.WorkerID }

// MetricsAddr returns the address /metrics is served on once Run has started ("" if none).
func (w *Worker) MetricsAddr() string { return w.listening.Load().(string) }

// Run works until ctx is cancelled, then shuts down gracefully: it stops claiming, lets
// in-flight attempts finish for up to ShutdownTimeout, stops the rest and hands their rows
// back to the queue without consuming an attempt (a Detached runner's are left RUNNING for
// adoption), and deactivates the lease. It returns nil after a graceful shutdown, or an error
// if the worker could not start (no database, no lease, metrics address in use).
func (w *Worker) Run(ctx context.Context) error {
	dbctx := context.WithoutCancel(ctx)
	lease := w.lease()
	if err := w.withTimeout(dbctx, func(c context.Context) error { return w.store.UpsertLease(c, lease) }); err != nil {
		return fmt.Errorf("cannot create the worker lease: %w", err)
	}
	w.leaseOK.Store(true)
	w.dbOK.Store(true)
	w.dbSince = w.cfg.Clock()
	w.tick()

	var srv *http.Server
	if w.cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", w.cfg.MetricsAddr)
		if err != nil {
			w.deactivate(dbctx)
			return fmt.Errorf("metrics address: %w", err)
		}
		w.listening.Store(ln.Addr().String())
		srv = &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 10 * time.Second}
		serveDone := make(chan struct{})
		go func() {
			defer close(serveDone)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				w.log.Error("metrics server stopped", "error", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(dbctx, 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			<-serveDone
		}()
	}

	w.log.Info("worker started", "worker_id", w.cfg.WorkerID, "mode", w.caps.Name, "queues", queueList(w.cfg.Queues),
		"concurrency", w.cfg.Concurrency, "hostname", w.cfg.Hostname, "pid", w.cfg.PID, "metrics_addr", w.MetricsAddr())
	w.loop(ctx, dbctx)

	cctx, cancel := context.WithTimeout(dbctx, w.cfg.StopWait)
	if err := w.runner.Close(cctx); err != nil {
		w.log.Warn("runner did not stop cleanly", "error", err)
	}
	cancel()
	w.deactivate(dbctx)
	w.log.Info("worker stopped", "worker_id", w.cfg.WorkerID)
	return nil
}

// lease is this worker's lease row: django-ray's columns, with the execution mode carried in
// the hostname (store.LeaseHostname) so operators see it in rayctl top and inspect-leases.
func (w *Worker) lease() store.Lease {
	return store.Lease{WorkerID: w.cfg.WorkerID, Hostname: store.LeaseHostname(w.cfg.Hostname, w.caps.Name, w.caps.Executors),
		PID: int32(w.cfg.PID), QueueName: store.LeaseQueueLabel(w.cfg.Queues)}
}

func (w *Worker) deactivate(dbctx context.Context) {
	err := w.withTimeout(dbctx, func(c context.Context) error {
		_, err := w.store.DeactivateLease(c, w.cfg.WorkerID)
		return err
	})
	if err != nil {
		w.log.Error("cannot deactivate the lease; it expires on its own", "worker_id", w.cfg.WorkerID, "error", err)
	}
	w.leaseOK.Store(false)
}

func queueList(q []string) string {
	if len(q) == 0 {
		return "*"
	}
	return strings.Join(q, ",")
}

// claimsHeld reports whether the runner's ReadinessReporter holds claims now, logging once
// when that starts and once when it ends. While held, it asks again every IdlePollMax.
func (w *Worker) claimsHeld(now time.Time) bool {
	if now.Before(w.heldUntil) {
		return true
	}
	err := w.runnerReady()
	if err == nil {
		if w.heldBy != "" {
			w.log.Info("runner ready again; claiming resumes", "mode", w.caps.Name)
			w.heldBy = ""
		}
		w.heldUntil = time.Time{}
		return false
	}
	if w.heldBy == "" {
		w.log.Warn("runner not ready; holding claims", "mode", w.caps.Name, "error", err)
	}
	w.heldBy = err.Error()
	w.heldUntil = now.Add(w.cfg.IdlePollMax)
	return true
}

func (w *Worker) tick() { w.lastTick.Store(w.cfg.Clock().UnixNano()) }

// withTimeout runs one database call with the loop's per-call timeout.
func (w *Worker) withTimeout(ctx context.Context, f func(context.Context) error) error {
	c, cancel := context.WithTimeout(ctx, w.cfg.DBTimeout)
	defer cancel()
	return f(c)
}

// timedCall is withTimeout for a call that returns a value.
func timedCall[T any](w *Worker, ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	c, cancel := context.WithTimeout(ctx, w.cfg.DBTimeout)
	defer cancel()
	return f(c)
}

// dbError records a failed database call and logs it at most every 10 s per operation. A
// call that could not reach the database ends this worker's continuous view of it.
func (w *Worker) dbError(op string, err error) {
	w.m.dbErrors.WithLabelValues(op).Inc()
	w.dbOK.Store(false)
	if store.Unreachable(err) {
		w.dbSince = time.Time{}
	}
	now := w.cfg.Clock()
	if last, ok := w.dbErrLog[op]; ok && now.Sub(last) < 10*time.Second {
		return
	}
	w.dbErrLog[op] = now
	w.log.Error("database call failed", "op", op, "error", err)
}

func (w *Worker) dbFine() {
	w.dbOK.Store(true)
	if w.dbSince.IsZero() {
		w.dbSince = w.cfg.Clock()
		w.log.Info("database reachable again; other workers' tasks are left alone for a lease TTL, since they may have been cut off too",
			"lease_ttl", w.cfg.LeaseTTL.String())
	}
}

// watchedLongEnough reports whether this worker has reached the database without a break
// for a lease TTL. Until then it cannot tell a dead worker from one that was cut off with it
// and has not heartbeated again yet: it sweeps only its own rows.
func (w *Worker) watchedLongEnough(now time.Time) bool {
	return !w.dbSince.IsZero() && now.Sub(w.dbSince) >= w.cfg.LeaseTTL
}

// loop is the worker's single goroutine. It returns when a shutdown has run its course.
func (w *Worker) loop(ctx, dbctx context.Context) {
	cfg := w.cfg
	now := cfg.Clock()
	var (
		idle            = cfg.IdlePollMin
		lastActive      time.Time // last claim that found work, or slot freed
		nextClaim       = now
		nextHeartbeat   = now.Add(cfg.HeartbeatInterval)
		nextSweep       = now
		nextCancelCheck = now
		nextPoll        = now
		drainDeadline   time.Time
		stopDeadline    time.Time
		pollNow         bool
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	events := w.runner.Events()
	for {
		now = cfg.Clock()
		w.tick()

		if pollNow || w.retryPoll || (len(w.inflight) > 0 && !now.Before(nextPoll)) {
			before := len(w.inflight)
			w.pollInflight(dbctx)
			if len(w.inflight) < before {
				nextClaim, idle = now, cfg.IdlePollMin // slots freed: look for work now
				lastActive = now
			}
			pollNow = false
			nextPoll = now.Add(w.pollInterval())
		}
		w.checkTimeouts(dbctx, now)
		if !now.Before(nextCancelCheck) {
			w.checkCancellations(dbctx)
			nextCancelCheck = now.Add(cfg.CancelCheckInterval)
		}
		if !now.Before(nextHeartbeat) {
			if w.heartbeat(dbctx) {
				nextCancelCheck = now // some rows moved on: look now
			}
			nextHeartbeat = now.Add(cfg.HeartbeatInterval)
		}
		if !now.Before(nextSweep) {
			w.sweep(dbctx)
			nextSweep = now.Add(cfg.HeartbeatInterval)
		}
		if !w.draining && len(w.inflight) < cfg.Concurrency && !now.Before(nextClaim) && !w.claimsHeld(now) {
			n, err := w.claim(dbctx)
			switch {
			case err != nil:
				idle = cfg.IdlePollMax
			case n > 0:
				idle, lastActive = cfg.IdlePollMin, now
			case now.Sub(lastActive) < activeWindow:
				idle = cfg.IdlePollMin // work came and went just now: more may follow at once
			default:
				idle = min(idle*2, cfg.IdlePollMax)
			}
			if n > 0 && len(w.inflight) < cfg.Concurrency {
				nextClaim = now // the batch filled only part of the free slots: maybe more is due
			} else {
				nextClaim = now.Add(idle)
			}
		}

		// Shutdown: drain, then stop what is left and hand it back.
		if w.draining {
			switch {
			case len(w.inflight) == 0:
				return
			case stopDeadline.IsZero() && !now.Before(drainDeadline):
				if w.caps.Detached {
					w.leaveForAdoption()
					return
				}
				w.stopForHandBack(dbctx)
				stopDeadline = now.Add(cfg.StopWait)
				pollNow = true
				continue
			case !stopDeadline.IsZero() && !now.Before(stopDeadline):
				w.releaseRemaining(dbctx)
				return
			}
		}

		wake := earliest(nextHeartbeat, nextSweep, nextCancelCheck)
		if len(w.inflight) > 0 {
			wake = earliest(wake, nextPoll, w.nearestDeadline())
		}
		if w.retryPoll {
			wake = earliest(wake, now.Add(time.Second))
		}
		if !w.draining && len(w.inflight) < cfg.Concurrency {
			wake = earliest(wake, nextClaim, w.heldUntil)
		}
		if w.draining {
			wake = earliest(wake, drainDeadline)
			if !stopDeadline.IsZero() {
				wake = earliest(wake, stopDeadline)
			}
		}
		timer.Reset(max(wake.Sub(cfg.Clock()), 0))
		done := ctx.Done()
		if w.draining {
			done = nil
		}
		select {
		case <-done:
			w.draining = true
			w.stopping.Store(true)
			timeout := max(cfg.ShutdownTimeout, 0)
			drainDeadline = cfg.Clock().Add(timeout)
			w.log.Info("shutting down: no new claims", "in_flight", len(w.inflight), "shutdown_timeout", timeout.String())
		case <-events:
			pollNow = true
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// activeWindow is how long the loop keeps polling at IdlePollMin after it last found work or
// finished a task, before it backs off towards IdlePollMax: a task enqueued right after the
// previous one finished (a request/response pattern) waits at most IdlePollMin for a claim.
const activeWindow = 2 * time.Second

func earliest(ts ...time.Time) time.Time {
	out := ts[0]
	for _, t := range ts[1:] {
		if !t.IsZero() && (out.IsZero() || t.Before(out)) {
			out = t
		}
	}
	return out
}

func (w *Worker) pollInterval() time.Duration {
	if w.caps.PollInterval > 0 {
		return w.caps.PollInterval
	}
	// event-driven runners: a slow safety net in case an event was missed
	return 5 * time.Second
}

func (w *Worker) nearestDeadline() time.Time {
	var out time.Time
	for _, e := range w.inflight {
		if !e.deadline.IsZero() && !e.abandoned && (out.IsZero() || e.deadline.Before(out)) {
			out = e.deadline
		}
	}
	return out
}

// claim takes up to the free slots and starts them. It returns how many rows it claimed.
func (w *Worker) claim(dbctx context.Context) (int, error) {
	free := w.cfg.Concurrency - len(w.inflight)
	began := time.Now()
	tasks, err := timedCall(w, dbctx, func(c context.Context) ([]store.Task, error) {
		return w.store.Claim(c, store.ClaimParams{WorkerID: w.cfg.WorkerID, Queues: w.cfg.Queues, Limit: free,
			AssignJobIDs: w.caps.AssignJobIDs, RayAddress: w.caps.RayAddress})
	})
	w.m.claimLatency.Observe(time.Since(began).Seconds())
	if err != nil {
		w.dbError("claim", err)
		return 0, err
	}
	w.dbFine()
	for _, t := range tasks {
		w.m.claimed.Inc()
		runnable := t.CreatedAt
		if t.RunAfter != nil && t.RunAfter.After(runnable) {
			runnable = *t.RunAfter
		}
		if t.StartedAt != nil {
			w.m.queueWait.Observe(max(t.StartedAt.Sub(runnable).Seconds(), 0))
		}
		w.log.Info("task claimed", taskAttrs(t, "state", store.StateRunning)...)
		w.start(dbctx, t)
	}
	w.m.inFlight.Set(float64(len(w.inflight)))
	return len(tasks), nil
}

// start hands a claimed row to the runner; a row it cannot start ends at once.
func (w *Worker) start(dbctx context.Context, t store.Task) {
	local := w.cfg.Clock()
	err := w.runner.Start(dbctx, t)
	if err != nil {
		var fe *lifecycle.FailureError
		f := lifecycle.Failure{Message: "could not start the task: " + err.Error(), ExceptionType: lifecycle.ExcRunnerFailed}
		if errors.As(err, &fe) {
			f = fe.Failure
		}
		e := &execution{task: t, started: local}
		if o := lifecycle.Fail(f); !w.end(dbctx, e, o) {
			e.pending = &o // keep the row's slot and outcome until the database is back
			w.inflight[t.ID] = e
		}
		return
	}
	e := &execution{task: t, started: local}
	if t.TimeoutSeconds != nil && *t.TimeoutSeconds >= 0 {
		e.deadline = local.Add(time.Duration(*t.TimeoutSeconds) * time.Second)
	}
	w.inflight[t.ID] = e
}

// pollInflight asks the runner about every execution and ends the ones that are done.
func (w *Worker) pollInflight(dbctx context.Context) {
	w.retryPoll = false
	if len(w.inflight) == 0 {
		return
	}
	execs := make([]*execution, 0, len(w.inflight))
	tasks := make([]store.Task, 0, len(w.inflight))
	for _, e := range w.inflight {
		if e.pending != nil {
			if o := *e.pending; w.end(dbctx, e, o) {
				w.forget(e)
			}
			continue
		}
		execs = append(execs, e)
		tasks = append(tasks, e.task)
	}
	if len(tasks) == 0 {
		w.m.inFlight.Set(float64(len(w.inflight)))
		return
	}
	statuses, err := w.runner.Poll(dbctx, tasks)
	if err != nil || len(statuses) != len(tasks) {
		if err == nil {
			err = fmt.Errorf("runner returned %d statuses for %d tasks", len(statuses), len(tasks))
		}
		w.log.Warn("runner poll failed", "error", err)
		w.retryPoll = true
		return
	}
	for i, st := range statuses {
		execs[i].unknown = st.Phase == Unknown
		if st.RayJobID != "" && !w.recordJobID(dbctx, execs[i], st.RayJobID) {
			continue // the database is unreachable: the outcome waits for the id
		}
		if st.Phase == Done {
			w.finish(dbctx, execs[i], st.Outcome)
		}
	}
	w.m.inFlight.Set(float64(len(w.inflight)))
}

// recordJobID writes the id a runner reported for an execution to its row (once), and keeps
// the row's guard in step. It reports false when the write could not be made (the database
// is unreachable), so nothing is recorded on a guard that may be stale.
func (w *Worker) recordJobID(dbctx context.Context, e *execution, id string) bool {
	if e.task.RayJobID != nil && *e.task.RayJobID == id {
		return true
	}
	applied, err := timedCall(w, dbctx, func(c context.Context) (bool, error) { return w.store.RecordJobID(c, e.task.Guard(), id, "") })
	if err != nil {
		w.dbError("record_job_id", err)
		w.retryPoll = true
		return false
	}
	w.dbFine()
	if applied {
		e.task.RayJobID = &id
	}
	// Not applied: the row moved on (cancelled, re-queued); the outcome's guarded write
	// finds that out and is discarded, as for any other runner.
	return true
}

// finish records an execution's outcome and stops tracking it. The runner has confirmed the
// execution stopped (see Runner), so whatever is recorded here no longer runs.
func (w *Worker) finish(dbctx context.Context, e *execution, o lifecycle.Outcome) {
	switch {
	case e.abandoned:
		w.forget(e)
		return
	case e.handBack && o.Kind != lifecycle.Succeeded:
		if w.release(dbctx, e) {
			w.forget(e)
		}
		return
	case e.timingOut && e.task.State == store.StateRunning && o.Kind != lifecycle.Succeeded:
		o = lifecycle.Outcome{Kind: lifecycle.TimedOut}
	}
	if w.end(dbctx, e, o) {
		w.forget(e)
	}
}

func (w *Worker) forget(e *execution) {
	w.runner.Forget(e.task)
	delete(w.inflight, e.task.ID)
}

// applyOutcome writes an outcome through the applier. stop reports that end must return now, with
// ended as its answer: the database could not be reached (false: kept and retried), or it
// refused the outcome (refused's answer).
func (w *Worker) applyOutcome(dbctx context.Context, e *execution, o lifecycle.Outcome) (_ lifecycle.Transition, stop, ended bool) {
	tr, err := timedCall(w, dbctx, func(c context.Context) (lifecycle.Transition, error) { return w.applier.Apply(c, e.task, o) })
	if errors.Is(err, store.ErrInvalid) {
		return tr, true, w.refused(e.task, o, err)
	}
	if err != nil {
		w.dbError("complete", err)
		w.retryPoll = true
		return tr, true, false
	}
	return tr, false, false
}

// end applies an outcome to the row and logs the transition. It reports false when the
// database could not be reached (the outcome is kept and retried). An outcome PostgreSQL
// refuses for what it holds is never retried: lifecycle records an UnstorableOutcome failure
// instead, and if even that is refused the execution is dropped (true) so its slot is
// freed; the row, no longer heartbeated, then goes to stuck-task recovery.
func (w *Worker) end(dbctx context.Context, e *execution, o lifecycle.Outcome) bool {
	tr, stop, ended := w.applyOutcome(dbctx, e, o)
	if stop {
		return ended
	}
	w.dbFine()
	if !tr.Applied && (tr.Current == store.StateQueued || tr.Current == store.StateLost) && w.reclaim(dbctx, e) {
		// The row was marked LOST only because this worker could not reach the database:
		// it is ours again, so the outcome in hand is recorded instead of the task running
		// a second time.
		if tr, stop, ended = w.applyOutcome(dbctx, e, o); stop {
			return ended
		}
	}
	if !tr.Applied && o.Kind == lifecycle.TimedOut && tr.Current == store.StateRunning && w.stillOurs(dbctx, e) {
		// The database's clock does not see the deadline passed yet: the work is stopped,
		// so keep the outcome and write it shortly.
		e.pending = &o
		w.retryPoll = true
		return false
	}
	if tr.Applied && tr.Outcome == lifecycle.TimedOut {
		w.m.recovered.WithLabelValues("timed_out").Inc()
	}
	w.logTransition(e.task, tr, w.cfg.Clock().Sub(e.started))
	return true
}

// reclaim takes back the row of an execution this worker still holds when the row was marked
// LOST (and perhaps re-queued) only because this worker could not reach the database for
// longer than the stuck timeout, and nobody has claimed it since (store.Reclaim). It reports
// whether the row is RUNNING under the execution's claim again.
func (w *Worker) reclaim(dbctx context.Context, e *execution) bool {
	if e.abandoned || e.handBack || e.task.State != store.StateRunning || !w.owns(e.task) {
		return false
	}
	applied, err := timedCall(w, dbctx, func(c context.Context) (bool, error) { return w.store.Reclaim(c, e.task) })
	if err != nil {
		w.dbError("reclaim", err)
		return false
	}
	if applied {
		w.m.recovered.WithLabelValues("reclaimed").Inc()
		w.log.Warn("task taken back: it was marked LOST while this worker could not reach the database, and nobody claimed it since",
			taskAttrs(e.task, "state", store.StateRunning)...)
	}
	return applied
}

// stillOurs reads the row back: is it still RUNNING under this execution's claim?
func (w *Worker) stillOurs(dbctx context.Context, e *execution) bool {
	cur, err := timedCall(w, dbctx, func(c context.Context) (store.Task, error) { return w.store.GetTask(c, e.task.ID) })
	return err == nil && cur.State == store.StateRunning && w.owns(cur) && sameClaim(e.task, cur)
}

// refused drops an execution whose outcome, and the UnstorableOutcome failure that replaces
// it, PostgreSQL refuses for what they hold (lifecycle.ErrUnstorable): writing again cannot
// help, so the slot is freed; the row, no longer heartbeated, goes to stuck-task recovery.
func (w *Worker) refused(task store.Task, o lifecycle.Outcome, err error) bool {
	w.dbFine()
	w.m.outcomes.WithLabelValues("unstorable").Inc()
	w.log.Error("task outcome refused by the database; its slot is freed and the row is left for stuck-task recovery",
		append(taskAttrs(task), "outcome", o.Kind.String(), "error", err)...)
	return true
}

// outcomeLabel names what a transition wrote, for metrics.
func outcomeLabel(tr lifecycle.Transition) string {
	if !tr.Applied {
		return "discarded"
	}
	switch {
	case tr.Refused != nil:
		return "unstorable"
	case tr.To == store.StateSucceeded:
		return "succeeded"
	case tr.To == store.StateCancelled:
		return "cancelled"
	case tr.Outcome == lifecycle.TimedOut:
		return "timed_out"
	case tr.Outcome == lifecycle.Lost && tr.To == store.StateLost:
		return "lost"
	case tr.To == store.StateQueued:
		return "retried"
	}
	return "failed"
}

func (w *Worker) logTransition(t store.Task, tr lifecycle.Transition, ran time.Duration) {
	label := outcomeLabel(tr)
	w.m.outcomes.WithLabelValues(label).Inc()
	if tr.Outcome != lifecycle.Lost && tr.Outcome != lifecycle.TimedOut {
		w.m.duration.WithLabelValues(label).Observe(ran.Seconds())
	}
	if tr.Stored.Fallback != nil {
		w.m.fallbacks.Inc()
	}
	attrs := taskAttrs(t, "state", tr.To)
	switch {
	case !tr.Applied:
		w.log.Warn("task outcome discarded: the row moved on", append(taskAttrs(t, "state", tr.Current), "outcome", tr.Outcome.String())...)
	case tr.To == store.StateSucceeded:
		attrs = append(attrs, "duration_ms", ran.Milliseconds(), "result_bytes", tr.Stored.Bytes)
		if !tr.Stored.Inline {
			attrs = append(attrs, "result_reference", tr.Stored.Reference)
		}
		if tr.Stored.Fallback != nil {
			w.log.Warn("result storage failed; stored a digest reference instead", append(taskAttrs(t), "error", tr.Stored.Fallback)...)
		}
		w.log.Info("task succeeded", attrs...)
	case tr.To == store.StateCancelled:
		w.log.Info("task cancelled", attrs...)
	case tr.To == store.StateQueued:
		attrs = append(attrs, "retry_in", tr.RetryDelay.String(), "exception_type", tr.ExceptionType, "error", clip(tr.ErrorMessage))
		if tr.Outcome == lifecycle.Lost {
			w.log.Warn("task lost, retry scheduled", attrs...)
		} else {
			w.log.Warn("task failed, retry scheduled", attrs...)
		}
	case tr.To == store.StateLost:
		w.log.Error("task lost", append(attrs, "reason", tr.NoRetry)...)
	case tr.Refused != nil:
		w.log.Error("task outcome refused by the database; recorded as FAILED instead",
			append(attrs, "outcome", tr.Outcome.String(), "exception_type", tr.ExceptionType, "error", tr.Refused)...)
	default:
		attrs = append(attrs, "exception_type", tr.ExceptionType, "error", clip(tr.ErrorMessage), "reason", tr.NoRetry)
		if tr.Outcome == lifecycle.TimedOut {
			w.log.Error("task timed out", attrs...)
		} else {
			w.log.Error("task failed", attrs...)
		}
	}
}

func taskAttrs(t store.Task, extra ...any) []any {
	return append([]any{"task_id", t.ID, "attempt", t.AttemptNumber, "queue", t.QueueName, "callable", t.CallablePath}, extra...)
}

func clip(s string) string {
	const n = 500
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
