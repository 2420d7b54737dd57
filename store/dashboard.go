package store

// The read queries behind `rayctl top`. They are built to stay cheap on a table of millions of
// rows without adding indexes to Django's tables (docs/benchmarks.md has the plans):
//
//   - Counts of the states that move (QUEUED, RUNNING, CANCELLING, FAILED, LOST) come from an
//     index-only scan of ray_task_claimable_idx (state, queue_name, run_after); their cost is
//     proportional to those rows, not to the table.
//   - SUCCEEDED and CANCELLED, which grow without bound, are counted only when asked
//     (DashboardParams.WithTotals): the caller does that on a slower cadence.
//   - "Recently finished" has no index on finished_at. It is found through
//     ray_task_heartbeat_idx (state, last_heartbeat_at): a row that finished within the window
//     had its last heartbeat shortly before, so the range last_heartbeat_at >= now() - (window
//     + HeartbeatSlack) bounds the scan, and finished_at then selects exactly. A row whose last
//     heartbeat is older than the slack before it finished (ran longer than the slack with no
//     heartbeat at all), or that never had one (cancelled while QUEUED), is not counted there.
//   - All snapshot queries run in one read-only REPEATABLE READ transaction, so the numbers
//     agree with each other, under a statement_timeout.

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// Dashboard defaults: how the snapshot is read. Its thresholds (what counts as stale, stalled
// or recent) have no defaults here: they are the runbook signals', recovery.Thresholds
// (DashboardParams), one definition for top and doctor.
const (
	DefaultBuckets        = 15 // one-minute throughput buckets
	DefaultHeartbeatSlack = time.Hour
	dashboardTimeout      = "10s"
)

// DashboardParams tune Dashboard. The thresholds (LeaseTTL, StuckAfter, FailureWindow,
// StallAfter, ResultWindow) must be positive; Buckets and HeartbeatSlack default to the
// constants above.
type DashboardParams struct {
	LeaseTTL       time.Duration // a lease without a heartbeat for this long is stale
	StuckAfter     time.Duration // RUNNING/CANCELLING rows without a heartbeat this long are stale
	Buckets        int           // one-minute throughput buckets per queue
	FailureWindow  time.Duration // how far back RecentFailures looks
	HeartbeatSlack time.Duration // see the file comment
	// StallAfter is how far back a worker's activity (claims, finishes, task heartbeats) is
	// looked for (WorkerActivity), and how recent a retry counts as recent
	// (QueueActivity.RecentRetries).
	StallAfter time.Duration
	// ResultWindow is how far back SUCCEEDED rows stored by reference are counted
	// (References).
	ResultWindow time.Duration
	// WithTotals also counts SUCCEEDED and CANCELLED rows: an index-only scan over all of
	// them (about 0.1 s at a million rows), so callers do it on a slower cadence.
	WithTotals bool
}

func (p DashboardParams) withDefaults() (DashboardParams, error) {
	for _, t := range []struct {
		name string
		v    time.Duration
	}{{"LeaseTTL", p.LeaseTTL}, {"StuckAfter", p.StuckAfter}, {"FailureWindow", p.FailureWindow},
		{"StallAfter", p.StallAfter}, {"ResultWindow", p.ResultWindow}} {
		if t.v <= 0 {
			return p, fmt.Errorf("%w: dashboard threshold %s must be positive (recovery.Thresholds.DashboardParams gives the runbook's)", ErrInvalid, t.name)
		}
	}
	if p.Buckets <= 0 {
		p.Buckets = DefaultBuckets
	}
	if p.HeartbeatSlack <= 0 {
		p.HeartbeatSlack = DefaultHeartbeatSlack
	}
	return p, nil
}

// QueueActivity is one queue's live figures.
type QueueActivity struct {
	Name       string `json:"name"`
	Queued     int64  `json:"queued"`   // QUEUED rows, deferred included (django_ray_queue_depth)
	Deferred   int64  `json:"deferred"` // QUEUED rows whose run_after is still ahead
	Running    int64  `json:"running"`
	Cancelling int64  `json:"cancelling"`
	Failed     int64  `json:"failed"`
	Lost       int64  `json:"lost"`
	// RecentRetries: QUEUED rows put back by a failed attempt (attempt_number > 1, an error
	// recorded) whose retry is due no earlier than StallAfter ago: the queue's workers are
	// finishing attempts, as failures.
	RecentRetries int64 `json:"recent_retries"`
	// OldestQueuedAt is when the longest-waiting runnable QUEUED row became runnable.
	OldestQueuedAt *time.Time `json:"oldest_queued_at"`
	// Done and Failing count rows finished per one-minute bucket, oldest first; the last
	// bucket is the minute up to now. Done counts SUCCEEDED, FAILED and LOST; Failing the
	// FAILED and LOST among them.
	Done    []int64 `json:"done_per_minute"`
	Failing []int64 `json:"failing_per_minute"`
}

// CallableFailures counts one callable's recent failures.
type CallableFailures struct {
	CallablePath string `json:"callable_path"`
	Failed       int64  `json:"failed"` // FAILED rows finished within the window
	Lost         int64  `json:"lost"`   // LOST rows finished within the window
	// Retrying: QUEUED again after a failed attempt (attempt_number > 1, an error recorded),
	// waiting for its run_after or a worker, whenever that attempt failed: the row keeps no
	// failure time (a retry clears finished_at), so these are not counted in the window.
	Retrying int64 `json:"retrying"`
}

// Total is the callable's FAILED and LOST rows finished within the window (Retrying aside).
func (c CallableFailures) Total() int64 { return c.Failed + c.Lost }

// Dashboard is one snapshot for `rayctl top`.
type Dashboard struct {
	Now time.Time `json:"now"`
	// States holds QUEUED, RUNNING, CANCELLING, FAILED and LOST always, and SUCCEEDED and
	// CANCELLED when HasTotals.
	States    map[TaskState]int64 `json:"states"`
	HasTotals bool                `json:"has_totals"`
	Queues    []QueueActivity     `json:"queues"`
	Leases    LeaseCounts         `json:"leases"`
	// StaleRunning: RUNNING rows whose heartbeat (or start) is older than StuckAfter.
	StaleRunning int64 `json:"stale_running"`
	// OrphanedRunning: RUNNING rows owned by nobody or by a worker without a live lease.
	OrphanedRunning int64 `json:"orphaned_running"`
	// StuckCancelling: CANCELLING rows that are stale or whose owner has no live lease; in
	// django-ray 0.2.0 nobody finalizes those (runbook playbook 5).
	StuckCancelling int64 `json:"stuck_cancelling"`
	// OrphanedCancelling: the CANCELLING rows among those whose owner has no live lease
	// (what `rayctl cancel --state CANCELLING` finalizes); the rest have a live but silent
	// owner.
	OrphanedCancelling int64 `json:"orphaned_cancelling"`
	// BeatingRunning: RUNNING rows with a heartbeat within StallAfter.
	BeatingRunning int64 `json:"beating_running"`
	// Workers: every active lease (live or stale) with what its worker did lately.
	Workers []WorkerActivity `json:"workers"`
	// References: SUCCEEDED rows finished within ResultWindow whose result is stored by
	// reference (result_reference), per scheme, most first.
	References []ReferenceCount `json:"references"`
	// RecentFailures: per callable, most failures first.
	RecentFailures []CallableFailures `json:"recent_failures"`
	Params         DashboardParams    `json:"-"`
}

// WorkerActivity is one active lease and what its worker did within StallAfter, as the
// database shows it: claims (started_at of rows it owns), finishes (finished_at of rows it
// finished) and task heartbeats. A worker whose runner cannot reach Ray keeps its lease
// fresh but claims nothing, and the rows it holds stop being heartbeated.
type WorkerActivity struct {
	Lease Lease `json:"lease"`
	Live  bool  `json:"live"` // heartbeat within LeaseTTL
	// Running and Cancelling are the rows it owns; Beating the RUNNING ones heartbeated
	// within StallAfter.
	Running    int64 `json:"running"`
	Cancelling int64 `json:"cancelling"`
	Beating    int64 `json:"beating"`
	// LastClaim is the latest started_at of a row it owns or finished within StallAfter;
	// LastFinish the latest finished_at within StallAfter; nil when none.
	LastClaim  *time.Time `json:"last_claim"`
	LastFinish *time.Time `json:"last_finish"`
}

// ReferenceCount counts recent results stored by reference under one scheme ("oversize":
// a digest only, stored nowhere; "resultfs", "s3", "gs").
type ReferenceCount struct {
	Scheme   string `json:"scheme"`
	Count    int64  `json:"count"`
	LatestID int64  `json:"latest_id"`
}

// hotStates are counted on every snapshot.
var hotStates = []string{string(StateQueued), string(StateRunning), string(StateCancelling), string(StateFailed), string(StateLost)}

// The snapshot queries, in the order Dashboard runs them (docs/benchmarks.md has their plans).
const (
	// dashHotSQL: the moving states per queue: an index-only scan of ray_task_claimable_idx.
	dashHotSQL = `SELECT now(), queue_name, state, count(*) FROM django_ray_raytaskexecution
		WHERE state = ANY($1) GROUP BY queue_name, state`
	// dashQueuedSQL: QUEUED rows per queue and callable: deferred, oldest runnable, retries.
	dashQueuedSQL = `SELECT queue_name, callable_path,
			count(*) FILTER (WHERE run_after > now()),
			min(COALESCE(run_after, created_at)) FILTER (WHERE run_after IS NULL OR run_after <= now()),
			count(*) FILTER (WHERE attempt_number > 1 AND error_message IS NOT NULL),
			count(*) FILTER (WHERE attempt_number > 1 AND error_message IS NOT NULL
			                   AND run_after >= now() - make_interval(secs => $1))
		FROM django_ray_raytaskexecution WHERE state = 'QUEUED' GROUP BY queue_name, callable_path`
	// dashThroughputSQL: finished rows per queue and minute, through ray_task_heartbeat_idx.
	dashThroughputSQL = `SELECT queue_name, floor(extract(epoch FROM now() - finished_at) / 60)::int AS ago,
			count(*), count(*) FILTER (WHERE state <> 'SUCCEEDED')
		FROM django_ray_raytaskexecution
		WHERE state IN ('SUCCEEDED', 'FAILED', 'LOST')
		  AND last_heartbeat_at >= now() - make_interval(secs => $1)
		  AND finished_at > now() - make_interval(secs => $2) AND finished_at <= now()
		GROUP BY 1, 2`
	// dashFailuresSQL: recent FAILED and LOST rows per callable, through ray_task_heartbeat_idx.
	dashFailuresSQL = `SELECT callable_path, count(*) FILTER (WHERE state = 'FAILED'), count(*) FILTER (WHERE state = 'LOST')
		FROM django_ray_raytaskexecution
		WHERE state IN ('FAILED', 'LOST')
		  AND last_heartbeat_at >= now() - make_interval(secs => $1)
		  AND finished_at >= now() - make_interval(secs => $2)
		GROUP BY 1`
	// dashStuckSQL: stale and orphaned RUNNING and CANCELLING rows.
	dashStuckSQL = `SELECT
			count(*) FILTER (WHERE t.state = 'RUNNING' AND COALESCE(t.last_heartbeat_at, t.started_at) < now() - make_interval(secs => $2)),
			count(*) FILTER (WHERE t.state = 'RUNNING' AND l.worker_id IS NULL),
			count(*) FILTER (WHERE t.state = 'CANCELLING' AND (l.worker_id IS NULL
			                   OR COALESCE(t.last_heartbeat_at, t.started_at) < now() - make_interval(secs => $2))),
			count(*) FILTER (WHERE t.state = 'CANCELLING' AND l.worker_id IS NULL),
			count(*) FILTER (WHERE t.state = 'RUNNING' AND t.last_heartbeat_at >= now() - make_interval(secs => $3))
		FROM django_ray_raytaskexecution t
		LEFT JOIN django_ray_taskworkerlease l ON l.worker_id = t.claimed_by_worker AND l.is_active
		     AND l.last_heartbeat_at >= now() - make_interval(secs => $1)
		WHERE t.state IN ('RUNNING', 'CANCELLING')`
	// dashLeasesSQL: lease health.
	dashLeasesSQL = `SELECT
			count(*) FILTER (WHERE ` + LiveLeaseSQL + `),
			count(*) FILTER (WHERE is_active AND NOT (` + LiveLeaseSQL + `)),
			count(*) FILTER (WHERE NOT is_active)
		FROM django_ray_taskworkerlease`
	// dashWorkersSQL: active leases with their workers' recent claims, finishes and task
	// heartbeats ($1 lease TTL, $2 stall window, $3 stall window + heartbeat slack): owned rows
	// through the state index, finished rows through ray_task_heartbeat_idx.
	dashWorkersSQL = `WITH own AS (
			SELECT claimed_by_worker AS w, count(*) FILTER (WHERE state = 'RUNNING') AS running,
			       count(*) FILTER (WHERE state = 'CANCELLING') AS cancelling,
			       count(*) FILTER (WHERE state = 'RUNNING' AND last_heartbeat_at >= now() - make_interval(secs => $2)) AS beating,
			       max(started_at) AS last_claim
			FROM django_ray_raytaskexecution
			WHERE state IN ('RUNNING', 'CANCELLING') AND claimed_by_worker IS NOT NULL GROUP BY 1
		), fin AS (
			SELECT claimed_by_worker AS w, max(finished_at) AS last_finish, max(started_at) AS last_claim
			FROM django_ray_raytaskexecution
			WHERE state IN ('SUCCEEDED', 'FAILED', 'LOST', 'CANCELLED') AND claimed_by_worker IS NOT NULL
			  AND last_heartbeat_at >= now() - make_interval(secs => $3)
			  AND finished_at >= now() - make_interval(secs => $2)
			GROUP BY 1
		)
		SELECT l.worker_id, l.hostname, l.pid, l.queue_name, l.started_at, l.last_heartbeat_at, l.is_active, l.stopped_at,
		       l.last_heartbeat_at >= now() - make_interval(secs => $1),
		       COALESCE(o.running, 0), COALESCE(o.cancelling, 0), COALESCE(o.beating, 0),
		       CASE WHEN o.last_claim >= now() - make_interval(secs => $2) THEN o.last_claim END,
		       f.last_claim, f.last_finish
		FROM django_ray_taskworkerlease l LEFT JOIN own o ON o.w = l.worker_id LEFT JOIN fin f ON f.w = l.worker_id
		WHERE l.is_active ORDER BY l.worker_id LIMIT 500`
	// dashReferencesSQL: recent SUCCEEDED rows stored by reference, per scheme, through
	// ray_task_heartbeat_idx ($1 window + slack, $2 window).
	dashReferencesSQL = `SELECT split_part(result_reference, '://', 1), count(*), max(id)
		FROM django_ray_raytaskexecution
		WHERE state = 'SUCCEEDED' AND result_reference IS NOT NULL
		  AND last_heartbeat_at >= now() - make_interval(secs => $1)
		  AND finished_at >= now() - make_interval(secs => $2)
		GROUP BY 1 ORDER BY 2 DESC, 1`
	// dashTotalsSQL: SUCCEEDED and CANCELLED: an index-only scan of the state index.
	dashTotalsSQL = `SELECT state, count(*) FROM django_ray_raytaskexecution
			WHERE state IN ('SUCCEEDED', 'CANCELLED') GROUP BY state`
)

// beginRead starts a read-only REPEATABLE READ transaction when the store runs on a pool or a
// connection, or a plain (sub)transaction when it already runs inside one.
func (s *Store) beginRead(ctx context.Context) (pgx.Tx, error) {
	if b, ok := s.db.(interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	}); ok {
		tx, err := b.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		return tx, translate(err)
	}
	tx, err := s.db.Begin(ctx)
	return tx, translate(err)
}

// Dashboard reads a snapshot: counts per state, per-queue depth, running, failures, oldest
// runnable age and throughput per minute, lease health, stale and orphaned work, and recent
// failures per callable. All its reads run in one read-only transaction, so they agree.
func (s *Store) Dashboard(ctx context.Context, p DashboardParams) (Dashboard, error) {
	p, err := p.withDefaults()
	r := newDashboardRead(p)
	if err != nil {
		return r.d, err
	}
	tx, err := s.beginRead(ctx)
	if err != nil {
		return r.d, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '`+dashboardTimeout+`'`); err != nil {
		return r.d, translate(err)
	}
	for _, step := range []func(context.Context, pgx.Tx) error{
		r.movingStates, r.queuedRows, r.throughput, r.recentFailures, r.stuckWork, r.workers, r.references, r.leases, r.totals,
	} {
		if err := step(ctx, tx); err != nil {
			return r.d, err
		}
	}
	return r.done(), nil
}

// dashboardRead is one Dashboard snapshot being read: each step reads one query into d.
type dashboardRead struct {
	p        DashboardParams
	d        Dashboard
	queues   map[string]*QueueActivity
	retrying map[string]int64 // QUEUED retries per callable, from queuedRows for recentFailures
}

func newDashboardRead(p DashboardParams) *dashboardRead {
	r := &dashboardRead{p: p, d: Dashboard{States: map[TaskState]int64{}, Params: p},
		queues: map[string]*QueueActivity{}, retrying: map[string]int64{}}
	for _, st := range hotStates {
		r.d.States[TaskState(st)] = 0
	}
	return r
}

func (r *dashboardRead) queue(name string) *QueueActivity {
	q := r.queues[name]
	if q == nil {
		q = &QueueActivity{Name: name, Done: make([]int64, r.p.Buckets), Failing: make([]int64, r.p.Buckets)}
		r.queues[name] = q
	}
	return q
}

// movingStates reads the moving states per queue (an index-only scan of ray_task_claimable_idx)
// and the snapshot's time.
func (r *dashboardRead) movingStates(ctx context.Context, tx pgx.Tx) error {
	err := eachRow(ctx, tx, dashHotSQL, func(rows pgx.Rows) error {
		var name, state string
		var n int64
		if err := rows.Scan(&r.d.Now, &name, &state, &n); err != nil {
			return err
		}
		q := r.queue(name)
		r.d.States[TaskState(state)] += n
		switch TaskState(state) {
		case StateQueued:
			q.Queued = n
		case StateRunning:
			q.Running = n
		case StateCancelling:
			q.Cancelling = n
		case StateFailed:
			q.Failed = n
		case StateLost:
			q.Lost = n
		}
		return nil
	}, hotStates)
	if err != nil || !r.d.Now.IsZero() {
		return err
	}
	return translate(tx.QueryRow(ctx, `SELECT now()`).Scan(&r.d.Now))
}

// queuedRows reads the QUEUED rows per queue and callable: deferred, oldest runnable, retries.
func (r *dashboardRead) queuedRows(ctx context.Context, tx pgx.Tx) error {
	return eachRow(ctx, tx, dashQueuedSQL, func(rows pgx.Rows) error {
		var name, callable string
		var deferred, retries, recent int64
		var oldest *time.Time
		if err := rows.Scan(&name, &callable, &deferred, &oldest, &retries, &recent); err != nil {
			return err
		}
		q := r.queue(name)
		q.Deferred += deferred
		q.RecentRetries += recent
		if oldest != nil && (q.OldestQueuedAt == nil || oldest.Before(*q.OldestQueuedAt)) {
			q.OldestQueuedAt = oldest
		}
		if retries > 0 {
			r.retrying[callable] += retries
		}
		return nil
	}, r.p.StallAfter.Seconds())
}

// throughput reads finished rows per queue and minute, through ray_task_heartbeat_idx.
func (r *dashboardRead) throughput(ctx context.Context, tx pgx.Tx) error {
	window := time.Duration(r.p.Buckets) * time.Minute
	return eachRow(ctx, tx, dashThroughputSQL, func(rows pgx.Rows) error {
		var name string
		var ago int
		var done, failing int64
		if err := rows.Scan(&name, &ago, &done, &failing); err != nil {
			return err
		}
		if ago < 0 || ago >= r.p.Buckets {
			return nil
		}
		q := r.queue(name)
		q.Done[r.p.Buckets-1-ago] += done
		q.Failing[r.p.Buckets-1-ago] += failing
		return nil
	}, (window + r.p.HeartbeatSlack).Seconds(), window.Seconds())
}

// recentFailures reads recent FAILED and LOST rows per callable (through
// ray_task_heartbeat_idx) and adds the callables' retries queuedRows counted.
func (r *dashboardRead) recentFailures(ctx context.Context, tx pgx.Tx) error {
	fails := map[string]*CallableFailures{}
	err := eachRow(ctx, tx, dashFailuresSQL, func(rows pgx.Rows) error {
		var c CallableFailures
		if err := rows.Scan(&c.CallablePath, &c.Failed, &c.Lost); err != nil {
			return err
		}
		fails[c.CallablePath] = &c
		return nil
	}, (r.p.FailureWindow + r.p.HeartbeatSlack).Seconds(), r.p.FailureWindow.Seconds())
	if err != nil {
		return err
	}
	for callable, n := range r.retrying {
		c := fails[callable]
		if c == nil {
			c = &CallableFailures{CallablePath: callable}
			fails[callable] = c
		}
		c.Retrying = n
	}
	for _, c := range fails {
		r.d.RecentFailures = append(r.d.RecentFailures, *c)
	}
	sort.Slice(r.d.RecentFailures, func(i, j int) bool {
		a, b := r.d.RecentFailures[i], r.d.RecentFailures[j]
		if a.Total() != b.Total() {
			return a.Total() > b.Total()
		}
		return a.CallablePath < b.CallablePath
	})
	return nil
}

// stuckWork reads the stale and orphaned RUNNING and CANCELLING rows.
func (r *dashboardRead) stuckWork(ctx context.Context, tx pgx.Tx) error {
	d := &r.d
	return translate(tx.QueryRow(ctx, dashStuckSQL, r.p.LeaseTTL.Seconds(), r.p.StuckAfter.Seconds(), r.p.StallAfter.Seconds()).
		Scan(&d.StaleRunning, &d.OrphanedRunning, &d.StuckCancelling, &d.OrphanedCancelling, &d.BeatingRunning))
}

// workers reads the active leases and what their workers did lately.
func (r *dashboardRead) workers(ctx context.Context, tx pgx.Tx) error {
	return eachRow(ctx, tx, dashWorkersSQL, func(rows pgx.Rows) error {
		var w WorkerActivity
		var ownClaim, finClaim *time.Time
		l := &w.Lease
		if err := rows.Scan(&l.WorkerID, &l.Hostname, &l.PID, &l.QueueName, &l.StartedAt, &l.LastHeartbeatAt, &l.IsActive, &l.StoppedAt,
			&w.Live, &w.Running, &w.Cancelling, &w.Beating, &ownClaim, &finClaim, &w.LastFinish); err != nil {
			return err
		}
		w.LastClaim = latest(ownClaim, finClaim)
		r.d.Workers = append(r.d.Workers, w)
		return nil
	}, r.p.LeaseTTL.Seconds(), r.p.StallAfter.Seconds(), (r.p.StallAfter + r.p.HeartbeatSlack).Seconds())
}

// references reads the recent results stored by reference, per scheme.
func (r *dashboardRead) references(ctx context.Context, tx pgx.Tx) error {
	return eachRow(ctx, tx, dashReferencesSQL, func(rows pgx.Rows) error {
		var c ReferenceCount
		if err := rows.Scan(&c.Scheme, &c.Count, &c.LatestID); err != nil {
			return err
		}
		r.d.References = append(r.d.References, c)
		return nil
	}, (r.p.ResultWindow + r.p.HeartbeatSlack).Seconds(), r.p.ResultWindow.Seconds())
}

// leases reads lease health.
func (r *dashboardRead) leases(ctx context.Context, tx pgx.Tx) error {
	l := &r.d.Leases
	return translate(tx.QueryRow(ctx, dashLeasesSQL, r.p.LeaseTTL.Seconds()).Scan(&l.Live, &l.Stale, &l.Inactive))
}

// totals counts the unbounded states, SUCCEEDED and CANCELLED, when the params ask
// (WithTotals): an index-only scan of the state index.
func (r *dashboardRead) totals(ctx context.Context, tx pgx.Tx) error {
	if !r.p.WithTotals {
		return nil
	}
	r.d.States[StateSucceeded], r.d.States[StateCancelled] = 0, 0
	err := eachRow(ctx, tx, dashTotalsSQL, func(rows pgx.Rows) error {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return err
		}
		r.d.States[TaskState(state)] = n
		return nil
	})
	r.d.HasTotals = err == nil
	return err
}

// done returns the snapshot with its queues in name order.
func (r *dashboardRead) done() Dashboard {
	for _, q := range r.queues {
		r.d.Queues = append(r.d.Queues, *q)
	}
	sort.Slice(r.d.Queues, func(i, j int) bool { return r.d.Queues[i].Name < r.d.Queues[j].Name })
	return r.d
}

// latest returns the later of two times, either of which may be nil.
func latest(a, b *time.Time) *time.Time {
	switch {
	case a == nil:
		return b
	case b == nil || a.After(*b):
		return a
	}
	return b
}

// FailureParams select the failures FailureGroups and FailureGroupTaskIDs look at.
type FailureParams struct {
	// Window: only rows finished within it (found through ray_task_heartbeat_idx, see the
	// file comment); 0 means every FAILED and LOST row, a scan of all of them.
	Window         time.Duration
	HeartbeatSlack time.Duration // default DefaultHeartbeatSlack
	Limit          int           // groups (or ids) returned; default 200 (ids: 10,000)
}

func (p FailureParams) where(first int) (string, []any) {
	cond := `state IN ('FAILED', 'LOST')`
	if p.Window <= 0 {
		return cond, nil
	}
	slack := p.HeartbeatSlack
	if slack <= 0 {
		slack = DefaultHeartbeatSlack
	}
	cond += fmt.Sprintf(` AND last_heartbeat_at >= now() - make_interval(secs => $%d)
		AND finished_at >= now() - make_interval(secs => $%d)`, first, first+1)
	return cond, []any{(p.Window + slack).Seconds(), p.Window.Seconds()}
}

// FailureGroup is FAILED and LOST tasks of one callable failing with one exception type.
type FailureGroup struct {
	CallablePath  string     `json:"callable_path"`
	ExceptionType string     `json:"exception_type"`
	Count         int64      `json:"count"`
	Failed        int64      `json:"failed"`
	Lost          int64      `json:"lost"`
	Queues        []string   `json:"queues"`
	LatestID      int64      `json:"latest_id"`
	LatestAt      *time.Time `json:"latest_finished_at"`
	LatestError   string     `json:"latest_error"`
}

// FailureGroups groups FAILED and LOST tasks by callable_path and exception type (see
// ExceptionType), largest group first, each with its latest error message: the retry-storm
// playbook's "dominant failing callable".
func (s *Store) FailureGroups(ctx context.Context, p FailureParams) ([]FailureGroup, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 200
	}
	sql, args := failureGroupsQuery(p, limit)
	return collect(ctx, s.db, sql, func(rows pgx.Rows) (FailureGroup, error) {
		var g FailureGroup
		err := rows.Scan(&g.CallablePath, &g.ExceptionType, &g.Count, &g.Failed, &g.Lost, &g.Queues,
			&g.LatestID, &g.LatestAt, &g.LatestError)
		return g, err
	}, args...)
}

// failureGroupsQuery is FailureGroups' SQL and arguments.
func failureGroupsQuery(p FailureParams, limit int) (string, []any) {
	cond, args := p.where(2)
	return `WITH f AS (
			SELECT id, callable_path, queue_name, state, finished_at, ` + exceptionTypeSQL + ` AS exception_type
			FROM django_ray_raytaskexecution WHERE ` + cond + `
		), g AS (
			SELECT callable_path, exception_type, count(*) AS n,
			       count(*) FILTER (WHERE state = 'FAILED') AS failed, count(*) FILTER (WHERE state = 'LOST') AS lost,
			       array_agg(DISTINCT queue_name ORDER BY queue_name) AS queues, max(id) AS latest_id, max(finished_at) AS latest_at
			FROM f GROUP BY callable_path, exception_type
			ORDER BY n DESC, callable_path, exception_type LIMIT $1
		)
		SELECT g.callable_path, g.exception_type, g.n, g.failed, g.lost, g.queues, g.latest_id, g.latest_at,
		       COALESCE(t.error_message, '')
		FROM g JOIN django_ray_raytaskexecution t ON t.id = g.latest_id
		ORDER BY g.n DESC, g.callable_path, g.exception_type`, append([]any{limit}, args...)
}

// FailureGroupTaskIDs returns the ids of a failure group's FAILED and LOST tasks (newest
// first, at most p.Limit, default 10,000) and how many there are in all.
func (s *Store) FailureGroupTaskIDs(ctx context.Context, callable, exceptionType string, p FailureParams) ([]int64, int64, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 10000
	}
	cond, args := p.where(4)
	return idsAndTotal(ctx, s.db, `SELECT id, count(*) OVER () FROM django_ray_raytaskexecution
		WHERE `+cond+` AND callable_path = $1 AND `+exceptionTypeSQL+` = $2
		ORDER BY id DESC LIMIT $3`, append([]any{callable, exceptionType, limit}, args...)...)
}

// LeaseStatus is how a worker's lease looks.
type LeaseStatus string

// Lease statuses.
const (
	LeaseLive     LeaseStatus = "live"     // active, heartbeat within the TTL
	LeaseStale    LeaseStatus = "stale"    // active, heartbeat older than the TTL
	LeaseInactive LeaseStatus = "inactive" // deactivated or expired
	LeaseMissing  LeaseStatus = "missing"  // tasks name this worker but it has no lease row
)

// WorkerSummary is one worker: its lease (nil when it has none) and the tasks it owns.
type WorkerSummary struct {
	WorkerID   string      `json:"worker_id"`
	Lease      *Lease      `json:"lease"`
	Status     LeaseStatus `json:"status"`
	Running    int64       `json:"running"`
	Cancelling int64       `json:"cancelling"`
}

// workersSQL is Workers' query ($1 lease TTL seconds, $2 limit).
const workersSQL = `WITH owned AS (
			SELECT claimed_by_worker AS worker_id, count(*) FILTER (WHERE state = 'RUNNING') AS running,
			       count(*) FILTER (WHERE state = 'CANCELLING') AS cancelling
			FROM django_ray_raytaskexecution
			WHERE state IN ('RUNNING', 'CANCELLING') AND claimed_by_worker IS NOT NULL
			GROUP BY claimed_by_worker
		)
		SELECT now(), COALESCE(l.worker_id, o.worker_id), l.worker_id IS NOT NULL, l.hostname, l.pid, l.queue_name,
		       l.started_at, l.last_heartbeat_at, l.is_active, l.stopped_at,
		       CASE WHEN l.worker_id IS NULL THEN 'missing'
		            WHEN l.is_active AND l.last_heartbeat_at >= now() - make_interval(secs => $1) THEN 'live'
		            WHEN l.is_active THEN 'stale' ELSE 'inactive' END AS status,
		       COALESCE(o.running, 0), COALESCE(o.cancelling, 0)
		FROM django_ray_taskworkerlease l FULL JOIN owned o ON o.worker_id = l.worker_id
		ORDER BY CASE WHEN l.worker_id IS NULL THEN 0
		              WHEN l.is_active AND l.last_heartbeat_at >= now() - make_interval(secs => $1) THEN 2
		              WHEN l.is_active THEN 1 ELSE 3 END,
		         l.last_heartbeat_at NULLS FIRST, 2
		LIMIT $2`

// Workers returns every lease with the RUNNING and CANCELLING tasks its worker owns, plus
// the owners named by such tasks that have no lease at all. Troubled workers come first
// (missing, then stale), then live, then inactive; within each, oldest heartbeat first.
// It also returns the database clock, for heartbeat ages.
func (s *Store) Workers(ctx context.Context, leaseTTL time.Duration, limit int) (time.Time, []WorkerSummary, error) {
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.db.Query(ctx, workersSQL, leaseTTL.Seconds(), limit)
	if err != nil {
		return time.Time{}, nil, translate(err)
	}
	defer rows.Close()
	var now time.Time
	var out []WorkerSummary
	for rows.Next() {
		var w WorkerSummary
		var has bool
		var l Lease
		var host, queue *string
		var pid *int32
		var started, beat *time.Time
		var active *bool
		var status string
		if err := rows.Scan(&now, &w.WorkerID, &has, &host, &pid, &queue, &started, &beat, &active, &l.StoppedAt,
			&status, &w.Running, &w.Cancelling); err != nil {
			return time.Time{}, nil, translate(err)
		}
		if has {
			l.WorkerID, l.Hostname, l.PID, l.QueueName = w.WorkerID, *host, *pid, *queue
			l.StartedAt, l.LastHeartbeatAt, l.IsActive = *started, *beat, *active
			w.Lease = &l
		}
		w.Status = LeaseStatus(status)
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, nil, translate(err)
	}
	if now.IsZero() {
		var err error
		if now, err = s.Now(ctx); err != nil {
			return time.Time{}, nil, err
		}
	}
	return now, out, nil
}
