package migrations

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OptionalIndex is one of rayctl's own indexes on django-ray's task table. None is required:
// django-ray 0.2.0's schema has no index matching its claim order, so on a large backlog every
// claim sorts every QUEUED row; these indexes make the hot queries cheap. They are created
// only on request (rayctl migrate indexes --apply), CONCURRENTLY so the table stays writable,
// and migrate up/validate neither create nor require them, so a Django-created database is
// never changed unasked.
type OptionalIndex struct {
	Name    string `json:"name"`
	Purpose string `json:"purpose"`
	// On is everything after "ON": table, expressions, predicate. The claim index's expressions
	// must match store.Claim's ORDER BY exactly (a test checks the planner uses it).
	On string `json:"definition"`
}

// OptionalIndexes lists rayctl's optional indexes.
func OptionalIndexes() []OptionalIndex {
	return []OptionalIndex{{
		Name: "rayctl_claim_order_idx",
		Purpose: "claims in django-ray 0.2.0 order read only the rows they take instead of sorting " +
			"every QUEUED row (773 ms -> 0.2 ms per 50-row claim at 1,000,000 queued; see docs/benchmarks.md)",
		On: `django_ray_raytaskexecution ((run_after IS NOT NULL), (CASE queue_name WHEN 'high-priority' THEN 0 WHEN 'urgent' THEN 0
	WHEN 'low-priority' THEN 2 WHEN 'background' THEN 2 WHEN 'batch' THEN 2 ELSE 1 END), created_at, id) WHERE state = 'QUEUED'`,
	}}
}

// CreateSQL is the statement that builds the index without blocking writes.
func (o OptionalIndex) CreateSQL() string {
	return fmt.Sprintf("CREATE INDEX CONCURRENTLY IF NOT EXISTS %s ON %s", o.Name, o.On)
}

// DropSQL removes it without blocking writes.
func (o OptionalIndex) DropSQL() string {
	return fmt.Sprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", o.Name)
}

// IndexState is an optional index and whether the database has it.
type IndexState struct {
	OptionalIndex
	Present bool  `json:"present"`
	Valid   bool  `json:"valid"` // false: a CONCURRENTLY build failed half-way; --apply rebuilds it
	Bytes   int64 `json:"bytes"`
}

// InspectOptional reports which optional indexes exist in the current schema.
func InspectOptional(ctx context.Context, pool *pgxpool.Pool) ([]IndexState, error) {
	var out []IndexState
	for _, o := range OptionalIndexes() {
		st := IndexState{OptionalIndex: o}
		err := pool.QueryRow(ctx, `SELECT true, i.indisvalid, pg_relation_size(c.oid)
			FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
			WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace`, o.Name).
			Scan(&st.Present, &st.Valid, &st.Bytes)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("inspect index %s: %w", o.Name, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// CreateOptional builds one optional index CONCURRENTLY (outside a transaction), first
// dropping an invalid leftover of an interrupted build.
func CreateOptional(ctx context.Context, pool *pgxpool.Pool, st IndexState) error {
	if st.Present && !st.Valid {
		if _, err := pool.Exec(ctx, st.DropSQL()); err != nil {
			return fmt.Errorf("drop invalid index %s: %w", st.Name, err)
		}
	}
	if _, err := pool.Exec(ctx, st.CreateSQL()); err != nil {
		return fmt.Errorf("create index %s: %w", st.Name, err)
	}
	return nil
}

// DropOptional removes one optional index CONCURRENTLY.
func DropOptional(ctx context.Context, pool *pgxpool.Pool, o OptionalIndex) error {
	if _, err := pool.Exec(ctx, o.DropSQL()); err != nil {
		return fmt.Errorf("drop index %s: %w", o.Name, err)
	}
	return nil
}
