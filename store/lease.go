package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lease is one django_ray_taskworkerlease row: a worker process and its heartbeat.
type Lease struct {
	WorkerID        string     `json:"worker_id"`
	Hostname        string     `json:"hostname"`
	PID             int32      `json:"pid"`
	QueueName       string     `json:"queue_name"`
	StartedAt       time.Time  `json:"started_at"`
	LastHeartbeatAt time.Time  `json:"last_heartbeat_at"`
	IsActive        bool       `json:"is_active"`
	StoppedAt       *time.Time `json:"stopped_at"`
}

// UpsertLease creates the worker's lease, or re-activates it (same worker id) with a fresh
// heartbeat if it was deactivated or expired by a sweep. started_at is kept on re-activation.
func (s *Store) UpsertLease(ctx context.Context, l Lease) error {
	if l.WorkerID == "" {
		return fmt.Errorf("%w: lease needs a worker id", ErrInvalid)
	}
	if len(l.QueueName) > 100 {
		return fmt.Errorf("%w: lease queue label is longer than 100 characters (use LeaseQueueLabel)", ErrInvalid)
	}
	_, err := s.db.Exec(ctx, `INSERT INTO django_ray_taskworkerlease
		(worker_id, hostname, pid, queue_name, started_at, last_heartbeat_at, is_active, stopped_at)
		VALUES ($1, $2, $3, $4, now(), now(), true, NULL)
		ON CONFLICT (worker_id) DO UPDATE SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
		    queue_name = EXCLUDED.queue_name, last_heartbeat_at = now(), is_active = true, stopped_at = NULL`,
		l.WorkerID, l.Hostname, l.PID, l.QueueName)
	return translate(err)
}

// HeartbeatLease refreshes an active lease. It returns false when the lease is missing or
// inactive (swept or deactivated by an operator): the worker then calls UpsertLease.
func (s *Store) HeartbeatLease(ctx context.Context, workerID string) (bool, error) {
	tag, err := s.db.Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now()
		WHERE worker_id = $1 AND is_active`, workerID)
	if err != nil {
		return false, translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// DeactivateLease marks the lease inactive (graceful shutdown or an operator's action).
func (s *Store) DeactivateLease(ctx context.Context, workerID string) (bool, error) {
	tag, err := s.db.Exec(ctx, `UPDATE django_ray_taskworkerlease SET is_active = false, stopped_at = now()
		WHERE worker_id = $1 AND is_active`, workerID)
	if err != nil {
		return false, translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// ExpireLeases deactivates every active lease whose heartbeat is older than ttl and returns
// their worker ids. Rows are kept, as django-ray does.
func (s *Store) ExpireLeases(ctx context.Context, ttl time.Duration) ([]string, error) {
	return collectColumn[string](s.db.Query(ctx, `UPDATE django_ray_taskworkerlease SET is_active = false, stopped_at = now()
		WHERE is_active AND last_heartbeat_at < now() - make_interval(secs => $1)
		RETURNING worker_id`, ttl.Seconds()))
}

const leaseColumns = `worker_id, hostname, pid, queue_name, started_at, last_heartbeat_at, is_active, stopped_at`

// GetLease returns one lease or ErrNotFound.
func (s *Store) GetLease(ctx context.Context, workerID string) (Lease, error) {
	var l Lease
	err := s.db.QueryRow(ctx, `SELECT `+leaseColumns+` FROM django_ray_taskworkerlease WHERE worker_id = $1`, workerID).
		Scan(&l.WorkerID, &l.Hostname, &l.PID, &l.QueueName, &l.StartedAt, &l.LastHeartbeatAt, &l.IsActive, &l.StoppedAt)
	return l, translate(err)
}

// ListLeases returns every lease, oldest heartbeat first (the runbook's lease query).
func (s *Store) ListLeases(ctx context.Context) ([]Lease, error) {
	return collect(ctx, s.db, `SELECT `+leaseColumns+` FROM django_ray_taskworkerlease ORDER BY last_heartbeat_at, worker_id`,
		func(rows pgx.Rows) (Lease, error) {
			var l Lease
			err := rows.Scan(&l.WorkerID, &l.Hostname, &l.PID, &l.QueueName, &l.StartedAt, &l.LastHeartbeatAt, &l.IsActive, &l.StoppedAt)
			return l, err
		})
}

// LiveLeaseSQL is the condition for a lease that counts as alive: active with a heartbeat
// within the TTL (django-ray's get_active_workers).
const LiveLeaseSQL = `is_active AND last_heartbeat_at >= now() - make_interval(secs => $1)`

// A rayworker lease carries its execution mode in the hostname column, the only free-text
// column django-ray 0.2.0's lease has besides queue_name (which lists the queues, and which
// rayctl reads as such): "<host> (rayworker <mode>)" or, for runners with Python executors,
// "<host> (rayworker <mode> x<executors>)". django-ray's admin shows it as it is; Django's own
// workers write the bare host name.
const leaseModeTag = " (rayworker "

// LeaseHostname is the hostname column for a rayworker of the given mode ("pool", "ray_core",
// "rayjob", "process") and executor count (0: none), within the column's 255 characters.
func LeaseHostname(host, mode string, executors int) string {
	suffix := leaseModeTag + mode
	if executors > 0 {
		suffix += fmt.Sprintf(" x%d", executors)
	}
	suffix += ")"
	if max := 255 - len(suffix); len(host) > max {
		host = host[:max]
	}
	return host + suffix
}

// Host is the lease's host name without a rayworker mode suffix.
func (l Lease) Host() string {
	host, _ := splitLeaseHostname(l.Hostname)
	return host
}

// Mode is the execution mode a rayworker lease carries ("pool x10", "ray_core x1", "rayjob",
// "process"), or "" for a lease without one (django-ray's own worker).
func (l Lease) Mode() string {
	_, mode := splitLeaseHostname(l.Hostname)
	return mode
}

func splitLeaseHostname(h string) (host, mode string) {
	i := strings.LastIndex(h, leaseModeTag)
	if i < 0 || !strings.HasSuffix(h, ")") {
		return h, ""
	}
	return h[:i], h[i+len(leaseModeTag) : len(h)-1]
}
