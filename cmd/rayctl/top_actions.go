package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/tui"
)

// topActions implements tui.Actions with the recovery package: the same plan-then-apply,
// batched, state-conditional writes (and audit trail) as `rayctl requeue` and `rayctl cancel`,
// and the same handling of tasks' Ray jobs: with a Ray address a requeue confirms each old job
// over (stopping it first) before its task changes; without one the confirmation says the
// jobs go unchecked.
type topActions struct {
	s     *store.Store
	actor string
	ray   recovery.RayJobs // nil: no Ray address
}

func newTopActions(s *store.Store, actor string, ray recovery.RayJobs) tui.Actions {
	return topActions{s: s, actor: actor, ray: ray}
}

// The TUI acts on rows an operator chose, so it takes every state the action accepts except
// finalizing orphaned CANCELLING rows, which is a deliberate `rayctl cancel --state
// CANCELLING`.
var topStates = map[recovery.Action][]store.TaskState{
	recovery.ActionRequeue: {store.StateFailed, store.StateLost, store.StateCancelled},
	recovery.ActionCancel:  {store.StateQueued, store.StateRunning},
}

func (a topActions) plan(ctx context.Context, act recovery.Action, ids []int64) (recovery.Plan, error) {
	return recovery.PlanAction(ctx, a.s, act, recovery.Selection{IDs: ids, States: topStates[act], Limit: len(ids)}, recovery.PlanOptions{})
}

func (a topActions) preview(ctx context.Context, act recovery.Action, ids []int64) (tui.Preview, error) {
	p := tui.Preview{Chosen: len(ids)}
	if len(ids) == 0 { // an empty id list must never become "every row in these states"
		return p, nil
	}
	plan, err := a.plan(ctx, act, ids)
	if err != nil {
		return p, err
	}
	p.Eligible = len(plan.Targets)
	var notes []string
	if n := len(plan.Unmatched); n > 0 {
		notes = append(notes, fmt.Sprintf("%d in other states will be left alone", n))
	}
	if n := len(plan.MissingIDs); n > 0 {
		notes = append(notes, fmt.Sprintf("%d no longer exist", n))
	}
	if n := len(plan.RayJobs); n > 0 && a.ray != nil {
		notes = append(notes, fmt.Sprintf("%d Ray jobs are stopped and confirmed over first", n))
	} else if n > 0 {
		notes = append(notes, fmt.Sprintf("%d name Ray jobs nobody checks (no Ray address): one still running would run on", n))
	}
	p.Note = strings.Join(notes, "; ")
	return p, nil
}

func (a topActions) apply(ctx context.Context, act recovery.Action, ids []int64, resetAttempts bool) (tui.Outcome, error) {
	var o tui.Outcome
	if len(ids) == 0 {
		return o, nil
	}
	plan, err := a.plan(ctx, act, ids)
	if err != nil {
		return o, err
	}
	opts := recovery.ApplyOptions{ResetAttempts: resetAttempts, Actor: a.actor, Ray: a.ray}
	if plan.Audited {
		opts.Reason = "rayctl top"
	}
	res, err := recovery.Apply(ctx, a.s, plan, opts)
	o.Applied = int(res.Changed)
	o.Skipped = len(ids) - o.Applied
	var parts []string
	for st, n := range res.ToStates {
		parts = append(parts, fmt.Sprintf("%d %s", n, st))
	}
	sort.Strings(parts)
	if n := len(res.NotEnded); n > 0 {
		parts = append(parts, fmt.Sprintf("%d left unchanged: Ray job not confirmed over", n))
	}
	o.Detail = strings.Join(parts, ", ")
	return o, err
}

func (a topActions) PreviewRequeue(ctx context.Context, ids []int64) (tui.Preview, error) {
	return a.preview(ctx, recovery.ActionRequeue, ids)
}

func (a topActions) PreviewCancel(ctx context.Context, ids []int64) (tui.Preview, error) {
	return a.preview(ctx, recovery.ActionCancel, ids)
}

// Requeue resets attempts, as django-ray's admin "Retry selected tasks" does, so a task that
// had exhausted its retries gets its full budget again.
func (a topActions) Requeue(ctx context.Context, ids []int64) (tui.Outcome, error) {
	return a.apply(ctx, recovery.ActionRequeue, ids, true)
}

func (a topActions) Cancel(ctx context.Context, ids []int64) (tui.Outcome, error) {
	return a.apply(ctx, recovery.ActionCancel, ids, false)
}
