package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/recovery"
)

// signalFlags are the runbook signal thresholds, the same flags with the same defaults on
// `rayctl doctor` and `rayctl top` (recovery.DefaultThresholds): one definition each.
func signalFlags() []cli.Flag {
	d := recovery.DefaultThresholds()
	return []cli.Flag{
		leaseTTLFlag("a lease without a heartbeat for this long is stale"),
		&cli.DurationFlag{Name: "stuck-after", Value: d.StuckAfter, Usage: "STUCK_TASK_TIMEOUT_SECONDS: a RUNNING or CANCELLING task without a heartbeat for this long is stuck"},
		&cli.DurationFlag{Name: "max-queue-age", Value: d.MaxQueueAge, Usage: "the oldest runnable task may wait this long"},
		&cli.DurationFlag{Name: "stall-after", Value: d.StallAfter, Usage: "a live worker that claims, finishes and heartbeats nothing this long while work waits for it is stalled (Ray connection loss)"},
		&cli.DurationFlag{Name: "failure-window", Value: d.FailureWindow, Usage: "window for the failure-burst (retry storm) check"},
		&cli.Int64Flag{Name: "max-failures", Value: d.MaxFailures, Usage: "more FAILED or LOST tasks than this within the window is a retry storm"},
	}
}

// leaseTTLFlag is --lease-ttl, the workers' WORKER_LEASE_SECONDS as a command judges leases
// by it, with the workers' default; what says what it decides there.
func leaseTTLFlag(what string) cli.Flag {
	return &cli.DurationFlag{Name: "lease-ttl", Value: recovery.DefaultLeaseTTL, Usage: settings.WorkerLeaseSeconds.Setting().DjangoName() + ": " + what}
}

// signalThresholds reads signalFlags; cmd names the command in usage errors.
func signalThresholds(c *cli.Context, cmd string) (recovery.Thresholds, error) {
	th := recovery.Thresholds{LeaseTTL: c.Duration("lease-ttl"), StuckAfter: c.Duration("stuck-after"), MaxQueueAge: c.Duration("max-queue-age"),
		StallAfter: c.Duration("stall-after"), FailureWindow: c.Duration("failure-window"), MaxFailures: c.Int64("max-failures")}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"lease-ttl", th.LeaseTTL}, {"stuck-after", th.StuckAfter}, {"max-queue-age", th.MaxQueueAge}, {"stall-after", th.StallAfter}, {"failure-window", th.FailureWindow}} {
		if f.d <= 0 {
			return th, usageErrorf("%s: invalid --%s %s (want more than 0)", cmd, f.name, f.d)
		}
	}
	if th.MaxFailures < 0 {
		return th, usageErrorf("%s: invalid --max-failures %d", cmd, th.MaxFailures)
	}
	th.ResultWindow = recovery.DefaultThresholds().ResultWindow
	return th, nil
}

// signalHelp lists the signal checks, for doctor's and top's --help.
var signalHelp = fmt.Sprintf(`SIGNALS (the same definitions and thresholds in rayctl doctor and rayctl top):
   leases      no worker lease, no live worker, stale leases (--lease-ttl)
   backlog     runnable tasks with no live worker, queues no live worker polls, the oldest
               runnable task waiting longer than --max-queue-age while nothing runs (playbook 1)
   stuck       RUNNING without a heartbeat for --stuck-after, or owned by no live worker (2)
   failures    more than --max-failures FAILED or LOST within --failure-window (3)
   workers     a live worker that has claimed, finished and heartbeated nothing for
               --stall-after while it holds RUNNING tasks or its queues have runnable ones:
               its runner or Ray is not ready (4, Ray connection loss)
   cancelling  CANCELLING owned by no live worker, or not heartbeated by a live owner (5)
   references  results larger than MAX_RESULT_SIZE_BYTES stored as a digest only, within %s (6)`,
	recovery.Age(recovery.DefaultThresholds().ResultWindow))
