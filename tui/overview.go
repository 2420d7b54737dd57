package tui

import (
	"fmt"
	"strings"

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

	// states
	label := 7
	cols := []column{{title: "", width: label}}
	for _, st := range store.AllStates {
		w := len(st)
		w = max(w, len(num(d.States[st])), len(delta(m.deltas[st])))
		cols = append(cols, column{title: string(st), width: w, right: true})
	}
	counts, changes := []string{"tasks"}, []string{"change"}
	for _, st := range store.AllStates {
		n, ok := d.States[st]
		if !ok {
			counts = append(counts, "…")
		} else {
			counts = append(counts, num(n))
		}
		changes = append(changes, delta(m.deltas[st]))
	}
	lines = append(lines, header(cols, s.TableHeader), m.styleStateCells(cols, counts), row(cols, changes...))

	// workers and stuck work
	w := fmt.Sprintf("workers  %d live · ", d.Leases.Live)
	if d.Leases.Stale > 0 {
		w += s.Warn.Render(fmt.Sprintf("!! %d stale", d.Leases.Stale))
	} else {
		w += "0 stale"
	}
	w += fmt.Sprintf(" · %d inactive", d.Leases.Inactive)
	stuck := fmt.Sprintf("stuck    RUNNING %s silent, %s orphaned · CANCELLING %s stuck",
		num(d.StaleRunning), num(d.OrphanedRunning), num(d.StuckCancelling))
	if d.StaleRunning+d.OrphanedRunning+d.StuckCancelling > 0 {
		stuck = s.Warn.Render(stuck)
	}
	workerLines := []string{w, stuck}
	for _, ws := range m.workers.rows {
		if ws.Status != store.LeaseStale && ws.Status != store.LeaseMissing {
			continue
		}
		if len(workerLines) >= 4 {
			break
		}
		workerLines = append(workerLines, s.Warn.Render("  !! "+m.workerSummary(ws)))
	}

	var signalLines []string
	for _, sig := range m.signals {
		signalLines = append(signalLines, s.Bad.Render(fmt.Sprintf("  !! playbook %d: %s", sig.Playbook, termtext.Line(sig.Text))))
	}
	if len(signalLines) == 0 {
		signalLines = []string{s.Calm.Render("  none: queue draining, no stale work, no retry storm")}
	}

	// queues get what is left
	room := h - len(lines) - 1 /*blank*/ - 1 /*queue header*/ - 1 - len(workerLines) - 1 - 1 - len(signalLines)
	lines = append(lines, "")
	lines = append(lines, m.queueTable(d, max(1, room))...)
	lines = append(lines, "")
	lines = append(lines, workerLines...)
	lines = append(lines, "", s.Bold.Render("runbook signals"))
	lines = append(lines, signalLines...)
	return lines
}

func (m Model) styleStateCells(cols []column, cells []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		v := padLeft(cells[i], c.width)
		if i == 0 {
			v = pad(cells[i], c.width)
		} else if cells[i] != "0" && cells[i] != "…" {
			v = m.stateStyle(store.AllStates[i-1]).Render(v)
		}
		parts[i] = v
	}
	return strings.Join(parts, " ")
}

// queueTable renders at most rows queues (the busiest first when they do not all fit).
func (m Model) queueTable(d *store.Dashboard, rows int) []string {
	s := m.styles
	wide := m.width >= 100
	buckets := store.DefaultBuckets
	if len(d.Queues) > 0 {
		buckets = len(d.Queues[0].Done)
	}
	cols := []column{{"QUEUE", 0, false}, {"QUEUED", 8, true}}
	if wide {
		cols = append(cols, column{"DEFERRED", 8, true})
	}
	cols = append(cols, column{"RUN", 6, true})
	if wide {
		cols = append(cols, column{"CANCELLING", 10, true})
	}
	cols = append(cols, column{"FAILED", 7, true}, column{"LOST", 6, true}, column{"OLDEST", 6, true},
		column{fmt.Sprintf("DONE/MIN %dm", buckets), max(buckets, 13), false}, column{"LAST", 5, true})
	cols = flexColumns(cols, 0, m.width, 8)

	queues := d.Queues
	if len(queues) > rows {
		queues = append([]store.QueueActivity(nil), queues...)
		// keep the queues with the most waiting and failing work
		sortQueuesByLoad(queues)
		queues = queues[:max(0, rows-1)]
	}
	out := []string{header(cols, s.TableHeader)}
	for _, q := range queues {
		cells := []string{q.Name, num(q.Queued)}
		if wide {
			cells = append(cells, num(q.Deferred))
		}
		cells = append(cells, num(q.Running))
		if wide {
			cells = append(cells, num(q.Cancelling))
		}
		last := int64(0)
		if len(q.Done) > 0 {
			last = q.Done[len(q.Done)-1]
		}
		cells = append(cells, num(q.Failed), num(q.Lost), ago(d.Now, q.OldestQueuedAt), sparkline(q.Done), num(last))
		line := row(cols, cells...)
		if q.Running == 0 && q.Queued-q.Deferred > 0 {
			line = s.Warn.Render(line)
		}
		out = append(out, line)
	}
	if len(d.Queues) == 0 {
		out = append(out, s.Dim.Render("(no tasks)"))
	}
	if hidden := len(d.Queues) - len(queues); hidden > 0 {
		out = append(out, s.Dim.Render(fmt.Sprintf("… %d more queues (widen or heighten the terminal)", hidden)))
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

// workerSummary is one line about a worker.
func (m Model) workerSummary(w store.WorkerSummary) string {
	owns := fmt.Sprintf("owns %d run, %d canc", w.Running, w.Cancelling)
	if w.Lease == nil {
		return fmt.Sprintf("%s no lease · %s", termtext.Line(w.WorkerID), owns)
	}
	l := w.Lease
	return fmt.Sprintf("%s %s · %s pid %d · beat %s ago · %s", termtext.Line(w.WorkerID), w.Status, termtext.Line(l.Host()), l.PID,
		shortDur(m.workers.now.Sub(l.LastHeartbeatAt)), owns)
}
