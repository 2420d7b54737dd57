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
	// OnlyOwn restricts StuckTasks, TimedOutTasks and CancellingTasks to this worker's own
	// rows: a worker that has not yet watched the database for a lease TTL (after its start
	// or an outage that cut it off) cannot tell a dead worker from one that was cut off too.
	OnlyOwn bool
	// SkipJobPrefix, when set, leaves out other workers' rows whose ray_job_id starts with
	// it: a worker that cannot reach Ray must not move a row away from a Ray job that may
	// still run (a worker that can will stop or adopt it; rayctl reconcile-jobs shows it).
	SkipJobPrefix string
}

func (p SweepParams) limit() int {
	if p.Limit <= 0 {
		return 1000
	}
	return p.Limit
}

// ownerNotLiveOrSelf is ownerNotLiveSQL for the sweep queries ($1 self, $2 ttl seconds).
var ownerNotLiveOrSelf = ownerNotLiveSQL("$1", "$2")

// owners is the sweep queries' owner condition over the placeholders of this worker's id,
// the lease TTL in seconds and the SkipJobPrefix LIKE pattern (empty for none): this worker's
// rows, and unless OnlyOwn, rows of nobody or of workers without a live lease (minus Ray job
// rows when SkipJobPrefix is set).
func (p SweepParams) owners(self, ttl, pattern string) string {
	if p.OnlyOwn { // every placeholder still appears, typed, so PostgreSQL can infer them
		return `(claimed_by_worker = ` + self + ` AND ` + ttl + `::float8 IS NOT NULL AND ` + pattern + `::text IS NOT NULL)`
	}
	return `(claimed_by_worker = ` + self + ` OR (` + ownerNotLiveSQL(self, ttl) + `
		AND (` + pattern + ` = '' OR ray_job_id IS NULL OR ray_job_id NOT LIKE ` + pattern + `)))`
}

func (p SweepParams) skipPattern() string {
	if p.SkipJobPrefix == "" {
		return ""
	}
	return escapeLike(p.SkipJobPrefix) + "%"
}

// StuckTasks returns RUNNING rows whose heartbeat (or start) is older than StuckAfter and
// whose owner is this worker, nobody, or a worker without a live lease: the candidates for
// MarkLost. Rows of live other workers are theirs to watch.
func (s *Store) StuckTasks(ctx context.Context, p SweepParams) ([]Task, error) {
	return collectTasks(s.db.Query(ctx, `SELECT `+taskColumns+` FROM django_ray_raytaskexecution
		WHERE state = 'RUNNING' AND COALESCE(last_heartbeat_at, started_at) < now() - make_interval(secs => $3)
		  AND `+p.owners("$1", "$2", "$5")+`
		ORDER BY id LIMIT $4`, p.Self, p.LeaseTTL.Seconds(), p.StuckAfter.Seconds(), p.limit(), p.skipPattern()))
}

// TimedOutTasks returns RUNNING rows past their timeout_seconds whose owner is this worker,
// nobody, or a worker without a live lease: the candidates for MarkTimedOut.
func (s *Store) TimedOutTasks(ctx context.Context, p SweepParams) ([]Task, error) {
	return collectTasks(s.db.Query(ctx, `SELECT `+taskColumns+` FROM django_ray_raytaskexecution
		WHERE state = 'RUNNING' AND timeout_seconds IS NOT NULL
		  AND started_at < now() - make_interval(secs => timeout_seconds)
		  AND `+p.owners("$1", "$2", "$4")+`
		ORDER BY id LIMIT $3`, p.Self, p.LeaseTTL.Seconds(), p.limit(), p.skipPattern()))
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
		WHERE state = 'CANCELLING' AND `+p.owners("$1", "$2", "$4")+`
		ORDER BY id LIMIT $3`, p.Self, p.LeaseTTL.Seconds(), p.limit(), p.skipPattern()))
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
