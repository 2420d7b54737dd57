package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/resultstore"
)

func (e env) doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "health checks: database, schema, clock skew, leases, backlog, stuck tasks, failures, Ray, result storage",
		Description: "The runbook's triage checklist in one command. Checks, in order:\n" +
			"   database    reachable, server version\n" +
			"   schema      migrations applied, no drift from django-ray 0.2.0 (as migrate validate)\n" +
			"   clock       skew between this host and the database\n" +
			"   leases, backlog, claims (the claim-order index), stuck, cancelling, failures, workers,\n" +
			"   references: the runbook signals below, each with its playbook\n" +
			"   ray         with --ray-address / RAY_ADDRESS: the Jobs API answers (its version), its GCS\n" +
			"               health check passes, and the auth mode: none (Ray asks for no token), token\n" +
			"               required and accepted, or token sent but not required (probed once more\n" +
			"               without it); a dead Ray or a refused token fails the check\n" +
			"   results     with --result-storage-backend s3 or gcs (or the workers' DJANGO_RAY_RESULT_STORAGE_*\n" +
			"               variables): the bucket is reachable and writable; a probe object is written\n" +
			"               under the prefix, read back and removed\n" +
			"Each prints ok, warn, fail or skip, with the next command to run.\n\n" +
			"EXIT CODES:\n   0  no check failed (warnings allowed, unless --strict)\n   2  usage error\n" +
			"   6  unhealthy: a check failed (an unreachable database or Ray is a failed check)\n\n" + signalHelp + "\n\n" + rayConnHelp,
		Flags: append(append(signalFlags(),
			&cli.DurationFlag{Name: "max-clock-skew", Value: recovery.DefaultMaxClockSkew, Usage: "fail when this host's clock is further than this from the database's"},
			&cli.BoolFlag{Name: "strict", Usage: "warnings are unhealthy too (exit 6)"},
		), append(rayFlags(), resultFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("doctor: unexpected argument %q", c.Args().First())
			}
			o, err := e.opts(c)
			if err != nil {
				return err
			}
			th, err := signalThresholds(c, "doctor")
			if err != nil {
				return err
			}
			cfg := recovery.DoctorConfig{
				LeaseTTL: th.LeaseTTL, StuckAfter: th.StuckAfter, MaxQueueAge: th.MaxQueueAge, StallAfter: th.StallAfter,
				MaxClockSkew: c.Duration("max-clock-skew"), FailureWindow: th.FailureWindow, MaxFailures: th.MaxFailures,
				Clock: e.clock,
			}
			if cfg.MaxClockSkew <= 0 {
				return usageErrorf("doctor: invalid --max-clock-skew %s (want more than 0)", cfg.MaxClockSkew)
			}
			rc, err := e.rayClient(c, "doctor")
			if err != nil {
				return err
			}
			check := recovery.RayCheck{}
			if rc != nil {
				defer rc.close()
				p := recovery.JobsProber{Address: rc.address, Client: rc.client, TokenSource: rc.tokenSource}
				if rc.anon != nil {
					p.Anonymous = rc.anon
				}
				check = recovery.RayCheck{Address: rc.address, Prober: p}
				cfg.RayAddress = rc.address
			}
			backend, err := e.resultBackend(c, "doctor")
			if err != nil {
				return err
			}
			defer resultstore.Close(backend)
			cfg.Checks = []recovery.Check{check, storageCheck(backend)}
			cfg.Connect = func(ctx context.Context) (*pgxpool.Pool, error) { return e.open(ctx, o) }
			return doctor(c.Context, e, o, cfg, c.Bool("strict"))
		},
	}
}

func doctor(ctx context.Context, e env, o opts, cfg recovery.DoctorConfig, strict bool) error {
	rep := recovery.Doctor(ctx, cfg)
	bad := !rep.OK || (strict && rep.Worst() == recovery.StatusWarn)
	if o.json() {
		if o.output == "jsonl" {
			for _, c := range rep.Checks {
				if err := writeJSON(e.stdout, o, c); err != nil {
					return err
				}
			}
		} else if err := writeJSON(e.stdout, o, rep); err != nil {
			return err
		}
	} else {
		tw := table(e.stdout)
		for _, c := range rep.Checks {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", strings.ToUpper(string(c.Status)), c.Name, c.Summary)
			for _, d := range c.Details {
				fmt.Fprintf(tw, "\t\t  %s\n", d)
			}
			if c.Hint != "" && c.Status != recovery.StatusOK {
				fmt.Fprintf(tw, "\t\t  next: %s\n", c.Hint)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if !bad {
		return nil
	}
	var failed []string
	for _, c := range rep.Checks {
		if c.Status == recovery.StatusFail || (strict && c.Status == recovery.StatusWarn) {
			failed = append(failed, c.Name)
		}
	}
	return &exitError{code: exitUnhealthy, msg: "doctor: unhealthy: " + strings.Join(failed, ", ")}
}
