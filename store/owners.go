package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Who owns the RUNNING and CANCELLING rows, and whether that owner is alive: per-worker
// counts, orphans, and Ray job rows with their owners' standing.

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
	out := map[string]OwnedCount{}
	err := eachRow(ctx, s.db, `SELECT claimed_by_worker,
			count(*) FILTER (WHERE state = 'RUNNING'), count(*) FILTER (WHERE state = 'CANCELLING'),
			(array_agg(id ORDER BY id))[1:$1]
		FROM django_ray_raytaskexecution
		WHERE state IN ('RUNNING', 'CANCELLING') AND claimed_by_worker IS NOT NULL
		GROUP BY claimed_by_worker`, func(rows pgx.Rows) error {
		var c OwnedCount
		if err := rows.Scan(&c.WorkerID, &c.Running, &c.Cancelling, &c.IDs); err != nil {
			return err
		}
		out[c.WorkerID] = c
		return nil
	}, idLimit)
	if err != nil {
		return nil, err
	}
	return out, nil
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
	var total int64
	out, err := collect(ctx, s.db, `SELECT `+prefixed("t")+`,
			CASE WHEN t.claimed_by_worker IS NULL THEN 'no_owner' WHEN l.worker_id IS NULL THEN 'owner_unknown'
			     WHEN NOT l.is_active THEN 'owner_inactive' ELSE 'owner_stale' END,
			count(*) OVER ()
		FROM django_ray_raytaskexecution t
		LEFT JOIN django_ray_taskworkerlease l ON l.worker_id = t.claimed_by_worker
		WHERE t.state IN ('RUNNING', 'CANCELLING')
		  AND NOT (l.worker_id IS NOT NULL AND l.is_active AND l.last_heartbeat_at >= now() - make_interval(secs => $1))
		ORDER BY COALESCE(t.last_heartbeat_at, t.started_at, t.created_at), t.id
		LIMIT $2`, func(rows pgx.Rows) (Orphan, error) {
		var o Orphan
		var state, reason string
		err := rows.Scan(append(taskFields(&o.Task, &state), &reason, &total)...)
		o.Task.State, o.Reason = TaskState(state), OwnerStatus(reason)
		return o, err
	}, leaseTTL.Seconds(), limit)
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
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
	now, err := s.Now(ctx)
	if err != nil {
		return nil, 0, now, err
	}
	var total int64
	out, err := collect(ctx, s.db, `SELECT `+prefixed("t")+`,
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
		LIMIT $2`, func(rows pgx.Rows) (JobRow, error) {
		var r JobRow
		var state, owner string
		var idle float64
		err := rows.Scan(append(taskFields(&r.Task, &state), &owner, &idle, &total)...)
		r.Task.State, r.Owner = TaskState(state), OwnerStatus(owner)
		r.Idle = time.Duration(idle * float64(time.Second))
		return r, err
	}, leaseTTL.Seconds(), limit, now)
	if err != nil {
		return nil, 0, now, err
	}
	return out, total, now, nil
}

// CountLiveLeases returns how many workers hold a live lease (active, heartbeat within ttl).
func (s *Store) CountLiveLeases(ctx context.Context, ttl time.Duration) (int64, error) {
	var n int64
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM django_ray_taskworkerlease WHERE `+LiveLeaseSQL, ttl.Seconds()).Scan(&n)
	return n, translate(err)
}
