package store

// Every state transition of a task row is in this file: each INSERT or UPDATE of
// django_ray_raytaskexecution the tools make (TestTransitionsInOneFile checks), each an arrow
// of docs/task_states.md, whose tables name the function that makes it
// (TestTaskStatesNamesEveryTransition checks). Each is one statement conditional on what its
// caller saw (a Guard, or the states the rows must still be in), returning what applied.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Result is a successful task's outcome: inline JSON text, or a reference to it. Succeed and
// SucceedMany store both through StorableText.
type Result struct {
	Data      *string // result_data: the JSON text, when inline
	Reference *string // result_reference: oversize://, resultfs://, s3:// or gs://
}

// ErrorInfo is a failed attempt's error. Fail and Retry store both fields through
// StorableText: a NUL or a lone surrogate in what the task printed cannot make them refused.
type ErrorInfo struct {
	Message   string
	Traceback *string
}

// Error messages django-ray 0.2.0 writes, kept verbatim.
const (
	LostMessage = "Task marked as LOST due to missing heartbeats"
)

func (s *Store) execGuarded(ctx context.Context, sql string, g Guard, extra ...any) (bool, error) {
	tag, err := s.db.Exec(ctx, sql, append(g.args(), extra...)...)
	if err != nil {
		return false, translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

const insertSQL = `INSERT INTO django_ray_raytaskexecution
	(task_id, callable_path, queue_name, state, attempt_number, ray_address, created_at, run_after,
	 timeout_seconds, args_json, kwargs_json)
	SELECT u.task_id, u.callable_path, u.queue_name, 'QUEUED', 1, u.ray_address, now(), u.run_after,
	       u.timeout_seconds, u.args_json, u.kwargs_json
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int[], $7::text[], $8::text[])
	     WITH ORDINALITY AS u(task_id, callable_path, queue_name, ray_address, run_after, timeout_seconds, args_json, kwargs_json, ord)
	ORDER BY u.ord
	RETURNING id`

// Enqueue inserts one QUEUED task, supplying every NOT NULL column as Django does, and
// returns the new row.
func (s *Store) Enqueue(ctx context.Context, n NewTask) (Task, error) {
	ids, err := s.EnqueueMany(ctx, []NewTask{n})
	if err != nil {
		return Task{}, err
	}
	return s.GetTask(ctx, ids[0])
}

// EnqueueMany inserts tasks in one statement and returns their ids in input order.
func (s *Store) EnqueueMany(ctx context.Context, tasks []NewTask) ([]int64, error) {
	if len(tasks) == 0 {
		return nil, nil
	}
	n := len(tasks)
	taskIDs, paths, queues, addrs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	runAfter, timeouts := make([]*time.Time, n), make([]*int32, n)
	args, kwargs := make([]string, n), make([]string, n)
	for i := range tasks {
		t := tasks[i]
		if err := t.Normalize(); err != nil {
			if n > 1 {
				return nil, fmt.Errorf("task %d: %w", i+1, err)
			}
			return nil, err
		}
		taskIDs[i], paths[i], queues[i], addrs[i] = t.TaskID, t.CallablePath, t.Queue, t.RayAddress
		runAfter[i], timeouts[i], args[i], kwargs[i] = t.RunAfter, t.TimeoutSeconds, t.ArgsJSON, t.KwargsJSON
	}
	return collectColumn[int64](s.db.Query(ctx, insertSQL, taskIDs, paths, queues, addrs, runAfter, timeouts, args, kwargs))
}

const jobIDSQL = `'raysubmit_t' || t.id || '_a' || t.attempt_number || '_' || to_hex((extract(epoch FROM now()) * 1000000)::bigint)`

// Claim moves up to p.Limit QUEUED rows to RUNNING for p.WorkerID in one statement, in
// django-ray 0.2.0 order: rows without run_after first, then rows whose run_after is due;
// within each, queue priority (high-priority/urgent, then others, then
// low-priority/background/batch), then created_at. Rows locked by another claimer are
// skipped (FOR UPDATE SKIP LOCKED). The rows are returned in that order.
func (s *Store) Claim(ctx context.Context, p ClaimParams) ([]Task, error) {
	if p.WorkerID == "" {
		return nil, fmt.Errorf("%w: claim needs a worker id", ErrInvalid)
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	sql, args := claimSQL(p)
	tasks, err := collectTasks(s.db.Query(ctx, sql, args...))
	if err != nil {
		return nil, err
	}
	SortClaimOrder(tasks)
	return tasks, nil
}

func claimSQL(p ClaimParams) (string, []any) {
	args := []any{p.Limit, p.WorkerID}
	queueFilter := ""
	if len(p.Queues) > 0 {
		args = append(args, p.Queues)
		queueFilter = fmt.Sprintf("AND queue_name = ANY($%d)", len(args))
	}
	jobID := "NULL"
	if p.AssignJobIDs {
		jobID = jobIDSQL
	}
	address := "t.ray_address"
	if p.RayAddress != "" {
		args = append(args, p.RayAddress)
		address = fmt.Sprintf("$%d", len(args))
	}
	// The ORDER BY expressions match rayctl_claim_order_idx (migrations.OptionalIndexes), so
	// with that index a claim reads only the rows it takes.
	return `WITH picked AS (
		SELECT id FROM django_ray_raytaskexecution
		WHERE state = 'QUEUED' ` + queueFilter + ` AND (run_after IS NULL OR run_after <= now())
		ORDER BY (run_after IS NOT NULL), ` + prioritySQL + `, created_at, id
		LIMIT $1
		FOR UPDATE SKIP LOCKED
	)
	UPDATE django_ray_raytaskexecution t
	SET state = 'RUNNING', started_at = now(), last_heartbeat_at = now(), finished_at = NULL,
	    claimed_by_worker = $2, ray_job_id = ` + jobID + `, ray_address = ` + address + `
	FROM picked
	WHERE t.id = picked.id AND t.state = 'QUEUED'
	RETURNING ` + prefixed("t"), args
}

// RecordJobID sets ray_job_id (and ray_address, when given) on a row the caller claimed. The
// guard's JobID is the value the caller saw, so two recorders cannot both win.
func (s *Store) RecordJobID(ctx context.Context, g Guard, jobID, rayAddress string) (bool, error) {
	return s.execGuarded(ctx, `UPDATE django_ray_raytaskexecution
		SET ray_job_id = $6, ray_address = COALESCE(NULLIF($7, ''), ray_address)
		WHERE `+guardSQL, g, jobID, rayAddress)
}

// Succeed moves a RUNNING row to SUCCEEDED with its result. It clears error_message and
// error_traceback left by earlier attempts (django-ray 0.2.0 keeps them, so a successful
// retry still reports an error).
func (s *Store) Succeed(ctx context.Context, g Guard, r Result) (bool, error) {
	r = r.storable()
	return s.execGuarded(ctx, `UPDATE django_ray_raytaskexecution
		SET state = 'SUCCEEDED', finished_at = now(), result_data = $6, result_reference = $7,
		    error_message = NULL, error_traceback = NULL
		WHERE `+guardSQL+` AND state = 'RUNNING'`, g, r.Data, r.Reference)
}

// Completion is one row of SucceedMany.
type Completion struct {
	Guard  Guard
	Result Result
}

// SucceedMany applies many Succeed transitions in one statement and returns the ids that
// applied. Each row keeps its own guard.
func (s *Store) SucceedMany(ctx context.Context, cs []Completion) ([]int64, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	n := len(cs)
	ids, states, workers, jobs := make([]int64, n), make([]string, n), make([]*string, n), make([]*string, n)
	started, data, refs := make([]*time.Time, n), make([]*string, n), make([]*string, n)
	for i, c := range cs {
		ids[i], states[i], workers[i], jobs[i], started[i] = c.Guard.ID, string(c.Guard.State), c.Guard.WorkerID, c.Guard.JobID, c.Guard.StartedAt
		r := c.Result.storable()
		data[i], refs[i] = r.Data, r.Reference
	}
	return collectColumn[int64](s.db.Query(ctx, `UPDATE django_ray_raytaskexecution t
		SET state = 'SUCCEEDED', finished_at = now(), result_data = u.data, result_reference = u.ref,
		    error_message = NULL, error_traceback = NULL
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[])
		     AS u(id, worker, job, started, data, ref, state)
		WHERE t.id = u.id AND t.state = 'RUNNING' AND t.state = u.state AND t.claimed_by_worker IS NOT DISTINCT FROM u.worker
		  AND t.ray_job_id IS NOT DISTINCT FROM u.job AND t.started_at IS NOT DISTINCT FROM u.started
		RETURNING t.id`, ids, workers, jobs, started, data, refs, states))
}

// Fail moves a RUNNING row to terminal FAILED.
func (s *Store) Fail(ctx context.Context, g Guard, e ErrorInfo) (bool, error) {
	e = e.storable()
	return s.execGuarded(ctx, `UPDATE django_ray_raytaskexecution
		SET state = 'FAILED', finished_at = now(), error_message = $6, error_traceback = $7
		WHERE `+guardSQL+` AND state = 'RUNNING'`, g, e.Message, e.Traceback)
}

// Retry moves a RUNNING row back to QUEUED for another attempt after delay: attempt_number+1,
// run_after = now()+delay, the error recorded, and started_at, finished_at,
// last_heartbeat_at and claimed_by_worker cleared. ray_job_id keeps the failed attempt's job
// (as django-ray 0.2.0 does) until the next claim replaces it.
func (s *Store) Retry(ctx context.Context, g Guard, delay time.Duration, e ErrorInfo) (bool, error) {
	e = e.storable()
	return s.execGuarded(ctx, `UPDATE django_ray_raytaskexecution
		SET state = 'QUEUED', attempt_number = attempt_number + 1,
		    run_after = now() + make_interval(secs => $6), error_message = $7, error_traceback = $8,
		    started_at = NULL, finished_at = NULL, last_heartbeat_at = NULL, claimed_by_worker = NULL
		WHERE `+guardSQL+` AND state = 'RUNNING'`, g, delay.Seconds(), e.Message, e.Traceback)
}

// Release hands a RUNNING row back to QUEUED without consuming an attempt (graceful
// shutdown). run_after is left as it was.
func (s *Store) Release(ctx context.Context, g Guard) (bool, error) {
	return s.execGuarded(ctx, `UPDATE django_ray_raytaskexecution
		SET state = 'QUEUED', started_at = NULL, finished_at = NULL, last_heartbeat_at = NULL,
		    claimed_by_worker = NULL, ray_job_id = NULL
		WHERE `+guardSQL+` AND state = 'RUNNING'`, g)
}

// LostParams fences MarkLost.
type LostParams struct {
	Self       string        // the sweeping worker; its own rows need no lease check
	StuckAfter time.Duration // STUCK_TASK_TIMEOUT_SECONDS
	LeaseTTL   time.Duration // WORKER_LEASE_SECONDS: an owner with a fresher lease is alive
	// RetryDelay, when set, re-queues the row at once (attempt+1, run_after now()+delay) as
	// django-ray does after marking it LOST; nil leaves it LOST (retries exhausted or TaskLost
	// denylisted).
	RetryDelay *time.Duration
}

// MarkLost moves a RUNNING row whose heartbeat (or, without one, its start) is older than
// StuckAfter to LOST, or straight back to QUEUED when p.RetryDelay is set, in one statement.
// It applies only if the row is still as the guard saw it, still stale, and its owner is this
// worker, nobody, or a worker without a live lease. last_heartbeat_at is kept, as django-ray
// 0.2.0 keeps it: on a re-queued row it marks "lost, not claimed since" (a claim sets it, a
// hand-back clears it), which Reclaim relies on.
func (s *Store) MarkLost(ctx context.Context, g Guard, p LostParams) (bool, error) {
	retry := p.RetryDelay != nil
	var delay float64
	if retry {
		delay = p.RetryDelay.Seconds()
	}
	return s.execGuarded(ctx, `UPDATE django_ray_raytaskexecution
		SET state = CASE WHEN $9 THEN 'QUEUED' ELSE 'LOST' END,
		    attempt_number = attempt_number + CASE WHEN $9 THEN 1 ELSE 0 END,
		    run_after = CASE WHEN $9 THEN now() + make_interval(secs => $10) ELSE run_after END,
		    finished_at = CASE WHEN $9 THEN NULL ELSE now() END,
		    started_at = CASE WHEN $9 THEN NULL ELSE started_at END,
		    claimed_by_worker = CASE WHEN $9 THEN NULL ELSE claimed_by_worker END,
		    error_message = '`+LostMessage+`', error_traceback = NULL
		WHERE `+guardSQL+`
		  AND COALESCE(last_heartbeat_at, started_at) < now() - make_interval(secs => $7)
		  AND state = 'RUNNING' AND `+ownerNotLiveSQL("$6", "$8"),
		g, p.Self, p.StuckAfter.Seconds(), p.LeaseTTL.Seconds(), retry, delay)
}

// ownerNotLiveSQL is true when the row's owner is self, nobody, or has no active lease with
// a heartbeat within ttl seconds.
func ownerNotLiveSQL(self, ttl string) string {
	return `(claimed_by_worker IS NULL OR claimed_by_worker = ` + self + ` OR NOT EXISTS (
		SELECT 1 FROM django_ray_taskworkerlease l
		WHERE l.worker_id = django_ray_raytaskexecution.claimed_by_worker AND l.is_active
		  AND l.last_heartbeat_at >= now() - make_interval(secs => ` + ttl + `)))`
}

// Reclaim gives a row back to the claim that was running it when the row was marked LOST
// only because that claim's worker could not reach the database for longer than the stuck
// timeout (an outage): claim is the row exactly as that worker claimed it. The row becomes
// RUNNING under the claim again — state, attempt_number, started_at, claimed_by_worker,
// ray_job_id, run_after and error columns as claimed, a fresh heartbeat, no finished_at — so
// the worker can go on running it, or record the outcome it holds, instead of the task
// running a second time. It applies only while nobody else has taken the row since:
//
//   - LOST (no retry): still the same claim (owner, start, job id), attempt unchanged, with
//     MarkLost's message and no traceback (a requeue clears them);
//   - QUEUED (MarkLost's retry): attempt_number one higher, no owner, no start, the same
//     ray_job_id, MarkLost's message, no traceback, and a heartbeat kept by MarkLost — a
//     claim sets owner and start and a hand-back (Release) clears the heartbeat, a failure's
//     retry raises the attempt again and writes another message, a cancel or requeue changes
//     the state or clears the message.
//
// Claims lock rows (FOR UPDATE SKIP LOCKED) and every other writer is one guarded UPDATE, so
// Reclaim and a concurrent claim cannot both apply: whichever commits first wins, the other
// re-reads the row and does not match.
func (s *Store) Reclaim(ctx context.Context, claim Task) (bool, error) {
	if claim.State != StateRunning || claim.ClaimedByWorker == nil || claim.StartedAt == nil {
		return false, fmt.Errorf("%w: Reclaim needs the row as its worker claimed it (RUNNING, owner, start)", ErrInvalid)
	}
	tag, err := s.db.Exec(ctx, `UPDATE django_ray_raytaskexecution
		SET state = 'RUNNING', attempt_number = $2, started_at = $3, claimed_by_worker = $4,
		    last_heartbeat_at = now(), finished_at = NULL, run_after = $6,
		    error_message = $7, error_traceback = $8
		WHERE id = $1 AND ray_job_id IS NOT DISTINCT FROM $5
		  AND error_message = '`+LostMessage+`' AND error_traceback IS NULL
		  AND ((state = 'LOST' AND attempt_number = $2 AND claimed_by_worker = $4 AND started_at = $3)
		    OR (state = 'QUEUED' AND attempt_number = $2 + 1 AND claimed_by_worker IS NULL AND started_at IS NULL
		        AND last_heartbeat_at IS NOT NULL))`,
		claim.ID, claim.AttemptNumber, claim.StartedAt, claim.ClaimedByWorker, claim.RayJobID, claim.RunAfter,
		claim.ErrorMessage, claim.ErrorTraceback)
	if err != nil {
		return false, translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkTimedOut moves a RUNNING row that has run longer than its timeout_seconds to terminal
// FAILED with django-ray's message "Task timed out after N seconds". Timeouts are not retried.
func (s *Store) MarkTimedOut(ctx context.Context, g Guard) (bool, error) {
	return s.execGuarded(ctx, `UPDATE django_ray_raytaskexecution
		SET state = 'FAILED', finished_at = now(),
		    error_message = 'Task timed out after ' || timeout_seconds || ' seconds', error_traceback = NULL
		WHERE `+guardSQL+` AND timeout_seconds IS NOT NULL
		  AND state = 'RUNNING' AND started_at < now() - make_interval(secs => timeout_seconds)`, g)
}

// Adopt takes over a RUNNING row whose owner has no live lease (or no owner), keeping its
// Ray job: claimed_by_worker = newOwner and a fresh heartbeat. This is django-ray 0.2.0's
// compare-and-set adoption, so Python and Go workers adopt each other's orphans.
func (s *Store) Adopt(ctx context.Context, g Guard, newOwner string, leaseTTL time.Duration) (bool, error) {
	return s.execGuarded(ctx, `UPDATE django_ray_raytaskexecution
		SET claimed_by_worker = $6, last_heartbeat_at = now()
		WHERE `+guardSQL+` AND state = 'RUNNING' AND `+ownerNotLiveSQL("$6", "$7"), g, newOwner, leaseTTL.Seconds())
}

// HeartbeatTasks refreshes last_heartbeat_at of the worker's RUNNING rows among ids and
// returns how many it touched.
func (s *Store) HeartbeatTasks(ctx context.Context, workerID string, ids []int64) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.db.Exec(ctx, `UPDATE django_ray_raytaskexecution SET last_heartbeat_at = now()
		WHERE id = ANY($1) AND state = 'RUNNING' AND claimed_by_worker = $2`, ids, workerID)
	if err != nil {
		return 0, translate(err)
	}
	return tag.RowsAffected(), nil
}

// CancelOutcome is the state RequestCancel left a row in.
type CancelOutcome struct {
	ID    int64     `json:"id"`
	State TaskState `json:"state"`
}

// RequestCancel cancels rows among ids that are still in one of states: QUEUED rows become
// CANCELLED at once (finished_at set), RUNNING rows become CANCELLING for their worker to
// stop and finalize. Rows in any other state are left alone. It returns the rows it changed.
func (s *Store) RequestCancel(ctx context.Context, ids []int64, states []TaskState) ([]CancelOutcome, error) {
	allowed := make([]string, 0, len(states))
	for _, st := range states {
		if st != StateQueued && st != StateRunning {
			return nil, fmt.Errorf("%w: only QUEUED and RUNNING tasks can be cancelled, not %s", ErrInvalid, st)
		}
		allowed = append(allowed, string(st))
	}
	return collect(ctx, s.db, `UPDATE django_ray_raytaskexecution
		SET state = CASE state WHEN 'QUEUED' THEN 'CANCELLED' ELSE 'CANCELLING' END,
		    finished_at = CASE state WHEN 'QUEUED' THEN now() ELSE finished_at END
		WHERE id = ANY($1) AND state = ANY($2)
		RETURNING id, state`, func(rows pgx.Rows) (CancelOutcome, error) {
		var o CancelOutcome
		var st string
		err := rows.Scan(&o.ID, &st)
		o.State = TaskState(st)
		return o, err
	}, ids, allowed)
}

// FinalizeCancel moves a CANCELLING row to CANCELLED once its work is stopped. The guard's
// owner is the one the caller saw, so a dead worker's rows can be finalized by another.
func (s *Store) FinalizeCancel(ctx context.Context, g Guard) (bool, error) {
	return s.execGuarded(ctx, `UPDATE django_ray_raytaskexecution
		SET state = 'CANCELLED', finished_at = now()
		WHERE `+guardSQL+` AND state = 'CANCELLING'`, g)
}

// MarkCancelled moves a RUNNING or CANCELLING row to CANCELLED when its work was stopped
// from outside (a Ray job in STOPPED).
func (s *Store) MarkCancelled(ctx context.Context, g Guard) (bool, error) {
	return s.execGuarded(ctx, `UPDATE django_ray_raytaskexecution
		SET state = 'CANCELLED', finished_at = now()
		WHERE `+guardSQL+` AND state IN ('RUNNING', 'CANCELLING')`, g)
}

// Finalized is a CANCELLING row FinalizeOrphanedCancels moved to CANCELLED.
type Finalized struct {
	ID       int64   `json:"id"`
	RayJobID *string `json:"ray_job_id"` // the job nobody stopped, if the row had one
}

// FinalizeOrphanedCancels moves CANCELLING rows among ids to CANCELLED (finished_at set) when
// their owner is nobody or has no live lease (active, heartbeat within leaseTTL): django-ray
// 0.2.0 finalizes only its own CANCELLING rows, so a dead worker's stay there forever. A row
// whose owner is alive, or that left CANCELLING meanwhile, is left alone. It returns the rows
// that applied, with their Ray job ids: nobody stopped those jobs.
func (s *Store) FinalizeOrphanedCancels(ctx context.Context, ids []int64, leaseTTL time.Duration) ([]Finalized, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if leaseTTL <= 0 {
		return nil, fmt.Errorf("%w: lease TTL must be positive", ErrInvalid)
	}
	return collect(ctx, s.db, `UPDATE django_ray_raytaskexecution
		SET state = 'CANCELLED', finished_at = now()
		WHERE id = ANY($1) AND state = 'CANCELLING' AND `+ownerNotLiveSQL("''", "$2")+`
		RETURNING id, ray_job_id`, func(rows pgx.Rows) (Finalized, error) {
		var f Finalized
		err := rows.Scan(&f.ID, &f.RayJobID)
		return f, err
	}, ids, leaseTTL.Seconds())
}

// RequeueOptions tune Requeue.
type RequeueOptions struct {
	// ResetAttempts sets attempt_number back to 1, giving the task its full retry budget.
	ResetAttempts bool
}

// Requeue moves rows among ids that are still in one of from back to QUEUED, resetting what
// the runbook's manual action resets (started_at, finished_at, error_message,
// error_traceback, claimed_by_worker, ray_job_id) plus last_heartbeat_at, run_after and any
// stale result, so the task runs now on a clean row. It returns the ids that applied; a row
// that changed state meanwhile is left alone.
func (s *Store) Requeue(ctx context.Context, ids []int64, from []TaskState, opts RequeueOptions) ([]int64, error) {
	if len(from) == 0 {
		return nil, fmt.Errorf("%w: requeue needs the states rows must still be in", ErrInvalid)
	}
	states := make([]string, len(from))
	for i, st := range from {
		if st == StateRunning || st == StateQueued || st == StateCancelling {
			return nil, fmt.Errorf("%w: %s tasks cannot be requeued (only finished ones)", ErrInvalid, st)
		}
		states[i] = string(st)
	}
	return collectColumn[int64](s.db.Query(ctx, `UPDATE django_ray_raytaskexecution
		SET state = 'QUEUED', attempt_number = CASE WHEN $3 THEN 1 ELSE attempt_number END,
		    started_at = NULL, finished_at = NULL, last_heartbeat_at = NULL, run_after = NULL,
		    claimed_by_worker = NULL, ray_job_id = NULL, error_message = NULL, error_traceback = NULL,
		    result_data = NULL, result_reference = NULL
		WHERE id = ANY($1) AND state = ANY($2)
		RETURNING id`, ids, states, opts.ResetAttempts))
}

// StampUnseen gives the RUNNING rows the sweep could never judge — no last_heartbeat_at and no
// started_at (a manual UPDATE, a crashed writer), or an activity time in the future by more
// than StuckAfter (a bad clock, 'infinity') — a heartbeat of now(): the time a sweep first
// saw them. From then on the usual rule applies: nobody heartbeats them, so StuckAfter later
// they are stuck and recovered like any other row, instead of staying RUNNING for ever. Only
// rows the sweep may judge (p's owner scope) are stamped, never a live worker's. It returns
// how many rows it stamped.
func (s *Store) StampUnseen(ctx context.Context, p SweepParams) (int64, error) {
	tag, err := s.db.Exec(ctx, `UPDATE django_ray_raytaskexecution SET last_heartbeat_at = now()
		WHERE state = 'RUNNING' AND `+p.owners("$1", "$2", "$4")+`
		  AND (COALESCE(last_heartbeat_at, started_at) IS NULL
		    OR NOT isfinite(COALESCE(last_heartbeat_at, started_at))
		    OR COALESCE(last_heartbeat_at, started_at) > now() + make_interval(secs => $3))`,
		p.Self, p.LeaseTTL.Seconds(), p.StuckAfter.Seconds(), p.skipPattern())
	if err != nil {
		return 0, translate(err)
	}
	return tag.RowsAffected(), nil
}
