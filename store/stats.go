package store

import (
	"context"
	"sort"
	"time"
)

// QueueStats are one queue's figures.
type QueueStats struct {
	Name     string              `json:"name"`
	States   map[TaskState]int64 `json:"states"`
	Depth    int64               `json:"depth"`    // QUEUED rows (django_ray_queue_depth)
	Deferred int64               `json:"deferred"` // QUEUED rows whose run_after is still ahead
	// OldestQueuedAt is when the longest-waiting runnable QUEUED task became runnable (its
	// run_after, or created_at): deferred tasks that are not yet due are not waiting.
	OldestQueuedAt *time.Time `json:"oldest_queued_at"`
	OldestQueued   float64    `json:"oldest_queued_age_seconds"` // 0 when nothing is queued
	Completed1m    int64      `json:"succeeded_last_minute"`
	Failed1m       int64      `json:"failed_last_minute"` // FAILED or LOST in the last minute
}

// LeaseCounts summarises worker leases.
type LeaseCounts struct {
	Live     int64 `json:"live"`     // active with a heartbeat within the TTL
	Stale    int64 `json:"stale"`    // still active but the heartbeat is older than the TTL
	Inactive int64 `json:"inactive"` // deactivated or expired
}

// Stats is a snapshot of the queue.
type Stats struct {
	Now            time.Time           `json:"now"`
	States         map[TaskState]int64 `json:"states"` // every state, zeros included
	Total          int64               `json:"total"`
	Queued         int64               `json:"queued"`
	Running        int64               `json:"running"`
	OldestQueuedAt *time.Time          `json:"oldest_queued_at"`
	OldestQueued   float64             `json:"oldest_queued_age_seconds"`
	Completed1m    int64               `json:"succeeded_last_minute"`
	Failed1m       int64               `json:"failed_last_minute"`
	Queues         []QueueStats        `json:"queues"`
	Leases         LeaseCounts         `json:"leases"`
}

// Stats reads counts per state, depth per queue, the oldest queued task's age, completions
// in the last minute and lease health. One pass over the task table, one over the leases.
func (s *Store) Stats(ctx context.Context, leaseTTL time.Duration) (Stats, error) {
	st := Stats{States: map[TaskState]int64{}}
	for _, state := range AllStates {
		st.States[state] = 0
	}
	rows, err := s.db.Query(ctx, `SELECT now(), queue_name, state, count(*),
			min(COALESCE(run_after, created_at)) FILTER (WHERE state = 'QUEUED' AND (run_after IS NULL OR run_after <= now())),
			count(*) FILTER (WHERE state = 'QUEUED' AND run_after > now()),
			count(*) FILTER (WHERE finished_at >= now() - interval '1 minute' AND state = 'SUCCEEDED'),
			count(*) FILTER (WHERE finished_at >= now() - interval '1 minute' AND state IN ('FAILED', 'LOST'))
		FROM django_ray_raytaskexecution GROUP BY queue_name, state`)
	if err != nil {
		return st, translate(err)
	}
	queues := map[string]*QueueStats{}
	for rows.Next() {
		var queue, state string
		var n, deferred, ok1m, failed1m int64
		var oldest *time.Time
		if err := rows.Scan(&st.Now, &queue, &state, &n, &oldest, &deferred, &ok1m, &failed1m); err != nil {
			rows.Close()
			return st, translate(err)
		}
		q := queues[queue]
		if q == nil {
			q = &QueueStats{Name: queue, States: map[TaskState]int64{}}
			queues[queue] = q
		}
		ts := TaskState(state)
		q.States[ts] += n
		st.States[ts] += n
		st.Total += n
		q.Deferred += deferred
		q.Completed1m += ok1m
		q.Failed1m += failed1m
		st.Completed1m += ok1m
		st.Failed1m += failed1m
		if ts == StateQueued {
			q.Depth += n
			q.OldestQueuedAt = oldest
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, translate(err)
	}
	if st.Now.IsZero() {
		if st.Now, err = s.Now(ctx); err != nil {
			return st, err
		}
	}
	st.Queued, st.Running = st.States[StateQueued], st.States[StateRunning]
	for _, q := range queues {
		if q.OldestQueuedAt != nil {
			q.OldestQueued = st.Now.Sub(*q.OldestQueuedAt).Seconds()
			if st.OldestQueuedAt == nil || q.OldestQueuedAt.Before(*st.OldestQueuedAt) {
				st.OldestQueuedAt = q.OldestQueuedAt
			}
		}
		st.Queues = append(st.Queues, *q)
	}
	if st.OldestQueuedAt != nil {
		st.OldestQueued = st.Now.Sub(*st.OldestQueuedAt).Seconds()
	}
	sort.Slice(st.Queues, func(i, j int) bool { return st.Queues[i].Name < st.Queues[j].Name })

	err = s.db.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE `+LiveLeaseSQL+`),
			count(*) FILTER (WHERE is_active AND NOT (`+LiveLeaseSQL+`)),
			count(*) FILTER (WHERE NOT is_active)
		FROM django_ray_taskworkerlease`, leaseTTL.Seconds()).Scan(&st.Leases.Live, &st.Leases.Stale, &st.Leases.Inactive)
	return st, translate(err)
}
