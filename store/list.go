package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// TaskFilter selects tasks. Empty fields do not filter. Every value is passed as a query
// parameter, never spliced into SQL.
type TaskFilter struct {
	IDs           []int64
	States        []TaskState
	Queues        []string
	Callable      string        // exact dotted path, or a glob with * and ?
	ErrorContains string        // case-insensitive substring of error_message
	OlderThan     time.Duration // last activity (finished, started or created) older than this
	NewerThan     time.Duration // last activity within this (recent failures, for triage)
	Worker        string        // claimed_by_worker
	TaskID        string        // the Django Tasks result id (uuid)
	Search        string        // case-insensitive substring of callable, queue, worker, job id or error
	// SearchNot inverts Search: tasks where none of those columns contains it.
	SearchNot bool
	// Regex is a case-insensitive POSIX regular expression (PostgreSQL's ~*) matched against
	// the same columns as Search; RegexNot inverts it.
	Regex    string
	RegexNot bool
	// Exception is the failure's exception type as ExceptionType derives it: exact, a name
	// without a dot also as builtins.<name> (ValueError), or a glob with * and ?.
	Exception string
	// ResultReference: only tasks whose result is a reference (result_reference set:
	// oversize://, resultfs://, s3://, gs://) rather than inline.
	ResultReference bool

	Limit    int   // 0 means no limit
	BeforeID int64 // keyset paging: only ids below this (results are newest first)
}

// Empty reports whether the filter selects everything.
func (f TaskFilter) Empty() bool {
	return len(f.IDs) == 0 && len(f.States) == 0 && len(f.Queues) == 0 && f.Callable == "" &&
		f.ErrorContains == "" && f.OlderThan == 0 && f.NewerThan == 0 && f.Worker == "" && f.TaskID == "" && f.Search == "" && f.Regex == "" &&
		f.Exception == "" && !f.ResultReference
}

// where builds the WHERE clause and its arguments.
func (f TaskFilter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.ReplaceAll(cond, "$?", fmt.Sprintf("$%d", len(args))))
	}
	if len(f.IDs) > 0 {
		add("id = ANY($?)", f.IDs)
	}
	if len(f.States) > 0 {
		ss := make([]string, len(f.States))
		for i, s := range f.States {
			ss[i] = string(s)
		}
		add("state = ANY($?)", ss)
	}
	if len(f.Queues) > 0 {
		add("queue_name = ANY($?)", f.Queues)
	}
	if f.Callable != "" {
		if strings.ContainsAny(f.Callable, "*?") {
			add("callable_path LIKE $?", GlobToLike(f.Callable))
		} else {
			add("callable_path = $?", f.Callable)
		}
	}
	if f.ErrorContains != "" {
		add("error_message ILIKE $?", "%"+escapeLike(f.ErrorContains)+"%")
	}
	if f.OlderThan > 0 {
		add("COALESCE(finished_at, started_at, created_at) < now() - make_interval(secs => $?)", f.OlderThan.Seconds())
	}
	if f.NewerThan > 0 {
		add("COALESCE(finished_at, started_at, created_at) >= now() - make_interval(secs => $?)", f.NewerThan.Seconds())
	}
	if f.Worker != "" {
		add("claimed_by_worker = $?", f.Worker)
	}
	if f.TaskID != "" {
		add("task_id = $?", f.TaskID)
	}
	if f.Search != "" {
		// every $? in one condition refers to the same argument
		cond := `(callable_path ILIKE $? OR queue_name ILIKE $? OR claimed_by_worker ILIKE $?
			OR ray_job_id ILIKE $? OR error_message ILIKE $?)`
		if f.SearchNot {
			cond = `NOT (callable_path ILIKE $? OR queue_name ILIKE $? OR COALESCE(claimed_by_worker, '') ILIKE $?
			OR COALESCE(ray_job_id, '') ILIKE $? OR COALESCE(error_message, '') ILIKE $?)`
		}
		add(cond, "%"+escapeLike(f.Search)+"%")
	}
	if f.Regex != "" {
		cond := `(callable_path ~* $? OR queue_name ~* $? OR COALESCE(claimed_by_worker, '') ~* $?
			OR COALESCE(ray_job_id, '') ~* $? OR COALESCE(error_message, '') ~* $?)`
		if f.RegexNot {
			cond = "NOT " + cond
		}
		add(cond, f.Regex)
	}
	if f.Exception != "" {
		add(exceptionMatch(f.Exception))
	}
	if f.ResultReference {
		conds = append(conds, "result_reference IS NOT NULL")
	}
	if f.BeforeID > 0 {
		add("id < $?", f.BeforeID)
	}
	if len(conds) == 0 {
		return "TRUE", args
	}
	return strings.Join(conds, " AND "), args
}

// GlobToLike turns a shell-style glob (* and ?) into a LIKE pattern, escaping LIKE's own
// metacharacters.
func GlobToLike(glob string) string {
	var b strings.Builder
	for _, r := range glob {
		switch r {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// GetTask returns one task or ErrNotFound.
func (s *Store) GetTask(ctx context.Context, id int64) (Task, error) {
	t, err := scanTask(s.db.QueryRow(ctx, `SELECT `+taskColumns+` FROM django_ray_raytaskexecution WHERE id = $1`, id))
	return t, translate(err)
}

// ListTasks returns tasks matching f, newest (highest id) first.
func (s *Store) ListTasks(ctx context.Context, f TaskFilter) ([]Task, error) {
	where, args := f.where()
	sql := `SELECT ` + taskColumns + ` FROM django_ray_raytaskexecution WHERE ` + where + ` ORDER BY id DESC`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		sql += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	return collectTasks(s.db.Query(ctx, sql, args...))
}

// ListTaskIDs returns the ids of the tasks matching f, newest first, at most f.Limit (0: no
// limit), and how many match in all.
func (s *Store) ListTaskIDs(ctx context.Context, f TaskFilter) ([]int64, int64, error) {
	where, args := f.where()
	sql := `SELECT id, count(*) OVER () FROM django_ray_raytaskexecution WHERE ` + where + ` ORDER BY id DESC`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		sql += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	return idsAndTotal(ctx, s.db, sql, args...)
}

// CountTasks counts tasks matching f (Limit and BeforeID still apply to BeforeID only).
func (s *Store) CountTasks(ctx context.Context, f TaskFilter) (int64, error) {
	where, args := f.where()
	var n int64
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM django_ray_raytaskexecution WHERE `+where, args...).Scan(&n)
	return n, translate(err)
}
