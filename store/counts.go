package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Grouped counts: per callable, queue, state, worker, error or exception (CountBy), and per
// queue and state (the runbook's gauges).

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
	return collect(ctx, s.db, fmt.Sprintf(`SELECT %s AS k, count(*) AS n FROM django_ray_raytaskexecution
		WHERE %s GROUP BY k ORDER BY n DESC, k LIMIT $%d`, expr, where, len(args)), func(rows pgx.Rows) (GroupCount, error) {
		var g GroupCount
		err := rows.Scan(&g.Key, &g.Count)
		return g, err
	}, args...)
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
	return collect(ctx, s.db, `SELECT queue_name, state, count(*) FROM django_ray_raytaskexecution
		GROUP BY queue_name, state ORDER BY queue_name, state`, func(rows pgx.Rows) (QueueStateCount, error) {
		var c QueueStateCount
		var st string
		err := rows.Scan(&c.Queue, &st, &c.Count)
		c.State = TaskState(st)
		return c, err
	})
}

// Gauges are the runbook's /api/metrics figures (django-ray's example project), which package
// gauges exposes: tasks per state (all seven, zeros included), QUEUED and RUNNING, and QUEUED
// per queue (queues with any).
type Gauges struct {
	States     map[TaskState]int64 `json:"states"`
	Queued     int64               `json:"queued"`
	Running    int64               `json:"running"`
	QueueDepth map[string]int64    `json:"queue_depth"`
}

// Gauges reads the gauges in one grouped query (CountByQueueState).
func (s *Store) Gauges(ctx context.Context) (Gauges, error) {
	g := Gauges{States: map[TaskState]int64{}, QueueDepth: map[string]int64{}}
	for _, st := range AllStates {
		g.States[st] = 0
	}
	counts, err := s.CountByQueueState(ctx)
	if err != nil {
		return g, err
	}
	for _, c := range counts {
		g.States[c.State] += c.Count
		if c.State == StateQueued {
			g.QueueDepth[c.Queue] += c.Count
		}
	}
	g.Queued, g.Running = g.States[StateQueued], g.States[StateRunning]
	return g, nil
}
