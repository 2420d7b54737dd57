package store

import (
	"context"
	"fmt"
	"time"
)

// This file holds the read queries and bulk transitions behind the operator commands
// (package recovery): selecting rows for requeue and cancel, lease inspection, orphan
// candidates, grouped counts and the metrics gauges.

// TaskRef is a task's id and the state it was in when read.
type TaskRef struct {
	ID    int64     `json:"id"`
	State TaskState `json:"state"`
}

// RefQuery selects the rows a bulk operation will act on.
type RefQuery struct {
	Filter TaskFilter // Limit and BeforeID are ignored; Limit below applies
	Limit  int        // at most this many rows, lowest ids first; 0 means no limit
	// CancellingOwnerNotLive, when set, keeps a CANCELLING row only if its owner is nobody or
	// has no lease that is active with a heartbeat within this TTL: nobody else will finalize
	// it. Rows in other states are not affected.
	CancellingOwnerNotLive time.Duration
}

func (q RefQuery) where() (string, []any) {
	where, args := q.Filter.where()
	if q.CancellingOwnerNotLive > 0 {
		args = append(args, q.CancellingOwnerNotLive.Seconds())
		where += fmt.Sprintf(" AND (state <> 'CANCELLING' OR %s)", ownerNotLiveSQL("''", fmt.Sprintf("$%d", len(args))))
	}
	return where, args
}

// SelectRefs returns the ids and states of the rows q selects, lowest id (oldest) first.
func (s *Store) SelectRefs(ctx context.Context, q RefQuery) ([]TaskRef, error) {
	where, args := q.where()
	sql := `SELECT id, state FROM django_ray_raytaskexecution WHERE ` + where + ` ORDER BY id`
	if q.Limit > 0 {
		args = append(args, q.Limit)
		sql += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	return s.collectRefs(ctx, sql, args...)
}

// CountRefs counts the rows q selects, ignoring its Limit.
func (s *Store) CountRefs(ctx context.Context, q RefQuery) (int64, error) {
	where, args := q.where()
	var n int64
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM django_ray_raytaskexecution WHERE `+where, args...).Scan(&n)
	return n, translate(err)
}

// TaskStates returns the current state of the rows among ids that exist, in id order.
func (s *Store) TaskStates(ctx context.Context, ids []int64) ([]TaskRef, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return s.collectRefs(ctx, `SELECT id, state FROM django_ray_raytaskexecution WHERE id = ANY($1) ORDER BY id`, ids)
}

func (s *Store) collectRefs(ctx context.Context, sql string, args ...any) ([]TaskRef, error) {
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []TaskRef
	for rows.Next() {
		var r TaskRef
		var st string
		if err := rows.Scan(&r.ID, &st); err != nil {
			return nil, translate(err)
		}
		r.State = TaskState(st)
		out = append(out, r)
	}
	return out, translate(rows.Err())
}

// RayJobIDs returns, for the rows among ids whose ray_job_id starts with prefix, that id (in
// row id order): the rows that may have a Ray job still running for them.
func (s *Store) RayJobIDs(ctx context.Context, ids []int64, prefix string) (map[int64]string, error) {
	out := map[int64]string{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.db.Query(ctx, `SELECT id, ray_job_id FROM django_ray_raytaskexecution
		WHERE id = ANY($1) AND ray_job_id LIKE $2 ORDER BY id`, ids, escapeLike(prefix)+"%")
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var job string
		if err := rows.Scan(&id, &job); err != nil {
			return nil, translate(err)
		}
		out[id] = job
	}
	return out, translate(rows.Err())
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
	rows, err := s.db.Query(ctx, `UPDATE django_ray_raytaskexecution
		SET state = 'CANCELLED', finished_at = now()
		WHERE id = ANY($1) AND state = 'CANCELLING' AND `+ownerNotLiveSQL("''", "$2")+`
		RETURNING id, ray_job_id`, ids, leaseTTL.Seconds())
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var applied []Finalized
	for rows.Next() {
		var f Finalized
		if err := rows.Scan(&f.ID, &f.RayJobID); err != nil {
			return nil, translate(err)
		}
		applied = append(applied, f)
	}
	return applied, translate(rows.Err())
}

// OwnedCount is what one worker holds: its RUNNING and CANCELLING rows.
type OwnedCount struct {
	WorkerID   string  `json:"worker_id"`
	Running    int64   `json:"running"`
	Cancelling int64   `json:"cancelling"`
	IDs        []int64 `json:"ids"` // the lowest ids, at most the limit given
}

// OwnedCounts returns, per claimed_by_worker, how many RUNNING and CANCELLING rows it owns
// and the first idLimit of their ids.
func (s *Store) OwnedCounts(ctx context.Context, idLimit int) (map[string]OwnedCount, error) {
	rows, err := s.db.Query(ctx, `SELECT claimed_by_worker,
			count(*) FILTER (WHERE state = 'RUNNING'), count(*) FILTER (WHERE state = 'CANCELLING'),
			(array_agg(id ORDER BY id))[1:$1]
		FROM django_ray_raytaskexecution
		WHERE state IN ('RUNNING', 'CANCELLING') AND claimed_by_worker IS NOT NULL
		GROUP BY claimed_by_worker`, idLimit)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := map[string]OwnedCount{}
	for rows.Next() {
		var c OwnedCount
		if err := rows.Scan(&c.WorkerID, &c.Running, &c.Cancelling, &c.IDs); err != nil {
			return nil, translate(err)
		}
		out[c.WorkerID] = c
	}
	return out, translate(rows.Err())
}

// OwnerStatus says why a RUNNING or CANCELLING row's owner cannot be relied on.
type OwnerStatus string

// Orphan reasons, from most to least certain.
const (
	OwnerNone     OwnerStatus = "no_owner"       // claimed_by_worker is NULL
	OwnerUnknown  OwnerStatus = "owner_unknown"  // no lease row has that worker id
	OwnerInactive OwnerStatus = "owner_inactive" // the lease was stopped or expired by a sweep
	OwnerStale    OwnerStatus = "owner_stale"    // the lease is active but its heartbeat is older than the TTL
)

// Orphan is a RUNNING or CANCELLING row whose owner has no live lease.
type Orphan struct {
	Task   Task        `json:"task"`
	Reason OwnerStatus `json:"reason"`
}

// OrphanCandidates returns RUNNING and CANCELLING rows whose owner is nobody, unknown,
// inactive, or active with a heartbeat older than leaseTTL — oldest activity first, at most
// limit rows — and how many there are in all.
func (s *Store) OrphanCandidates(ctx context.Context, leaseTTL time.Duration, limit int) ([]Orphan, int64, error) {
	rows, err := s.db.Query(ctx, `SELECT `+prefixed("t")+`,
			CASE WHEN t.claimed_by_worker IS NULL THEN 'no_owner' WHEN l.worker_id IS NULL THEN 'owner_unknown'
			     WHEN NOT l.is_active THEN 'owner_inactive' ELSE 'owner_stale' END,
			count(*) OVER ()
		FROM django_ray_raytaskexecution t
		LEFT JOIN django_ray_taskworkerlease l ON l.worker_id = t.claimed_by_worker
		WHERE t.state IN ('RUNNING', 'CANCELLING')
		  AND NOT (l.worker_id IS NOT NULL AND l.is_active AND l.last_heartbeat_at >= now() - make_interval(secs => $1))
		ORDER BY COALESCE(t.last_heartbeat_at, t.started_at, t.created_at), t.id
		LIMIT $2`, leaseTTL.Seconds(), limit)
	if err != nil {
		return nil, 0, translate(err)
	}
	defer rows.Close()
	var out []Orphan
	var total int64
	for rows.Next() {
		var o Orphan
		var state, reason string
		t := &o.Task
		if err := rows.Scan(&t.ID, &t.TaskID, &t.CallablePath, &t.QueueName, &state, &t.AttemptNumber, &t.RayJobID, &t.RayAddress,
			&t.CreatedAt, &t.StartedAt, &t.FinishedAt, &t.LastHeartbeatAt, &t.RunAfter, &t.TimeoutSeconds, &t.ClaimedByWorker,
			&t.ArgsJSON, &t.KwargsJSON, &t.ResultData, &t.ResultReference, &t.ErrorMessage, &t.ErrorTraceback,
			&reason, &total); err != nil {
			return nil, 0, translate(err)
		}
		t.State, o.Reason = TaskState(state), OwnerStatus(reason)
		out = append(out, o)
	}
	return out, total, translate(rows.Err())
}

// GroupBy is a column CountBy groups on.
type GroupBy string

// The groupings CountBy accepts.
const (
	ByCallable GroupBy = "callable"
	ByQueue    GroupBy = "queue"
	ByState    GroupBy = "state"
	ByWorker   GroupBy = "worker"
	ByError    GroupBy = "error" // the first line of error_message, at most 200 characters
	// ByException groups failures by exception type as the retry policy saw it (see
	// ExceptionType): one row per type, however its messages vary.
	ByException GroupBy = "exception"
)

// groupExpr maps a GroupBy to its SQL expression; only these fixed strings reach the SQL.
var groupExpr = map[GroupBy]string{
	ByException: exceptionTypeSQL,
	ByCallable:  "callable_path",
	ByQueue:     "queue_name",
	ByState:     "state",
	ByWorker:    "COALESCE(claimed_by_worker, '')",
	ByError:     "COALESCE(left(split_part(error_message, E'\\n', 1), 200), '')",
}

// GroupCount is one group of CountBy.
type GroupCount struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// CountBy counts the rows f matches per group, largest group first, at most limit groups.
func (s *Store) CountBy(ctx context.Context, f TaskFilter, by GroupBy, limit int) ([]GroupCount, error) {
	expr, ok := groupExpr[by]
	if !ok {
		return nil, fmt.Errorf("%w: cannot group by %q", ErrInvalid, by)
	}
	where, args := f.where()
	args = append(args, limit)
	rows, err := s.db.Query(ctx, fmt.Sprintf(`SELECT %s AS k, count(*) AS n FROM django_ray_raytaskexecution
		WHERE %s GROUP BY k ORDER BY n DESC, k LIMIT $%d`, expr, where, len(args)), args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []GroupCount
	for rows.Next() {
		var g GroupCount
		if err := rows.Scan(&g.Key, &g.Count); err != nil {
			return nil, translate(err)
		}
		out = append(out, g)
	}
	return out, translate(rows.Err())
}

// QueueStateCount is the number of rows in one queue and state.
type QueueStateCount struct {
	Queue string
	State TaskState
	Count int64
}

// CountByQueueState counts rows per queue and state: everything the runbook's /api/metrics
// gauges need, in one pass.
func (s *Store) CountByQueueState(ctx context.Context) ([]QueueStateCount, error) {
	rows, err := s.db.Query(ctx, `SELECT queue_name, state, count(*) FROM django_ray_raytaskexecution
		GROUP BY queue_name, state ORDER BY queue_name, state`)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []QueueStateCount
	for rows.Next() {
		var c QueueStateCount
		var st string
		if err := rows.Scan(&c.Queue, &st, &c.Count); err != nil {
			return nil, translate(err)
		}
		c.State = TaskState(st)
		out = append(out, c)
	}
	return out, translate(rows.Err())
}

// Health are the counts the doctor's stuck-task checks need.
type Health struct {
	StuckRunning       int64      `json:"stuck_running"`       // RUNNING, heartbeat (or start) older than stuckAfter
	OrphanedRunning    int64      `json:"orphaned_running"`    // RUNNING, owner without a live lease
	OrphanedCancelling int64      `json:"orphaned_cancelling"` // CANCELLING, owner without a live lease
	OldestCancellingAt *time.Time `json:"oldest_cancelling_at"`
}

// HealthCounts reads the stuck and orphaned counts in one pass over the RUNNING and
// CANCELLING rows.
func (s *Store) HealthCounts(ctx context.Context, leaseTTL, stuckAfter time.Duration) (Health, error) {
	var h Health
	err := s.db.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE t.state = 'RUNNING' AND COALESCE(t.last_heartbeat_at, t.started_at) < now() - make_interval(secs => $2)),
			count(*) FILTER (WHERE t.state = 'RUNNING' AND NOT live),
			count(*) FILTER (WHERE t.state = 'CANCELLING' AND NOT live),
			min(COALESCE(t.last_heartbeat_at, t.started_at, t.created_at)) FILTER (WHERE t.state = 'CANCELLING')
		FROM django_ray_raytaskexecution t
		LEFT JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM django_ray_taskworkerlease l
			WHERE l.worker_id = t.claimed_by_worker AND l.is_active
			  AND l.last_heartbeat_at >= now() - make_interval(secs => $1)) AS live) o ON true
		WHERE t.state IN ('RUNNING', 'CANCELLING')`, leaseTTL.Seconds(), stuckAfter.Seconds()).
		Scan(&h.StuckRunning, &h.OrphanedRunning, &h.OrphanedCancelling, &h.OldestCancellingAt)
	return h, translate(err)
}

// ServerInfo is what the doctor reports about the database server.
type ServerInfo struct {
	Version string    // server_version
	Clock   time.Time // clock_timestamp(): the server's clock now, not the transaction's start
	// Tables: both django-ray tables exist in the search path (created by rayctl or Django).
	Tables bool
}

// Server reads the server's version, its clock and whether the django-ray tables exist.
func (s *Store) Server(ctx context.Context) (ServerInfo, error) {
	var i ServerInfo
	err := s.db.QueryRow(ctx, `SELECT current_setting('server_version'), clock_timestamp(),
		to_regclass('django_ray_raytaskexecution') IS NOT NULL AND to_regclass('django_ray_taskworkerlease') IS NOT NULL`).
		Scan(&i.Version, &i.Clock, &i.Tables)
	return i, translate(err)
}

// OwnerLive: the owner holds a live lease (active, heartbeat within the TTL).
const OwnerLive OwnerStatus = "owner_live"

// JobRow is a RUNNING or CANCELLING row that has a Ray job, with how its owner stands and how
// long ago it last showed activity (heartbeat, else start, else creation), by the database
// clock.
type JobRow struct {
	Task  Task          `json:"task"`
	Owner OwnerStatus   `json:"owner"`
	Idle  time.Duration `json:"-"`
}

// RayJobRows returns RUNNING and CANCELLING rows with a ray_job_id — oldest activity first, at
// most limit — with their owners' standing under leaseTTL, how many such rows there are in
// all, and the database time of the read.
func (s *Store) RayJobRows(ctx context.Context, leaseTTL time.Duration, limit int) ([]JobRow, int64, time.Time, error) {
	var now time.Time
	if err := s.db.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return nil, 0, now, translate(err)
	}
	rows, err := s.db.Query(ctx, `SELECT `+prefixed("t")+`,
			CASE WHEN t.claimed_by_worker IS NULL THEN 'no_owner' WHEN l.worker_id IS NULL THEN 'owner_unknown'
			     WHEN NOT l.is_active THEN 'owner_inactive'
			     WHEN l.last_heartbeat_at < $3::timestamptz - make_interval(secs => $1) THEN 'owner_stale'
			     ELSE 'owner_live' END,
			EXTRACT(EPOCH FROM $3::timestamptz - COALESCE(t.last_heartbeat_at, t.started_at, t.created_at))::float8,
			count(*) OVER ()
		FROM django_ray_raytaskexecution t
		LEFT JOIN django_ray_taskworkerlease l ON l.worker_id = t.claimed_by_worker
		WHERE t.state IN ('RUNNING', 'CANCELLING') AND t.ray_job_id IS NOT NULL AND t.ray_job_id <> ''
		ORDER BY COALESCE(t.last_heartbeat_at, t.started_at, t.created_at), t.id
		LIMIT $2`, leaseTTL.Seconds(), limit, now)
	if err != nil {
		return nil, 0, now, translate(err)
	}
	defer rows.Close()
	var out []JobRow
	var total int64
	for rows.Next() {
		var r JobRow
		var state, owner string
		var idle float64
		t := &r.Task
		if err := rows.Scan(&t.ID, &t.TaskID, &t.CallablePath, &t.QueueName, &state, &t.AttemptNumber, &t.RayJobID, &t.RayAddress,
			&t.CreatedAt, &t.StartedAt, &t.FinishedAt, &t.LastHeartbeatAt, &t.RunAfter, &t.TimeoutSeconds, &t.ClaimedByWorker,
			&t.ArgsJSON, &t.KwargsJSON, &t.ResultData, &t.ResultReference, &t.ErrorMessage, &t.ErrorTraceback,
			&owner, &idle, &total); err != nil {
			return nil, 0, now, translate(err)
		}
		t.State, r.Owner = TaskState(state), OwnerStatus(owner)
		r.Idle = time.Duration(idle * float64(time.Second))
		out = append(out, r)
	}
	return out, total, now, translate(rows.Err())
}

// CountLiveLeases returns how many workers hold a live lease (active, heartbeat within ttl).
func (s *Store) CountLiveLeases(ctx context.Context, ttl time.Duration) (int64, error) {
	var n int64
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM django_ray_taskworkerlease WHERE `+LiveLeaseSQL, ttl.Seconds()).Scan(&n)
	return n, translate(err)
}
