// Package recovery holds the operator actions over the django-ray tables, shared by the
// rayctl CLI and the TUI: bulk requeue and cancel (a plan first, then short conditional
// batches, with an audit trail), lease inspection with orphan candidates, task listing and
// detail, the doctor's health checks and the metrics gauges.
//
// Functions take a *store.Store and options and return structured results. Nothing here
// prints, reads flags or environment variables: the caller formats and decides. Every write
// goes through the store's conditional transitions, so a row that changed after it was
// selected is skipped and counted, never overwritten.
package recovery

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/store"
)

// Bulk limits, after River's JobDeleteMany (default 100, at most 10,000 per call).
const (
	DefaultLimit = 100
	MaxLimit     = 10000
	DefaultBatch = 100
	MaxBatch     = 10000
	// DefaultLeaseTTL is django-ray's WORKER_LEASE_SECONDS: a lease without a heartbeat for
	// this long is not live.
	DefaultLeaseTTL = settings.DefaultWorkerLease
)

// ErrBadSelection wraps every reason a selection or option is refused before touching the
// database. The CLI maps it to a usage error.
var ErrBadSelection = errors.New("invalid selection")

func badf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSelection, fmt.Sprintf(format, a...))
}

// Action is a bulk operation.
type Action string

// The bulk actions.
const (
	// ActionRequeue moves finished rows (FAILED, LOST, CANCELLED) back to QUEUED, resetting
	// what the runbook's manual action resets.
	ActionRequeue Action = "requeue"
	// ActionCancel moves QUEUED rows to CANCELLED and RUNNING rows to CANCELLING (the owning
	// worker finalizes them); CANCELLING rows whose owner has no live lease are finalized to
	// CANCELLED, because no django-ray 0.2.0 worker ever will. It stops no Ray job: Outcome
	// lists the jobs of the rows it changed.
	ActionCancel Action = "cancel"
)

// States returns the states the action accepts and those it takes when none are given.
func (a Action) States() (eligible, defaults []store.TaskState) {
	switch a {
	case ActionRequeue:
		return []store.TaskState{store.StateFailed, store.StateLost, store.StateCancelled},
			[]store.TaskState{store.StateFailed, store.StateLost}
	case ActionCancel:
		return []store.TaskState{store.StateQueued, store.StateRunning, store.StateCancelling},
			[]store.TaskState{store.StateQueued, store.StateRunning}
	}
	return nil, nil
}

// Selection picks the rows of a bulk action. At least one filter other than Limit is
// required. Every value reaches SQL as a parameter.
type Selection struct {
	States        []store.TaskState // default: the action's default states
	Queues        []string          // exact queue names
	Callable      string            // exact dotted path, or a glob with * and ?
	ErrorContains string            // case-insensitive substring of error_message
	OlderThan     time.Duration     // last activity (finished, started or created) older than this
	NewerThan     time.Duration     // last activity within this (the failures of the last 15 minutes)
	Worker        string            // claimed_by_worker
	// Exception is the failure's exception type as store.ExceptionType derives it (as the
	// retry policy saw it): exact, a name without a dot also as builtins.<name>, or a glob.
	Exception string
	IDs       []int64 // row ids
	Limit     int     // at most this many rows, oldest (lowest id) first; 0 = DefaultLimit
	// LeaseTTL decides which CANCELLING rows cancel may finalize (owner without a live
	// lease); 0 = DefaultLeaseTTL.
	LeaseTTL time.Duration
}

// hasFilter reports whether anything narrows the selection.
func (s Selection) hasFilter() bool {
	return len(s.States) > 0 || len(s.Queues) > 0 || s.Callable != "" || s.ErrorContains != "" || s.OlderThan != 0 || len(s.IDs) > 0 ||
		s.NewerThan != 0 || s.Worker != "" || s.Exception != ""
}

// Normalize checks the selection for action a and fills in defaults: the action's default
// states, DefaultLimit, DefaultLeaseTTL; states and ids are de-duplicated and sorted. The
// error wraps ErrBadSelection.
func (s Selection) Normalize(a Action) (Selection, error) {
	eligible, defaults := a.States()
	if eligible == nil {
		return s, badf("unknown action %q", a)
	}
	if !s.hasFilter() {
		return s, badf("a filter is required (--state, --queue, --callable, --exception, --error-contains, --older-than, --newer-than, --worker or --id); refusing to %s everything", a)
	}
	switch {
	case s.Limit == 0:
		s.Limit = DefaultLimit
	case s.Limit < 0 || s.Limit > MaxLimit:
		return s, badf("invalid limit %d (want 1..%d)", s.Limit, MaxLimit)
	}
	if s.OlderThan < 0 {
		return s, badf("invalid older-than %s (want a positive duration)", s.OlderThan)
	}
	if s.NewerThan < 0 {
		return s, badf("invalid newer-than %s (want a positive duration)", s.NewerThan)
	}
	if s.OlderThan > 0 && s.NewerThan > 0 && s.NewerThan <= s.OlderThan {
		return s, badf("newer-than %s and older-than %s select nothing (want newer-than longer than older-than: idle between the two)", s.NewerThan, s.OlderThan)
	}
	if s.LeaseTTL < 0 {
		return s, badf("invalid lease TTL %s (want a positive duration)", s.LeaseTTL)
	}
	if s.LeaseTTL == 0 && a == ActionCancel {
		s.LeaseTTL = DefaultLeaseTTL
	}
	if len(s.States) == 0 {
		s.States = slices.Clone(defaults)
	}
	s.States = slices.Clone(s.States)
	for _, st := range s.States {
		if !slices.Contains(eligible, st) {
			return s, badf("%s", refusal(a, st, eligible))
		}
	}
	slices.SortFunc(s.States, func(x, y store.TaskState) int { return stateOrder(x) - stateOrder(y) })
	s.States = slices.Compact(s.States)
	if len(s.IDs) > MaxLimit {
		return s, badf("too many ids (%d; at most %d)", len(s.IDs), MaxLimit)
	}
	s.IDs = slices.Clone(s.IDs)
	for _, id := range s.IDs {
		if id <= 0 {
			return s, badf("invalid id %d (want a positive row id)", id)
		}
	}
	slices.Sort(s.IDs)
	s.IDs = slices.Compact(s.IDs)
	for _, q := range s.Queues {
		if q == "" {
			return s, badf("empty queue name")
		}
	}
	return s, nil
}

func refusal(a Action, st store.TaskState, eligible []store.TaskState) string {
	names := make([]string, len(eligible))
	for i, e := range eligible {
		names[i] = string(e)
	}
	why := ""
	switch {
	case a == ActionRequeue && (st == store.StateRunning || st == store.StateCancelling):
		why = ": a worker owns them (cancel them, or let the stuck-task sweep mark them LOST; `rayctl inspect-leases` shows orphans)"
	case a == ActionRequeue && st == store.StateQueued:
		why = ": they are queued already"
	case a == ActionCancel && store.TaskState(st).Terminal():
		why = ": they are finished already"
	}
	return fmt.Sprintf("cannot %s %s tasks%s; %s takes %s", a, st, why, a, strings.Join(names, ", "))
}

func stateOrder(s store.TaskState) int {
	return slices.Index(store.AllStates, s)
}

// Filter is the store filter the selection stands for (without the limit and, for cancel's
// CANCELLING rows, without the owner condition): what tasks ls would list for it.
func (s Selection) Filter() store.TaskFilter { return s.filter() }

// filter is the store filter the selection stands for (without the limit).
func (s Selection) filter() store.TaskFilter {
	return store.TaskFilter{
		IDs: s.IDs, States: s.States, Queues: s.Queues, Callable: s.Callable,
		ErrorContains: s.ErrorContains, OlderThan: s.OlderThan, NewerThan: s.NewerThan,
		Worker: s.Worker, Exception: s.Exception,
	}
}

func (s Selection) refQuery(a Action, limit int) store.RefQuery {
	q := store.RefQuery{Filter: s.filter(), Limit: limit}
	if a == ActionCancel && slices.Contains(s.States, store.StateCancelling) {
		q.CancellingOwnerNotLive = s.LeaseTTL
	}
	return q
}

// SelectionJSON is the selection as stable JSON (audit records and -o json output).
type SelectionJSON struct {
	States           []store.TaskState `json:"states"`
	Queues           []string          `json:"queues,omitempty"`
	Callable         string            `json:"callable,omitempty"`
	ErrorContains    string            `json:"error_contains,omitempty"`
	OlderThanSeconds float64           `json:"older_than_seconds,omitempty"`
	NewerThanSeconds float64           `json:"newer_than_seconds,omitempty"`
	Worker           string            `json:"worker,omitempty"`
	Exception        string            `json:"exception,omitempty"`
	IDs              []int64           `json:"ids,omitempty"`
	Limit            int               `json:"limit"`
	LeaseTTLSeconds  float64           `json:"lease_ttl_seconds,omitempty"`
}

// JSON returns the selection's stable JSON form.
func (s Selection) JSON() SelectionJSON {
	return SelectionJSON{States: s.States, Queues: s.Queues, Callable: s.Callable, ErrorContains: s.ErrorContains,
		OlderThanSeconds: s.OlderThan.Seconds(), NewerThanSeconds: s.NewerThan.Seconds(), Worker: s.Worker, Exception: s.Exception,
		IDs: s.IDs, Limit: s.Limit, LeaseTTLSeconds: s.LeaseTTL.Seconds()}
}

// Describe is the selection in one line for people: "FAILED, LOST in queue default".
func (s Selection) Describe() string {
	var parts []string
	st := make([]string, len(s.States))
	for i, x := range s.States {
		st[i] = string(x)
	}
	parts = append(parts, strings.Join(st, "/"))
	if len(s.Queues) > 0 {
		parts = append(parts, "queue "+strings.Join(s.Queues, ","))
	}
	if s.Callable != "" {
		parts = append(parts, fmt.Sprintf("callable %q", s.Callable))
	}
	if s.ErrorContains != "" {
		parts = append(parts, fmt.Sprintf("error containing %q", s.ErrorContains))
	}
	if s.Exception != "" {
		parts = append(parts, fmt.Sprintf("exception %q", s.Exception))
	}
	if s.OlderThan > 0 {
		parts = append(parts, "idle longer than "+s.OlderThan.String())
	}
	if s.NewerThan > 0 {
		parts = append(parts, "active within "+s.NewerThan.String())
	}
	if s.Worker != "" {
		parts = append(parts, fmt.Sprintf("worker %q", s.Worker))
	}
	if len(s.IDs) > 0 {
		parts = append(parts, fmt.Sprintf("%d named ids", len(s.IDs)))
	}
	return strings.Join(parts, ", ")
}
