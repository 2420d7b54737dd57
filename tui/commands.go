package tui

import (
	"context"
	"fmt"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/rayctl/rayctl/store"
)

// Messages: every read and write runs in a tea.Cmd and comes back as one of these.
type (
	tickMsg struct{ gen int }
	// refreshNowMsg asks Update for a refresh (Init cannot change the model itself).
	refreshNowMsg struct{ totals bool }

	dashboardMsg struct {
		d      store.Dashboard
		totals bool
		took   time.Duration
		err    error
	}
	tasksMsg struct {
		seq     int
		rows    []store.Task
		hasMore bool
		err     error
	}
	taskMsg struct {
		seq  int
		task store.Task
		err  error
	}
	failuresMsg struct {
		seq    int
		groups []store.FailureGroup
		err    error
	}
	workersMsg struct {
		seq  int
		now  time.Time
		rows []store.WorkerSummary
		err  error
	}
	proposalMsg struct {
		target   target
		proposal Proposal
		err      error
	}
	outcomeMsg struct {
		proposal Proposal
		outcome  Outcome
		err      error
	}
	markAllMsg struct {
		seq   int
		ids   []int64
		total int64
		err   error
	}
)

// ctx is a read's context: Run's (cancelled when the program ends), with the query timeout.
func (m Model) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(m.calls.ctx, m.opts.QueryTimeout)
}

// tick schedules the next automatic refresh; a stale generation is ignored, so changing the
// interval or resuming never leaves two tickers running.
func (m Model) tick() tea.Cmd {
	gen := m.tickGen
	if m.tickFn != nil {
		return m.tickFn(m.interval, gen)
	}
	return tea.Tick(m.interval, func(time.Time) tea.Msg { return tickMsg{gen: gen} })
}

// refreshCmd reads a snapshot and the data of the view on screen.
func (m *Model) refreshCmd(withTotals bool) tea.Cmd {
	return m.refresh(withTotals, true)
}

// refresh reads a snapshot and, unless only the view's own keys should reload it, the data
// of the view on screen: the all-time failures view scans every FAILED and LOST row, so the
// ticker leaves it alone once loaded and `r` reloads it.
func (m *Model) refresh(withTotals, manual bool) tea.Cmd {
	var cmds []tea.Cmd
	if !m.dashLoading {
		m.dashLoading = true
		cmds = append(cmds, m.dashboardCmd(withTotals))
	}
	allTime := m.view == ViewFailures && failureWindows[m.failures.window] == 0 && m.failures.loaded
	// the ticker never stacks reads on a slow database: it waits for the last one to answer
	if manual || (!allTime && m.viewPending == 0) {
		cmds = append(cmds, m.viewCmd())
	}
	return tea.Batch(cmds...)
}

func (m Model) dashboardCmd(withTotals bool) tea.Cmd {
	src, log, clock := m.opts.Source, m.opts.Logger, m.opts.Clock
	p := m.opts.Thresholds.DashboardParams()
	p.WithTotals = withTotals
	ctx, cancel := m.ctx()
	return m.calls.guard(func() tea.Msg {
		defer cancel()
		start := clock()
		d, err := src.Dashboard(ctx, p)
		took := clock().Sub(start)
		if err != nil {
			log.Warn("snapshot failed", "error", err)
		} else {
			log.Debug("snapshot", "took_ms", took.Milliseconds(), "totals", withTotals)
		}
		return dashboardMsg{d: d, totals: withTotals, took: took, err: err}
	})
}

// viewCmd reads what the view on screen shows beyond the snapshot.
func (m *Model) viewCmd() tea.Cmd {
	switch {
	case m.view == ViewTasks && m.detail.open:
		return m.taskCmd()
	case m.view == ViewTasks:
		return m.tasksCmd()
	case m.view == ViewFailures:
		return m.failuresCmd()
	case m.view == ViewWorkers, m.view == ViewOverview: // the overview lists troubled workers
		return m.workersCmd()
	}
	return nil
}

// pageSize is how many task rows fit the body.
func (m Model) pageSize() int {
	return max(1, m.bodyHeight()-2)
}

func (m *Model) tasksCmd() tea.Cmd {
	m.viewPending++
	m.seq++
	m.tasks.seq = m.seq
	seq, src := m.seq, m.opts.Source
	f := m.tasks.filter
	f.BeforeID = m.tasks.pages[len(m.tasks.pages)-1]
	size := m.pageSize()
	f.Limit = size + 1
	ctx, cancel := m.ctx()
	return m.calls.guard(func() tea.Msg {
		defer cancel()
		rows, err := src.ListTasks(ctx, f)
		more := len(rows) > size
		if more {
			rows = rows[:size]
		}
		return tasksMsg{seq: seq, rows: rows, hasMore: more, err: err}
	})
}

func (m *Model) taskCmd() tea.Cmd {
	m.viewPending++
	m.seq++
	m.detail.seq = m.seq
	seq, src, id := m.seq, m.opts.Source, m.detail.id
	ctx, cancel := m.ctx()
	return m.calls.guard(func() tea.Msg {
		defer cancel()
		t, err := src.GetTask(ctx, id)
		return taskMsg{seq: seq, task: t, err: err}
	})
}

func (m Model) failureParams() store.FailureParams {
	return store.FailureParams{Window: failureWindows[m.failures.window]}
}

func (m *Model) failuresCmd() tea.Cmd {
	m.viewPending++
	m.seq++
	m.failures.seq = m.seq
	seq, src, p := m.seq, m.opts.Source, m.failureParams()
	ctx, cancel := m.ctx()
	return m.calls.guard(func() tea.Msg {
		defer cancel()
		g, err := src.FailureGroups(ctx, p)
		return failuresMsg{seq: seq, groups: g, err: err}
	})
}

func (m *Model) workersCmd() tea.Cmd {
	m.viewPending++
	m.seq++
	m.workers.seq = m.seq
	seq, src, ttl := m.seq, m.opts.Source, m.opts.Thresholds.LeaseTTL
	ctx, cancel := m.ctx()
	return m.calls.guard(func() tea.Msg {
		defer cancel()
		now, rows, err := src.Workers(ctx, ttl, 500)
		return workersMsg{seq: seq, now: now, rows: rows, err: err}
	})
}

// markAllMax is how many matching tasks select-all marks at most: the CLI's --limit maximum,
// so marked tasks can always be acted on in one go.
const markAllMax = 10000

// markAllCmd reads the ids of every task the current filter matches.
func (m *Model) markAllCmd() tea.Cmd {
	m.seq++
	m.tasks.markSeq = m.seq // a refresh meanwhile does not supersede it; a new filter does
	seq, src := m.seq, m.opts.Source
	f := m.tasks.filter
	f.BeforeID, f.Limit = 0, markAllMax
	ctx, cancel := m.ctx()
	return m.calls.guard(func() tea.Msg {
		defer cancel()
		ids, total, err := src.ListTaskIDs(ctx, f)
		return markAllMsg{seq: seq, ids: ids, total: total, err: err}
	})
}

// planCmd resolves a failure group's tasks when the target is a group, then asks the Actions
// for the plan the dialog shows.
func (m Model) planCmd(t target) tea.Cmd {
	src, acts, log := m.opts.Source, m.opts.Actions, m.opts.Logger
	// a reconcile plan asks Ray about every RUNNING and CANCELLING row: give it longer
	ctx, cancel := context.WithTimeout(m.calls.ctx, max(m.opts.QueryTimeout, time.Minute))
	return m.calls.guard(func() tea.Msg {
		defer cancel()
		if t.group != nil {
			ids, total, err := src.FailureGroupTaskIDs(ctx, t.group.CallablePath, t.group.ExceptionType, t.groupP)
			if err != nil {
				return proposalMsg{target: t, err: err}
			}
			t.req.IDs, t.truncated = ids, total-int64(len(ids))
		}
		p, err := acts.Plan(ctx, t.req)
		if err != nil {
			log.Warn("plan failed", "action", t.req.Kind.Verb(), "target", t.req.Label, "error", err)
		}
		return proposalMsg{target: t, proposal: p, err: err}
	})
}

// applyCmd carries out the confirmed plan and logs what it did (the audit trail of a session).
func (m Model) applyCmd(p Proposal) tea.Cmd {
	acts, log, calls := m.opts.Actions, m.opts.Logger, m.calls
	// a write gets longer than a read: it may run in many batches, and stop Ray jobs first.
	// It ends early when the program does (Run): the batch in progress rolls back.
	ctx, cancel := context.WithTimeout(calls.ctx, max(m.opts.QueryTimeout, 5*time.Minute))
	return calls.guard(func() tea.Msg {
		defer cancel()
		o, err := acts.Apply(ctx, p)
		r := p.Request
		calls.wrote(r, o, err)
		if err != nil {
			log.Error("action failed", "action", r.Kind.Verb(), "target", r.Label, "tasks", len(r.IDs), "error", err)
		} else {
			log.Info("action applied", "action", r.Kind.Verb(), "target", r.Label, "tasks", len(r.IDs), "reset_attempts", r.ResetAttempts,
				"applied", o.Applied, "skipped", o.Skipped, "detail", o.Detail, "ids", idList(r.IDs, 50))
		}
		return outcomeMsg{proposal: p, outcome: o, err: err}
	})
}

// idList formats at most n ids for a log line.
func idList(ids []int64, n int) string {
	if len(ids) <= n {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%v (+%d more)", ids[:n], len(ids)-n)
}
