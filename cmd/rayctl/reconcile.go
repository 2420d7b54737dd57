package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/resultstore"
	"github.com/rayctl/rayctl/store"
)

const reconcileHelp = `Compares every RUNNING and CANCELLING task that has a Ray job (at most --limit, oldest
activity first) with Ray's view of that job, and classifies each:

   finished_in_ray         RUNNING here, SUCCEEDED/FAILED/STOPPED in Ray: record the end as a
                           worker does (the result line of the job's log; retry or FAILED
                           under the retry policy; STOPPED -> CANCELLED). A job that ended less
                           than --grace ago is left to its live owner.
   missing_in_ray          RUNNING here, unknown to Ray (404): mark LOST (then retried under
                           the policy for TaskLost) when the owner is dead and the row has had
                           no heartbeat for --lease-ttl; a live owner decides for itself.
   owner_dead              RUNNING here, the job still running in Ray, the owner has no live
                           lease: reported, not changed. rayctl is not a worker; a live worker
                           adopts the job (start one if none is live).
   cancelling_job_running  CANCELLING here, the job still running in Ray: stop it; when the
                           owner is dead, then finalize CANCELLED.
   cancelling_job_ended    CANCELLING here, the job ended or unknown in Ray: finalize CANCELLED
                           when the owner is dead (a live owner does it).
   unknown                 Ray could not say (an error for this job, an unknown status, an
                           unreadable log): left alone, as a worker does.
   other_cluster           the row's ray_address names another host: not compared.
   consistent              RUNNING here and in Ray, owner live: counted.

Without --apply it prints the plan and writes nothing. With --apply it performs the planned
actions through the workers' own code (the same guarded transitions, retry policy and result
storage: give it the workers' DJANGO_RAY_* settings), each only if the row is still as read
(state, owner, Ray job, claim): rows that moved on are skipped and counted. On a terminal
rayctl asks first; when stdin is not a terminal, or with -o json/jsonl, it refuses without
--yes. Each --apply run is recorded in the audit trail (rayctl audit ls --action
reconcile-jobs). An unreachable Ray, a refused token or an untrusted certificate stops it
before anything is written.

-o json prints one document {dry_run, applied, plan, outcome}; -o jsonl prints one line per
compared task (the plan's entry, with "result" when applied).

Examples:
   rayctl reconcile-jobs --ray-address http://ray-head:8265
   rayctl reconcile-jobs --apply --reason INC-42
   RAY_AUTH_TOKEN=... rayctl reconcile-jobs -o json --apply --yes

` + rayConnHelp + `

EXIT CODES:
   0  planned (dry run), or applied every action
   1  error: Ray cannot be asked, database unreachable, ...; nothing more was written
   2  usage error; nothing was written
   3  nothing to apply (every row consistent, or only divergences left to workers)
   4  declined at the prompt, or refused without --yes; nothing was written
   5  partial: rows that moved on were skipped, a Ray request failed, or interrupted`

func (e env) reconcileCommand() *cli.Command {
	flags := append(rayFlags(),
		&cli.BoolFlag{Name: "apply", Usage: "perform the planned actions (default: print the plan, write nothing)"},
		&cli.IntFlag{Name: "limit", Value: recovery.DefaultReconcileLimit, Usage: fmt.Sprintf("compare at most this many tasks, oldest activity first (1..%d)", recovery.MaxLimit)},
		leaseTTLFlag("an owner without a lease heartbeat for this long is dead"),
		&cli.DurationFlag{Name: "grace", Value: recovery.DefaultReconcileGrace, Usage: "a job that ended less than this ago is left to its live owner (0: none)"},
		&cli.BoolFlag{Name: "all-addresses", Usage: "also compare rows whose ray_address names another host"},
		&cli.StringFlag{Name: "reason", Usage: "why, recorded in the audit trail (rayctl audit ls)"},
	)
	return &cli.Command{
		Name:        "reconcile-jobs",
		Usage:       "compare RUNNING/CANCELLING tasks with their Ray jobs; --apply fixes the divergences",
		Description: reconcileHelp,
		Flags:       append(flags, policyFlags()...),
		Action: func(c *cli.Context) error {
			const cmd = "reconcile-jobs"
			if c.NArg() > 0 {
				return usageErrorf("%s: unexpected argument %q", cmd, c.Args().First())
			}
			ro := recovery.ReconcileOptions{Limit: c.Int("limit"), LeaseTTL: c.Duration("lease-ttl"), Grace: c.Duration("grace"),
				AllAddresses: c.Bool("all-addresses"), Clock: e.clock}
			switch {
			case ro.Limit < 1 || ro.Limit > recovery.MaxLimit:
				return usageErrorf("%s: invalid --limit %d (want 1..%d)", cmd, ro.Limit, recovery.MaxLimit)
			case ro.LeaseTTL <= 0:
				return usageErrorf("%s: invalid --lease-ttl %s (want more than 0)", cmd, ro.LeaseTTL)
			case ro.Grace < 0:
				return usageErrorf("%s: invalid --grace %s (want 0 or more)", cmd, ro.Grace)
			case ro.Grace == 0:
				ro.Grace = -1 // recovery: negative means none
			}
			var err error
			if ro.Policy, ro.Results, err = e.policy(c, cmd); err != nil {
				return err
			}
			defer resultstore.Close(ro.Results.Backend)
			if _, err := e.opts(c); err != nil {
				return err
			}
			rc, err := e.rayClient(c, cmd)
			if err != nil {
				return err
			}
			if rc == nil {
				return usageErrorf("%s: no Ray address: set --ray-address or RAY_ADDRESS (the dashboard, http://HOST:8265)", cmd)
			}
			defer rc.close()
			ro.Address = rc.address
			return e.withDB(c, func(r *runCtx) error {
				return reconcile(r, rc, ro, c.Bool("apply"), c.String("reason"))
			})
		},
	}
}

// reconcileReport is the -o json document.
type reconcileReport struct {
	DryRun  bool                       `json:"dry_run"`
	Applied bool                       `json:"applied"`
	Plan    recovery.ReconcilePlan     `json:"plan"`
	Outcome *recovery.ReconcileOutcome `json:"outcome"`
}

func reconcile(r *runCtx, rc *rayConn, ro recovery.ReconcileOptions, apply bool, reason string) error {
	const cmd = "reconcile-jobs"
	p, err := recovery.PlanReconcile(r.ctx, r.store, rc.client, ro)
	switch {
	case errors.Is(err, recovery.ErrBadSelection):
		return selectionErr(cmd, err)
	case errors.Is(err, recovery.ErrRayUnavailable):
		return rayDown(cmd, err)
	case err != nil:
		return fmt.Errorf("%s: %w", cmd, err)
	}
	rep := reconcileReport{DryRun: !apply, Plan: p}
	finish := func(err error) error {
		if werr := writeReconcileJSON(r.stdout, r.o, rep); werr != nil {
			return werr
		}
		if out := rep.Outcome; out != nil && r.env.out.closed() {
			fmt.Fprintf(r.stderr, "rayctl: %s: %v; applied %d, skipped %d, failed %d\n", cmd, errOutputClosed, out.Applied, out.Skipped, out.Failed)
		}
		return err
	}
	if !r.o.json() {
		if err := printReconcilePlan(r.stdout, p); err != nil {
			return err
		}
	}
	todo := p.Actionable()
	if len(todo) == 0 {
		return finish(&exitError{code: exitNoMatch, msg: fmt.Sprintf("%s: nothing to apply (%s); nothing changed", cmd, classSummary(p))})
	}
	if reason != "" && !p.Audited {
		return finish(fmt.Errorf("%s: --reason cannot be recorded: %v; nothing changed", cmd, store.ErrNoAudit))
	}
	if !apply {
		if !r.o.json() {
			fmt.Fprintf(r.stdout, "dry run: nothing changed; --apply performs the %s above\n", plural(int64(len(todo)), "action"))
		}
		return finish(nil)
	}
	n := plural(int64(len(todo)), "action")
	if r.env.out.closed() {
		return &exitError{code: exitDeclined, msg: fmt.Sprintf("%s: %v before anything was applied; nothing changed (%s planned)", cmd, errOutputClosed, n)}
	}
	if !r.o.yes {
		switch {
		case r.o.json():
			return finish(&exitError{code: exitDeclined, msg: fmt.Sprintf("%s: refusing to apply %s without --yes: output is %s; nothing changed", cmd, n, r.o.output)})
		case !r.env.stdinIsTTY():
			return finish(&exitError{code: exitDeclined, msg: fmt.Sprintf("%s: refusing to apply %s without --yes: stdin is not a terminal; nothing changed", cmd, n)})
		}
		fmt.Fprintf(r.stderr, "Apply %s? [y/N] ", n)
		if !confirmed(r.ctx, r.env.stdin, r.stderr) {
			return finish(&exitError{code: exitDeclined, msg: cmd + ": declined; nothing changed"})
		}
	}
	hooks := r.env.hooks
	before := hooks.BeforeJob
	hooks.BeforeJob = func(ctx context.Context, e recovery.JobEntry) error { // a closed stdout stops before the next task
		if r.env.out.closed() {
			return errOutputClosed
		}
		if before != nil {
			return before(ctx, e)
		}
		return nil
	}
	out, applyErr := recovery.ApplyReconcile(r.ctx, r.store, rc.client, p, recovery.ReconcileApplyOptions{
		Reason: reason, Actor: r.env.actor(), Hooks: hooks,
	})
	rep.Applied, rep.Outcome = len(out.Results) > 0, &out
	if !r.o.json() {
		if err := printReconcileOutcome(r.stdout, todo, out); err != nil {
			return err
		}
	}
	total := len(todo)
	switch {
	case errors.Is(applyErr, errOutputClosed):
		code := exitPartial
		if len(out.Results) == 0 {
			code = exitDeclined
		}
		return &exitError{code: code, msg: fmt.Sprintf("%s: %v; stopped: applied %d, skipped %d, failed %d, %d not reached (run it again for the rest)", cmd, errOutputClosed,
			out.Applied, out.Skipped, out.Failed, total-len(out.Results))}
	case errors.Is(applyErr, recovery.ErrInterrupted):
		return finish(&exitError{code: exitPartial, msg: fmt.Sprintf("%s: %v: applied %d, skipped %d, failed %d, %d not reached", cmd, applyErr,
			out.Applied, out.Skipped, out.Failed, total-len(out.Results))})
	case applyErr != nil && out.Applied > 0:
		return finish(&exitError{code: exitPartial, msg: fmt.Sprintf("%s: stopped after applying %d: %v", cmd, out.Applied, applyErr)})
	case applyErr != nil:
		return finish(fmt.Errorf("%s: %w", cmd, applyErr))
	case out.Skipped > 0 || out.Failed > 0:
		return finish(&exitError{code: exitPartial, msg: fmt.Sprintf("%s: applied %d of %d; skipped %d that moved on, %d failed (see above)", cmd,
			out.Applied, total, out.Skipped, out.Failed)})
	}
	return finish(nil)
}

func writeReconcileJSON(w io.Writer, o opts, rep reconcileReport) error {
	switch o.output {
	case "json":
		return writeJSON(w, o, rep)
	case "jsonl":
		results := map[int64]recovery.JobResult{}
		if rep.Outcome != nil {
			for _, res := range rep.Outcome.Results {
				results[res.ID] = res
			}
		}
		type line struct {
			recovery.JobEntryJSON
			Result *recovery.JobResult `json:"result"`
		}
		for _, e := range rep.Plan.Entries {
			l := line{JobEntryJSON: e.JSON()}
			if res, ok := results[e.Task.ID]; ok {
				l.Result = &res
			}
			if err := writeJSON(w, o, l); err != nil {
				return err
			}
		}
	}
	return nil
}

func classSummary(p recovery.ReconcilePlan) string {
	counts := p.Counts()
	var parts []string
	for _, c := range recovery.JobClasses {
		if n := counts[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, c))
		}
	}
	if len(parts) == 0 {
		return "no RUNNING or CANCELLING task has a Ray job"
	}
	return strings.Join(parts, ", ")
}

func printReconcilePlan(w io.Writer, p recovery.ReconcilePlan) error {
	ver := p.RayVersion
	if ver == "" {
		ver = "(version unknown)"
	}
	view := map[string]string{"list": "one list", "get": "one GET per job", "none": "no job to ask about"}[p.RayView]
	fmt.Fprintf(w, "reconcile-jobs: Ray %s at %s: %s compared with Ray (%s; %d Ray requests)\n", ver, p.Options.Address,
		plural(int64(len(p.Entries)), "task"), view, p.RayRequests)
	if p.Remaining() > 0 {
		fmt.Fprintf(w, "%d RUNNING/CANCELLING tasks have a Ray job; the %d with the oldest activity compared (--limit), %d left\n",
			p.Candidates, len(p.Entries), p.Remaining())
	}
	var shown []recovery.JobEntry
	for _, e := range p.Entries {
		if e.Class != recovery.ClassConsistent {
			shown = append(shown, e)
		}
	}
	if len(shown) > 0 {
		tw := table(w)
		fmt.Fprintln(tw, "ID\tSTATE\tOWNER\tIDLE\tRAY JOB\tRAY\tCLASS\tACTION\tDETAIL")
		for _, e := range shown {
			action := string(e.Action)
			if e.To != "" {
				action += " -> " + string(e.To)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Task.ID, e.Task.State, strings.TrimPrefix(string(e.Owner), "owner_"),
				age(e.Idle.Seconds(), true), clip(e.JobID(), 32), dash(e.RayStatus), e.Class, action, clip(e.Detail, 160))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "summary: %s; %d live workers\n", classSummary(p), p.LiveWorkers)
	if p.LiveWorkers == 0 && p.Counts()[recovery.ClassOrphaned] > 0 {
		fmt.Fprintln(w, "no worker is live: owner_dead jobs are adopted only once a worker (rayworker or django_ray_worker) runs")
	}
	var missing int
	for _, e := range p.Entries {
		if e.RayStatus == recovery.RayMissing {
			missing++
		}
	}
	if missing > 0 && missing == len(p.Entries) {
		fmt.Fprintf(w, "warning: Ray knows none of these jobs. Is %s the cluster they ran on? (A head restart without GCS fault tolerance forgets every job.)\n", p.Options.Address)
	}
	return nil
}

func printReconcileOutcome(w io.Writer, todo []recovery.JobEntry, out recovery.ReconcileOutcome) error {
	var parts []string
	for _, st := range store.AllStates {
		if n := out.ToStates[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d now %s", n, st))
		}
	}
	if out.Stops > 0 {
		parts = append(parts, plural(int64(out.Stops), "Ray job")+" asked to stop")
	}
	line := fmt.Sprintf("applied %d of %d", out.Applied, len(todo))
	if len(parts) > 0 {
		line += " (" + strings.Join(parts, ", ") + ")"
	}
	if out.Skipped > 0 {
		line += fmt.Sprintf("; skipped %d", out.Skipped)
	}
	if out.Failed > 0 {
		line += fmt.Sprintf("; failed %d", out.Failed)
	}
	fmt.Fprintln(w, line)
	for _, res := range out.Results {
		switch {
		case res.Skipped != "":
			fmt.Fprintf(w, "  %d skipped: %s\n", res.ID, res.Skipped)
		case res.Error != "":
			fmt.Fprintf(w, "  %d failed: %s\n", res.ID, res.Error)
		case res.Fallback != "":
			fmt.Fprintf(w, "  %d: result stored as %s (storage failed: %s)\n", res.ID, res.Result, res.Fallback)
		case res.CancelWon:
			fmt.Fprintf(w, "  %d: cancelled meanwhile, finalized CANCELLED\n", res.ID)
		}
	}
	if out.AuditID != nil {
		fmt.Fprintf(w, "audit: entry %d (rayctl audit show %d)\n", *out.AuditID, *out.AuditID)
	} else if len(out.Results) > 0 {
		fmt.Fprintln(w, "audit: not recorded, the rayctl_audit table does not exist (the audit trail is optional: rayctl migrate up --audit enables it)")
	}
	return nil
}
