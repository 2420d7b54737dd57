package tui

import (
	"fmt"
	"time"

	"github.com/rayctl/rayctl/store"
)

// Signal is one runbook incident signal that fired, with the playbook that applies
// (docs/runbook.md numbers them as the operator runbook does).
type Signal struct {
	Playbook int
	Text     string
}

// Thresholds tune when a signal fires.
type Thresholds struct {
	// BacklogAge: runnable tasks waiting this long with nothing running is a backlog.
	BacklogAge time.Duration
	// RisingOver: queued counts this far back are compared with now.
	RisingOver time.Duration
	// NearZeroRunning: at most this many RUNNING tasks counts as "running stays near zero".
	NearZeroRunning int64
	// StormMin: at least this many recent failures of one callable (FAILED, LOST or retrying
	// within the dashboard's failure window) that are also at least half of all recent
	// failures is a retry storm.
	StormMin int64
}

// DefaultThresholds are the defaults for Thresholds.
func DefaultThresholds() Thresholds {
	return Thresholds{BacklogAge: 2 * time.Minute, RisingOver: time.Minute, NearZeroRunning: 1, StormMin: 10}
}

// sample is what signals need from earlier snapshots.
type sample struct {
	at                      time.Time
	queued, running, failed int64 // failed: FAILED + LOST
}

func sampleOf(d store.Dashboard) sample {
	return sample{at: d.Now, queued: d.States[store.StateQueued], running: d.States[store.StateRunning],
		failed: d.States[store.StateFailed] + d.States[store.StateLost]}
}

// detectSignals returns the runbook signals the snapshot d shows, given earlier samples
// (oldest first), in playbook order.
func detectSignals(d store.Dashboard, history []sample, th Thresholds) []Signal {
	var out []Signal
	queued, running := d.States[store.StateQueued], d.States[store.StateRunning]
	var runnable int64
	var oldest *time.Time
	for _, q := range d.Queues {
		runnable += q.Queued - q.Deferred
		if q.OldestQueuedAt != nil && (oldest == nil || q.OldestQueuedAt.Before(*oldest)) {
			oldest = q.OldestQueuedAt
		}
	}

	// 1. queued rising (or waiting long) while running stays near zero.
	if runnable > 0 && running <= th.NearZeroRunning {
		var reasons string
		if base, ok := sampleBefore(history, d.Now.Add(-th.RisingOver)); ok && queued > base.queued {
			reasons = fmt.Sprintf("+%s queued in %s", num(queued-base.queued), shortDur(d.Now.Sub(base.at)))
		}
		waiting := oldest != nil && d.Now.Sub(*oldest) >= th.BacklogAge
		if reasons != "" || waiting || d.Leases.Live == 0 {
			text := fmt.Sprintf("backlog: %s queued, %s running", num(queued), num(running))
			if reasons != "" {
				text += ", " + reasons
			}
			if oldest != nil {
				text += ", oldest " + shortDur(d.Now.Sub(*oldest))
			}
			text += ", " + plural(d.Leases.Live, "live worker")
			out = append(out, Signal{1, text})
		}
	}

	// 2. running does not drain: stale heartbeats or owners without a live lease.
	if d.StaleRunning > 0 || d.OrphanedRunning > 0 {
		out = append(out, Signal{2, fmt.Sprintf("RUNNING not draining: %s silent %s+, %s without a live worker",
			num(d.StaleRunning), shortDur(d.Params.StuckAfter), num(d.OrphanedRunning))})
	}
	if d.Leases.Stale > 0 {
		out = append(out, Signal{2, fmt.Sprintf("stale leases: %s silent %s+ (see 4 workers)",
			plural(d.Leases.Stale, "active worker"), shortDur(d.Params.LeaseTTL))})
	}

	// 3. retry storm: failures rising with one dominant callable.
	var total int64
	for _, c := range d.RecentFailures {
		total += c.Total()
	}
	if len(d.RecentFailures) > 0 {
		top := d.RecentFailures[0]
		if top.Total() >= th.StormMin && top.Total()*2 >= total {
			out = append(out, Signal{3, fmt.Sprintf("retry storm: %s %s× in %s (%d%% of failures; %s failed, %s lost, %s retrying)",
				top.CallablePath, num(top.Total()), shortDur(d.Params.FailureWindow), top.Total()*100/total,
				num(top.Failed), num(top.Lost), num(top.Retrying))})
		}
	}

	// 5. CANCELLING stuck.
	if d.StuckCancelling > 0 {
		out = append(out, Signal{5, fmt.Sprintf("CANCELLING stuck: %s, worker gone or silent %s+",
			plural(d.StuckCancelling, "task"), shortDur(d.Params.StuckAfter))})
	}
	return out
}

// sampleBefore returns the newest sample taken at or before t.
func sampleBefore(history []sample, t time.Time) (sample, bool) {
	for i := len(history) - 1; i >= 0; i-- {
		if !history[i].at.After(t) {
			return history[i], true
		}
	}
	return sample{}, false
}

// plural formats a count with a noun: "1 task", "3 tasks".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return num(n) + " " + noun + "s"
}
