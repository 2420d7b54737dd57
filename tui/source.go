// Package tui is `rayctl top`: a live bubbletea dashboard of a django-ray queue for incidents.
//
// It reads through Source (implemented by *store.Store) and writes only through Actions,
// which cmd/rayctl implements with the same recovery operations as the CLI: the TUI has no
// SQL of its own. The runbook signals it shows are recovery.Evaluate's, the definitions
// `rayctl doctor` checks. Update never does I/O: every read and write runs in a tea.Cmd that
// returns a typed message, and logging happens there too.
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
	ListTaskIDs(ctx context.Context, f store.TaskFilter) ([]int64, int64, error)
	GetTask(ctx context.Context, id int64) (store.Task, error)
	FailureGroups(ctx context.Context, p store.FailureParams) ([]store.FailureGroup, error)
	FailureGroupTaskIDs(ctx context.Context, callable, exceptionType string, p store.FailureParams) ([]int64, int64, error)
	Workers(ctx context.Context, leaseTTL time.Duration, limit int) (time.Time, []store.WorkerSummary, error)
}

var _ Source = (*store.Store)(nil)

// ActionKind is a write the TUI offers.
type ActionKind int

// The writes, each the CLI command of the same name.
const (
	// ActionRequeue is `rayctl requeue`: FAILED, LOST and CANCELLED back to QUEUED,
	// attempt_number kept unless ResetAttempts (--reset-attempts).
	ActionRequeue ActionKind = iota
	// ActionCancel is `rayctl cancel`: QUEUED to CANCELLED, RUNNING to CANCELLING, and
	// CANCELLING rows whose owner has no live lease finalized to CANCELLED.
	ActionCancel
	// ActionReconcile is `rayctl reconcile-jobs --apply`: RUNNING and CANCELLING rows
	// compared with their Ray jobs, and the planned fixes made.
	ActionReconcile
)

// Verb is the action's verb for people: Requeue, Cancel, Reconcile.
func (a ActionKind) Verb() string { return [...]string{"Requeue", "Cancel", "Reconcile"}[a] }

// Request is what the operator chose.
type Request struct {
	Kind ActionKind
	// IDs are the chosen rows: the row under the cursor, the marked rows, a failure group's.
	IDs []int64
	// States, without IDs, chooses every row in these states (up to the CLI's --limit
	// maximum): `:finalize` is cancel of the CANCELLING rows.
	States []store.TaskState
	// ResetAttempts (requeue) sets attempt_number back to 1, as --reset-attempts.
	ResetAttempts bool
	// Label names the choice in the dialog and the status line: "task 42", "3 marked tasks".
	Label string
}

// Change is one line of what a plan will do: N rows from one state to another (To empty:
// the row keeps its state, e.g. a Ray job stopped for a live owner to finalize).
type Change struct {
	From, To store.TaskState
	N        int
	Note     string
}

// Proposal is a plan made by Actions.Plan and shown in the confirmation dialog: the counts
// come from the plan that Apply then carries out (recovery's Plan / ReconcilePlan), so the
// dialog says exactly what will change.
type Proposal struct {
	Request Request
	Total   int      // rows the plan will change
	Changes []Change // by from-state -> to-state
	Left    []string // what is left alone and why, one line each
	Notes   []string // anything else the operator must know (Ray jobs, limits)
	Plan    any      // the plan itself, for Apply; opaque to the TUI
}

// Outcome is what Apply did.
type Outcome struct {
	Applied int    // rows changed
	Skipped int    // rows left alone: moved on since the plan, or a Ray job not confirmed over
	Detail  string // one line: "2 CANCELLED, 1 CANCELLING"
}

// Actions are the writes. cmd/rayctl implements them with the recovery package, the code
// `rayctl requeue`, `rayctl cancel` and `rayctl reconcile-jobs --apply` run: guarded (a row
// changes only while it is still as planned), batched and audited. The TUI always calls Plan
// first, shows the Proposal in a dialog, and calls Apply with it only once the operator
// confirms.
type Actions interface {
	Plan(ctx context.Context, r Request) (Proposal, error)
	Apply(ctx context.Context, p Proposal) (Outcome, error)
}
