// Package tui is `rayctl top`: a live bubbletea dashboard of a django-ray queue for incidents.
//
// It reads through Source (implemented by *store.Store) and writes only through Actions,
// which cmd/rayctl implements with the same recovery operations as the CLI: the TUI has no
// SQL of its own. Update never does I/O: every read and write runs in a tea.Cmd that returns
// a typed message, and logging happens there too.
package tui

import (
	"context"
	"time"

	"github.com/rayctl/rayctl/store"
)

// Source is what the TUI reads. *store.Store implements it.
type Source interface {
	Dashboard(ctx context.Context, p store.DashboardParams) (store.Dashboard, error)
	ListTasks(ctx context.Context, f store.TaskFilter) ([]store.Task, error)
	GetTask(ctx context.Context, id int64) (store.Task, error)
	FailureGroups(ctx context.Context, p store.FailureParams) ([]store.FailureGroup, error)
	FailureGroupTaskIDs(ctx context.Context, callable, exceptionType string, p store.FailureParams) ([]int64, int64, error)
	Workers(ctx context.Context, leaseTTL time.Duration, limit int) (time.Time, []store.WorkerSummary, error)
}

var _ Source = (*store.Store)(nil)

// Actions are the writes the TUI offers. cmd/rayctl implements them with the recovery
// package, the same code `rayctl requeue` and `rayctl cancel` run, so a TUI action and a
// runbook command behave alike: guarded (a row is changed only while it is still in a state
// the action applies to), batched, and reported.
//
// ids are what the operator chose: the row under the cursor, the marked rows, or a failure
// group's tasks. The TUI always calls the Preview method first and shows its counts in a
// confirmation dialog; the write runs only after the operator confirms.
type Actions interface {
	// PreviewRequeue counts what Requeue would do now, without writing.
	PreviewRequeue(ctx context.Context, ids []int64) (Preview, error)
	// Requeue moves the chosen tasks that are still FAILED, LOST or CANCELLED back to QUEUED.
	Requeue(ctx context.Context, ids []int64) (Outcome, error)
	// PreviewCancel counts what Cancel would do now, without writing.
	PreviewCancel(ctx context.Context, ids []int64) (Preview, error)
	// Cancel cancels the chosen tasks that are still QUEUED (to CANCELLED) or RUNNING (to
	// CANCELLING, for their worker to stop).
	Cancel(ctx context.Context, ids []int64) (Outcome, error)
}

// Preview is what an action would do.
type Preview struct {
	Chosen   int    // ids asked about
	Eligible int    // rows the action would change now
	Note     string // one line on the rest, e.g. "2 are RUNNING and will be left alone"
}

// Outcome is what an action did.
type Outcome struct {
	Applied int    // rows changed
	Skipped int    // rows left alone: gone, or in a state the action does not apply to (maybe changed meanwhile)
	Detail  string // one line, e.g. "2 CANCELLED, 1 CANCELLING"
}
