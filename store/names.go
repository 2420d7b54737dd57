package store

import (
	"context"
	"fmt"
)

// DistinctQueues returns up to limit queue names that tasks use, in order. It reads the
// queue_name index (one index probe per name), so it stays cheap on any table size.
func (s *Store) DistinctQueues(ctx context.Context, limit int) ([]string, error) {
	return collectColumn[string](s.db.Query(ctx, `WITH RECURSIVE q(name) AS (
			(SELECT queue_name FROM django_ray_raytaskexecution ORDER BY queue_name LIMIT 1)
			UNION ALL
			SELECT (SELECT queue_name FROM django_ray_raytaskexecution WHERE queue_name > q.name ORDER BY queue_name LIMIT 1)
			FROM q WHERE q.name IS NOT NULL
		)
		SELECT name FROM q WHERE name IS NOT NULL LIMIT $1`, limit))
}

// RecentCallables returns up to limit distinct callable paths among the newest scan tasks
// (in states, when given), most frequent first. callable_path has no index, so the scan
// bound keeps the query's cost fixed whatever the table's size.
func (s *Store) RecentCallables(ctx context.Context, states []TaskState, scan, limit int) ([]string, error) {
	return s.recentDistinct(ctx, "callable_path", states, scan, limit)
}

// RecentWorkers is RecentCallables for claimed_by_worker, plus the workers of the lease table.
func (s *Store) RecentWorkers(ctx context.Context, states []TaskState, scan, limit int) ([]string, error) {
	ss := stateStrings(states)
	return collectColumn[string](s.db.Query(ctx, `SELECT w FROM (
			SELECT claimed_by_worker AS w FROM (
				SELECT claimed_by_worker FROM django_ray_raytaskexecution
				WHERE claimed_by_worker IS NOT NULL AND (cardinality($1::text[]) = 0 OR state = ANY($1))
				ORDER BY id DESC LIMIT $2) x
			UNION
			SELECT worker_id FROM (SELECT worker_id FROM django_ray_taskworkerlease ORDER BY last_heartbeat_at DESC LIMIT $2) l
		) u ORDER BY w LIMIT $3`, ss, scan, limit))
}

func (s *Store) recentDistinct(ctx context.Context, column string, states []TaskState, scan, limit int) ([]string, error) {
	if column != "callable_path" { // only fixed column names reach the SQL
		return nil, fmt.Errorf("%w: no distinct list of %q", ErrInvalid, column)
	}
	return collectColumn[string](s.db.Query(ctx, `SELECT `+column+` FROM (
			SELECT `+column+` FROM django_ray_raytaskexecution
			WHERE cardinality($1::text[]) = 0 OR state = ANY($1)
			ORDER BY id DESC LIMIT $2) x
		GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT $3`, stateStrings(states), scan, limit))
}

func stateStrings(states []TaskState) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}
