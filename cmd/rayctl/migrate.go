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
		Description: "up creates the tables exactly as Django's django_ray 0001_initial does; on a database where\n" +
			"Django already created them it checks them, records them as applied and changes nothing.",
		Subcommands: []*cli.Command{
			{
				Name:  "up",
				Usage: "apply pending migrations (or adopt tables Django created)",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "dry-run", Usage: "print what would be done and the SQL, change nothing"}},
				Action: func(c *cli.Context) error {
					return e.withDB(c, func(r *runCtx) error { return migrateUp(r, c.Bool("dry-run")) })
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
				Usage: "exit 6 when migrations are pending or the schema drifted from django-ray 0.2.0",
				Action: func(c *cli.Context) error {
					return e.withDB(c, migrateValidate)
				},
			},
		},
	}
}

func migrateUp(r *runCtx, dryRun bool) error {
	res, err := migrations.Up(r.ctx, r.pool, migrations.Options{DryRun: dryRun})
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
		state, at := "pending", "-"
		if s.Applied {
			state = "applied"
			if s.Adopted {
				state = "adopted (created by Django)"
			}
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
