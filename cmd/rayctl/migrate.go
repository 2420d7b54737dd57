package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/migrations"
)

func (e env) migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "create, adopt or check the django-ray 0.2.0 tables",
		Description: "up creates the tables exactly as Django's django_ray 0001_initial does. A database where\n" +
			"Django's migrate already created them is used as it is: status reports them as created by\n" +
			"Django, validate accepts them, and up checks them and writes nothing.\n\n" +
			"rayctl's own audit tables (rayctl_audit, rayctl_audit_task: who requeued, cancelled or\n" +
			"reconciled what, and why) are optional and created only by up --audit. Without them requeue,\n" +
			"cancel and reconcile-jobs work the same and say once per run that nothing was recorded.",
		Subcommands: []*cli.Command{
			{
				Name:  "up",
				Usage: "create the tables (nothing to do where Django created them); --audit adds rayctl's audit tables",
				Description: "Without --audit, up never adds a table of rayctl's own to a database Django migrated.\n" +
					"With --audit it creates rayctl_audit and rayctl_audit_task (and rayctl_schema_migrations, its\n" +
					"record of what it applied): enable them where operators must be able to answer who changed\n" +
					"a task and why (rayctl audit ls --task ID).\n\n" +
					"EXIT CODES:\n   0  done (or nothing to do)\n   1  error (incompatible tables, database unreachable)\n   2  usage error",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "dry-run", Usage: "print what would be done and the SQL, change nothing"},
					&cli.BoolFlag{Name: "audit", Usage: "also create rayctl's optional audit tables (rayctl_audit, rayctl_audit_task)"},
				},
				Action: func(c *cli.Context) error {
					return e.withDB(c, func(r *runCtx) error {
						return migrateUp(r, migrations.Options{DryRun: c.Bool("dry-run"), Audit: c.Bool("audit")})
					})
				},
			},
			{
				Name:  "status",
				Usage: "list migrations and whether they are applied",
				Action: func(c *cli.Context) error {
					return e.withDB(c, migrateStatus)
				},
			},
			{
				Name:  "indexes",
				Usage: "show rayctl's optional indexes (not Django's); --apply creates them CONCURRENTLY",
				Description: "django-ray 0.2.0's schema has no index matching its claim order, so with a large backlog\n" +
					"every claim sorts every QUEUED row. These optional indexes are rayctl's own: never created or\n" +
					"required by migrate up/validate, built with CREATE INDEX CONCURRENTLY (the table stays writable).",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "apply", Usage: "create the missing ones (and rebuild an invalid leftover of an interrupted build)"},
					&cli.BoolFlag{Name: "drop", Usage: "drop them"},
				},
				Action: func(c *cli.Context) error {
					if c.Bool("apply") && c.Bool("drop") {
						return usageErrorf("migrate indexes: --apply and --drop exclude each other")
					}
					return e.withDB(c, func(r *runCtx) error { return migrateIndexes(r, c.Bool("apply"), c.Bool("drop")) })
				},
			},
			{
				Name:  "validate",
				Usage: "exit 6 when the tables are missing or drifted from django-ray 0.2.0 (a database Django migrated is valid as is)",
				Description: "The optional audit tables are reported (not_enabled) but never make validate fail.\n\n" +
					"EXIT CODES:\n   0  valid\n   1  error (database unreachable)\n   2  usage error\n   6  tables missing, or drifted",
				Action: func(c *cli.Context) error {
					return e.withDB(c, migrateValidate)
				},
			},
		},
	}
}

func migrateUp(r *runCtx, opts migrations.Options) error {
	res, err := migrations.Up(r.ctx, r.pool, opts)
	if err != nil {
		return err
	}
	if r.o.json() {
		return writeJSON(r.stdout, r.o, res)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(r.stderr, "warning: %s\n", w)
	}
	for _, s := range res.Steps {
		fmt.Fprintf(r.stdout, "%04d_%s: %s\n", s.Version, s.Name, s.Action)
		if s.SQL != "" {
			fmt.Fprintln(r.stdout, s.SQL)
		}
	}
	return nil
}

func migrateStatus(r *runCtx) error {
	st, err := migrations.Status(r.ctx, r.pool)
	if err != nil {
		return err
	}
	if r.o.json() {
		return writeJSON(r.stdout, r.o, st)
	}
	tw := table(r.stdout)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
	for _, s := range st {
		state, at := s.State, "-"
		switch s.State {
		case "adopted":
			state = "adopted (created by Django)"
		case "created_by_django":
			state = "created by Django (used as it is)"
		case "present":
			state = "present (not recorded in django_migrations: rayctl migrate up records it)"
		case "not_enabled":
			state = "not enabled (optional: rayctl migrate up --audit)"
		}
		if s.AppliedAt != nil {
			at = s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%04d\t%s\t%s\t%s\n", s.Version, s.Name, state, at)
	}
	return tw.Flush()
}

func migrateValidate(r *runCtx) error {
	rep, err := migrations.Validate(r.ctx, r.pool)
	if err != nil {
		return err
	}
	if r.o.json() {
		out := struct {
			OK bool `json:"ok"`
			migrations.Report
		}{rep.OK(), rep}
		if err := writeJSON(r.stdout, r.o, out); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Pending {
			fmt.Fprintf(r.stdout, "pending: %s\n", p)
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(r.stdout, "problem: %s\n", p)
		}
		for _, w := range rep.Warnings {
			fmt.Fprintf(r.stdout, "warning: %s\n", w)
		}
		for _, n := range rep.NotEnabled {
			fmt.Fprintf(r.stdout, "optional, not enabled: %s (rayctl migrate up --audit)\n", n)
		}
		if rep.OK() {
			fmt.Fprintln(r.stdout, "schema is current and matches django-ray 0.2.0")
		}
	}
	if !rep.OK() {
		return &exitError{code: exitUnhealthy, msg: fmt.Sprintf("schema not valid: %d pending, %d problems", len(rep.Pending), len(rep.Problems))}
	}
	return nil
}

func migrateIndexes(r *runCtx, apply, drop bool) error {
	states, err := migrations.InspectOptional(r.ctx, r.pool)
	if err != nil {
		return err
	}
	for _, st := range states {
		switch {
		case apply && (!st.Present || !st.Valid):
			fmt.Fprintf(r.stderr, "creating %s (CONCURRENTLY; may take a while on a large table)...\n", st.Name)
			if err := migrations.CreateOptional(r.ctx, r.pool, st); err != nil {
				return err
			}
		case drop && st.Present:
			if err := migrations.DropOptional(r.ctx, r.pool, st.OptionalIndex); err != nil {
				return err
			}
		}
	}
	if apply || drop {
		if states, err = migrations.InspectOptional(r.ctx, r.pool); err != nil {
			return err
		}
	}
	if r.o.json() {
		return writeJSON(r.stdout, r.o, states)
	}
	for _, st := range states {
		state := "absent"
		switch {
		case st.Present && st.Valid:
			state = fmt.Sprintf("present (%d MiB)", st.Bytes>>20)
		case st.Present:
			state = "INVALID (an interrupted build; --apply rebuilds it)"
		}
		fmt.Fprintf(r.stdout, "%s: %s\n  %s\n", st.Name, state, st.Purpose)
		if !st.Present || !st.Valid {
			fmt.Fprintf(r.stdout, "  %s;\n", st.CreateSQL())
		}
	}
	return nil
}
