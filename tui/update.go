package tui

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/rayctl/rayctl/store"
)

// historyKeep is how much snapshot history the signals look back on.
const historyKeep = 10 * time.Minute

// Update handles one message. It never does I/O: reads and writes are returned as commands.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.Width = msg.Width
		m.input.Width = max(10, msg.Width-4)
		m.resizeDetail()
		if m.view == ViewTasks && !m.detail.open && m.tasks.loaded && len(m.tasks.rows) != m.pageSize() {
			return m, m.tasksCmd() // the page size follows the height
		}
		return m, nil

	case tickMsg:
		if msg.gen != m.tickGen || m.paused {
			return m, nil
		}
		withTotals := m.opts.Clock().Sub(m.totalsAt) >= m.opts.TotalsEvery
		cmd := m.refresh(withTotals, false)
		return m, tea.Batch(m.tick(), cmd)

	case refreshNowMsg:
		if msg.totals {
			m.totalsAt = m.opts.Clock()
		}
		return m, m.refreshCmd(msg.totals)

	case dashboardMsg:
		m.dashLoading = false
		if msg.err != nil {
			m.setDBErr(msg.err)
			return m, nil
		}
		m.dbOK()
		m.applyDashboard(msg)
		return m, nil

	case tasksMsg:
		m.viewPending = max(0, m.viewPending-1)
		if msg.seq != m.tasks.seq {
			return m, nil
		}
		if msg.err != nil {
			m.setDBErr(msg.err)
			return m, nil
		}
		m.dbOK()
		m.tasks.rows, m.tasks.hasMore, m.tasks.loaded = msg.rows, msg.hasMore, true
		m.tasks.cursor = min(m.tasks.cursor, max(0, len(msg.rows)-1))
		return m, nil

	case taskMsg:
		m.viewPending = max(0, m.viewPending-1)
		if msg.seq != m.detail.seq || !m.detail.open {
			return m, nil
		}
		if msg.err != nil {
			if errors.Is(msg.err, store.ErrNotFound) {
				m.detail.task, m.detail.errMsg = nil, fmt.Sprintf("task %d no longer exists", m.detail.id)
				m.setDetailContent()
				return m, nil
			}
			m.setDBErr(msg.err)
			return m, nil
		}
		m.dbOK()
		t := msg.task
		m.detail.task, m.detail.errMsg = &t, ""
		m.setDetailContent()
		return m, nil

	case failuresMsg:
		m.viewPending = max(0, m.viewPending-1)
		if msg.seq != m.failures.seq {
			return m, nil
		}
		if msg.err != nil {
			m.setDBErr(msg.err)
			return m, nil
		}
		m.dbOK()
		m.failures.groups, m.failures.loaded = msg.groups, true
		m.failures.cursor = min(m.failures.cursor, max(0, len(msg.groups)-1))
		return m, nil

	case workersMsg:
		m.viewPending = max(0, m.viewPending-1)
		if msg.seq != m.workers.seq {
			return m, nil
		}
		if msg.err != nil {
			m.setDBErr(msg.err)
			return m, nil
		}
		m.dbOK()
		m.workers.now, m.workers.rows, m.workers.loaded = msg.now, msg.rows, true
		m.workers.cursor = min(m.workers.cursor, max(0, len(msg.rows)-1))
		return m, nil

	case previewMsg:
		m.acting = false
		if msg.err != nil {
			m.setStatus(fmt.Sprintf("%s: %s", strings.ToLower(msg.kind.verb()), errText(msg.err)))
			return m, nil
		}
		if msg.preview.Eligible == 0 {
			note := msg.preview.Note
			if note == "" {
				note = "no task is in a state it applies to"
			}
			m.setStatus(fmt.Sprintf("nothing to %s in %s: %s", strings.ToLower(msg.kind.verb()), msg.target.label, note))
			return m, nil
		}
		m.confirm = &confirmState{kind: msg.kind, target: msg.target, preview: msg.preview}
		m.status = ""
		return m, nil

	case outcomeMsg:
		m.acting = false
		if msg.err != nil {
			m.setStatus(fmt.Sprintf("%s failed: %s", strings.ToLower(msg.kind.verb()), errText(msg.err)))
			return m, m.refreshCmd(false)
		}
		verb := map[actionKind]string{actRequeue: "requeued", actCancel: "cancelled"}[msg.kind]
		s := fmt.Sprintf("%s %d of %s", verb, msg.outcome.Applied, msg.target.label)
		if msg.outcome.Skipped > 0 {
			s += fmt.Sprintf(", %d skipped", msg.outcome.Skipped)
		}
		if msg.outcome.Detail != "" {
			s += " (" + msg.outcome.Detail + ")"
		}
		m.setStatus(s)
		for _, id := range msg.target.ids {
			delete(m.tasks.marks, id)
		}
		return m, m.refreshCmd(false)

	case tea.KeyMsg:
		// bubbletea reports runes that arrive together as one message: over a slow SSH link
		// "jjj" or "/state:failed" comes as one. Handle them one key at a time, each in the
		// mode the previous one left (the first "/" opens the filter, the rest is its text).
		if msg.Type == tea.KeyRunes && len(msg.Runes) > 1 && !msg.Paste {
			var model tea.Model = m
			var cmds []tea.Cmd
			for _, r := range msg.Runes {
				var cmd tea.Cmd
				model, cmd = model.(Model).handleKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt})
				cmds = append(cmds, cmd)
			}
			return model, tea.Batch(cmds...)
		}
		return m.handleKey(msg)
	}
	return m, nil
}

func (m *Model) setStatus(s string) {
	m.status, m.statusAt = s, m.opts.Clock()
}

func (m *Model) setDBErr(err error) {
	if m.dbErr == nil {
		m.dbErrAt = m.opts.Clock()
	}
	m.dbErr = err
}

func (m *Model) dbOK() {
	if m.dbErr != nil {
		m.setStatus("database reachable again")
	}
	m.dbErr = nil
}

// errText is one short line for an error, without pgx internals.
func errText(err error) string {
	return store.ConnErrorReason(err, "")
}

func (m *Model) applyDashboard(msg dashboardMsg) {
	d := msg.d
	cold := []store.TaskState{store.StateSucceeded, store.StateCancelled}
	if msg.totals {
		for _, st := range cold {
			if old, ok := m.totals[st]; ok {
				m.totalsDelta[st] = d.States[st] - old
			}
			m.totals[st] = d.States[st]
		}
		m.totalsAt = m.opts.Clock()
	}
	// the snapshot carries only the moving states unless totals were counted: fill the rest
	for st, n := range m.totals {
		if _, ok := d.States[st]; !ok {
			d.States[st] = n
		}
	}
	deltas := map[store.TaskState]int64{}
	if m.dash != nil {
		for _, st := range store.AllStates {
			deltas[st] = d.States[st] - m.dash.States[st]
		}
	}
	for _, st := range cold { // counted on their own cadence: the change between counts
		deltas[st] = m.totalsDelta[st]
	}
	m.signals = detectSignals(d, m.history, m.opts.Thresholds)
	m.history = append(m.history, sampleOf(d))
	for len(m.history) > 0 && d.Now.Sub(m.history[0].at) > historyKeep {
		m.history = m.history[1:]
	}
	m.dash, m.deltas = &d, deltas
	m.lastOK, m.lastTook = m.opts.Clock(), msg.took
}

func (m Model) handleKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	if msg.Type == tea.KeyCtrlC { // quits from anywhere, a dialog or the filter input included
		return m, tea.Quit
	}
	if m.confirm != nil {
		return m.handleConfirmKey(msg)
	}
	if m.filtering {
		return m.handleFilterKey(msg)
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Quit):
		return m, tea.Quit
	case key.Matches(msg, k.Help):
		m.showHelp = !m.showHelp
		return m, nil
	}
	if m.showHelp {
		if key.Matches(msg, k.Back) {
			m.showHelp = false
		}
		return m, nil
	}
	switch {
	case key.Matches(msg, k.Overview):
		return m.switchView(ViewOverview)
	case key.Matches(msg, k.Tasks):
		return m.switchView(ViewTasks)
	case key.Matches(msg, k.Failures):
		return m.switchView(ViewFailures)
	case key.Matches(msg, k.Workers):
		return m.switchView(ViewWorkers)
	case key.Matches(msg, k.NextView):
		return m.switchView((m.view + 1) % viewCount)
	case key.Matches(msg, k.PrevView):
		return m.switchView((m.view + viewCount - 1) % viewCount)
	case key.Matches(msg, k.Refresh):
		m.setStatus("refreshing")
		return m, m.refreshCmd(true)
	case key.Matches(msg, k.Pause):
		m.paused = !m.paused
		m.tickGen++
		if m.paused {
			m.setStatus("paused: r refreshes by hand, p resumes")
			return m, nil
		}
		m.setStatus("resumed")
		return m, tea.Batch(m.tick(), m.refreshCmd(false))
	case key.Matches(msg, k.Faster), key.Matches(msg, k.Slower):
		m.stepInterval(key.Matches(msg, k.Faster))
		m.tickGen++
		m.setStatus("refresh every " + shortDur(m.interval))
		if m.paused {
			return m, nil
		}
		return m, m.tick()
	}

	switch m.view {
	case ViewTasks:
		if m.detail.open {
			return m.detailKey(msg)
		}
		return m.tasksKey(msg)
	case ViewFailures:
		return m.failuresKey(msg)
	case ViewWorkers:
		return m.workersKey(msg)
	}
	return m, nil
}

func (m *Model) stepInterval(faster bool) {
	i := slices.Index(refreshSteps, m.interval)
	if i < 0 { // an interval from the flag that is not a step: go to the nearest step
		i = sort.Search(len(refreshSteps), func(i int) bool { return refreshSteps[i] >= m.interval })
		if faster {
			i = max(0, i-1)
		}
		m.interval = refreshSteps[min(i, len(refreshSteps)-1)]
		return
	}
	if faster {
		i = max(0, i-1)
	} else {
		i = min(len(refreshSteps)-1, i+1)
	}
	m.interval = refreshSteps[i]
}

func (m Model) switchView(v View) (tea.Model, tea.Cmd) {
	if v == m.view && !m.detail.open {
		return m, nil
	}
	m.view = v
	m.detail.open = false
	return m, m.viewCmd()
}

// moveCursor applies the navigation keys to a cursor over n rows.
func (m Model) moveCursor(msg tea.KeyMsg, cursor, n, page int) (int, bool) {
	k := m.keys
	switch {
	case key.Matches(msg, k.Up):
		return max(0, cursor-1), true
	case key.Matches(msg, k.Down):
		return max(0, min(n-1, cursor+1)), true
	case key.Matches(msg, k.Top):
		return 0, true
	case key.Matches(msg, k.Bottom):
		return max(0, n-1), true
	case key.Matches(msg, k.PageUp):
		return max(0, cursor-page), true
	case key.Matches(msg, k.PageDown):
		return max(0, min(n-1, cursor+page)), true
	}
	return cursor, false
}

func (m Model) tasksKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	k := m.keys
	switch {
	case key.Matches(msg, k.PageDown):
		if !m.tasks.hasMore || len(m.tasks.rows) == 0 {
			m.tasks.cursor = max(0, len(m.tasks.rows)-1)
			return m, nil
		}
		m.tasks.pages = append(m.tasks.pages, m.tasks.rows[len(m.tasks.rows)-1].ID)
		m.tasks.cursor = 0
		return m, m.tasksCmd()
	case key.Matches(msg, k.PageUp):
		if len(m.tasks.pages) <= 1 {
			m.tasks.cursor = 0
			return m, nil
		}
		m.tasks.pages = m.tasks.pages[:len(m.tasks.pages)-1]
		m.tasks.cursor = 0
		return m, m.tasksCmd()
	case key.Matches(msg, k.Filter):
		m.filtering = true
		m.input.SetValue(m.tasks.filterText)
		m.input.CursorEnd()
		return m, m.input.Focus()
	case key.Matches(msg, k.Back):
		if m.tasks.filterText == "" {
			return m, nil
		}
		return m.setFilter("")
	case key.Matches(msg, k.Mark):
		if t, ok := m.currentTask(); ok {
			if m.tasks.marks[t.ID] {
				delete(m.tasks.marks, t.ID)
			} else {
				m.tasks.marks[t.ID] = true
			}
			m.tasks.cursor = min(len(m.tasks.rows)-1, m.tasks.cursor+1)
		}
		return m, nil
	case key.Matches(msg, k.ClearMarks):
		m.tasks.marks = map[int64]bool{}
		return m, nil
	case key.Matches(msg, k.Open):
		if t, ok := m.currentTask(); ok {
			return m.openDetail(t.ID)
		}
		return m, nil
	case key.Matches(msg, k.Requeue):
		return m.startAction(actRequeue, m.taskTarget())
	case key.Matches(msg, k.Cancel):
		return m.startAction(actCancel, m.taskTarget())
	}
	if c, ok := m.moveCursor(msg, m.tasks.cursor, len(m.tasks.rows), m.pageSize()); ok {
		m.tasks.cursor = c
	}
	return m, nil
}

func (m Model) currentTask() (store.Task, bool) {
	if m.tasks.cursor < 0 || m.tasks.cursor >= len(m.tasks.rows) {
		return store.Task{}, false
	}
	return m.tasks.rows[m.tasks.cursor], true
}

// taskTarget is the marked tasks, or else the one under the cursor.
func (m Model) taskTarget() target {
	if len(m.tasks.marks) > 0 {
		ids := make([]int64, 0, len(m.tasks.marks))
		for id := range m.tasks.marks {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		label := fmt.Sprintf("%d marked tasks", len(ids))
		if len(ids) == 1 {
			label = fmt.Sprintf("marked task %d", ids[0])
		}
		return target{ids: ids, label: label}
	}
	if t, ok := m.currentTask(); ok {
		return target{ids: []int64{t.ID}, label: fmt.Sprintf("task %d", t.ID)}
	}
	return target{}
}

func (m Model) startAction(kind actionKind, t target) (tea.Model, tea.Cmd) {
	if m.opts.ReadOnly {
		return m, nil // the keys are disabled; nothing reaches here under --readonly
	}
	if len(t.ids) == 0 && t.group == nil {
		m.setStatus("nothing selected")
		return m, nil
	}
	if m.acting {
		m.setStatus("an action is still running")
		return m, nil
	}
	m.acting = true
	m.setStatus(fmt.Sprintf("counting what %s would do…", strings.ToLower(kind.verb())))
	return m, m.previewCmd(kind, t)
}

func (m Model) handleConfirmKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	k, c := m.keys, m.confirm
	switch {
	case key.Matches(msg, k.Confirm):
		return m.runConfirmed()
	case key.Matches(msg, k.Open):
		if c.yes {
			return m.runConfirmed()
		}
		m.confirm = nil
		m.setStatus(strings.ToLower(c.kind.verb()) + ": not confirmed, nothing changed")
		return m, nil
	case key.Matches(msg, k.Deny), key.Matches(msg, k.Quit):
		m.confirm = nil
		m.setStatus(strings.ToLower(c.kind.verb()) + ": not confirmed, nothing changed")
		return m, nil
	case key.Matches(msg, k.SwitchButton):
		cc := *c
		cc.yes = !cc.yes
		m.confirm = &cc
		return m, nil
	}
	return m, nil
}

func (m Model) runConfirmed() (tea.Model, tea.Cmd) {
	c := m.confirm
	m.confirm = nil
	m.acting = true
	m.setStatus(fmt.Sprintf("%s: working on %d tasks…", strings.ToLower(c.kind.verb()), len(c.target.ids)))
	return m, m.applyCmd(c.kind, c.target)
}

func (m Model) handleFilterKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	switch msg.Type {
	case tea.KeyEnter:
		m.filtering = false
		m.input.Blur()
		return m.setFilter(m.input.Value())
	case tea.KeyEsc:
		m.filtering = false
		m.input.Blur()
		return m, nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

// setFilter parses and applies a filter to the tasks view and reloads its first page.
func (m Model) setFilter(text string) (tea.Model, tea.Cmd) {
	f, err := ParseFilter(text)
	if err != nil {
		m.setStatus("filter: " + err.Error())
		return m, nil
	}
	m.tasks.filterText = strings.TrimSpace(text)
	m.tasks.filter = f
	m.tasks.pages = []int64{0}
	m.tasks.cursor = 0
	m.tasks.loaded = false
	return m, m.tasksCmd()
}

// ParseFilter reads the `/` filter: space-separated qualifiers state:, queue: (comma lists),
// callable: (a glob), worker:, error:, id: (comma list); any other words are a
// case-insensitive search over callable, queue, worker, Ray job id and error.
func ParseFilter(text string) (store.TaskFilter, error) {
	var f store.TaskFilter
	var words []string
	for _, tok := range strings.Fields(text) {
		k, v, ok := strings.Cut(tok, ":")
		if !ok || v == "" {
			words = append(words, tok)
			continue
		}
		switch strings.ToLower(k) {
		case "state", "s":
			for _, s := range strings.Split(v, ",") {
				st, err := store.ParseState(s)
				if err != nil {
					return f, err
				}
				f.States = append(f.States, st)
			}
		case "queue", "q":
			f.Queues = append(f.Queues, strings.Split(v, ",")...)
		case "callable", "c":
			f.Callable = v
		case "worker", "w":
			f.Worker = v
		case "error", "e":
			f.ErrorContains = v
		case "id":
			for _, s := range strings.Split(v, ",") {
				id, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return f, fmt.Errorf("id %q is not a number", s)
				}
				f.IDs = append(f.IDs, id)
			}
		default:
			words = append(words, tok)
		}
	}
	f.Search = strings.Join(words, " ")
	return f, nil
}

func (m Model) openDetail(id int64) (tea.Model, tea.Cmd) {
	m.detail = detailState{open: true, id: id, vp: m.detail.vp}
	m.detail.vp.SetContent("loading task " + strconv.FormatInt(id, 10) + "…")
	m.detail.vp.GotoTop()
	m.resizeDetail()
	return m, m.taskCmd()
}

func (m Model) detailKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	k := m.keys
	switch {
	case key.Matches(msg, k.Back):
		m.detail.open = false
		return m, m.tasksCmd()
	case key.Matches(msg, k.Requeue):
		return m.startAction(actRequeue, target{ids: []int64{m.detail.id}, label: fmt.Sprintf("task %d", m.detail.id)})
	case key.Matches(msg, k.Cancel):
		return m.startAction(actCancel, target{ids: []int64{m.detail.id}, label: fmt.Sprintf("task %d", m.detail.id)})
	case key.Matches(msg, k.Up):
		m.detail.vp.ScrollUp(1)
	case key.Matches(msg, k.Down):
		m.detail.vp.ScrollDown(1)
	case key.Matches(msg, k.PageUp):
		m.detail.vp.PageUp()
	case key.Matches(msg, k.PageDown):
		m.detail.vp.PageDown()
	case key.Matches(msg, k.Top):
		m.detail.vp.GotoTop()
	case key.Matches(msg, k.Bottom):
		m.detail.vp.GotoBottom()
	}
	return m, nil
}

func (m Model) failuresKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	k := m.keys
	g, ok := m.currentGroup()
	switch {
	case key.Matches(msg, k.Window):
		m.failures.window = (m.failures.window + 1) % len(failureWindows)
		m.failures.loaded, m.failures.cursor = false, 0
		return m, m.failuresCmd()
	case key.Matches(msg, k.Open):
		if !ok {
			return m, nil
		}
		m.view = ViewTasks
		return m.setFilter("state:FAILED,LOST callable:" + g.CallablePath)
	case key.Matches(msg, k.Requeue):
		if !ok {
			return m, nil
		}
		return m.startAction(actRequeue, target{
			group: &g, groupP: m.failureParams(),
			label: fmt.Sprintf("failure group %s / %s", g.CallablePath, g.ExceptionType),
		})
	case key.Matches(msg, k.Cancel):
		m.setStatus("cancel applies to QUEUED and RUNNING tasks; failures are finished (requeue them with R)")
		return m, nil
	}
	if c, ok := m.moveCursor(msg, m.failures.cursor, len(m.failures.groups), m.bodyHeight()-4); ok {
		m.failures.cursor = c
	}
	return m, nil
}

func (m Model) currentGroup() (store.FailureGroup, bool) {
	if m.failures.cursor < 0 || m.failures.cursor >= len(m.failures.groups) {
		return store.FailureGroup{}, false
	}
	return m.failures.groups[m.failures.cursor], true
}

func (m Model) workersKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	if key.Matches(msg, m.keys.Open) {
		if m.workers.cursor < len(m.workers.rows) {
			w := m.workers.rows[m.workers.cursor]
			m.view = ViewTasks
			return m.setFilter("worker:" + w.WorkerID)
		}
		return m, nil
	}
	if c, ok := m.moveCursor(msg, m.workers.cursor, len(m.workers.rows), m.bodyHeight()-2); ok {
		m.workers.cursor = c
	}
	return m, nil
}
