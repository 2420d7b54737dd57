package main

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/store"
)

func (e env) auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "the audit trail of requeue, cancel and reconcile-jobs runs (who, when, why, which tasks); optional: rayctl migrate up --audit",
		Subcommands: []*cli.Command{
			{
				Name:  "ls",
				Usage: "list audit entries, newest first",
				Description: "Each requeue, cancel or reconcile-jobs --apply run that changed something is one entry: actor (user@host), reason,\n" +
					"selection, counts, start and finish, and an error if it stopped early.\n\n" +
					"EXIT CODES:\n   0  listed\n   1  error (also: the rayctl_audit table does not exist)\n   2  usage error",
				Flags: []cli.Flag{
					&cli.Int64Flag{Name: "task", Usage: "only entries that changed this task (row id)"},
					&cli.StringFlag{Name: "action", Usage: "only requeue, cancel or reconcile-jobs"},
					&cli.IntFlag{Name: "limit", Value: 20, Usage: "at most this many entries (1..10000)"},
				},
				Action: func(c *cli.Context) error {
					f := store.AuditFilter{TaskID: c.Int64("task"), Action: c.String("action"), Limit: c.Int("limit")}
					if f.Action != "" && f.Action != "requeue" && f.Action != "cancel" && f.Action != "reconcile-jobs" {
						return usageErrorf("audit ls: invalid --action %q (want requeue, cancel or reconcile-jobs)", f.Action)
					}
					if f.Limit < 1 || f.Limit > 10000 || f.TaskID < 0 {
						return usageErrorf("audit ls: invalid --limit %d or --task %d", f.Limit, f.TaskID)
					}
					return e.withDB(c, func(r *runCtx) error { return auditLs(r, f) })
				},
			},
			{
				Name:        "show",
				Usage:       "one audit entry and the tasks it changed",
				ArgsUsage:   "ENTRY",
				Description: "EXIT CODES:\n   0  shown\n   1  error\n   2  usage error\n   3  no such entry",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageErrorf("audit show: want exactly one entry id")
					}
					id, err := strconv.ParseInt(c.Args().First(), 10, 64)
					if err != nil || id <= 0 {
						return usageErrorf("audit show: invalid entry id %q", c.Args().First())
					}
					return e.withDB(c, func(r *runCtx) error { return auditShow(r, id) })
				},
			},
		},
	}
}

func auditLs(r *runCtx, f store.AuditFilter) error {
	entries, err := r.store.ListAudit(r.ctx, f)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []store.AuditEntry{}
	}
	switch r.o.output {
	case "json":
		return writeJSON(r.stdout, r.o, entries)
	case "jsonl":
		for _, e := range entries {
			if err := writeJSON(r.stdout, r.o, e); err != nil {
				return err
			}
		}
		return nil
	}
	if len(entries) == 0 {
		_, err := fmt.Fprintln(r.stdout, "no audit entries")
		return err
	}
	tw := table(r.stdout)
	fmt.Fprintln(tw, "ENTRY\tSTARTED\tACTION\tACTOR\tMATCHED\tCHANGED\tSKIPPED\tREASON\tERROR")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", e.ID, e.StartedAt.UTC().Format(time.RFC3339), e.Action, clip(e.Actor, 30),
			e.Matched, e.Changed, e.Skipped, dash(clip(deref(e.Reason), 40)), dash(clip(deref(e.Error), 40)))
	}
	return tw.Flush()
}

func auditShow(r *runCtx, id int64) error {
	e, err := r.store.GetAudit(r.ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return &exitError{code: exitNoMatch, msg: fmt.Sprintf("audit show: no entry %d", id)}
	}
	if err != nil {
		return err
	}
	entry := &e
	changes, err := r.store.AuditChanges(r.ctx, id)
	if err != nil {
		return err
	}
	if changes == nil {
		changes = []store.AuditChange{}
	}
	if r.o.json() {
		return writeJSON(r.stdout, r.o, struct {
			store.AuditEntry
			Tasks []store.AuditChange `json:"tasks"`
		}{*entry, changes})
	}
	w := r.stdout
	fmt.Fprintf(w, "entry %d: %s by %s, started %s\n", entry.ID, entry.Action, entry.Actor, entry.StartedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  reason     %s\n  selection  %s\n  options    %s\n", dash(deref(entry.Reason)), entry.Selection, entry.Options)
	fmt.Fprintf(w, "  matched %d, selected %d, changed %d, skipped %d\n", entry.Matched, entry.Selected, entry.Changed, entry.Skipped)
	switch {
	case entry.Error != nil:
		fmt.Fprintf(w, "  stopped early: %s\n", *entry.Error)
	case entry.FinishedAt == nil:
		fmt.Fprintln(w, "  not finished: the run is in progress or was killed")
	}
	tw := table(w)
	fmt.Fprintln(tw, "TASK\tFROM\tTO")
	for _, c := range changes {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", c.ID, c.From, c.To)
	}
	return tw.Flush()
}
