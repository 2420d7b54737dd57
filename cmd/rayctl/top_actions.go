package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/tui"
)

// topActions implements tui.Actions with the recovery package: the plans and guarded,
// batched, audited writes of `rayctl requeue`, `rayctl cancel` and `rayctl reconcile-jobs
// --apply`, with the same semantics. A requeue keeps attempt_number unless the operator
// asks for a reset (--reset-attempts); with a Ray address the old Ray job of each task is
// stopped and confirmed over before its row changes, as the CLI does. The dialog's counts
// are the plan's (recovery.Plan.Transitions, the reconcile plan's entries), and Apply carries
// out that plan.
type topActions struct {
	s         *store.Store
	actor     string
	ray       recovery.RayJobs          // nil: no Ray address
	reconcile recovery.ReconcileOptions // also its LeaseTTL: which CANCELLING rows cancel may finalize
}

func newTopActions(s *store.Store, actor string, ray recovery.RayJobs, ro recovery.ReconcileOptions) tui.Actions {
	return topActions{s: s, actor: actor, ray: ray, reconcile: ro}
}

// The TUI acts on rows an operator chose, in every state the CLI command accepts: cancel
// finalizes a chosen CANCELLING row whose worker is gone, as `rayctl cancel --state
// CANCELLING` does.
var topStates = map[tui.ActionKind][]store.TaskState{
	tui.ActionRequeue: {store.StateFailed, store.StateLost, store.StateCancelled},
	tui.ActionCancel:  {store.StateQueued, store.StateRunning, store.StateCancelling},
}

var topAction = map[tui.ActionKind]recovery.Action{tui.ActionRequeue: recovery.ActionRequeue, tui.ActionCancel: recovery.ActionCancel}

func (a topActions) Plan(ctx context.Context, r tui.Request) (tui.Proposal, error) {
	p := tui.Proposal{Request: r}
	if r.Kind == tui.ActionReconcile {
		return a.planReconcile(ctx, p)
	}
	sel := recovery.Selection{IDs: r.IDs, States: topStates[r.Kind], Limit: max(1, len(r.IDs))}
	if r.Kind == tui.ActionCancel {
		sel.LeaseTTL = a.reconcile.LeaseTTL
	}
	switch {
	case len(r.IDs) == 0 && len(r.States) == 0:
		return p, nil // an empty choice must never become "every row in these states"
	case len(r.IDs) == 0:
		sel.States, sel.Limit = r.States, recovery.MaxLimit
	}
	plan, err := recovery.PlanAction(ctx, a.s, topAction[r.Kind], sel, recovery.PlanOptions{})
	if err != nil {
		return p, err
	}
	p.Plan, p.Total = plan, len(plan.Targets)
	for _, t := range plan.Transitions() {
		c := tui.Change{From: t.From, To: t.To, N: t.N}
		switch {
		case t.From == store.StateRunning && t.To == store.StateCancelling:
			c.Note = "its worker stops it and finalizes CANCELLED"
		case t.From == store.StateCancelling:
			c.Note = "its worker is gone"
		}
		p.Changes = append(p.Changes, c)
	}
	for _, l := range plan.LeftAlone() {
		p.Left = append(p.Left, fmt.Sprintf("%s %s: %s", plural(int64(l.N), "task"), l.State, l.Why))
	}
	if n := len(plan.MissingIDs); n > 0 {
		p.Left = append(p.Left, fmt.Sprintf("%s no longer exist", plural(int64(n), "task")))
	}
	if n := plan.Remaining(); n > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("%s more match beyond this run's %s (the CLI's --limit maximum): repeat after", num(n), num(int64(recovery.MaxLimit))))
	}
	if n := len(plan.RayJobs); n > 0 && a.ray != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("%s: stopped in Ray and confirmed over first (a task whose job is not is left as it is)", plural(int64(n), "old Ray job")))
	} else if n > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("%s nobody checks (no --ray-address): one still running would run on", plural(int64(n), "Ray job")))
	}
	if r.Kind == tui.ActionCancel && len(plan.Targets) > len(plan.RayJobs) {
		for _, t := range plan.Transitions() {
			if t.From == store.StateRunning {
				p.Notes = append(p.Notes, "RUNNING tasks' Ray jobs: their worker stops them (rayctl cancel --stop asks Ray directly)")
				break
			}
		}
	}
	return p, nil
}

func (a topActions) planReconcile(ctx context.Context, p tui.Proposal) (tui.Proposal, error) {
	if a.ray == nil {
		return p, errors.New("reconcile compares tasks with Ray: start rayctl top with --ray-address (or RAY_ADDRESS), or run rayctl reconcile-jobs --ray-address ADDR")
	}
	plan, err := recovery.PlanReconcile(ctx, a.s, a.ray, a.reconcile)
	if err != nil {
		return p, err
	}
	p.Plan = plan
	todo := plan.Actionable()
	p.Total = len(todo)
	type key struct {
		from, to store.TaskState
		action   recovery.JobAction
	}
	counts := map[key]int{}
	var keys []key
	for _, e := range todo {
		k := key{e.Task.State, e.To, e.Action}
		if counts[k] == 0 {
			keys = append(keys, k)
		}
		counts[k]++
	}
	for _, k := range keys {
		note := map[recovery.JobAction]string{recovery.ActRecord: "ended in Ray: recorded as a worker would",
			recovery.ActMarkLost: "unknown to Ray, owner dead", recovery.ActStop: "stop its Ray job; the live owner finalizes",
			recovery.ActStopFinalize: "stop its Ray job, then finalize", recovery.ActFinalize: "its job ended, owner dead"}[k.action]
		p.Changes = append(p.Changes, tui.Change{From: k.from, To: k.to, N: counts[k], Note: note})
	}
	left := map[recovery.JobClass]int{}
	for _, e := range plan.Entries {
		if e.Action == recovery.ActNone && e.Class != recovery.ClassConsistent {
			left[e.Class]++
		}
	}
	for _, c := range recovery.JobClasses {
		if n := left[c]; n > 0 {
			p.Left = append(p.Left, fmt.Sprintf("%d %s", n, c))
		}
	}
	p.Notes = append(p.Notes, fmt.Sprintf("Ray %s at %s; %d compared, %d consistent; each row changes only if still as read",
		plan.RayVersion, plan.Options.Address, len(plan.Entries), plan.Counts()[recovery.ClassConsistent]))
	if plan.Remaining() > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("%d more beyond --limit: repeat after", plan.Remaining()))
	}
	return p, nil
}

func (a topActions) Apply(ctx context.Context, p tui.Proposal) (tui.Outcome, error) {
	var o tui.Outcome
	switch plan := p.Plan.(type) {
	case recovery.Plan:
		opts := recovery.ApplyOptions{ResetAttempts: p.Request.ResetAttempts && plan.Action == recovery.ActionRequeue, Actor: a.actor, Ray: a.ray}
		if plan.Audited {
			opts.Reason = "rayctl top"
		}
		res, err := recovery.Apply(ctx, a.s, plan, opts)
		o.Applied, o.Skipped = int(res.Changed), len(plan.Targets)-int(res.Changed)
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
	case recovery.ReconcilePlan:
		opts := recovery.ReconcileApplyOptions{Actor: a.actor}
		if plan.Audited {
			opts.Reason = "rayctl top"
		}
		res, err := recovery.ApplyReconcile(ctx, a.s, a.ray, plan, opts)
		o.Applied, o.Skipped = res.Applied, res.Skipped+res.Failed
		var parts []string
		for st, n := range res.ToStates {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
		sort.Strings(parts)
		if res.Stops > 0 {
			parts = append(parts, plural(int64(res.Stops), "Ray job")+" stopped")
		}
		o.Detail = strings.Join(parts, ", ")
		return o, err
	case nil:
		return o, nil
	}
	return o, fmt.Errorf("unknown plan %T", p.Plan)
}

func num(n int64) string { return recovery.Thousands(n) }
