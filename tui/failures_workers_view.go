package tui

import (
	"fmt"
	"strings"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/termtext"
)

func windowLabel(i int) string {
	if w := failureWindows[i]; w > 0 {
		return "last " + shortDur(w)
	}
	return "all time (r reloads)"
}

// failuresView: FAILED and LOST grouped by callable and exception type, largest first, with
// the selected group's latest error below.
func (m Model) failuresView() []string {
	s := m.styles
	var total int64
	for _, g := range m.failures.groups {
		total += g.Count
	}
	title := fmt.Sprintf("FAILED+LOST, %s: %d groups, %s tasks", windowLabel(m.failures.window), len(m.failures.groups), num(total))
	hint := "w window"
	if !m.opts.ReadOnly {
		hint += " · R requeue group"
	}
	lines := []string{pad(title, max(0, m.width-len(hint)-1)) + " " + s.Dim.Render(hint)}
	cols := []column{{title: "", width: 1}, {title: "COUNT", width: 7, right: true}, {title: "LOST", width: 6, right: true, prio: 2},
		{title: "CALLABLE", min: 22, width: 32, flex: true}, {title: "EXCEPTION", width: 36, min: 24, prio: 1}, {title: "LATEST", width: 6, right: true, prio: 3},
		{title: "QUEUES", width: 16, min: 10, prio: 4}}
	t := layout(cols, m.width)
	lines = append(lines, t.header(s.TableHeader))
	if !m.failures.loaded {
		return append(lines, s.Dim.Render("loading…"))
	}
	if len(m.failures.groups) == 0 {
		return append(lines, s.Calm.Render("no failures in "+windowLabel(m.failures.window)+" (w widens the window)"))
	}
	listRows := max(1, m.bodyHeight()-len(lines)-3)
	start := max(0, m.failures.cursor-listRows+1)
	now := m.now()
	for i := start; i < len(m.failures.groups) && i < start+listRows; i++ {
		g := m.failures.groups[i]
		cells := []string{" ", num(g.Count), num(g.Lost), g.CallablePath, g.ExceptionType, ago(now, g.LatestAt), strings.Join(g.Queues, ",")}
		if i == m.failures.cursor {
			cells[0] = ">"
		}
		line := t.row(cells...)
		if i == m.failures.cursor {
			line = s.Cursor.Render(line)
		}
		lines = append(lines, line)
	}
	if g, ok := m.currentGroup(); ok {
		for len(lines) < m.bodyHeight()-2 {
			lines = append(lines, "")
		}
		lines = append(lines, s.Bold.Render(fmt.Sprintf("latest (task %d):", g.LatestID)), trunc(termtext.Line(oneLine(g.LatestError)), m.width))
	}
	return lines
}

// workersView: every lease with its heartbeat age, its queues, when it last claimed or
// finished a task, and the tasks it owns. At 80 columns QUEUES and CLAIMED stay: they
// diagnose playbooks 1 (no live worker polls a queue) and 4 (a live worker claims nothing).
func (m Model) workersView() []string {
	s := m.styles
	var live, stale, inactive, missing, stalled int
	for _, w := range m.workers.rows {
		switch w.Status {
		case store.LeaseLive:
			live++
		case store.LeaseStale:
			stale++
		case store.LeaseInactive:
			inactive++
		case store.LeaseMissing:
			missing++
		}
		if _, _, st := m.activity(w.WorkerID); st {
			stalled++
		}
	}
	title := fmt.Sprintf("%s: %d live (%d stalled), %d stale, %d inactive, %d no lease · stale after %s, stalled after %s",
		plural(int64(len(m.workers.rows)), "worker"), live, stalled, stale, inactive, missing, shortDur(m.opts.Thresholds.LeaseTTL), shortDur(m.opts.Thresholds.StallAfter))
	lines := []string{title}
	cols := []column{{title: "", width: 1}, {title: "WORKER", min: 10, width: 16, flex: true}, {title: "STATUS", width: 9}, {title: "QUEUES", width: 20, min: 14, prio: 1},
		{title: "CLAIMED", width: 7, right: true, prio: 1}, {title: "BEAT", width: 5, right: true, prio: 2}, {title: "RUN", width: 4, right: true, prio: 2},
		{title: "CANC", width: 4, right: true, prio: 3}, {title: "HOST", width: 12, min: 8, prio: 4}, {title: "MODE", width: 10, min: 6, prio: 5},
		{title: "PID", width: 7, right: true, prio: 6}, {title: "STARTED", width: 7, right: true, prio: 7}}
	t := layout(cols, m.width)
	lines = append(lines, t.header(s.TableHeader))
	if !m.workers.loaded {
		return append(lines, s.Dim.Render("loading…"))
	}
	if len(m.workers.rows) == 0 {
		return append(lines, s.Dim.Render("no worker leases"))
	}
	listRows := max(1, m.bodyHeight()-len(lines))
	start := max(0, m.workers.cursor-listRows+1)
	now := m.workers.now
	for i := start; i < len(m.workers.rows) && i < start+listRows; i++ {
		w := m.workers.rows[i]
		act, active, isStalled := m.activity(w.WorkerID)
		status := string(w.Status)
		switch {
		case isStalled:
			status = "!!stalled"
		case w.Status == store.LeaseStale || w.Status == store.LeaseMissing:
			status = "!!" + status
		}
		cells := []string{" ", w.WorkerID, status, "-", "-", "-", num(w.Running), num(w.Cancelling), "-", "-", "-", "-"}
		if i == m.workers.cursor {
			cells[0] = ">"
		}
		if active {
			cells[4] = m.claimed(act, m.now())
		}
		if l := w.Lease; l != nil {
			cells[3], cells[5], cells[8], cells[9] = l.QueueName, shortDur(now.Sub(l.LastHeartbeatAt)), l.Host(), leaseMode(*l)
			cells[10], cells[11] = fmt.Sprint(l.PID), shortDur(now.Sub(l.StartedAt))
		}
		line := t.row(cells...)
		switch {
		case i == m.workers.cursor:
			line = s.Cursor.Render(line)
		case isStalled || w.Status == store.LeaseStale || w.Status == store.LeaseMissing:
			line = s.Warn.Render(line)
		case w.Status == store.LeaseInactive:
			line = s.Dim.Render(line)
		}
		lines = append(lines, line)
	}
	return lines
}

// leaseMode is a worker's execution mode for the workers view: what a rayworker lease
// carries (store.Lease.Mode), else django-ray's own worker.
func leaseMode(l store.Lease) string {
	if m := l.Mode(); m != "" {
		return m
	}
	return "django-ray"
}
