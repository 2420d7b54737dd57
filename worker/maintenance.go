package worker

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
)

func (w *Worker) sweepParams() store.SweepParams {
	return store.SweepParams{Self: w.cfg.WorkerID, LeaseTTL: w.cfg.LeaseTTL, StuckAfter: w.cfg.StuckAfter, Limit: 1000}
}

func (w *Worker) owns(t store.Task) bool {
	return t.ClaimedByWorker != nil && *t.ClaimedByWorker == w.cfg.WorkerID
}

// apply ends a row this worker does not run (a sweep's find) and logs it. It reports whether
// the transition applied.
func (w *Worker) apply(dbctx context.Context, t store.Task, o lifecycle.Outcome, recovered string) bool {
	var tr lifecycle.Transition
	err := w.withTimeout(dbctx, func(c context.Context) error {
		var err error
		tr, err = w.applier.Apply(c, t, o)
		return err
	})
	if err != nil {
		w.dbError("sweep", err)
		return false
	}
	if !tr.Applied {
		return false // the row moved on since the sweep read it: nothing to do
	}
	if recovered != "" {
		w.m.recovered.WithLabelValues(recovered).Inc()
	}
	ran := time.Duration(0)
	if t.StartedAt != nil {
		ran = w.cfg.Clock().Sub(*t.StartedAt)
	}
	w.logTransition(t, tr, ran)
	return true
}

// abandon stops an execution whose row already moved on; its outcome will be dropped.
func (w *Worker) abandon(dbctx context.Context, e *execution) {
	e.abandoned = true
	if err := w.runner.Cancel(dbctx, e.task); err != nil {
		w.log.Warn("could not stop a task", append(taskAttrs(e.task), "error", err)...)
	}
}

// checkTimeouts ends this worker's executions that ran past timeout_seconds: FAILED (never
// retried), then the work is stopped. The database's clock decides; if it disagrees by a
// little the check is repeated shortly.
func (w *Worker) checkTimeouts(dbctx context.Context, now time.Time) {
	for _, e := range w.inflight {
		if e.deadline.IsZero() || e.abandoned || e.cancelling || e.handBack || now.Before(e.deadline) {
			continue
		}
		var tr lifecycle.Transition
		err := w.withTimeout(dbctx, func(c context.Context) error {
			var err error
			tr, err = w.applier.Apply(c, e.task, lifecycle.Outcome{Kind: lifecycle.TimedOut})
			return err
		})
		switch {
		case err != nil:
			w.dbError("timeout", err)
			e.deadline = now.Add(time.Second)
		case tr.Applied:
			w.m.recovered.WithLabelValues("timed_out").Inc()
			w.logTransition(e.task, tr, now.Sub(e.started))
			w.abandon(dbctx, e)
		case tr.Current == store.StateRunning:
			e.deadline = now.Add(200 * time.Millisecond) // not yet by the database's clock
		case tr.Current == store.StateCancelling:
			e.deadline = time.Time{} // the cancellation check takes it from here
		default:
			w.log.Warn("task moved on while running; stopping it", taskAttrs(e.task, "state", tr.Current)...)
			w.abandon(dbctx, e)
		}
	}
}

// checkCancellations stops this worker's executions whose rows went CANCELLING (they are
// finalized CANCELLED when the runner reports them stopped), and finalizes CANCELLING rows
// nobody runs: this worker's untracked ones and those of dead workers (django-ray 0.2.0
// leaves the latter CANCELLING forever).
func (w *Worker) checkCancellations(dbctx context.Context) {
	var rows []store.Task
	err := w.withTimeout(dbctx, func(c context.Context) error {
		var err error
		rows, err = w.store.CancellingTasks(c, w.sweepParams())
		return err
	})
	if err != nil {
		w.dbError("cancellations", err)
		return
	}
	w.dbFine()
	for _, row := range rows {
		e := w.inflight[row.ID]
		if e != nil && w.owns(row) && sameClaim(e.task, row) {
			if !e.cancelling && !e.abandoned {
				e.cancelling, e.task = true, row
				w.log.Info("cancelling task", taskAttrs(row, "state", row.State)...)
				if err := w.runner.Cancel(dbctx, row); err != nil {
					w.log.Warn("could not stop a cancelled task", append(taskAttrs(row), "error", err)...)
				}
			}
			continue
		}
		if !w.owns(row) && w.caps.AdoptPrefix != "" && row.RayJobID != nil && strings.HasPrefix(*row.RayJobID, w.caps.AdoptPrefix) {
			// A dead worker's job may still run: stop it before finalizing.
			if err := w.runner.Cancel(dbctx, row); err != nil {
				w.log.Warn("could not stop a dead worker's cancelled job", append(taskAttrs(row), "error", err)...)
				continue
			}
		}
		w.apply(dbctx, row, lifecycle.Outcome{Kind: lifecycle.Cancelled}, "cancelled")
	}
}

func sameClaim(a, b store.Task) bool {
	return a.StartedAt != nil && b.StartedAt != nil && a.StartedAt.Equal(*b.StartedAt)
}

// heartbeat refreshes the lease (re-creating or re-activating it when it is missing or
// inactive) and, in one statement, the heartbeat of this worker's RUNNING rows. When some of
// those rows are no longer RUNNING under this worker it looks at them (reconcileOwned) and
// reports true, so the caller checks for cancellations at once.
func (w *Worker) heartbeat(dbctx context.Context) bool {
	w.renewLease(dbctx)
	ids := make([]int64, 0, len(w.inflight))
	for id, e := range w.inflight {
		if !e.abandoned && !e.cancelling && !e.unknown && e.task.State == store.StateRunning {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return false
	}
	var touched int64
	err := w.withTimeout(dbctx, func(c context.Context) error {
		var err error
		touched, err = w.store.HeartbeatTasks(c, w.cfg.WorkerID, ids)
		return err
	})
	if err != nil {
		w.dbError("task_heartbeat", err)
		return false
	}
	if touched == int64(len(ids)) {
		return false
	}
	w.reconcileOwned(dbctx, ids)
	return true
}

// reconcileOwned reads rows the worker runs and stops the executions whose rows moved on
// without it (re-queued or finished by an operator, marked LOST by another worker while this
// one could not heartbeat, deleted): their work is no longer wanted and any outcome they reach
// would be refused anyway. CANCELLING rows are left to checkCancellations.
func (w *Worker) reconcileOwned(dbctx context.Context, ids []int64) {
	var rows []store.Task
	err := w.withTimeout(dbctx, func(c context.Context) error {
		var err error
		rows, err = w.store.TasksByIDs(c, ids)
		return err
	})
	if err != nil {
		w.dbError("task_heartbeat", err)
		return
	}
	current := make(map[int64]store.Task, len(rows))
	for _, r := range rows {
		current[r.ID] = r
	}
	for _, id := range ids {
		e := w.inflight[id]
		if e == nil || e.abandoned {
			continue
		}
		row, ok := current[id]
		if ok && w.owns(row) && sameClaim(e.task, row) && (row.State == store.StateRunning || row.State == store.StateCancelling) {
			continue
		}
		state := store.TaskState("deleted")
		if ok {
			state = row.State
		}
		w.log.Warn("task moved on while running; stopping it", taskAttrs(e.task, "state", state)...)
		w.abandon(dbctx, e)
	}
}

func (w *Worker) renewLease(dbctx context.Context) {
	var alive bool
	err := w.withTimeout(dbctx, func(c context.Context) error {
		var err error
		alive, err = w.store.HeartbeatLease(c, w.cfg.WorkerID)
		return err
	})
	if err != nil {
		w.leaseOK.Store(false)
		w.dbError("lease_heartbeat", err)
		return
	}
	if !alive {
		lease := w.lease()
		if err := w.withTimeout(dbctx, func(c context.Context) error { return w.store.UpsertLease(c, lease) }); err != nil {
			w.leaseOK.Store(false)
			w.dbError("lease_create", err)
			return
		}
		w.m.leaseRenewed.Inc()
		w.log.Warn("lease was missing or inactive; re-created it", "worker_id", w.cfg.WorkerID)
	}
	w.leaseOK.Store(true)
	w.dbFine()
}

// sweep is the maintenance pass: expire other workers' stale leases, fail timed-out rows of
// dead workers, mark stuck rows (this worker's or dead workers') LOST and retry them, and,
// for a runner that can adopt, take over dead workers' running jobs.
func (w *Worker) sweep(dbctx context.Context) {
	var expired []string
	err := w.withTimeout(dbctx, func(c context.Context) error {
		var err error
		expired, err = w.store.ExpireLeases(c, w.cfg.LeaseTTL)
		return err
	})
	if err != nil {
		w.dbError("expire_leases", err)
		return
	}
	for _, id := range expired {
		if id == w.cfg.WorkerID {
			w.log.Warn("this worker's own lease had gone stale; renewing it", "worker_id", id)
			w.renewLease(dbctx)
			continue
		}
		w.m.leasesExpired.Inc()
		w.log.Warn("expired the lease of a worker without a heartbeat", "expired_worker_id", id, "lease_ttl", w.cfg.LeaseTTL.String())
	}

	p := w.sweepParams()
	var timedOut, stuck []store.Task
	err = w.withTimeout(dbctx, func(c context.Context) error {
		var err error
		if timedOut, err = w.store.TimedOutTasks(c, p); err != nil {
			return err
		}
		stuck, err = w.store.StuckTasks(c, p)
		return err
	})
	if err != nil {
		w.dbError("sweep", err)
		return
	}
	w.dbFine()
	for _, row := range timedOut {
		if w.inflight[row.ID] != nil {
			continue // checkTimeouts ends this worker's own, and stops them
		}
		if w.apply(dbctx, row, lifecycle.Outcome{Kind: lifecycle.TimedOut}, "timed_out") {
			w.stopOrphan(dbctx, row, "timed out")
		}
	}
	for _, row := range stuck {
		e := w.inflight[row.ID]
		if e != nil && e.abandoned {
			continue
		}
		if w.apply(dbctx, row, lifecycle.Outcome{Kind: lifecycle.Lost}, "lost") {
			if e != nil {
				w.abandon(dbctx, e)
			} else {
				w.stopOrphan(dbctx, row, "lost")
			}
		}
	}
	if w.caps.AdoptPrefix != "" {
		w.adopt(dbctx)
	}
}

// stopOrphan asks the runner to stop the job of a dead worker's row that a sweep just ended
// (timed out, or LOST and retried): a detached job may still be running, and must not go on
// beside the retry. Best effort: the row's outcome is already written.
func (w *Worker) stopOrphan(dbctx context.Context, row store.Task, why string) {
	if w.owns(row) || w.caps.AdoptPrefix == "" || row.RayJobID == nil || !strings.HasPrefix(*row.RayJobID, w.caps.AdoptPrefix) {
		return
	}
	if err := w.runner.Cancel(dbctx, row); err != nil {
		w.log.Warn("could not stop the job of a dead worker's task", append(taskAttrs(row, "reason", why, "ray_job_id", *row.RayJobID), "error", err)...)
	}
}

// adopt takes over RUNNING rows of dead workers whose jobs this runner can see: a job still
// running is adopted (store.Adopt, django-ray's compare-and-set) and monitored like the
// worker's own; a job that ended is finished without adoption, as django-ray does.
func (w *Worker) adopt(dbctx context.Context) {
	p := w.sweepParams()
	p.Limit = w.cfg.Concurrency
	var orphans []store.Task
	err := w.withTimeout(dbctx, func(c context.Context) error {
		var err error
		orphans, err = w.store.OrphanedJobs(c, p, w.caps.AdoptPrefix)
		return err
	})
	if err != nil {
		w.dbError("orphans", err)
		return
	}
	orphans = slices.DeleteFunc(orphans, func(t store.Task) bool { return w.inflight[t.ID] != nil })
	if len(orphans) == 0 {
		return
	}
	statuses, err := w.runner.Poll(dbctx, orphans)
	if err != nil || len(statuses) != len(orphans) {
		w.log.Warn("runner could not report on orphaned jobs", "error", err)
		return
	}
	for i, row := range orphans {
		switch statuses[i].Phase {
		case Running:
			var applied bool
			err := w.withTimeout(dbctx, func(c context.Context) error {
				var err error
				applied, err = w.store.Adopt(c, row.Guard(), w.cfg.WorkerID, w.cfg.LeaseTTL)
				return err
			})
			if err != nil {
				w.dbError("adopt", err)
				continue
			}
			if !applied {
				continue
			}
			previous := ""
			if row.ClaimedByWorker != nil {
				previous = *row.ClaimedByWorker
			}
			self := w.cfg.WorkerID
			row.ClaimedByWorker = &self
			e := &execution{task: row, started: w.cfg.Clock()}
			if row.TimeoutSeconds != nil && row.StartedAt != nil {
				e.deadline = row.StartedAt.Add(time.Duration(*row.TimeoutSeconds) * time.Second)
			}
			w.inflight[row.ID] = e
			w.m.recovered.WithLabelValues("adopted").Inc()
			w.log.Info("task adopted from a dead worker", taskAttrs(row, "state", row.State, "previous_worker_id", previous, "ray_job_id", deref(row.RayJobID))...)
		case Done:
			w.apply(dbctx, row, statuses[i].Outcome, "")
		}
	}
	w.m.inFlight.Set(float64(len(w.inflight)))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// stopForHandBack stops every execution still running when the shutdown timeout ends. Each
// is released to the queue when it reports stopped (unless it succeeded first).
func (w *Worker) stopForHandBack(dbctx context.Context) {
	for _, e := range w.inflight {
		if e.abandoned || e.cancelling {
			continue
		}
		e.handBack = true
		w.log.Info("stopping task for shutdown", taskAttrs(e.task)...)
		if err := w.runner.Cancel(dbctx, e.task); err != nil {
			w.log.Warn("could not stop a task for shutdown", append(taskAttrs(e.task), "error", err)...)
		}
	}
}

// release hands a row back to the queue without consuming an attempt. It reports false when
// the database could not be reached.
func (w *Worker) release(dbctx context.Context, e *execution) bool {
	var applied bool
	err := w.withTimeout(dbctx, func(c context.Context) error {
		var err error
		applied, err = w.store.Release(c, e.task.Guard())
		return err
	})
	if err != nil {
		w.dbError("release", err)
		w.retryPoll = true
		return false
	}
	if applied {
		w.m.outcomes.WithLabelValues("released").Inc()
		w.log.Info("task released to the queue", taskAttrs(e.task, "state", store.StateQueued)...)
	} else {
		w.m.outcomes.WithLabelValues("discarded").Inc()
		w.log.Warn("task not released: the row moved on", taskAttrs(e.task)...)
	}
	return true
}

// releaseRemaining ends what did not stop within StopWait: rows are released (or a
// cancelled one finalized) anyway, so the queue does not wait for stuck-task recovery.
func (w *Worker) releaseRemaining(dbctx context.Context) {
	for _, e := range w.inflight {
		switch {
		case e.abandoned:
		case e.cancelling:
			w.apply(dbctx, e.task, lifecycle.Outcome{Kind: lifecycle.Cancelled}, "")
		default:
			w.log.Warn("task not stopped or not recorded by the end of the shutdown; handing it back", taskAttrs(e.task)...)
			w.release(dbctx, e)
		}
		w.forget(e)
	}
}

// leaveForAdoption leaves a Detached runner's unfinished executions RUNNING: their jobs keep
// running and another worker adopts them once this worker's lease is inactive.
func (w *Worker) leaveForAdoption() {
	for _, e := range w.inflight {
		if !e.abandoned {
			w.log.Info("task left running for adoption by another worker", taskAttrs(e.task, "ray_job_id", deref(e.task.RayJobID))...)
		}
	}
}
