package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// TaskState is a django-ray 0.2.0 task state, stored as varchar(20).
type TaskState string

// The seven django-ray 0.2.0 states.
const (
	StateQueued     TaskState = "QUEUED"
	StateRunning    TaskState = "RUNNING"
	StateSucceeded  TaskState = "SUCCEEDED"
	StateFailed     TaskState = "FAILED"
	StateCancelled  TaskState = "CANCELLED"
	StateCancelling TaskState = "CANCELLING"
	StateLost       TaskState = "LOST"
)

// AllStates lists the states in lifecycle order.
var AllStates = []TaskState{StateQueued, StateRunning, StateSucceeded, StateFailed, StateCancelled, StateCancelling, StateLost}

// ParseState accepts a state name in any case.
func ParseState(s string) (TaskState, error) {
	st := TaskState(strings.ToUpper(strings.TrimSpace(s)))
	for _, known := range AllStates {
		if st == known {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown state %q (want one of %s)", s, strings.Join(stateNames(), ", "))
}

func stateNames() []string {
	out := make([]string, len(AllStates))
	for i, s := range AllStates {
		out[i] = string(s)
	}
	return out
}

// Terminal reports whether no worker will move the task on by itself.
func (s TaskState) Terminal() bool {
	switch s {
	case StateSucceeded, StateFailed, StateCancelled, StateLost:
		return true
	}
	return false
}

// Task is one django_ray_raytaskexecution row. Nullable columns are pointers.
type Task struct {
	ID              int64      `json:"id"`
	TaskID          string     `json:"task_id"`
	CallablePath    string     `json:"callable_path"`
	QueueName       string     `json:"queue_name"`
	State           TaskState  `json:"state"`
	AttemptNumber   int32      `json:"attempt_number"`
	RayJobID        *string    `json:"ray_job_id"`
	RayAddress      *string    `json:"ray_address"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at"`
	LastHeartbeatAt *time.Time `json:"last_heartbeat_at"`
	RunAfter        *time.Time `json:"run_after"`
	TimeoutSeconds  *int32     `json:"timeout_seconds"`
	ClaimedByWorker *string    `json:"claimed_by_worker"`
	ArgsJSON        string     `json:"args_json"`
	KwargsJSON      string     `json:"kwargs_json"`
	ResultData      *string    `json:"result_data"`
	ResultReference *string    `json:"result_reference"`
	ErrorMessage    *string    `json:"error_message"`
	ErrorTraceback  *string    `json:"error_traceback"`
}

// Guard returns the fence for writes by whoever holds this row as read: they apply only while
// the row is in the same state, owned by the same worker, under the same Ray job id and claim.
func (t Task) Guard() Guard {
	return Guard{ID: t.ID, State: t.State, WorkerID: t.ClaimedByWorker, JobID: t.RayJobID, StartedAt: t.StartedAt}
}

// Guard is what a writer saw of a row. A conditional write applies only if the row still
// matches every field (NULLs included), so a late completion never overwrites a row that was
// re-queued, adopted, cancelled or re-claimed in the meantime.
type Guard struct {
	ID        int64
	State     TaskState
	WorkerID  *string
	JobID     *string
	StartedAt *time.Time
}

// guardSQL is the WHERE clause for a Guard bound at parameters $1..$5.
const guardSQL = `id = $1 AND state = $2 AND claimed_by_worker IS NOT DISTINCT FROM $3
	AND ray_job_id IS NOT DISTINCT FROM $4 AND started_at IS NOT DISTINCT FROM $5`

func (g Guard) args() []any {
	return []any{g.ID, string(g.State), g.WorkerID, g.JobID, g.StartedAt}
}

// taskColumns is the explicit column list: extra columns from later django-ray versions are
// never read, so they are tolerated.
const taskColumns = `id, task_id, callable_path, queue_name, state, attempt_number, ray_job_id, ray_address,
	created_at, started_at, finished_at, last_heartbeat_at, run_after, timeout_seconds, claimed_by_worker,
	args_json, kwargs_json, result_data, result_reference, error_message, error_traceback`

// prefixed returns taskColumns qualified with a table alias.
func prefixed(alias string) string {
	cols := strings.Split(taskColumns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// taskFields are the scan targets of taskColumns: the row into t, its state into state.
func taskFields(t *Task, state *string) []any {
	return []any{&t.ID, &t.TaskID, &t.CallablePath, &t.QueueName, state, &t.AttemptNumber, &t.RayJobID, &t.RayAddress,
		&t.CreatedAt, &t.StartedAt, &t.FinishedAt, &t.LastHeartbeatAt, &t.RunAfter, &t.TimeoutSeconds, &t.ClaimedByWorker,
		&t.ArgsJSON, &t.KwargsJSON, &t.ResultData, &t.ResultReference, &t.ErrorMessage, &t.ErrorTraceback}
}

func scanTask(row pgx.Row) (Task, error) {
	var t Task
	var state string
	err := row.Scan(taskFields(&t, &state)...)
	t.State = TaskState(state)
	return t, err
}

// eachRow runs a query and calls scan for each row it returns.
func eachRow(ctx context.Context, db DBTX, sql string, scan func(pgx.Rows) error, args ...any) error {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return translate(err)
		}
	}
	return translate(rows.Err())
}

// collect runs a query and returns what scan makes of each row.
func collect[T any](ctx context.Context, db DBTX, sql string, scan func(pgx.Rows) (T, error), args ...any) ([]T, error) {
	var out []T
	err := eachRow(ctx, db, sql, func(rows pgx.Rows) error {
		v, err := scan(rows)
		if err == nil {
			out = append(out, v)
		}
		return err
	}, args...)
	return out, err
}

// idsAndTotal runs a query of (id, count(*) OVER ()) rows: the ids, and how many match in all.
func idsAndTotal(ctx context.Context, db DBTX, sql string, args ...any) ([]int64, int64, error) {
	var ids []int64
	var total int64
	err := eachRow(ctx, db, sql, func(rows pgx.Rows) error {
		var id int64
		if err := rows.Scan(&id, &total); err != nil {
			return err
		}
		ids = append(ids, id)
		return nil
	}, args...)
	if err != nil {
		return nil, 0, err
	}
	return ids, total, nil
}

// collectColumn reads a one-column result (RETURNING id, ...) into a slice.
func collectColumn[T any](rows pgx.Rows, err error) ([]T, error) {
	if err != nil {
		return nil, translate(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[T])
	return out, translate(err)
}

func collectTasks(rows pgx.Rows, err error) ([]Task, error) {
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, translate(err)
		}
		out = append(out, t)
	}
	return out, translate(rows.Err())
}

// QueuePriority is django-ray 0.2.0's claim priority by queue name: lower runs first.
func QueuePriority(queue string) int {
	switch queue {
	case "high-priority", "urgent":
		return 0
	case "low-priority", "background", "batch":
		return 2
	}
	return 1
}

// prioritySQL is QueuePriority in SQL.
const prioritySQL = `CASE queue_name WHEN 'high-priority' THEN 0 WHEN 'urgent' THEN 0
	WHEN 'low-priority' THEN 2 WHEN 'background' THEN 2 WHEN 'batch' THEN 2 ELSE 1 END`
