package main

import (
	"context"
	"fmt"
	"strings"
	"time"

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
			"   leases      live / stale / inactive worker leases\n" +
			"   backlog     runnable QUEUED tasks with no live worker, queues no live worker polls,\n" +
			"               the oldest runnable task waiting longer than --max-queue-age while nothing runs\n" +
			"   stuck       RUNNING without a heartbeat for --stuck-after, or owned by no live worker\n" +
			"   cancelling  CANCELLING owned by no live worker (never finalized by django-ray 0.2.0)\n" +
			"   failures    more than --max-failures FAILED or LOST within --failure-window (retry storm)\n" +
			"   ray         with --ray-address / RAY_ADDRESS: the Jobs API answers (its version), its GCS\n" +
			"               health check passes, and the auth mode: none (Ray asks for no token), token\n" +
			"               required and accepted, or token sent but not required (probed once more\n" +
			"               without it); a dead Ray or a refused token fails the check\n" +
			"   results     with --result-storage-backend s3 or gcs (or the workers' DJANGO_RAY_RESULT_STORAGE_*\n" +
			"               variables): the bucket is reachable and writable; a probe object is written\n" +
			"               under the prefix, read back and removed\n" +
			"Each prints ok, warn, fail or skip, with the next command to run.\n\n" +
			"EXIT CODES:\n   0  no check failed (warnings allowed, unless --strict)\n   2  usage error\n" +
			"   6  unhealthy: a check failed (an unreachable database or Ray is a failed check)\n\n" + rayConnHelp,
		Flags: append([]cli.Flag{
			&cli.DurationFlag{Name: "lease-ttl", Value: recovery.DefaultLeaseTTL, Usage: "WORKER_LEASE_SECONDS: a lease without a heartbeat for this long is stale"},
			&cli.DurationFlag{Name: "stuck-after", Value: 300 * time.Second, Usage: "STUCK_TASK_TIMEOUT_SECONDS: a RUNNING task without a heartbeat for this long is stuck"},
			&cli.DurationFlag{Name: "max-queue-age", Value: 5 * time.Minute, Usage: "the oldest runnable task may wait this long"},
			&cli.DurationFlag{Name: "max-clock-skew", Value: 15 * time.Second, Usage: "fail when this host's clock is further than this from the database's"},
			&cli.DurationFlag{Name: "failure-window", Value: 5 * time.Minute, Usage: "window for the failure-burst check"},
			&cli.Int64Flag{Name: "max-failures", Value: 10, Usage: "more FAILED or LOST tasks than this within the window warns"},
			&cli.BoolFlag{Name: "strict", Usage: "warnings are unhealthy too (exit 6)"},
		}, append(rayFlags(), resultFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("doctor: unexpected argument %q", c.Args().First())
			}
			o, err := e.opts(c)
			if err != nil {
				return err
			}
			cfg := recovery.DoctorConfig{
				LeaseTTL: c.Duration("lease-ttl"), StuckAfter: c.Duration("stuck-after"), MaxQueueAge: c.Duration("max-queue-age"),
				MaxClockSkew: c.Duration("max-clock-skew"), FailureWindow: c.Duration("failure-window"), MaxFailures: c.Int64("max-failures"),
				Clock: e.clock,
			}
			for name, d := range map[string]time.Duration{"lease-ttl": cfg.LeaseTTL, "stuck-after": cfg.StuckAfter, "max-queue-age": cfg.MaxQueueAge,
				"max-clock-skew": cfg.MaxClockSkew, "failure-window": cfg.FailureWindow} {
				if d <= 0 {
					return usageErrorf("doctor: invalid --%s %s (want more than 0)", name, d)
				}
			}
			if cfg.MaxFailures < 0 {
				return usageErrorf("doctor: invalid --max-failures %d", cfg.MaxFailures)
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
