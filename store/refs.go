package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The rows a bulk operation (requeue, cancel) selects, and what they hold now.

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
	return collect(ctx, s.db, sql, func(rows pgx.Rows) (TaskRef, error) {
		var r TaskRef
		var st string
		err := rows.Scan(&r.ID, &st)
		r.State = TaskState(st)
		return r, err
	}, args...)
}

// RayJobIDs returns, for the rows among ids whose ray_job_id starts with prefix, that id (in
// row id order): the rows that may have a Ray job still running for them.
func (s *Store) RayJobIDs(ctx context.Context, ids []int64, prefix string) (map[int64]string, error) {
	out := map[int64]string{}
	if len(ids) == 0 {
		return out, nil
	}
	err := eachRow(ctx, s.db, `SELECT id, ray_job_id FROM django_ray_raytaskexecution
		WHERE id = ANY($1) AND ray_job_id LIKE $2 ORDER BY id`, func(rows pgx.Rows) error {
		var id int64
		var job string
		if err := rows.Scan(&id, &job); err != nil {
			return err
		}
		out[id] = job
		return nil
	}, ids, escapeLike(prefix)+"%")
	if err != nil {
		return nil, err
	}
	return out, nil
}
