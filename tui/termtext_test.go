package tui

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/rayctl/rayctl/store"
)

// hostile returns s with escape sequences a task author could put in front of an operator.
func hostile(s string) string {
	return s + "\x1b]0;pwned\x07\x1b[2J\u009b31m\u202e\r"
}

// hostileDB is the fixture with every text that comes from a task or a lease row poisoned.
func hostileDB() *fakeDB {
	db := newFakeDB()
	p := func(s *string) *string {
		if s == nil {
			return nil
		}
		v := hostile(*s)
		return &v
	}
	for i := range db.tasks {
		t := &db.tasks[i]
		t.CallablePath, t.QueueName, t.TaskID = hostile(t.CallablePath), hostile(t.QueueName), hostile(t.TaskID)
		t.ArgsJSON, t.KwargsJSON = hostile(t.ArgsJSON), hostile(t.KwargsJSON)
		t.ClaimedByWorker, t.RayJobID, t.RayAddress = p(t.ClaimedByWorker), p(t.RayJobID), p(t.RayAddress)
		t.ErrorMessage, t.ErrorTraceback, t.ResultData = p(t.ErrorMessage), p(t.ErrorTraceback), p(t.ResultData)
		if t.ResultData == nil {
			t.ResultReference = p(storePtr("oversize://sha256/ab?bytes=1"))
		}
		if t.ErrorMessage == nil {
			t.ErrorMessage = p(storePtr("boom"))
		}
		if t.ClaimedByWorker == nil {
			t.ClaimedByWorker = p(storePtr("w"))
		}
	}
	db.tasks[0].State = store.TaskState(hostile("weird"))
	for i := range db.dash.Queues {
		db.dash.Queues[i].Name = hostile(db.dash.Queues[i].Name)
	}
	for i := range db.dash.RecentFailures {
		db.dash.RecentFailures[i].CallablePath = hostile(db.dash.RecentFailures[i].CallablePath)
	}
	for i := range db.groups {
		g := &db.groups[i]
		g.CallablePath, g.ExceptionType, g.LatestError = hostile(g.CallablePath), hostile(g.ExceptionType), hostile(g.LatestError)
		for j := range g.Queues {
			g.Queues[j] = hostile(g.Queues[j])
		}
	}
	for i := range db.workers {
		w := &db.workers[i]
		w.WorkerID = hostile(w.WorkerID)
		if w.Lease != nil {
			w.Lease.WorkerID, w.Lease.Hostname, w.Lease.QueueName = hostile(w.Lease.WorkerID), hostile(w.Lease.Hostname), hostile(w.Lease.QueueName)
		}
	}
	return db
}

func storePtr(s string) *string { return &s }

// drawsNothingActive fails when the screen holds a character a terminal would act on
// (the colour profile is pinned to Ascii, so lipgloss itself emits none).
func drawsNothingActive(t *testing.T, where, screen string) {
	t.Helper()
	for _, r := range screen {
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			t.Fatalf("%s draws %U raw:\n%s", where, r, screen)
		}
	}
	if !strings.Contains(screen, `\x1b`) && !strings.Contains(screen, `\u202e`) {
		t.Fatalf("%s shows no task data escaped:\n%s", where, screen)
	}
}

// TestEveryViewDrawsTaskDataSafely walks every view, the detail, the filter, the dialog and
// the status line with every task-derived text full of escape sequences.
func TestEveryViewDrawsTaskDataSafely(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {160, 50}} {
		db := hostileDB()
		m := New(Options{Source: fakeSource{db}, Actions: fakeActions{db}, Clock: func() time.Time { return fixedNow }})
		m.tickFn = func(time.Duration, int) tea.Cmd { return nil }
		h := &harness{t: t, m: m, db: db}
		h.send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		h.run(h.m.Init())

		drawsNothingActive(t, "overview (banner, queues, workers, signals)", h.m.View())
		h.keys("2")
		drawsNothingActive(t, "tasks", h.m.View())
		h.keys("enter")
		drawsNothingActive(t, "task detail", h.m.detailContent(*h.m.detail.task))
		for range 40 {
			drawsNothingActive(t, "task detail, scrolled", h.m.View())
			h.keys("j")
		}
		// the text input drops control characters as they are typed; a filter set otherwise
		// (a pasted or restored one) is shown escaped
		h.m.tasks.filterText = "queue:\x1b[2Jx"
		drawsNothingActive(t, "filter line", h.m.View())
		h.m.tasks.filterText = ""
		h.keys("esc")
		h.keys("esc", "3")
		drawsNothingActive(t, "failures", h.m.View())
		h.keys("R")
		drawsNothingActive(t, "requeue dialog for a failure group", h.m.View())
		h.keys("y")
		drawsNothingActive(t, "status line after the requeue", h.m.View())
		h.keys("4")
		drawsNothingActive(t, "workers", h.m.View())
	}
}
