package worker

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
)

// sweepParams scope the sweeps: only this worker's rows until it has watched the database for
// a lease TTL (after its start, or an outage that cut it off: watchedLongEnough), and never
// other workers' rows that carry a Ray job: moving such a row away (LOST, timed out) without
// stopping its job would let the job run on beside a retry, unseen by reconcile-jobs. A
// runner that can adopt takes them over instead (adopt: the same job goes on, or its end is
// recorded, or a timeout stops it first); a runner without Ray leaves them to one that can.
func (w *Worker) sweepParams(now time.Time) store.SweepParams {
	return store.SweepParams{Self: w.cfg.WorkerID, LeaseTTL: w.cfg.LeaseTTL, StuckAfter: w.cfg.StuckAfter, Limit: 1000,
		OnlyOwn: !w.watchedLongEnough(now), SkipJobPrefix: store.RaySubmissionPrefix}
}

// rayJob reports whether a row carries a Ray Jobs submission id (its job may still run).
func rayJob(t store.Task) bool {
	return t.RayJobID != nil && strings.HasPrefix(*t.RayJobID, store.RaySubmissionPrefix)
}

// canStop reports whether this worker's runner can see (stop, poll) a row's Ray job.
func (w *Worker) canStop(t store.Task) bool {
	return w.caps.AdoptPrefix != "" && t.RayJobID != nil && strings.HasPrefix(*t.RayJobID, w.caps.AdoptPrefix)
}

func (w *Worker) owns(t store.Task) bool {
	return t.ClaimedByWorker != nil && *t.ClaimedByWorker == w.cfg.WorkerID
}

// apply ends a row this worker does not run (a sweep's find) and logs it. It reports whether
// the transition applied.
func (w *Worker) apply(dbctx context.Context, t store.Task, o lifecycle.Outcome, recovered string) bool {
	tr, err := timedCall(w, dbctx, func(c context.Context) (lifecycle.Transition, error) { return w.applier.Apply(c, t, o) })
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

// checkTimeouts stops this worker's executions that ran past timeout_seconds. Their rows stay
// RUNNING (and heartbeated) until the runner confirms the work stopped; finish then records
// them FAILED as timed out (never retried). Recording first would let an operator's requeue
// start the task again while the first run is still alive.
func (w *Worker) checkTimeouts(dbctx context.Context, now time.Time) {
	for _, e := range w.inflight {
		if e.deadline.IsZero() || e.abandoned || e.cancelling || e.handBack || e.timingOut || e.pending != nil || now.Before(e.deadline) {
			continue
		}
		e.timingOut = true
		w.log.Warn("task timed out; stopping it", taskAttrs(e.task, "timeout_seconds", *e.task.TimeoutSeconds)...)
		if err := w.runner.Cancel(dbctx, e.task); err != nil {
			w.log.Warn("could not stop a task", append(taskAttrs(e.task), "error", err)...)
		}
	}
}

// checkCancellations stops this worker's executions whose rows went CANCELLING (they are
// finalized CANCELLED when the runner reports them stopped), and finalizes CANCELLING rows
// nobody runs: this worker's untracked ones and those of dead workers (django-ray 0.2.0
// leaves the latter CANCELLING forever). A dead worker's row with a Ray job is finalized only
// once the runner confirms the job ended (stopping it first); a worker whose runner cannot
// see Ray jobs leaves such rows to one that can.
func (w *Worker) checkCancellations(dbctx context.Context) {
	p := w.sweepParams(w.cfg.Clock())
	if w.caps.AdoptPrefix != "" {
		p.SkipJobPrefix = "" // this runner stops them (stopDeadJob)
	}
	rows, err := timedCall(w, dbctx, func(c context.Context) ([]store.Task, error) { return w.store.CancellingTasks(c, p) })
	if err != nil {
		w.dbError("cancellations", err)
		return
	}
	w.dbFine()
	seen := make(map[int64]bool, len(rows))
	for _, row := range rows {
		seen[row.ID] = true
	}
	for id := range w.stopAsked {
		if !seen[id] {
			delete(w.stopAsked, id) // finalized, by this worker or another
		}
	}
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
		if !w.owns(row) && rayJob(row) {
			if !w.canStop(row) || !w.stopDeadJob(dbctx, row) {
				continue // not confirmed ended yet: asked again at the next check
			}
			w.runner.Forget(row)
		}
		w.apply(dbctx, row, lifecycle.Outcome{Kind: lifecycle.Cancelled}, "cancelled")
	}
}

// stopDeadJob asks the runner about a dead worker's CANCELLING row's job and reports whether
// the job has ended (confirmed by the runner: stopped, or finished first). While it has not,
// it asks the runner to stop it.
func (w *Worker) stopDeadJob(dbctx context.Context, row store.Task) bool {
	st, err := w.runner.Poll(dbctx, []store.Task{row})
	if err != nil || len(st) != 1 {
		w.log.Warn("runner could not report on a dead worker's cancelled job", append(taskAttrs(row, "ray_job_id", deref(row.RayJobID)), "error", err)...)
		return false
	}
	if st[0].Phase == Done {
		return true
	}
	if !w.stopAsked[row.ID] {
		w.log.Info("stopping a dead worker's cancelled job; the task is finalized once the job has ended",
			taskAttrs(row, "ray_job_id", deref(row.RayJobID))...)
	}
	if err := w.runner.Cancel(dbctx, row); err != nil {
		w.log.Warn("could not stop a dead worker's cancelled job", append(taskAttrs(row, "ray_job_id", deref(row.RayJobID)), "error", err)...)
		return false
	}
	w.stopAsked[row.ID] = true
	return false
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
	touched, err := timedCall(w, dbctx, func(c context.Context) (int64, error) { return w.store.HeartbeatTasks(c, w.cfg.WorkerID, ids) })
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
	rows, err := timedCall(w, dbctx, func(c context.Context) ([]store.Task, error) { return w.store.TasksByIDs(c, ids) })
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
		if ok && (row.State == store.StateQueued || row.State == store.StateLost) && w.reclaim(dbctx, e) {
			continue // marked LOST during an outage of this worker's database access: ours again
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
	alive, err := timedCall(w, dbctx, func(c context.Context) (bool, error) { return w.store.HeartbeatLease(c, w.cfg.WorkerID) })
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
//
// Until this worker has reached the database without a break for a lease TTL (after its start
// or an outage that cut it off), it touches no other worker's lease or row: an outage that
// cut it off probably cut the others off too, and they need up to a heartbeat interval after
// it ends to heartbeat again. Expiring their leases and marking their rows LOST at once would
// throw away results they hold and run their tasks a second time.
func (w *Worker) sweep(dbctx context.Context) {
	now := w.cfg.Clock()
	p := w.sweepParams(now)
	var expired []string
	err := w.withTimeout(dbctx, func(c context.Context) error {
		if p.OnlyOwn {
			return nil
		}
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

	var timedOut, stuck []store.Task
	var unseen int64
	err = w.withTimeout(dbctx, func(c context.Context) error {
		var err error
		if unseen, err = w.store.StampUnseen(c, p); err != nil {
			return err
		}
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
	if unseen > 0 {
		w.log.Warn("RUNNING tasks without a usable heartbeat or start time seen for the first time; recovered after the stuck timeout unless someone heartbeats them",
			"tasks", unseen, "stuck_after", w.cfg.StuckAfter.String())
	}
	for _, row := range timedOut {
		if w.inflight[row.ID] != nil {
			continue // checkTimeouts stops this worker's own, and ends them once stopped
		}
		w.apply(dbctx, row, lifecycle.Outcome{Kind: lifecycle.TimedOut}, "timed_out")
	}
	for _, row := range stuck {
		if w.inflight[row.ID] != nil {
			// This worker runs it: the runner cannot tell its state now (the row is not
			// heartbeated while Unknown). Marking it LOST would retry a task whose work may
			// still run; the worker waits for the runner instead (see Runner).
			continue
		}
		w.apply(dbctx, row, lifecycle.Outcome{Kind: lifecycle.Lost}, "lost")
	}
	if w.caps.AdoptPrefix != "" && !p.OnlyOwn {
		w.adopt(dbctx, p)
	}
}

// adopt takes over RUNNING rows of dead workers whose jobs this runner can see: a job still
// running is adopted (store.Adopt, django-ray's compare-and-set) and monitored like the
// worker's own — past its timeout, checkTimeouts then stops it and records the timeout once
// it has stopped; a job that ended is finished without adoption, as django-ray does. This is
// also how such rows are recovered when stale: never marked LOST while their job may run.
func (w *Worker) adopt(dbctx context.Context, p store.SweepParams) {
	p.Limit = w.cfg.Concurrency
	orphans, err := timedCall(w, dbctx, func(c context.Context) ([]store.Task, error) { return w.store.OrphanedJobs(c, p, w.caps.AdoptPrefix) })
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
			applied, err := timedCall(w, dbctx, func(c context.Context) (bool, error) {
				return w.store.Adopt(c, row.Guard(), w.cfg.WorkerID, w.cfg.LeaseTTL)
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
	applied, err := timedCall(w, dbctx, func(c context.Context) (bool, error) { return w.store.Release(c, e.task.Guard()) })
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

// releaseRemaining gives up on what the runner did not confirm stopped within StopWait (a
// process in uninterruptible sleep) or could not be recorded: the rows are left as they are,
// RUNNING or CANCELLING under this worker's lease, which is deactivated next, and other
// workers recover them (stuck-task recovery, cancel finalization). Handing them back to the
// queue now could start a task again beside a run that is still alive.
func (w *Worker) releaseRemaining(dbctx context.Context) {
	for _, e := range w.inflight {
		if !e.abandoned {
			w.log.Warn("task not confirmed stopped (or not recorded) by the end of the shutdown; left for recovery by other workers",
				taskAttrs(e.task, "state", e.task.State)...)
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
