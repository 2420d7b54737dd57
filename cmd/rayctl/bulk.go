package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
)

const bulkExitCodes = `EXIT CODES:
   0  done (or --dry-run)
   1  error (database unreachable, ...); nothing more was written
   2  usage error: unknown state, bad limit or duration, no filter, ...; nothing was written
   3  nothing matched the filter
   4  declined at the prompt, refused without --yes, or stdout was closed before the
      change started (a reader such as head exited); nothing was written
   5  partial: rows changed after selection were skipped, named --id tasks were missing
      or not eligible, or the run was interrupted: Ctrl-C, SIGTERM, or stdout closed
      during the change (it stops before its next batch; the summary, on stderr then,
      says which)`

const selectionHelp = `SELECTION:
   A filter is required. --limit caps the rows (default 100, at most 10000), oldest (lowest
   id) first; run again for the rest. Filters combine with AND; --state, --queue and --id
   may be repeated (or comma-separated). --callable takes a dotted path or a glob (* and ?).
   --older-than and --newer-than measure the time since the task's last activity (finished,
   started or created): 90s, 10m, 2h, 3d. --exception is the failure's exception type as the
   retry policy saw it (see rayctl tasks count --by exception). Every value is passed to
   PostgreSQL as a parameter. When nothing matches, the --queue, --callable and --worker
   values no task has are reported with the names near them that exist.

SAFETY:
   The matching count and a sample are printed first. On a terminal rayctl asks before
   writing; when stdin is not a terminal, or with -o json/jsonl, it refuses without --yes.
   --dry-run prints the plan and writes nothing. Rows are changed in transactions of
   --batch rows, each row only if it is still in the state it was selected in: rows that
   changed meanwhile are skipped and counted. When the optional audit tables exist (rayctl
   migrate up --audit), every run that writes is recorded there (with --reason; see rayctl
   audit ls); without them nothing is recorded, the summary says so, and --reason is refused.`

func selectionFlags(a recovery.Action) []cli.Flag {
	eligible, defaults := a.States()
	names := func(ss []store.TaskState) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = string(s)
		}
		return strings.Join(out, "|")
	}
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "state", Usage: fmt.Sprintf("only tasks in this state: %s (default %s)", names(eligible), strings.ReplaceAll(names(defaults), "|", " and "))},
		&cli.StringSliceFlag{Name: "queue", Aliases: []string{"q"}, Usage: "only tasks in this queue"},
		&cli.StringFlag{Name: "callable", Usage: "only tasks of this callable path, or glob (app.tasks.*)"},
		&cli.StringFlag{Name: "exception", Usage: exceptionUsage},
		&cli.StringFlag{Name: "error-contains", Usage: "only tasks whose error_message contains this text (any case)"},
		&cli.StringFlag{Name: "older-than", Usage: "only tasks idle longer than this (90s, 10m, 2h, 3d)"},
		&cli.StringFlag{Name: "newer-than", Usage: "only tasks active within this (15m: the failures of the last quarter hour)"},
		&cli.StringFlag{Name: "worker", Usage: "only tasks claimed by this worker id (claimed_by_worker)"},
		&cli.Int64SliceFlag{Name: "id", Usage: "only these row ids"},
		&cli.IntFlag{Name: "limit", Value: recovery.DefaultLimit, Usage: fmt.Sprintf("at most this many tasks, oldest first (1..%d)", recovery.MaxLimit)},
		&cli.IntFlag{Name: "batch", Value: recovery.DefaultBatch, Usage: fmt.Sprintf("rows per transaction (1..%d)", recovery.MaxBatch)},
		&cli.Float64Flag{Name: "rps", Usage: "at most this many rows per second, on average: the batches are spaced out (default: no limit)"},
		&cli.BoolFlag{Name: "dry-run", Usage: "print what would change and write nothing"},
		&cli.StringFlag{Name: "reason", Usage: "why, recorded in the audit trail (rayctl audit ls)"},
	}
}

func (e env) requeueCommand() *cli.Command {
	return &cli.Command{
		Name:  "requeue",
		Usage: "move FAILED, LOST or CANCELLED tasks back to QUEUED, in safe batches",
		Description: "Requeue resets what the runbook's manual action resets — started_at, finished_at,\n" +
			"error_message, error_traceback, claimed_by_worker, ray_job_id — and also last_heartbeat_at,\n" +
			"run_after (the task runs now) and result_data/result_reference (no stale result). args,\n" +
			"kwargs, queue and attempt_number are kept; --reset-attempts sets attempt_number to 1, so the\n" +
			"task gets MAX_TASK_ATTEMPTS tries again. RUNNING tasks are refused: a worker owns them.\n\n" +
			"A task whose row names a Ray job (ray_job_id raysubmit_...) may still have that job running (a\n" +
			"django-ray 0.2.0 worker fails timed-out and LOST tasks without stopping their jobs). With a Ray\n" +
			"address (--ray-address or $RAY_ADDRESS) rayctl stops each such job and waits until Ray reports\n" +
			"it over before requeueing its task; a task whose job cannot be confirmed over is left as it is\n" +
			"and reported (exit 5). Without one, rayctl warns that it did not check them.\n\n" +
			"Examples:\n" +
			"   rayctl requeue --state FAILED --queue default --dry-run\n" +
			"   rayctl requeue --state FAILED --callable 'billing.tasks.*' --error-contains Timeout --limit 500 --batch 100 --reason INC-42\n" +
			"   rayctl requeue --id 17 --id 18 --state CANCELLED --yes\n\n" + selectionHelp + "\n\n" + rayConnHelp + "\n\n" + bulkExitCodes,
		Flags: append(append(selectionFlags(recovery.ActionRequeue),
			&cli.BoolFlag{Name: "reset-attempts", Usage: "set attempt_number back to 1 (a full retry budget)"}),
			rayFlags()...),
		Action: func(c *cli.Context) error { return e.bulkAction(c, recovery.ActionRequeue) },
	}
}

func (e env) cancelCommand() *cli.Command {
	return &cli.Command{
		Name:  "cancel",
		Usage: "cancel tasks: QUEUED -> CANCELLED, RUNNING -> CANCELLING; finalize orphaned CANCELLING",
		Description: "QUEUED tasks become CANCELLED at once (finished_at set). RUNNING tasks become CANCELLING:\n" +
			"the owning worker finalizes them to CANCELLED. A django-ray 0.2.0 worker does not stop the Ray\n" +
			"job when it finalizes (its admin action stops the job first), so without --stop the Ray jobs\n" +
			"of cancelled RUNNING tasks are listed as not stopped. With --stop rayctl also asks Ray to stop\n" +
			"them, after the rows changed, best effort: each job's answer is reported (stopped, already\n" +
			"ended, unknown to Ray, or the error); a failed stop makes the exit code 5. With --state\n" +
			"CANCELLING, CANCELLING tasks whose owner has no live lease (none within --lease-ttl) are\n" +
			"finalized to CANCELLED, since no django-ray 0.2.0 worker ever will; with --stop each one's job\n" +
			"is stopped and confirmed over first (a task whose job is not is left CANCELLING and reported).\n" +
			"--stop checks that Ray answers before anything is written.\n\n" +
			"Examples:\n" +
			"   rayctl cancel --queue reports --state QUEUED --dry-run\n" +
			"   rayctl cancel --id 42 --yes --reason 'customer asked'\n" +
			"   rayctl cancel --state RUNNING --callable 'etl.*' --stop --ray-address http://ray-head:8265\n" +
			"   rayctl cancel --state CANCELLING --older-than 10m --stop\n\n" + selectionHelp + "\n\n" + rayConnHelp + "\n\n" + bulkExitCodes,
		Flags: append(append(selectionFlags(recovery.ActionCancel),
			leaseTTLFlag("with --state CANCELLING: an owner without a heartbeat for this long is gone"),
			&cli.BoolFlag{Name: "stop", Usage: "also ask Ray to stop the jobs of the tasks cancelled (needs --ray-address or $RAY_ADDRESS)"}),
			rayFlags()...),
		Action: func(c *cli.Context) error { return e.bulkAction(c, recovery.ActionCancel) },
	}
}

type bulkFlags struct {
	sel           recovery.Selection
	batch         int
	rps           float64 // rows per second at most; 0: no limit
	dryRun        bool
	reason        string
	resetAttempts bool
	stop          *rayConn // cancel --stop: the Ray to stop jobs on
	// ray: the Ray whose jobs are confirmed over before their rows move on (requeue with a
	// Ray address; cancel --stop, for finalized CANCELLING rows). Nil: not checked.
	ray *rayConn
}

func parseBulkFlags(c *cli.Context, a recovery.Action) (bulkFlags, error) {
	name := string(a)
	var f bulkFlags
	if c.NArg() > 0 {
		return f, usageErrorf("%s: unexpected argument %q (select tasks with flags, e.g. --id %s)", name, c.Args().First(), c.Args().First())
	}
	states, err := statesFlag(c, name)
	if err != nil {
		return f, err
	}
	older, err := durationFlag(c, "older-than")
	if err != nil {
		return f, err
	}
	newer, err := durationFlag(c, "newer-than")
	if err != nil {
		return f, err
	}
	f.sel = recovery.Selection{
		States: states, Queues: c.StringSlice("queue"), Callable: c.String("callable"),
		ErrorContains: c.String("error-contains"), OlderThan: older, NewerThan: newer, Worker: c.String("worker"),
		Exception: strings.TrimSpace(c.String("exception")), IDs: c.Int64Slice("id"), Limit: c.Int("limit"),
	}
	if c.IsSet("rps") {
		if f.rps = c.Float64("rps"); !(f.rps > 0) || f.rps > 1e6 {
			return f, usageErrorf("%s: invalid --rps %v (want a rate of rows per second above 0)", name, c.Float64("rps"))
		}
	}
	if c.IsSet("limit") && c.Int("limit") == 0 {
		return f, usageErrorf("%s: invalid --limit 0 (want 1..%d)", name, recovery.MaxLimit)
	}
	if a == recovery.ActionCancel {
		f.sel.LeaseTTL = c.Duration("lease-ttl")
		if f.sel.LeaseTTL <= 0 {
			return f, usageErrorf("cancel: invalid --lease-ttl %s (want more than 0)", f.sel.LeaseTTL)
		}
	}
	if f.sel, err = f.sel.Normalize(a); err != nil {
		return f, selectionErr(name, err)
	}
	f.batch = c.Int("batch")
	if f.batch < 1 || f.batch > recovery.MaxBatch {
		return f, usageErrorf("%s: invalid --batch %d (want 1..%d)", name, f.batch, recovery.MaxBatch)
	}
	f.dryRun, f.reason = c.Bool("dry-run"), c.String("reason")
	if a == recovery.ActionRequeue {
		f.resetAttempts = c.Bool("reset-attempts")
	}
	return f, nil
}

// selectionErr turns a recovery selection error into a usage error.
func selectionErr(cmd string, err error) error {
	if errors.Is(err, recovery.ErrBadSelection) {
		return usageErrorf("%s: %s", cmd, strings.TrimPrefix(err.Error(), recovery.ErrBadSelection.Error()+": "))
	}
	return err
}

func (e env) bulkAction(c *cli.Context, a recovery.Action) error {
	f, err := parseBulkFlags(c, a)
	if err != nil {
		return err
	}
	if a == recovery.ActionCancel && c.Bool("stop") {
		if f.stop, err = e.rayClient(c, "cancel"); err != nil {
			return err
		}
		if f.stop == nil {
			return usageErrorf("cancel: --stop needs a Ray address: set --ray-address or RAY_ADDRESS (the dashboard, http://HOST:8265)")
		}
		defer f.stop.close()
		f.ray = f.stop
	}
	// requeue: a Ray address, when there is one, is used to end the tasks' old jobs first.
	// $RAY_ADDRESS=auto (django-ray's default) names no Jobs API: the jobs go unchecked.
	if a == recovery.ActionRequeue && (c.IsSet("ray-address") || !strings.EqualFold(e.rayAddress(c), "auto")) {
		if f.ray, err = e.rayClient(c, "requeue"); err != nil {
			return err
		}
		defer f.ray.close()
	}
	return e.withDB(c, func(r *runCtx) error { return bulk(r, a, f) })
}

// bulkReport is the -o json document of requeue and cancel: one per run.
type bulkReport struct {
	DryRun  bool              `json:"dry_run"`
	Applied bool              `json:"applied"`
	Plan    recovery.Plan     `json:"plan"`
	Outcome *recovery.Outcome `json:"outcome"`
	// Stops is Ray's answer per job (cancel --stop); null without --stop.
	Stops []recovery.StopResult `json:"stops"`
	// RayJobsChecked: the plan's Ray jobs (plan.ray_jobs) were confirmed over before their
	// rows changed (outcome.ray_jobs_ended / ray_jobs_not_ended); false: nobody checked them.
	RayJobsChecked bool `json:"ray_jobs_checked"`
	// Hints: when nothing matched, the --queue, --callable and --worker values no task has,
	// with the existing names near them (a typo's likely fix).
	Hints []recovery.NameHint `json:"hints,omitempty"`
}

// verbs for people: requeue -> "Requeue"/"requeued".
func verbs(a recovery.Action) (string, string) {
	if a == recovery.ActionCancel {
		return "Cancel", "cancelled"
	}
	return "Requeue", "requeued"
}

func bulk(r *runCtx, a recovery.Action, f bulkFlags) error {
	name := string(a)
	verb, done := verbs(a)
	if f.stop != nil {
		// Ray must answer before anything is written: stops come after the rows changed.
		if _, err := f.stop.client.Version(r.ctx); err != nil {
			return rayDown(name+" --stop", fmt.Errorf("cannot ask Ray at %s: %v", f.stop.address, err))
		}
	}
	p, err := recovery.PlanAction(r.ctx, r.store, a, f.sel, recovery.PlanOptions{})
	if err != nil {
		return selectionErr(name, err)
	}
	if f.ray != nil && f.stop == nil && len(p.RayJobs) > 0 && !f.dryRun {
		// Ray must answer before anything is written, or every such row would be skipped.
		if _, err := f.ray.client.Version(r.ctx); err != nil {
			return rayDown(name, fmt.Errorf("%s a Ray job to stop first, but Ray at %s does not answer: %v",
				namePhrase(len(p.RayJobs), "selected "), f.ray.address, err))
		}
	}
	rep := bulkReport{DryRun: f.dryRun, Plan: p, RayJobsChecked: f.ray != nil && len(p.RayJobs) > 0}
	finish := func(err error) error {
		if r.o.json() {
			if werr := writeJSON(r.stdout, r.o, rep); werr != nil {
				return werr
			}
		}
		if out := rep.Outcome; out != nil && r.env.out.closed() {
			// the summary went nowhere: say on stderr what was done
			fmt.Fprintf(r.stderr, "rayctl: %s: %v; the change completed: %s %d of %d, skipped %d\n", name, errOutputClosed, done,
				out.Changed, len(p.Targets), out.Skipped)
		}
		return err
	}
	if !r.o.json() {
		if err := printPlan(r.stdout, p); err != nil {
			return err
		}
		printRayJobsNote(r.stdout, p, f.ray)
	}
	if len(p.Targets) == 0 {
		msg := fmt.Sprintf("%s: nothing matched the filter; nothing changed", name)
		if len(p.MissingIDs)+len(p.Unmatched) == 0 {
			hints, err := recovery.NameHints(r.ctx, r.store, p.Selection.Filter())
			if err != nil {
				return finish(err)
			}
			rep.Hints = hints
			if !r.o.json() {
				printHints(r.stdout, hints)
			}
			if len(hints) > 0 {
				msg += "; " + hintSummary(hints)
			}
		}
		return finish(&exitError{code: exitNoMatch, msg: msg})
	}
	if f.reason != "" && !p.Audited {
		return finish(fmt.Errorf("%s: --reason cannot be recorded: %v; nothing changed", name, store.ErrNoAudit))
	}
	if f.dryRun {
		if !r.o.json() {
			fmt.Fprintln(r.stdout, "dry run: nothing changed")
		}
		return finish(nil)
	}
	n := plural(int64(len(p.Targets)), "task")
	if r.env.out.closed() {
		// nobody reads the plan: write nothing to the database either
		return &exitError{code: exitDeclined, msg: fmt.Sprintf("%s: %v before the change started; nothing changed (%s selected)", name, errOutputClosed, n)}
	}
	if !r.o.yes {
		switch {
		case r.o.json():
			return finish(&exitError{code: exitDeclined, msg: fmt.Sprintf("%s: refusing to %s %s without --yes: output is %s (add --yes, or --dry-run to preview); nothing changed", name, name, n, r.o.output)})
		case !r.env.stdinIsTTY():
			return finish(&exitError{code: exitDeclined, msg: fmt.Sprintf("%s: refusing to %s %s without --yes: stdin is not a terminal (add --yes, or --dry-run to preview); nothing changed", name, name, n)})
		}
		fmt.Fprintf(r.stderr, "%s %s? [y/N] ", verb, n)
		if !confirmed(r.ctx, r.env.stdin, r.stderr) {
			return finish(&exitError{code: exitDeclined, msg: fmt.Sprintf("%s: declined; nothing changed", name)})
		}
	}
	opts := recovery.ApplyOptions{Batch: f.batch, ResetAttempts: f.resetAttempts, Reason: f.reason, Actor: r.env.actor(), Hooks: r.env.hooks,
		RowsPerSecond: f.rps, Now: r.env.paceNow, Sleep: r.env.paceSleep}
	// A closed stdout stops the run before its next batch, as Ctrl-C does: a change nobody
	// can watch any more does not go on. What committed stays, and is summarized on stderr.
	before := opts.Hooks.BeforeBatch
	opts.Hooks.BeforeBatch = func(ctx context.Context, n int, ids []int64) error {
		if r.env.out.closed() {
			return errOutputClosed
		}
		if before != nil {
			return before(ctx, n, ids)
		}
		return nil
	}
	if f.ray != nil {
		opts.Ray = f.ray.client
	}
	out, applyErr := recovery.Apply(r.ctx, r.store, p, opts)
	rep.Applied, rep.Outcome = out.Batches > 0, &out
	if f.stop != nil {
		rep.Stops = recovery.StopJobs(r.ctx, f.stop.client, out.Jobs, 0)
	}
	if !r.o.json() && (applyErr == nil || out.Batches > 0) {
		if err := printOutcome(r.stdout, p, out, f.batch, done, f.stop != nil); err != nil {
			return err
		}
		printStops(r.stdout, rep.Stops)
	}
	if errors.Is(applyErr, errOutputClosed) {
		code, what := exitPartial, fmt.Sprintf("stopped before batch %d of %d", out.Batches+1, (len(p.Targets)+f.batch-1)/f.batch)
		if out.Changed+out.Skipped == 0 {
			code, what = exitDeclined, "stopped before the first batch"
		}
		return &exitError{code: code, msg: fmt.Sprintf("%s: %v; %s: %s %d, skipped %d, %d not reached (run the command again for the rest)",
			name, errOutputClosed, what, done, out.Changed, out.Skipped, int64(len(p.Targets))-out.Changed-out.Skipped)}
	}
	if err := bulkExit(name, done, p, out, applyErr); err != nil {
		return finish(err)
	}
	var failed []string
	for _, s := range rep.Stops {
		if s.Error != "" {
			failed = append(failed, s.RayJobID)
		}
	}
	if len(failed) > 0 {
		return finish(&exitError{code: exitPartial, msg: fmt.Sprintf("%s: %s %d, but %d of %s could not be stopped: %s", name, done, out.Changed,
			len(failed), plural(int64(len(rep.Stops)), "Ray job"), joinStrings(failed, 10))})
	}
	return finish(nil)
}

// confirmed reads one answer line: y or yes (any case) confirms; anything else, EOF
// (Ctrl-D) or an interrupt (Ctrl-C, which main turns into a cancelled context) declines.
// Without an answer line it ends the prompt's line, which the terminal did not.
func confirmed(ctx context.Context, in io.Reader, prompt io.Writer) bool {
	type answer struct {
		line string
		err  error
	}
	got := make(chan answer, 1)
	go func() { // left blocked on stdin after an interrupt; the process exits right after
		line, err := bufio.NewReader(in).ReadString('\n')
		got <- answer{line, err}
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(prompt)
		return false
	case a := <-got:
		if a.err != nil {
			fmt.Fprintln(prompt)
		}
		switch strings.ToLower(strings.TrimSpace(a.line)) {
		case "y", "yes":
			return true
		}
		return false
	}
}

func bulkExit(name, done string, p recovery.Plan, out recovery.Outcome, err error) error {
	switch {
	case errors.Is(err, recovery.ErrInterrupted):
		return &exitError{code: exitPartial, msg: fmt.Sprintf("%s: %v: %s %d, skipped %d, %d not reached", name, err, done, out.Changed, out.Skipped,
			int64(len(p.Targets))-out.Changed-out.Skipped)}
	case err != nil && out.Changed > 0:
		return &exitError{code: exitPartial, msg: fmt.Sprintf("%s: stopped after %s %d: %v", name, done, out.Changed, err)}
	case err != nil:
		return fmt.Errorf("%s: %w", name, err)
	case len(out.NotEnded) > 0:
		return &exitError{code: exitPartial, msg: fmt.Sprintf("%s: %s %d; %s left unchanged: their Ray jobs could not be confirmed over", name, done, out.Changed,
			plural(int64(len(out.NotEnded)), "task"))}
	case out.Skipped > 0:
		return &exitError{code: exitPartial, msg: fmt.Sprintf("%s: %s %d, skipped %d that changed after selection", name, done, out.Changed, out.Skipped)}
	case len(p.MissingIDs)+len(p.Unmatched) > 0:
		return &exitError{code: exitPartial, msg: fmt.Sprintf("%s: %s %d; %d named tasks were missing or not eligible", name, done, out.Changed, len(p.MissingIDs)+len(p.Unmatched))}
	}
	return nil
}

func printPlan(w io.Writer, p recovery.Plan) error {
	desc := p.Selection.Describe()
	switch {
	case len(p.Targets) == 0:
		fmt.Fprintf(w, "%s: no tasks match (%s)\n", p.Action, desc)
	case p.Remaining() > 0:
		fmt.Fprintf(w, "%s: %s (%s); the oldest %d selected (--limit %d), %d left for another run\n",
			p.Action, matches(p.Matched), desc, len(p.Targets), p.Selection.Limit, p.Remaining())
	default:
		fmt.Fprintf(w, "%s: %s (%s)\n", p.Action, matches(p.Matched), desc)
	}
	if len(p.Sample) > 0 {
		if err := writeTaskTable(w, p.Sample, p.PlannedAt); err != nil {
			return err
		}
		if more := len(p.Targets) - len(p.Sample); more > 0 {
			fmt.Fprintf(w, "... and %d more\n", more)
		}
	}
	if len(p.MissingIDs) > 0 {
		fmt.Fprintf(w, "not found: %s\n", joinIDs(p.MissingIDs, 20))
	}
	if len(p.Unmatched) > 0 {
		parts := make([]string, 0, len(p.Unmatched))
		for i, u := range p.Unmatched {
			if i == 20 {
				parts = append(parts, fmt.Sprintf("... (%d more)", len(p.Unmatched)-20))
				break
			}
			parts = append(parts, fmt.Sprintf("%d (%s)", u.ID, u.State))
		}
		eligible, _ := p.Action.States()
		fmt.Fprintf(w, "not selected (other state or filter; %s takes %s, see --state): %s\n", p.Action, statesList(eligible), strings.Join(parts, ", "))
	}
	return nil
}

func printOutcome(w io.Writer, p recovery.Plan, out recovery.Outcome, batch int, done string, stopping bool) error {
	line := fmt.Sprintf("%s %d of %d", done, out.Changed, len(p.Targets))
	if p.Action == recovery.ActionCancel && out.Changed > 0 {
		var parts []string
		for _, st := range store.AllStates {
			if n := out.ToStates[st]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d now %s", n, st))
			}
		}
		line += " (" + strings.Join(parts, ", ") + ")"
	}
	notEnded := map[int64]bool{}
	for _, n := range out.NotEnded {
		notEnded[n.ID] = true
	}
	var moved []int64
	for _, id := range out.SkippedIDs {
		if !notEnded[id] {
			moved = append(moved, id)
		}
	}
	if len(moved) > 0 {
		line += fmt.Sprintf("; skipped %d that changed after selection: %s", len(moved), joinIDs(moved, 10))
	}
	fmt.Fprintln(w, line)
	if n := len(out.Ended); n > 0 {
		fmt.Fprintf(w, "%s confirmed over (stopped first where still running) before their tasks changed\n", plural(int64(n), "Ray job"))
	}
	for i, n := range out.NotEnded {
		if i == 20 {
			fmt.Fprintf(w, "... and %d more left unchanged (-o json lists all)\n", len(out.NotEnded)-20)
			break
		}
		fmt.Fprintf(w, "left unchanged: task %d, Ray job %s not confirmed over: %s\n", n.ID, n.RayJobID, n.Error)
	}
	fmt.Fprintf(w, "%s of up to %d rows, longest transaction %s, %.0f rows/s\n", plural(int64(out.Batches), "batch"), batch,
		out.LongestBatch.Round(time.Microsecond), out.RowsPerSecond())
	if out.ToStates[store.StateCancelling] > 0 {
		fmt.Fprintln(w, "CANCELLING tasks are finalized by their workers; watch them with: rayctl tasks ls --state CANCELLING")
	}
	if len(out.UnstoppedJobs) > 0 && !stopping {
		fmt.Fprintf(w, "Ray jobs not stopped (add --stop to stop them, or stop them in the Ray dashboard if they must not run on): %s\n",
			joinStrings(out.UnstoppedJobs, 20))
	}
	switch {
	case out.AuditID != nil:
		fmt.Fprintf(w, "audit: entry %d (rayctl audit show %d)\n", *out.AuditID, *out.AuditID)
	case out.Batches > 0:
		fmt.Fprintln(w, "audit: not recorded, the rayctl_audit table does not exist (the audit trail is optional: rayctl migrate up --audit enables it)")
	}
	if p.Remaining() > 0 {
		fmt.Fprintf(w, "%d more match: run the command again to continue\n", p.Remaining())
	}
	return nil
}

func joinStrings(ss []string, max int) string {
	if len(ss) > max {
		return strings.Join(ss[:max], ", ") + fmt.Sprintf(", ... (%d more; -o json lists all)", len(ss)-max)
	}
	return strings.Join(ss, ", ")
}

// matches is "1 task matches" or "3 tasks match".
func matches(n int64) string {
	if n == 1 {
		return "1 task matches"
	}
	return plural(n, "task") + " match"
}

func joinIDs(ids []int64, max int) string {
	parts := make([]string, 0, min(len(ids), max)+1)
	for i, id := range ids {
		if i == max {
			parts = append(parts, fmt.Sprintf("... (%d more)", len(ids)-max))
			break
		}
		parts = append(parts, fmt.Sprint(id))
	}
	return strings.Join(parts, ", ")
}

func statesList(ss []store.TaskState) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}

// printRayJobsNote says what happens to the Ray jobs of the rows the action moves away from
// them: confirmed over first (with a Ray address), or not checked, which is a warning.
func printRayJobsNote(w io.Writer, p recovery.Plan, ray *rayConn) {
	n := len(p.RayJobs)
	if n == 0 {
		return
	}
	if ray != nil {
		fmt.Fprintf(w, "%s a Ray job: each job is stopped and confirmed over at %s before its task changes\n", namePhrase(n, ""), ray.address)
		return
	}
	ids := make([]string, 0, n)
	for _, j := range p.RayJobs {
		ids = append(ids, j.RayJobID)
	}
	fix := "give --ray-address or set RAY_ADDRESS to stop them first"
	if p.Action == recovery.ActionCancel {
		fix = "add --stop (with a Ray address) to stop them first"
	}
	fmt.Fprintf(w, "warning: %s a Ray job that rayctl did not check (%s); one still running would run on beside whatever runs next: %s\n",
		namePhrase(n, "selected "), fix, joinStrings(ids, 10))
}

// namePhrase is "1 <adj>task names" or "N <adj>tasks name".
func namePhrase(n int, adj string) string {
	if n == 1 {
		return "1 " + adj + "task names"
	}
	return fmt.Sprintf("%d %stasks name", n, adj)
}

// printStops reports Ray's answer for each job cancel --stop asked to stop.
func printStops(w io.Writer, stops []recovery.StopResult) {
	for _, s := range stops {
		switch {
		case s.Error != "":
			fmt.Fprintf(w, "stop %s (task %d): FAILED: %s\n", s.RayJobID, s.ID, s.Error)
		case s.Stopped:
			fmt.Fprintf(w, "stop %s (task %d): stopped\n", s.RayJobID, s.ID)
		default:
			fmt.Fprintf(w, "stop %s (task %d): %s\n", s.RayJobID, s.ID, s.Note)
		}
	}
}

// printHints says, for each filter value no task has, which existing names are near it.
func printHints(w io.Writer, hints []recovery.NameHint) {
	for _, h := range hints {
		if h.Glob != "" {
			fmt.Fprintf(w, "hint: no task has --%s %s; it is a module of %s: --%s '%s' selects them all\n", h.Flag, h.Value,
				joinStrings(h.Near, 3), h.Flag, h.Glob)
			continue
		}
		fmt.Fprintf(w, "hint: no task has --%s %s; near names that exist: %s\n", h.Flag, h.Value, strings.Join(h.Near, ", "))
	}
}

// hintSummary is the hints in a clause for the one-line error: "did you mean --queue payments?".
func hintSummary(hints []recovery.NameHint) string {
	parts := make([]string, 0, len(hints))
	for _, h := range hints {
		if h.Glob != "" {
			parts = append(parts, fmt.Sprintf("--%s '%s'", h.Flag, h.Glob))
			continue
		}
		parts = append(parts, fmt.Sprintf("--%s %s", h.Flag, h.Near[0]))
	}
	return "did you mean " + strings.Join(parts, " and ") + "?"
}

// exceptionUsage describes --exception.
const exceptionUsage = "only tasks whose failure has this exception type, as the retry policy saw it: " +
	"builtins.ValueError (or ValueError), myapp.errors.*, TaskLost, TaskTimedOut, RayJobFailed, ... (rayctl tasks count --by exception lists them)"
