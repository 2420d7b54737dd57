package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/recovery"
)

func (e env) inspectLeasesCommand() *cli.Command {
	return &cli.Command{
		Name:  "inspect-leases",
		Usage: "worker leases with heartbeat verdicts and the tasks they own; orphan candidates",
		Description: "Every worker lease, oldest heartbeat first: host, pid, queues, age, heartbeat age and a\n" +
			"verdict — fresh (active, heartbeat within --lease-ttl), stale (still active, heartbeat\n" +
			"older: hung, dead or cut off) or expired (stopped, or expired by a worker's sweep) — with\n" +
			"the RUNNING and CANCELLING tasks it owns. Then the orphan candidates: RUNNING and\n" +
			"CANCELLING tasks whose owner is nobody, unknown, expired or stale. A live worker adopts\n" +
			"orphans that have a raysubmit_ Ray job, or marks them LOST after STUCK_TASK_TIMEOUT_SECONDS;\n" +
			"orphaned CANCELLING tasks are finalized by rayctl cancel --state CANCELLING.\n\n" +
			"EXIT CODES:\n   0  listed (whatever the verdicts; rayctl doctor is the health gate)\n   1  error\n   2  usage error",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "stale-only", Usage: "leave fresh leases out"},
			leaseTTLFlag("a lease without a heartbeat for this long is stale"),
			&cli.IntFlag{Name: "orphan-limit", Value: 100, Usage: "list at most this many orphan candidates (1..10000)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("inspect-leases: unexpected argument %q", c.Args().First())
			}
			opts := recovery.LeaseOptions{LeaseTTL: c.Duration("lease-ttl"), StaleOnly: c.Bool("stale-only"), OrphanLimit: c.Int("orphan-limit")}
			if opts.LeaseTTL <= 0 {
				return usageErrorf("inspect-leases: invalid --lease-ttl %s (want more than 0)", opts.LeaseTTL)
			}
			if opts.OrphanLimit < 1 || opts.OrphanLimit > recovery.MaxLimit {
				return usageErrorf("inspect-leases: invalid --orphan-limit %d (want 1..%d)", opts.OrphanLimit, recovery.MaxLimit)
			}
			return e.withDB(c, func(r *runCtx) error { return inspectLeases(r, opts) })
		},
	}
}

func inspectLeases(r *runCtx, opts recovery.LeaseOptions) error {
	rep, err := recovery.InspectLeases(r.ctx, r.store, opts)
	if err != nil {
		return err
	}
	if r.o.output == "jsonl" {
		// one document per lease, then per orphan, each tagged with its kind
		for _, l := range rep.Leases {
			if err := writeJSON(r.stdout, r.o, struct {
				Kind string `json:"kind"`
				recovery.LeaseInfo
			}{"lease", l}); err != nil {
				return err
			}
		}
		for _, o := range rep.Orphans {
			if err := writeJSON(r.stdout, r.o, struct {
				Kind string `json:"kind"`
				recovery.OrphanInfo
			}{"orphan", o}); err != nil {
				return err
			}
		}
		return nil
	}
	if r.o.json() {
		return writeJSON(r.stdout, r.o, rep)
	}
	w := r.stdout
	ttl := time.Duration(rep.LeaseTTLSeconds * float64(time.Second))
	fmt.Fprintf(w, "leases: %d fresh, %d stale, %d expired (lease TTL %s)\n", rep.Counts.Fresh, rep.Counts.Stale, rep.Counts.Expired, ttl)
	if len(rep.Leases) > 0 {
		tw := table(w)
		fmt.Fprintln(tw, "WORKER\tHOST\tPID\tMODE\tQUEUES\tVERDICT\tAGE\tHEARTBEAT\tRUNNING\tCANCELLING\tTASKS")
		for _, l := range rep.Leases {
			tasks := "-"
			if len(l.TaskIDs) > 0 {
				tasks = joinIDs(l.TaskIDs, 5)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s ago\t%d\t%d\t%s\n", l.WorkerID, clip(l.Host(), 24), l.PID, modeText(l.Mode), clip(l.QueueName, 30),
				l.Verdict, age(l.AgeSeconds, true), age(l.HeartbeatAgeSeconds, true), l.Running, l.Cancelling, tasks)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if rep.OrphansTotal == 0 {
		fmt.Fprintln(w, "orphan candidates: none (every RUNNING and CANCELLING task has a live owner)")
		return nil
	}
	shown := ""
	if int64(len(rep.Orphans)) < rep.OrphansTotal {
		shown = fmt.Sprintf(", oldest %d shown (--orphan-limit)", len(rep.Orphans))
	}
	fmt.Fprintf(w, "orphan candidates: %d RUNNING/CANCELLING tasks whose owner has no live lease%s\n", rep.OrphansTotal, shown)
	tw := table(w)
	fmt.Fprintln(tw, "ID\tSTATE\tCALLABLE\tWORKER\tREASON\tIDLE\tRAY JOB")
	for _, o := range rep.Orphans {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Task.ID, o.Task.State, clip(o.Task.CallablePath, 40),
			dash(clip(deref(o.Task.ClaimedByWorker), 12)), strings.ReplaceAll(string(o.Reason), "_", " "), age(o.IdleSeconds, true), dash(deref(o.Task.RayJobID)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "next: a live worker adopts RUNNING orphans with a raysubmit_ job or marks them LOST after")
	fmt.Fprintln(w, "STUCK_TASK_TIMEOUT_SECONDS (then: rayctl requeue --state LOST); finalize orphaned CANCELLING")
	fmt.Fprintln(w, "tasks with: rayctl cancel --state CANCELLING --dry-run")
	return nil
}

// modeText is a lease's execution mode for a table: rayworker's (from its lease), else that
// of django-ray's own worker, whose lease carries none.
func modeText(mode string) string {
	if mode == "" {
		return "django-ray"
	}
	return mode
}
