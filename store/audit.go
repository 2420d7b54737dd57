package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrNoAudit: the rayctl_audit tables (the optional migration 0002) do not exist.
var ErrNoAudit = errors.New("the rayctl_audit table does not exist (the audit trail is optional: `rayctl migrate up --audit` creates it)")

// AuditEntry is one rayctl_audit row: a bulk operator action.
type AuditEntry struct {
	ID         int64           `json:"id"`
	Action     string          `json:"action"`
	Actor      string          `json:"actor"`
	Reason     *string         `json:"reason"`
	Selection  json.RawMessage `json:"selection"`
	Options    json.RawMessage `json:"options"`
	Matched    int64           `json:"matched"`
	Selected   int64           `json:"selected"`
	Changed    int64           `json:"changed"`
	Skipped    int64           `json:"skipped"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
	Error      *string         `json:"error"`
}

// AuditChange is one task an audited action changed.
type AuditChange struct {
	ID   int64     `json:"id"`
	From TaskState `json:"from_state"`
	To   TaskState `json:"to_state"`
}

// AuditAvailable reports whether the audit tables exist.
func (s *Store) AuditAvailable(ctx context.Context) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT to_regclass('rayctl_audit') IS NOT NULL AND to_regclass('rayctl_audit_task') IS NOT NULL`).Scan(&ok)
	return ok, translate(err)
}

// StartAudit records the start of an action and returns its id. Selection and Options must
// be JSON objects.
func (s *Store) StartAudit(ctx context.Context, e AuditEntry) (int64, error) {
	var id int64
	err := s.db.QueryRow(ctx, `INSERT INTO rayctl_audit (action, actor, reason, selection, options, matched, selected)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		e.Action, e.Actor, storable(e.Reason), string(e.Selection), string(e.Options), e.Matched, e.Selected).Scan(&id)
	return id, auditErr(err)
}

// RecordAuditChanges adds the tasks an action changed. Call it in the transaction that made
// the changes.
func (s *Store) RecordAuditChanges(ctx context.Context, auditID int64, changes []AuditChange) error {
	if len(changes) == 0 {
		return nil
	}
	ids, from, to := make([]int64, len(changes)), make([]string, len(changes)), make([]string, len(changes))
	for i, c := range changes {
		ids[i], from[i], to[i] = c.ID, string(c.From), string(c.To)
	}
	_, err := s.db.Exec(ctx, `INSERT INTO rayctl_audit_task (audit_id, execution_id, from_state, to_state)
		SELECT $1, u.id, u.f, u.t FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(id, f, t)`, auditID, ids, from, to)
	return auditErr(err)
}

// FinishAudit records an action's outcome. errMsg is nil when it completed.
func (s *Store) FinishAudit(ctx context.Context, auditID, changed, skipped int64, errMsg *string) error {
	tag, err := s.db.Exec(ctx, `UPDATE rayctl_audit SET finished_at = now(), changed = $2, skipped = $3, error = $4
		WHERE id = $1`, auditID, changed, skipped, storable(errMsg))
	if err != nil {
		return auditErr(err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("audit entry %d: %w", auditID, ErrNotFound)
	}
	return nil
}

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	TaskID int64  // entries that changed this task (row id)
	Action string // requeue, cancel
	Limit  int    // default 50
}

const auditColumns = `a.id, a.action, a.actor, a.reason, a.selection, a.options, a.matched, a.selected,
	a.changed, a.skipped, a.started_at, a.finished_at, a.error`

// ListAudit returns audit entries, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	rows, err := s.db.Query(ctx, `SELECT `+auditColumns+` FROM rayctl_audit a
		WHERE ($1::bigint = 0 OR EXISTS (SELECT 1 FROM rayctl_audit_task x WHERE x.audit_id = a.id AND x.execution_id = $1))
		  AND ($2::text = '' OR a.action = $2)
		ORDER BY a.id DESC LIMIT $3`, f.TaskID, f.Action, f.Limit)
	if err != nil {
		return nil, auditErr(err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var sel, opts []byte
		if err := rows.Scan(&e.ID, &e.Action, &e.Actor, &e.Reason, &sel, &opts, &e.Matched, &e.Selected,
			&e.Changed, &e.Skipped, &e.StartedAt, &e.FinishedAt, &e.Error); err != nil {
			return nil, auditErr(err)
		}
		e.Selection, e.Options = sel, opts
		out = append(out, e)
	}
	return out, auditErr(rows.Err())
}

// GetAudit returns one audit entry, or ErrNotFound.
func (s *Store) GetAudit(ctx context.Context, id int64) (AuditEntry, error) {
	var e AuditEntry
	var sel, opts []byte
	err := s.db.QueryRow(ctx, `SELECT `+auditColumns+` FROM rayctl_audit a WHERE a.id = $1`, id).Scan(&e.ID, &e.Action, &e.Actor,
		&e.Reason, &sel, &opts, &e.Matched, &e.Selected, &e.Changed, &e.Skipped, &e.StartedAt, &e.FinishedAt, &e.Error)
	e.Selection, e.Options = sel, opts
	return e, auditErr(err)
}

// AuditChanges returns the tasks an audited action changed, in id order.
func (s *Store) AuditChanges(ctx context.Context, auditID int64) ([]AuditChange, error) {
	rows, err := s.db.Query(ctx, `SELECT execution_id, from_state, to_state FROM rayctl_audit_task
		WHERE audit_id = $1 ORDER BY execution_id`, auditID)
	if err != nil {
		return nil, auditErr(err)
	}
	defer rows.Close()
	var out []AuditChange
	for rows.Next() {
		var c AuditChange
		var from, to string
		if err := rows.Scan(&c.ID, &from, &to); err != nil {
			return nil, auditErr(err)
		}
		c.From, c.To = TaskState(from), TaskState(to)
		out = append(out, c)
	}
	return out, auditErr(rows.Err())
}

// auditErr is translate, but a missing table means the audit migration, not the django-ray one.
func auditErr(err error) error {
	err = translate(err)
	if errors.Is(err, ErrNoSchema) {
		return ErrNoAudit
	}
	return err
}
