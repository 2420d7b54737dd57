package rayrunner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs"
)

// connState is what the runner knows of the Jobs API.
type connState int

const (
	connUnchecked connState = iota // not asked yet
	connUp                         // answering, credentials accepted
	connDown                       // unreachable: an outage
	connRefused                    // answering, but refusing this worker (401/403, TLS, not Ray)
)

type conn struct {
	state     connState
	since     time.Time // the current state's start
	err       error     // why down or refused
	probing   bool
	probeNow  bool // a call found the API unavailable, or a decision needs a fresh session
	nextProbe time.Time
	backoff   time.Duration

	session     string    // Ray's session_name: it changes when the head restarts
	sessionSeen time.Time // when this process first saw that session
	checkedAt   time.Time // start of the last successful version read
	rayVersion  string
}

func (c *conn) readyErr(addr string) error {
	switch c.state {
	case connUp:
		return nil
	case connUnchecked:
		return fmt.Errorf("Ray Jobs API at %s not reached yet", addr)
	case connRefused:
		return fmt.Errorf("Ray Jobs API at %s refuses this worker since %s: %v", addr, c.since.Format(time.RFC3339), c.err)
	}
	return fmt.Errorf("Ray Jobs API at %s unreachable since %s: %v", addr, c.since.Format(time.RFC3339), c.err)
}

// round is one pass of the status monitor over the watched jobs.
type round struct {
	running  bool
	mode     string // "list" or "get"
	started  time.Time
	next     time.Time
	interval time.Duration
}

// monitor is the runner's one scheduling goroutine: it decides, under the lock, which calls
// to make, and starts each in a goroutine of its own (bounded by semaphores); every call's
// result is applied under the lock and wakes the monitor again.
func (r *Runner) monitor() {
	defer close(r.monDone)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.wake:
		case <-timer.C:
		}
		d := r.step(time.Now())
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(d, time.Millisecond))
	}
}

// launch runs f in a goroutine the runner waits for at Close.
func (r *Runner) launch(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
		r.wake.Notify()
	}()
}

func tryAcquire(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// step makes every decision that is due and returns how long until the next may be: a
// health probe, then for each job with no call in flight, the call its phase needs
// (phaseSteps), then a poll round over the jobs that only need watching.
func (r *Runner) step(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &pass{now: now, next: now.Add(r.cfg.MaxPollInterval)}

	c := &r.conn
	if !c.probing {
		due := c.nextProbe
		if c.probeNow {
			due = now
		}
		if !now.Before(due) {
			r.startProbe(now)
		} else {
			p.at(due)
		}
	}
	if c.state != connUp {
		return max(p.next.Sub(now), 0)
	}

	for _, j := range r.jobs {
		if r.retire(j, now) || j.busy || j.foreign {
			continue // done or dropped, a call in flight, or another cluster's job
		}
		r.checkTimers(j, now)
		if !j.done {
			phaseSteps[j.phase()](r, j, p)
		}
	}

	if c.probeNow && !c.probing {
		r.startProbe(now)
	}
	if !r.closing && !r.round.running {
		if len(p.round) == 0 {
			r.round.next = now.Add(r.cfg.MinPollInterval) // a new job waits at most this long
		} else if !now.Before(r.round.next) {
			r.startRound(p.round, now)
		} else {
			p.at(r.round.next)
		}
	}
	return max(p.next.Sub(now), 0)
}

// pass is one step's decisions so far: when the monitor must look again, and the jobs the
// next poll round reads.
type pass struct {
	now   time.Time
	next  time.Time
	round []*job
}

// at makes the monitor look again by t.
func (p *pass) at(t time.Time) {
	if t.Before(p.next) {
		p.next = t
	}
}

// when calls start once t has come and sem has a free slot; before t it notes t (a full
// semaphore wakes the monitor when a call ends).
func (p *pass) when(t time.Time, sem chan struct{}, start func()) {
	if p.now.Before(t) {
		p.at(t)
	} else if tryAcquire(sem) {
		start()
	}
}

// retire drops a job the runner no longer needs and reports whether step has nothing to do
// for it: a done job waits for the loop to collect it (Poll, or EvictAfter without one); one
// not done is dropped when forgotten, or when nobody asks about it any more (another worker
// adopted it), unless a call is in flight or it is to be stopped. Called with mu held.
func (r *Runner) retire(j *job, now time.Time) bool {
	if j.done {
		if j.forgotten || now.Sub(j.polledAt) > r.cfg.EvictAfter {
			r.drop(j)
		}
		return true
	}
	if !j.busy && j.stop == stopNone && (j.forgotten || (!r.closing && now.Sub(j.polledAt) > r.cfg.EvictAfter)) {
		r.drop(j)
		return true
	}
	return false
}

// phaseSteps is what step does for a job in each phase: the call the phase needs, once it
// is due. Each is called with mu held, for a job that is not done, busy or foreign.
var phaseSteps = [...]func(r *Runner, j *job, p *pass){
	phaseLogs:    (*Runner).stepLogs,
	phaseOrphan:  (*Runner).stepOrphan,
	phaseLookup:  (*Runner).stepLookup,
	phaseSubmit:  (*Runner).stepSubmit,
	phaseStop:    (*Runner).stepStop,
	phaseConfirm: (*Runner).stepConfirm,
	phaseWatch:   (*Runner).stepWatch,
}

// stepLogs reads a finished job's logs, or judges a failed read first (logRetry). Nothing
// starts while closing.
func (r *Runner) stepLogs(j *job, p *pass) {
	if r.closing {
		return
	}
	if j.logErr != nil {
		if retryAt := r.logRetry(j, p.now); !retryAt.IsZero() {
			p.at(retryAt)
		}
		return
	}
	p.when(j.logsAt, r.getSem, func() { r.startLogs(j) })
}

// stepOrphan decides a dead worker's job Ray does not know (submit it, or TaskLost) once a
// session check has started after it was seen missing; until then it asks for one.
func (r *Runner) stepOrphan(j *job, p *pass) {
	if !r.conn.checkedAt.After(j.orphan404) {
		r.conn.probeNow = true // the probe's completion wakes the monitor
		return
	}
	r.decideOrphan(j, p.now)
	if !j.done {
		p.at(p.now) // submit it
	}
}

// stepLookup asks Ray whether it has the job.
func (r *Runner) stepLookup(j *job, p *pass) {
	p.when(j.checkAt, r.getSem, func() { r.startGet(j) })
}

// stepSubmit submits the job.
func (r *Runner) stepSubmit(j *job, p *pass) {
	p.when(j.submitAt, r.subSem, func() { r.startSubmit(j) })
}

// stepStop asks Ray to stop the job.
func (r *Runner) stepStop(j *job, p *pass) {
	p.when(j.stopAt, r.getSem, func() { r.startStop(j) })
}

// stepConfirm GETs a job a list did not show; not while closing.
func (r *Runner) stepConfirm(j *job, _ *pass) {
	if !r.closing && tryAcquire(r.getSem) {
		r.startGet(j)
	}
}

// stepWatch puts the job in the next poll round.
func (r *Runner) stepWatch(j *job, p *pass) {
	p.round = append(p.round, j)
}

// checkTimers applies the PENDING limit and the stop grace. Called with mu held.
func (r *Runner) checkTimers(j *job, now time.Time) {
	if !j.acked || j.terminal != nil {
		return
	}
	fresh := now.Sub(j.seenAt) <= r.staleAfter() // never act on a status from before an outage
	if j.stop == stopNone && fresh && j.status == rayjobs.StatusPending && !j.pendingSince.IsZero() && now.Sub(j.pendingSince) > r.cfg.PendingTimeout {
		j.stop, j.stopAsked = stopPending, now
		r.m.pendingTimeouts.Inc()
		r.log.Warn("Ray job stayed PENDING too long; stopping it", "ray_job_id", j.id, "task_id", j.task.ID,
			"pending_for", now.Sub(j.pendingSince).Round(time.Second).String(), "limit", r.cfg.PendingTimeout.String())
		return
	}
	if j.stop != stopNone && !j.stopSent.IsZero() && now.Sub(j.stopSent) > r.cfg.StopGrace {
		if j.status == rayjobs.StatusPending && fresh && j.seenAt.After(j.stopSent) {
			// Ray may not stop a job that never started (ray#62766): give up on it.
			r.log.Warn("Ray did not stop a PENDING job; giving up on it", "ray_job_id", j.id, "task_id", j.task.ID,
				"reason", stopName(j.stop), "stop_grace", r.cfg.StopGrace.String())
			r.finish(j, r.stopOutcome(j, fmt.Sprintf("a stop request had no effect within %s", r.cfg.StopGrace)))
			return
		}
		j.stopSent = time.Time{} // not stopped yet: ask again
	}
}

// drop forgets a job. Called with mu held.
func (r *Runner) drop(j *job) {
	delete(r.jobs, j.id)
	r.m.watched.Set(float64(len(r.jobs)))
}

// finish records a job's outcome and tells the loop. Called with mu held.
func (r *Runner) finish(j *job, o lifecycle.Outcome) {
	if j.done {
		return
	}
	j.done, j.outcome, j.req = true, o, nil
	j.orphan404 = time.Time{}
	if j.forgotten {
		r.drop(j)
	}
	r.events.Notify()
}

// stopOutcome is the outcome of a job stopped on the runner's request.
func (r *Runner) stopOutcome(j *job, what string) lifecycle.Outcome {
	if j.stop == stopPending {
		return pendingOutcome(j, r.cfg.PendingTimeout, what)
	}
	return lifecycle.Outcome{Kind: lifecycle.Cancelled}
}

// ---- calls ----

func (r *Runner) record(endpoint string, started time.Time, err error) {
	r.m.requests.WithLabelValues(endpoint, resultLabel(err)).Inc()
	if endpoint == "submit" {
		r.m.submitLatency.Observe(time.Since(started).Seconds())
	}
}

func resultLabel(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, rayjobs.ErrNotFound):
		return "not_found"
	case errors.Is(err, rayjobs.ErrAlreadySubmitted):
		return "already_submitted"
	case errors.Is(err, rayjobs.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, rayjobs.ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, rayjobs.ErrRejected):
		return "rejected"
	}
	return "error"
}

func (r *Runner) getJob(ctx context.Context, id string) (*rayjobs.JobDetails, error) {
	t := time.Now()
	d, err := r.c.Get(ctx, id)
	r.record("get", t, err)
	if err == nil {
		r.mu.Lock()
		r.getCost = ewma(r.getCost, time.Since(t), 0.2)
		r.mu.Unlock()
	}
	return d, err
}

func (r *Runner) stopJob(ctx context.Context, id string) (bool, error) {
	t := time.Now()
	ok, err := r.c.Stop(ctx, id)
	r.record("stop", t, err)
	if err != nil && !errors.Is(err, rayjobs.ErrNotFound) {
		r.mu.Lock()
		r.noteErr(err)
		r.mu.Unlock()
	}
	return ok, err
}

func (r *Runner) logsOf(ctx context.Context, id string) (rayjobs.Logs, error) {
	t := time.Now()
	l, err := r.c.Logs(ctx, id)
	r.record("logs", t, err)
	return l, err
}

func ewma(old, sample time.Duration, alpha float64) time.Duration {
	if old <= 0 {
		return sample
	}
	return time.Duration(alpha*float64(sample) + (1-alpha)*float64(old))
}

// closingErr: the call ended because the runner is closing; nothing is learned from it.
func (r *Runner) closingErr(err error) bool {
	return err != nil && r.ctx.Err() != nil && errors.Is(err, context.Canceled)
}

// noteErr reacts to a failed call: unavailable, or an answer that is not Ray's (a proxy's
// login page) -> check health now; refused -> config error. Called with mu held.
func (r *Runner) noteErr(err error) {
	switch {
	case errors.Is(err, rayjobs.ErrUnauthorized), errors.Is(err, rayjobs.ErrCertificate):
		r.refuse(err, time.Now())
	case errors.Is(err, rayjobs.ErrUnavailable), errors.Is(err, rayjobs.ErrBadResponse):
		if r.conn.state == connUp {
			r.conn.probeNow = true
		}
	}
}

func (r *Runner) startSubmit(j *job) {
	j.busy = true
	req := *j.req
	r.launch(func() {
		defer func() { <-r.subSem }()
		t := time.Now()
		_, err := r.c.Submit(r.ctx, req)
		r.record("submit", t, err)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.applySubmit(j, t, err)
	})
}

func (r *Runner) applySubmit(j *job, started time.Time, err error) {
	j.busy = false
	now := time.Now()
	switch {
	case err == nil || errors.Is(err, rayjobs.ErrAlreadySubmitted):
		if err == nil {
			r.m.submissions.WithLabelValues("accepted").Inc()
		} else {
			r.m.submissions.WithLabelValues("duplicate").Inc()
			r.log.Info("Ray already had this submission id; no second run", "ray_job_id", j.id, "task_id", j.task.ID)
		}
		j.acked, j.req, j.check, j.fails, j.note = true, nil, false, 0, ""
		j.status, j.rawStatus, j.seenAt, j.pendingSince = rayjobs.StatusPending, string(rayjobs.StatusPending), started, started
	case r.closingErr(err):
		j.check = true // it may have gone through
	case errors.Is(err, rayjobs.ErrUnauthorized), errors.Is(err, rayjobs.ErrCertificate):
		r.m.submissions.WithLabelValues("refused").Inc()
		j.note = err.Error()
		r.noteErr(err)
	case errors.Is(err, rayjobs.ErrUnavailable), errors.Is(err, rayjobs.ErrBadResponse):
		// The job may or may not exist: look before posting again.
		r.m.submissions.WithLabelValues("unknown").Inc()
		j.check, j.note = true, err.Error()
		j.fails++
		j.checkAt = now.Add(backoff(j.fails))
		r.noteErr(err)
		r.log.Warn("Ray job submission failed; will look the id up before submitting again", "ray_job_id", j.id, "task_id", j.task.ID,
			"retry_in", j.checkAt.Sub(now).Round(time.Millisecond).String(), "error", err)
	default:
		r.m.submissions.WithLabelValues("rejected").Inc()
		r.finish(j, lifecycle.RunnerFailure("Failed to submit to Ray: "+err.Error(), nil))
	}
}

func (r *Runner) startGet(j *job) {
	j.busy = true
	r.launch(func() {
		defer func() { <-r.getSem }()
		// Paced like a round's GETs: after a head restart every job may need a look at once.
		r.pacedGet(j)
	})
}

// pacedGet reads job j once the GET rate limit allows and applies Ray's answer. It reports
// false when the runner's context ended first (j is then no longer busy). It takes r.mu.
func (r *Runner) pacedGet(j *job) bool {
	if r.limiter.wait(r.ctx) != nil {
		r.mu.Lock()
		j.busy = false
		r.mu.Unlock()
		return false
	}
	t := time.Now()
	d, err := r.getJob(r.ctx, j.id)
	r.mu.Lock()
	r.applyGet(j, d, t, err)
	r.mu.Unlock()
	return true
}

// applyGet applies one GET's answer. Called with mu held.
func (r *Runner) applyGet(j *job, d *rayjobs.JobDetails, started time.Time, err error) {
	j.busy = false
	switch {
	case err == nil:
		r.observe(j, d, started)
	case errors.Is(err, rayjobs.ErrNotFound):
		r.notFound(j, started)
	case r.closingErr(err):
	default:
		j.look = false
		j.note = err.Error()
		j.fails++
		j.checkAt = time.Now().Add(backoff(j.fails))
		r.noteErr(err)
	}
}

// observe applies a job's status as Ray reported it at (the request's start). Called with
// mu held.
func (r *Runner) observe(j *job, d *rayjobs.JobDetails, at time.Time) {
	if j.done {
		return
	}
	if !j.acked && !j.own && j.look {
		if d.Status.Terminal() {
			r.m.orphans.WithLabelValues("finished").Inc()
		} else {
			r.m.orphans.WithLabelValues("running").Inc()
		}
	}
	j.look, j.check, j.confirm, j.fails, j.note = false, false, false, 0, ""
	j.acked, j.req = true, nil
	if at.After(j.seenAt) {
		j.seenAt = at
	}
	j.status, j.rawStatus = d.Status, d.RawStatus
	if d.Status.Terminal() {
		if j.terminal == nil {
			j.terminal = d
			if d.Status == rayjobs.StatusStopped {
				r.finish(j, r.stopOutcome(j, "stopped it"))
				return
			}
			j.logsAt = time.Now()
		}
		return
	}
	if d.Status == rayjobs.StatusPending && j.pendingSince.IsZero() {
		j.pendingSince = at
	}
	if d.Status == rayjobs.StatusUnknown {
		j.note = fmt.Sprintf("Ray reports status %q", d.RawStatus)
	}
}

// notFound applies Ray's 404 for a job (see the package comment's "404"). Called with mu
// held.
func (r *Runner) notFound(j *job, at time.Time) {
	if j.done {
		return
	}
	wasLook := j.look
	j.look, j.check, j.confirm = false, false, false
	switch {
	case j.stop != stopNone:
		// Gone, or never there: nothing is left to stop, and nothing will be submitted.
		r.finish(j, r.stopOutcome(j, "the job is gone from Ray"))
	case j.acked:
		r.m.lost.Inc()
		r.log.Warn("Ray no longer knows a job it had; the attempt is retried as TaskLost", "ray_job_id", j.id, "task_id", j.task.ID,
			"last_status", string(j.status), "last_seen", j.seenAt.Format(time.RFC3339))
		r.finish(j, lostOutcome(j.id, fmt.Sprintf("although it was %s %s ago", j.status, time.Since(j.seenAt).Round(time.Second))))
	case j.own:
		// Never created: POST it again under the same id (Ray deduplicates).
		j.submitAt = time.Now().Add(backoffOrNow(j.fails))
	default:
		if wasLook {
			r.m.orphans.WithLabelValues("not_found").Inc()
		}
		j.orphan404 = at
		r.conn.probeNow = true
	}
}

func backoffOrNow(fails int) time.Duration {
	if fails == 0 {
		return 0
	}
	return backoff(fails)
}

// decideOrphan settles a dead worker's job that Ray does not know, once a session check
// newer than the 404 is in: submit it under its id when Ray provably never had it, else
// TaskLost. Called with mu held.
func (r *Runner) decideOrphan(j *job, now time.Time) {
	j.orphan404 = time.Time{}
	if a := j.task.RayAddress; a != nil && *a != "" && *a != r.c.Address() {
		if _, ok := claimTime(j.id); ok {
			// Claimed by a worker of another cluster: not ours to judge. Left Unknown, it
			// ages into stuck-task recovery.
			j.foreign = true
			j.note = fmt.Sprintf("the row names the Ray Jobs API at %s; this worker uses %s", *a, r.c.Address())
			r.m.orphans.WithLabelValues("foreign").Inc()
			return
		}
	}
	claimed, ok := claimTime(j.id)
	if ok && claimed.After(r.conn.sessionSeen.Add(r.cfg.ClockSkew)) {
		req, err := r.request(j.task, j.id)
		if err != nil {
			var fe *lifecycle.FailureError
			if errors.As(err, &fe) {
				r.finish(j, lifecycle.Fail(fe.Failure))
			} else {
				r.finish(j, lifecycle.RunnerFailure(err.Error(), nil))
			}
			return
		}
		j.own, j.req, j.submitAt = true, &req, now
		r.m.orphans.WithLabelValues("resubmitted").Inc()
		r.log.Info("a dead worker's job never reached Ray; submitting it under its recorded id", "ray_job_id", j.id, "task_id", j.task.ID,
			"claimed_at", claimed.Format(time.RFC3339Nano), "ray_session", r.conn.session)
		return
	}
	r.m.orphans.WithLabelValues("lost").Inc()
	why := "and this worker cannot tell whether it ever had it (the id carries no claim time)"
	if ok {
		why = fmt.Sprintf("and this worker cannot tell whether it ever had it (claimed %s, before this worker saw Ray session %s begin)",
			claimed.UTC().Format(time.RFC3339), r.conn.session)
	}
	r.finish(j, lostOutcome(j.id, why))
}

func (r *Runner) startStop(j *job) {
	j.busy = true
	r.launch(func() {
		defer func() { <-r.getSem }()
		t := time.Now()
		stopped, err := r.stopJob(r.ctx, j.id)
		r.mu.Lock()
		defer r.mu.Unlock()
		j.busy = false
		switch {
		case err == nil:
			j.stopSent, j.fails = t, 0
			if !stopped {
				j.confirm = true // nothing to stop: it ended; read its status
			}
			r.log.Info("asked Ray to stop a job", "ray_job_id", j.id, "task_id", j.task.ID, "stopped", stopped, "reason", stopName(j.stop))
		case errors.Is(err, rayjobs.ErrNotFound):
			r.notFound(j, t)
		case r.closingErr(err):
		default:
			j.note = err.Error()
			j.fails++
			j.stopAt = time.Now().Add(backoff(j.fails))
		}
	})
}

func stopName(s stopReason) string {
	if s == stopPending {
		return "pending_timeout"
	}
	return "cancel"
}

func (r *Runner) startLogs(j *job) {
	j.busy = true
	// A FAILED job's message already holds its log's tail, so its full log is extra; and when
	// its node died, the dashboard's request to that node's agent hangs until the client gives
	// up (measured: a minute added to the recovery from a lost node). Bound it.
	limit := time.Duration(0)
	if j.terminal != nil && j.terminal.Status == rayjobs.StatusFailed {
		limit = r.cfg.FailedLogsTimeout
	}
	r.launch(func() {
		defer func() { <-r.getSem }()
		t := time.Now()
		ctx := r.ctx
		if limit > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(r.ctx, limit)
			defer cancel()
		}
		logs, err := r.logsOf(ctx, j.id)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.applyLogs(j, logs, err, t)
	})
}

// applyLogs ends a job Ray finished, from its log tail. A log that cannot be read is never
// a reason to record a job that SUCCEEDED as failed while the API itself is in trouble:
// whatever the error (unreachable, 5xx, a hang, an answer that is not Ray's), the read is
// tried again, and a try counts only once a health check that started after it found the
// API answering (logRetry). Only a log that stays unreadable while the API answers — after
// logAttempts counted tries and LogPatience — fails the attempt (its node is gone,
// ray#65402). Called with mu held.
func (r *Runner) applyLogs(j *job, logs rayjobs.Logs, err error, started time.Time) {
	j.busy = false
	if r.closingErr(err) || j.done {
		return
	}
	d := j.terminal
	// lifecycle.RayJobEnded turns the job into an outcome, exactly as rayctl reconcile-jobs does.
	rj := lifecycle.RayJob{ID: j.id, Status: string(d.Status), Message: d.Message, DriverExitCode: d.DriverExitCode}
	if err == nil {
		rj.Log, rj.LogTruncated = []byte(logs.Text), logs.Truncated || logs.Partial
	}
	if d.Status == rayjobs.StatusFailed { // Ray's message carries the log's last lines; the rest is extra
		o, _ := lifecycle.RayJobEnded(rj)
		r.finish(j, o)
		return
	}
	switch {
	case err == nil:
		o, _ := lifecycle.RayJobEnded(rj)
		r.finish(j, o)
	case errors.Is(err, rayjobs.ErrNotFound):
		r.m.lost.Inc()
		r.finish(j, lostOutcome(j.id, "when its logs were read after it SUCCEEDED"))
	default:
		// 500/503 from /logs can mean the driver's node is gone; any error can also mean the
		// API is out. A health check tells the two apart (logRetry).
		j.logErr, j.logFailedAt = err, started
		r.noteErr(err)
		r.conn.probeNow = true
	}
}

// logRetry decides about a job whose last log read failed, once the connection state is
// known: a health check that started after the failed read found the API answering, so the
// failure counts as a try (and after logAttempts of them and LogPatience, the attempt
// fails); until then it waits (the health check runs now). A read that failed before an
// outage was noticed is the outage's: it is repeated without counting. It returns when the next read may start (zero: decided, or waiting for the
// health check). Called with mu held.
func (r *Runner) logRetry(j *job, now time.Time) time.Time {
	if !r.conn.checkedAt.After(j.logFailedAt) {
		if !r.conn.probing {
			r.conn.probeNow = true
		}
		return time.Time{}
	}
	if r.conn.since.After(j.logFailedAt) {
		// The API was out since the read failed: the failure was the outage's. Read again,
		// without counting a try.
		j.logErr, j.logFailedAt, j.logsAt = nil, time.Time{}, now
		return now
	}
	j.logTries++
	if j.logFirstFail.IsZero() {
		j.logFirstFail = j.logFailedAt
	}
	err := j.logErr
	j.logErr, j.logFailedAt = nil, time.Time{}
	if j.logTries >= logAttempts && now.Sub(j.logFirstFail) >= r.cfg.LogPatience {
		r.finish(j, lifecycle.RunnerFailure(fmt.Sprintf("Ray job %s SUCCEEDED, but its logs (which hold the result) could not be read in %d tries over %s while the Jobs API answered otherwise: %v",
			j.id, j.logTries, now.Sub(j.logFirstFail).Round(time.Second), err), nil))
		return time.Time{}
	}
	j.logsAt = now.Add(min(backoff(j.logTries), r.cfg.MaxPollInterval))
	return j.logsAt
}

// startRound observes the watched jobs: one list, or a GET each, whichever costs the
// dashboard less by the latest measurements. Called with mu held.
func (r *Runner) startRound(js []*job, now time.Time) {
	n := len(js)
	mode := "list"
	if r.listCost == 0 {
		if n <= 8 {
			mode = "get"
		}
	} else if time.Duration(n)*r.getCost < r.listCost {
		mode = "get"
	}
	r.round.running, r.round.mode, r.round.started = true, mode, now
	r.m.rounds.WithLabelValues(mode).Inc()
	for _, j := range js {
		j.busy = true
	}
	if mode == "list" {
		r.launch(func() { r.listRound(js, now) })
		return
	}
	r.launch(func() { r.getRound(js, now) })
}

func (r *Runner) getRound(js []*job, started time.Time) {
	var wg sync.WaitGroup
	work := make(chan *job)
	for range min(r.cfg.GetConcurrency, len(js)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if r.pacedGet(j) {
					r.wake.Notify()
				}
			}
		}()
	}
	for _, j := range js {
		work <- j
	}
	close(work)
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endRound(started, time.Duration(len(js))*r.getCost)
}

func (r *Runner) listRound(js []*job, started time.Time) {
	t := time.Now()
	list, err := r.c.List(r.ctx)
	r.record("list", t, err)
	took := time.Since(t)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, j := range js {
		j.busy = false
	}
	switch {
	case err == nil:
		r.listCost = ewma(r.listCost, took, 0.5)
		byID := make(map[string]*rayjobs.JobDetails, len(js))
		for i := range list {
			if id := list[i].SubmissionID; id != "" {
				if _, watched := r.jobs[id]; watched {
					byID[id] = &list[i]
				}
			}
		}
		for _, j := range js {
			if d, ok := byID[j.id]; ok {
				r.observe(j, d, t)
			} else if !j.done && j.acked && j.seenAt.Before(t) {
				j.confirm = true // missing: a GET decides (404: Ray lost it)
			}
		}
		r.endRound(started, took)
	case r.closingErr(err):
		r.round.running = false
	default:
		// A list that fails or times out (Ray keeps too many jobs) costs at least what it
		// took: the next round may well use GETs.
		r.listCost = ewma(r.listCost, max(took, time.Second), 0.5)
		for _, j := range js {
			j.note = err.Error()
		}
		r.noteErr(err)
		r.endRound(started, took)
	}
}

// endRound schedules the next round at 10x this one's cost (at most ~10% of the dashboard's
// time goes to watching), within MinPollInterval..MaxPollInterval. Called with mu held.
func (r *Runner) endRound(started time.Time, cost time.Duration) {
	iv := min(max(10*cost, r.cfg.MinPollInterval), r.cfg.MaxPollInterval)
	r.round.running = false
	r.round.interval = iv
	r.round.next = started.Add(iv)
	r.m.interval.Set(iv.Seconds())
}

// ---- connectivity ----

func (r *Runner) startProbe(now time.Time) {
	c := &r.conn
	c.probing, c.probeNow = true, false
	r.launch(func() {
		t := time.Now()
		err := r.c.Health(r.ctx)
		r.record("health", t, err)
		var v rayjobs.VersionInfo
		if err == nil {
			tv := time.Now()
			v, err = r.c.Version(r.ctx)
			r.record("version", tv, err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.probeDone(t, v, err)
	})
}

// probeDone moves the connection state on a health check's result: one log line and one
// metric per change, never per request. Called with mu held.
func (r *Runner) probeDone(started time.Time, v rayjobs.VersionInfo, err error) {
	c := &r.conn
	c.probing = false
	now := time.Now()
	if r.closingErr(err) {
		return
	}
	addr := r.c.Address()
	switch {
	case err == nil:
		if v.SessionName != c.session {
			if c.session != "" {
				r.log.Warn("the Ray head restarted (new session); jobs it had are gone unless GCS fault tolerance kept them",
					"address", addr, "old_session", c.session, "new_session", v.SessionName)
			}
			c.session, c.sessionSeen = v.SessionName, now
		}
		c.checkedAt, c.rayVersion = started, v.RayVersion
		if c.state != connUp {
			switch c.state {
			case connUnchecked:
				r.log.Info("connected to the Ray Jobs API", "address", addr, "ray_version", v.RayVersion, "jobs_api_version", v.Version, "session", v.SessionName)
			case connRefused:
				r.log.Info("Ray Jobs API accepts this worker again; resuming", "address", addr, "refused_for", now.Sub(c.since).Round(time.Millisecond).String())
			default:
				r.log.Info("Ray Jobs API reachable again; resuming", "address", addr, "down_for", now.Sub(c.since).Round(time.Millisecond).String(),
					"ray_version", v.RayVersion)
			}
			c.state, c.since, c.err = connUp, now, nil
			r.round.next = now // look at everything at once
		}
		c.backoff = 0
		c.nextProbe = now.Add(r.cfg.SessionCheck)
	case errors.Is(err, rayjobs.ErrUnavailable), errors.Is(err, rayjobs.ErrBadResponse):
		// Unreachable, or answering with something that is not Ray (a proxy's login page on
		// every endpoint): an outage either way, reported the same way, and over by itself.
		if c.state != connDown {
			r.m.outages.Inc()
			r.log.Warn("Ray Jobs API unreachable; holding claims, submissions and polls until it answers again (tasks' heartbeats pause)",
				"address", addr, "error", err)
			c.state, c.since = connDown, now
		}
		c.err = err
		c.backoff = min(max(2*c.backoff, time.Second), outageProbeMax)
		c.nextProbe = now.Add(jitter(c.backoff))
	default:
		r.refuse(err, now)
	}
	if c.state == connUp {
		r.m.up.Set(1)
	} else {
		r.m.up.Set(0)
	}
}

// refuse enters the configuration-error state (401/403, untrusted certificate, not a Ray
// Jobs API): logged once, counted once, checked again every RefusedRetry. Called with mu held.
func (r *Runner) refuse(err error, now time.Time) {
	c := &r.conn
	if c.state != connRefused {
		r.m.authFailures.Inc()
		hint := "check the address"
		switch {
		case errors.Is(err, rayjobs.ErrUnauthorized):
			hint = "set the Ray auth token (RAY_AUTH_TOKEN or a token file) to the cluster's"
		case errors.Is(err, rayjobs.ErrCertificate):
			hint = "pass the CA that signed the server's certificate"
		}
		r.log.Error("Ray Jobs API refuses this worker; not claiming tasks until the configuration is fixed", "address", r.c.Address(),
			"error", err, "fix", hint, "recheck_every", r.cfg.RefusedRetry.String())
		c.state, c.since = connRefused, now
		r.m.up.Set(0)
	}
	c.err = err
	c.nextProbe = now.Add(r.cfg.RefusedRetry)
	c.probeNow = false
}
