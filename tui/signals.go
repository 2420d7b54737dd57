package tui

import (
	"fmt"
	"time"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
)

// sample is what the backlog signal's "rising" note needs from earlier snapshots.
type sample struct {
	at     time.Time
	queued int64
}

// risingOver is how far back queued counts are compared for the backlog's "+N queued" note.
const risingOver = time.Minute

// evaluate judges a snapshot with recovery.Evaluate — the definitions, thresholds and next
// commands `rayctl doctor` uses — and returns its findings and the signals among them. Top
// adds one thing doctor cannot know: how much the queue grew since a minute ago.
func (m Model) evaluate(d store.Dashboard) ([]recovery.Finding, []recovery.Finding) {
	fs := recovery.Evaluate(d, m.opts.Thresholds, recovery.EvalOptions{RayAddress: m.opts.RayAddress})
	sig := recovery.Signals(fs)
	queued := d.States[store.StateQueued]
	if base, ok := sampleBefore(m.history, d.Now.Add(-risingOver)); ok && queued > base.queued {
		for i := range sig {
			if sig[i].Playbook == recovery.PlaybookBacklog || sig[i].Playbook == recovery.PlaybookRayLoss {
				sig[i].Summary += fmt.Sprintf(" (queued +%s in %s)", num(queued-base.queued), shortDur(d.Now.Sub(base.at)))
			}
		}
	}
	return fs, sig
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

// plural formats a count with a noun: "1 task", "3 tasks", "1,234 tasks".
func plural(n int64, noun string) string { return recovery.Count(n, noun) }

// signalTitle is "playbook 4 Ray connection loss".
func signalTitle(f recovery.Finding) string {
	if f.Playbook == 0 {
		return "worker " + f.Check // leases: the triage checklist's first step
	}
	return fmt.Sprintf("playbook %d %s", f.Playbook, recovery.PlaybookName(f.Playbook))
}

// nextLine is the signal's next command and how to do it from top.
func nextLine(f recovery.Finding) string {
	s := "next: " + f.Command
	if f.TopKeys != "" {
		s += " · in top: " + f.TopKeys
	}
	return s
}
