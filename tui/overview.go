package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/termtext"
)

// overviewView: counts per state with their change, the queue table, workers and signals.
func (m Model) overviewView() []string {
	s := m.styles
	d := m.dash
	if d == nil {
		return []string{"", "  loading the first snapshot…"}
	}
	h := m.bodyHeight()
	var lines []string

	// states: SUCCEEDED and CANCELLED grow without bound and are counted every TotalsEvery;
	// when that count is older than the last refresh, "~" marks it and the change row says
	// how old it is.
	cold := func(st store.TaskState) bool { return st == store.StateSucceeded || st == store.StateCancelled }
	age := m.opts.Clock().Sub(m.totalsAt)
	staleTotals := !m.totalsAt.IsZero() && age >= m.interval
	cols := []column{{title: "", width: 6}}
	counts, changes := []string{"tasks"}, []string{"change"}
	for _, st := range store.AllStates {
		n, ok := d.States[st]
		c, ch := num(n), delta(m.deltas[st])
		switch {
		case !ok:
			c = "…"
		case cold(st) && staleTotals:
			c, ch = "~"+c, shortDur(age)+" ago"
		}
		prio := 0
		if cold(st) {
			prio = 1
		}
		cols = append(cols, column{title: string(st), width: max(len(st), len(c), len(ch)), right: true, prio: prio})
		counts, changes = append(counts, c), append(changes, ch)
	}
	states := layout(cols, m.width)
	lines = append(lines, states.header(s.TableHeader), m.styleStateCells(states, counts), states.row(changes...))

	// workers and stuck work
	w := fmt.Sprintf("workers  %s · ", plural(d.Leases.Live, "live worker"))
	if d.Leases.Stale > 0 {
		w += s.Warn.Render(fmt.Sprintf("!! %d stale", d.Leases.Stale))
	} else {
		w += "0 stale"
	}
	w += fmt.Sprintf(" · %d inactive", d.Leases.Inactive)
	stuck := fmt.Sprintf("stuck    RUNNING %s silent, %s orphaned · CANCELLING %s stuck, %s orphaned",
		num(d.StaleRunning), num(d.OrphanedRunning), num(d.StuckCancelling), num(d.OrphanedCancelling))
	if d.StaleRunning+d.OrphanedRunning+d.StuckCancelling > 0 {
		stuck = s.Warn.Render(stuck)
	}
	workerLines := []string{w, stuck}

	// signals: each with its next command when there is room
	var signalLines []string
	for _, sig := range m.signals {
		signalLines = append(signalLines, s.Bad.Render(fmt.Sprintf("!! %s: %s", signalTitle(sig), termtext.Line(sig.Summary))),
			"   "+termtext.Line(nextLine(sig)))
	}
	if len(signalLines) == 0 {
		signalLines = []string{s.Calm.Render("none: queue draining, workers claiming, no stuck work, no retry storm")}
	}

	// queues get what is left, at least 2 rows; signals give up their next-command lines first
	fixed := len(lines) + 1 /*blank*/ + 1 /*queue header*/ + 1 /*blank*/ + len(workerLines) + 1 /*blank*/ + 1 /*title*/
	if h-fixed-len(signalLines) < 2 && len(m.signals) > 0 {
		signalLines = signalLines[:0]
		for _, sig := range m.signals {
			signalLines = append(signalLines, s.Bad.Render(fmt.Sprintf("!! %s: %s", signalTitle(sig), termtext.Line(sig.Summary))))
		}
	}
	room := max(2, h-fixed-len(signalLines))
	lines = append(lines, "")
	lines = append(lines, m.queueTable(d, room)...)
	lines = append(lines, "")
	lines = append(lines, workerLines...)
	lines = append(lines, "", s.Bold.Render("runbook signals")+s.Dim.Render(" (rayctl doctor checks the same)"))
	lines = append(lines, signalLines...)
	return lines
}

func (m Model) styleStateCells(t table, cells []string) string {
	parts := make([]string, 0, len(t.keep))
	for _, i := range t.keep {
		c := t.cols[i]
		v := padLeft(cells[i], t.width[i])
		if i == 0 {
			v = pad(cells[i], t.width[i])
		} else if cells[i] != "0" && cells[i] != "…" {
			v = m.stateStyle(store.AllStates[i-1]).Render(v)
		}
		_ = c
		parts = append(parts, v)
	}
	return strings.Join(parts, " ")
}

// queueTable renders at most rows table lines (the busiest queues first when they do not all
// fit). At 80 columns it keeps DEFERRED and CANCELLING: the sparkline and LAST go first.
func (m Model) queueTable(d *store.Dashboard, rows int) []string {
	s := m.styles
	buckets := store.DefaultBuckets
	if len(d.Queues) > 0 {
		buckets = len(d.Queues[0].Done)
	}
	cols := []column{{title: "QUEUE", min: 12, flex: true}, {title: "QUEUED", width: 7, right: true}, {title: "DEFERRED", width: 8, right: true, prio: 1},
		{title: "RUN", width: 5, right: true}, {title: "CANCELLING", width: 10, right: true, prio: 2}, {title: "FAILED", width: 6, right: true, prio: 1},
		{title: "LOST", width: 5, right: true, prio: 1}, {title: "OLDEST", width: 6, right: true},
		{title: "DONE/MIN", width: buckets, min: 8, prio: 3}, {title: "LAST", width: 4, right: true, prio: 4}}
	t := layout(cols, m.width)

	queues := d.Queues
	if len(queues) > rows-1 {
		queues = append([]store.QueueActivity(nil), queues...)
		// keep the queues with the most waiting and failing work
		sortQueuesByLoad(queues)
		queues = queues[:max(0, rows-2)]
	}
	out := []string{t.header(s.TableHeader)}
	for _, q := range queues {
		last := int64(0)
		if len(q.Done) > 0 {
			last = q.Done[len(q.Done)-1]
		}
		done := q.Done
		if w := t.width[8]; len(done) > w && w > 0 {
			done = done[len(done)-w:]
		}
		line := t.row(q.Name, num(q.Queued), num(q.Deferred), num(q.Running), num(q.Cancelling), num(q.Failed), num(q.Lost),
			ago(d.Now, q.OldestQueuedAt), sparkline(done), num(last))
		if q.Running == 0 && q.Queued-q.Deferred > 0 {
			line = s.Warn.Render(line)
		}
		out = append(out, line)
	}
	if len(d.Queues) == 0 {
		out = append(out, s.Dim.Render("(no tasks)"))
	}
	if hidden := len(d.Queues) - len(queues); hidden > 0 {
		out = append(out, s.Dim.Render(fmt.Sprintf("… %d more queues (heighten the terminal, or :tasks queue=NAME)", hidden)))
	}
	return out
}

func sortQueuesByLoad(qs []store.QueueActivity) {
	load := func(q store.QueueActivity) int64 { return q.Queued + q.Running + q.Failed + q.Lost + q.Cancelling }
	for i := 1; i < len(qs); i++ {
		for j := i; j > 0 && load(qs[j]) > load(qs[j-1]); j-- {
			qs[j], qs[j-1] = qs[j-1], qs[j]
		}
	}
}

// activity returns what the last snapshot says a worker did lately, if it holds an active
// lease, and whether the workers signal names it stalled.
func (m Model) activity(workerID string) (store.WorkerActivity, bool, bool) {
	var stalled bool
	for _, f := range m.signals {
		if f.Check == "workers" {
			for _, id := range f.Workers {
				stalled = stalled || id == workerID
			}
		}
	}
	if m.dash != nil {
		for _, w := range m.dash.Workers {
			if w.Lease.WorkerID == workerID {
				return w, true, stalled
			}
		}
	}
	return store.WorkerActivity{}, false, stalled
}

// claimed is how long ago a worker last claimed or finished a task, within the stall window:
// "">Nm" when it did neither within it.
func (m Model) claimed(w store.WorkerActivity, now time.Time) string {
	t := w.LastClaim
	if w.LastFinish != nil && (t == nil || w.LastFinish.After(*t)) {
		t = w.LastFinish
	}
	switch {
	case t != nil:
		return shortDur(now.Sub(*t))
	case now.Sub(w.Lease.StartedAt) < m.opts.Thresholds.StallAfter:
		return "-" // started lately: nothing to say yet
	}
	return ">" + shortDur(m.opts.Thresholds.StallAfter)
}
