package store

import (
	"context"
	"time"
)

// SweepParams scope the maintenance queries a worker runs every cycle.
type SweepParams struct {
	Self       string        // this worker's id
	LeaseTTL   time.Duration // WORKER_LEASE_SECONDS
	StuckAfter time.Duration // STUCK_TASK_TIMEOUT_SECONDS
	Limit      int           // rows per query; 0 means 1000
}

func (p SweepParams) limit() int {
	if p.Limit <= 0 {
		return 1000
	}
	return p.Limit
}

// ownerNotLiveOrSelf is ownerNotLiveSQL for the sweep queries ($1 self, $2 ttl seconds).
var ownerNotLiveOrSelf = ownerNotLiveSQL("$1", "$2")

// StuckTasks returns RUNNING rows whose heartbeat (or start) is older than StuckAfter and
// whose owner is this worker, nobody, or a worker without a live lease: the candidates for
// MarkLost. Rows of live other workers are theirs to watch.
func (s *Store) StuckTasks(ctx context.Context, p SweepParams) ([]Task, error) {
	return collectTasks(s.db.Query(ctx, `SELECT `+taskColumns+` FROM django_ray_raytaskexecution
		WHERE state = 'RUNNING' AND COALESCE(last_heartbeat_at, started_at) < now() - make_interval(secs => $3)
		  AND `+ownerNotLiveOrSelf+`
		ORDER BY id LIMIT $4`, p.Self, p.LeaseTTL.Seconds(), p.StuckAfter.Seconds(), p.limit()))
}

// TimedOutTasks returns RUNNING rows past their timeout_seconds whose owner is this worker,
// nobody, or a worker without a live lease: the candidates for MarkTimedOut.
func (s *Store) TimedOutTasks(ctx context.Context, p SweepParams) ([]Task, error) {
	return collectTasks(s.db.Query(ctx, `SELECT `+taskColumns+` FROM django_ray_raytaskexecution
		WHERE state = 'RUNNING' AND timeout_seconds IS NOT NULL
		  AND started_at < now() - make_interval(secs => timeout_seconds)
		  AND `+ownerNotLiveOrSelf+`
		ORDER BY id LIMIT $3`, p.Self, p.LeaseTTL.Seconds(), p.limit()))
}

// OrphanedJobs returns RUNNING rows with a Ray job id starting with prefix whose owner is
// nobody or a worker without a live lease (never this worker): the candidates for adoption.
func (s *Store) OrphanedJobs(ctx context.Context, p SweepParams, prefix string) ([]Task, error) {
	return collectTasks(s.db.Query(ctx, `SELECT `+taskColumns+` FROM django_ray_raytaskexecution
		WHERE state = 'RUNNING' AND ray_job_id LIKE $3 AND claimed_by_worker IS DISTINCT FROM $1
		  AND `+ownerNotLiveOrSelf+`
		ORDER BY id LIMIT $4`, p.Self, p.LeaseTTL.Seconds(), escapeLike(prefix)+"%", p.limit()))
}

// CancellingTasks returns CANCELLING rows owned by this worker, nobody, or a worker without
// a live lease. django-ray 0.2.0 finalizes only its own, so a dead worker's CANCELLING rows
// stay stuck there forever; here anyone may finalize them.
func (s *Store) CancellingTasks(ctx context.Context, p SweepParams) ([]Task, error) {
	return collectTasks(s.db.Query(ctx, `SELECT `+taskColumns+` FROM django_ray_raytaskexecution
		WHERE state = 'CANCELLING' AND `+ownerNotLiveOrSelf+`
		ORDER BY id LIMIT $3`, p.Self, p.LeaseTTL.Seconds(), p.limit()))
}

// OwnedTasks returns the worker's RUNNING and CANCELLING rows (used at start-up and by
// reconciliation to compare the database with what the worker tracks).
func (s *Store) OwnedTasks(ctx context.Context, workerID string) ([]Task, error) {
	return collectTasks(s.db.Query(ctx, `SELECT `+taskColumns+` FROM django_ray_raytaskexecution
		WHERE state IN ('RUNNING', 'CANCELLING') AND claimed_by_worker = $1 ORDER BY id`, workerID))
}

// TasksByIDs returns the rows among ids that exist, in id order.
func (s *Store) TasksByIDs(ctx context.Context, ids []int64) ([]Task, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return collectTasks(s.db.Query(ctx, `SELECT `+taskColumns+` FROM django_ray_raytaskexecution
		WHERE id = ANY($1) ORDER BY id`, ids))
}
