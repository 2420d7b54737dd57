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
	cols := []column{{"", 1, false}, {"COUNT", 8, true}, {"LOST", 6, true}, {"CALLABLE", 0, false}, {"EXCEPTION", 24, false}, {"LATEST", 6, true}}
	if m.width >= 100 {
		cols[4].width = 36
		cols = append(cols, column{"QUEUES", 16, false})
	}
	cols = flexColumns(cols, 3, m.width, 12)
	lines = append(lines, header(cols, s.TableHeader))
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
		cells := []string{" ", num(g.Count), num(g.Lost), g.CallablePath, g.ExceptionType, ago(now, g.LatestAt)}
		if i == m.failures.cursor {
			cells[0] = ">"
		}
		if m.width >= 100 {
			cells = append(cells, strings.Join(g.Queues, ","))
		}
		line := row(cols, cells...)
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

// workersView: every lease with its heartbeat age and the tasks its worker owns.
func (m Model) workersView() []string {
	s := m.styles
	var live, stale, inactive, missing int
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
	}
	title := fmt.Sprintf("%d workers: %d live, %d stale, %d inactive, %d no lease · stale after %s",
		len(m.workers.rows), live, stale, inactive, missing, shortDur(m.opts.LeaseTTL))
	lines := []string{title}
	cols := []column{{"", 1, false}, {"WORKER", 0, false}, {"STATUS", 8, false}, {"HOST", 12, false}, {"MODE", 10, false}, {"PID", 7, true},
		{"BEAT", 6, true}, {"RUN", 5, true}, {"CANC", 5, true}}
	if m.width >= 100 {
		cols = append(cols, column{"QUEUES", 20, false}, column{"STARTED", 7, true})
	}
	cols = flexColumns(cols, 1, m.width, 12)
	lines = append(lines, header(cols, s.TableHeader))
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
		status := string(w.Status)
		if w.Status == store.LeaseStale || w.Status == store.LeaseMissing {
			status = "!!" + status
		}
		cells := []string{" ", w.WorkerID, status, "-", "-", "-", "-", num(w.Running), num(w.Cancelling), "-", "-"}
		if i == m.workers.cursor {
			cells[0] = ">"
		}
		if l := w.Lease; l != nil {
			cells[3], cells[4], cells[5], cells[6] = l.Host(), leaseMode(*l), fmt.Sprint(l.PID), shortDur(now.Sub(l.LastHeartbeatAt))
			cells[9], cells[10] = l.QueueName, shortDur(now.Sub(l.StartedAt))
		}
		line := row(cols, cells...)
		switch {
		case i == m.workers.cursor:
			line = s.Cursor.Render(line)
		case w.Status == store.LeaseStale || w.Status == store.LeaseMissing:
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
