package tui

import (
	"errors"
	"fmt"
	"regexp"
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
// Each answer to a read or a write goes through one of the reply steps below.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		cmd := m.resize(msg)
		return m, cmd
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
		if m.answered(msg.err) {
			m.applyDashboard(msg)
		}
	case tasksMsg:
		if m.viewAnswered(msg.seq == m.tasks.seq, msg.err) {
			m.tasks.rows, m.tasks.hasMore, m.tasks.loaded = msg.rows, msg.hasMore, true
			m.tasks.cursor = min(m.tasks.cursor, max(0, len(msg.rows)-1))
		}
	case taskMsg:
		m.taskAnswered(msg)
	case failuresMsg:
		if m.viewAnswered(msg.seq == m.failures.seq, msg.err) {
			m.failures.groups, m.failures.loaded = msg.groups, true
			m.failures.cursor = min(m.failures.cursor, max(0, len(msg.groups)-1))
		}
	case workersMsg:
		if m.viewAnswered(msg.seq == m.workers.seq, msg.err) {
			m.workers.now, m.workers.rows, m.workers.loaded = msg.now, msg.rows, true
			m.workers.cursor = min(m.workers.cursor, max(0, len(msg.rows)-1))
		}

	case proposalMsg:
		m.proposed(msg)
	case outcomeMsg:
		m.applied(msg)
		return m, m.refreshCmd(false)
	case markAllMsg:
		if msg.seq == m.tasks.markSeq {
			m.markedAll(msg)
		}

	case tea.KeyMsg:
		return m.keyMsg(msg)
	}
	return m, nil
}

// resize fits the layout to the terminal; the tasks page size follows the height.
func (m *Model) resize(msg tea.WindowSizeMsg) tea.Cmd {
	m.width, m.height = msg.Width, msg.Height
	m.help.Width = msg.Width
	m.input.Width = max(10, msg.Width-4)
	m.resizeDetail()
	if m.view == ViewTasks && !m.detail.open && m.tasks.loaded && len(m.tasks.rows) != m.pageSize() {
		return m.tasksCmd()
	}
	return nil
}

// answered is the reply step of every read: an error is database trouble, kept until a read
// succeeds; an answer says the database is reachable. It reports whether to use the answer.
func (m *Model) answered(err error) bool {
	if err != nil {
		m.setDBErr(err)
		return false
	}
	m.dbOK()
	return true
}

// viewAnswered is the reply step of a view's read (tasksCmd, taskCmd, failuresCmd,
// workersCmd): the read is no longer pending, and the answer to a superseded request
// (current false) is dropped unread; then as answered.
func (m *Model) viewAnswered(current bool, err error) bool {
	m.viewPending = max(0, m.viewPending-1)
	return current && m.answered(err)
}

// taskAnswered shows the task detail's row; a task deleted meanwhile is said so, which is no
// database trouble.
func (m *Model) taskAnswered(msg taskMsg) {
	current := msg.seq == m.detail.seq && m.detail.open
	switch {
	case current && errors.Is(msg.err, store.ErrNotFound):
		m.viewPending = max(0, m.viewPending-1)
		m.detail.task, m.detail.errMsg = nil, fmt.Sprintf("task %d no longer exists", m.detail.id)
	case m.viewAnswered(current, msg.err):
		t := msg.task
		m.detail.task, m.detail.errMsg = &t, ""
	default:
		return
	}
	m.setDetailContent()
}

// proposed opens the confirmation dialog on a plan, or says why there is nothing to do.
func (m *Model) proposed(msg proposalMsg) {
	m.acting = false
	verb := strings.ToLower(msg.target.req.Kind.Verb())
	if msg.err != nil {
		m.setStatus(fmt.Sprintf("%s: %s", verb, errText(msg.err)))
		return
	}
	if msg.proposal.Total == 0 {
		why := "no task is in a state it applies to"
		if len(msg.proposal.Left) > 0 {
			why = strings.Join(msg.proposal.Left, "; ")
		} else if len(msg.proposal.Notes) > 0 {
			why = strings.Join(msg.proposal.Notes, "; ")
		}
		m.setStatus(fmt.Sprintf("nothing to %s in %s: %s", verb, msg.target.req.Label, why))
		return
	}
	if msg.target.truncated > 0 {
		msg.proposal.Notes = append(msg.proposal.Notes, fmt.Sprintf("the group has %s more tasks beyond this batch: repeat after", num(msg.target.truncated)))
	}
	m.confirm = &confirmState{target: msg.target, proposal: msg.proposal}
	m.status = ""
}

// applied says what a write did (or how it failed) and unmarks the tasks it was for once it
// succeeded; Update then refreshes either way.
func (m *Model) applied(msg outcomeMsg) {
	m.acting = false
	r := msg.proposal.Request
	verb := strings.ToLower(r.Kind.Verb())
	if msg.err != nil {
		s := fmt.Sprintf("%s failed: %s", verb, errText(msg.err))
		if msg.outcome.Applied > 0 {
			s += fmt.Sprintf(" (after %d changed)", msg.outcome.Applied)
		}
		m.setStatus(s)
		return
	}
	done := map[ActionKind]string{ActionRequeue: "requeued", ActionCancel: "cancelled", ActionReconcile: "reconciled"}[r.Kind]
	s := fmt.Sprintf("%s %d of %s", done, msg.outcome.Applied, r.Label)
	if msg.outcome.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped (moved on since the plan)", msg.outcome.Skipped)
	}
	if msg.outcome.Detail != "" {
		s += " (" + msg.outcome.Detail + ")"
	}
	m.setStatus(s)
	for _, id := range r.IDs {
		delete(m.tasks.marks, id)
	}
}

// markedAll marks the ids select-all read, and says how many (and when they were capped).
func (m *Model) markedAll(msg markAllMsg) {
	if msg.err != nil {
		m.setStatus("mark all: " + errText(msg.err))
		return
	}
	for _, id := range msg.ids {
		m.tasks.marks[id] = true
	}
	s := fmt.Sprintf("marked %s matching %s", plural(int64(len(msg.ids)), "task"), m.filterDesc())
	if msg.total > int64(len(msg.ids)) {
		s = fmt.Sprintf("marked the newest %s of %s matching %s (at most %s at once)", num(int64(len(msg.ids))), num(msg.total), m.filterDesc(), num(markAllMax))
	}
	m.setStatus(s)
}

// keyMsg handles a key press. bubbletea reports runes that arrive together as one message:
// over a slow SSH link "jjj" or "/state:failed" comes as one. They are handled one key at a
// time, each in the mode the previous one left (the first "/" opens the filter, the rest is
// its text).
func (m Model) keyMsg(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	if msg.Type != tea.KeyRunes || len(msg.Runes) <= 1 || msg.Paste {
		return m.handleKey(msg)
	}
	var model tea.Model = m
	var cmds []tea.Cmd
	for _, r := range msg.Runes {
		var cmd tea.Cmd
		model, cmd = model.(Model).handleKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt})
		cmds = append(cmds, cmd)
	}
	return model, tea.Batch(cmds...)
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
	m.findings, m.signals = m.evaluate(d)
	m.history = append(m.history, sample{at: d.Now, queued: d.States[store.StateQueued]})
	for len(m.history) > 0 && d.Now.Sub(m.history[0].at) > historyKeep {
		m.history = m.history[1:]
	}
	m.dash, m.deltas = &d, deltas
	m.lastOK, m.lastTook = m.opts.Clock(), msg.took
}

func (m Model) handleKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	if msg.Type == tea.KeyCtrlC { // quits from anywhere, a dialog or an input included
		return m, tea.Quit
	}
	if m.confirm != nil {
		return m.handleConfirmKey(msg)
	}
	if m.filtering || m.commanding {
		return m.handleInputKey(msg)
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Help):
		m.showHelp = !m.showHelp
		return m, nil
	case key.Matches(msg, k.Command):
		return m.openInput(true, "")
	}
	if m.showHelp {
		if key.Matches(msg, k.Back) || key.Matches(msg, k.Quit) {
			m.showHelp = false
		}
		return m, nil
	}
	switch {
	case key.Matches(msg, k.Back), key.Matches(msg, k.Quit):
		return m.back(key.Matches(msg, k.Quit))
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
	if key.Matches(msg, k.Requeue) || key.Matches(msg, k.Cancel) || key.Matches(msg, k.Mark) || key.Matches(msg, k.MarkAll) {
		m.setStatus("select tasks first: 2 (tasks) or 3 (failures); :reconcile and :finalize work from here")
	}
	return m, nil
}

// atTop reports whether the screen is the top level: the overview, nothing open.
func (m Model) atTop() bool {
	return m.view == ViewOverview && !m.detail.open && len(m.prev) == 0
}

// back goes one level back: the task detail to its list, a filter cleared (esc only), a view
// to the one before it, and from the top level q quits (esc says how to).
func (m Model) back(quit bool) (tea.Model, tea.Cmd) {
	switch {
	case m.view == ViewTasks && m.detail.open:
		m.detail.open = false
		return m, m.tasksCmd()
	case !quit && m.view == ViewTasks && m.tasks.filterText != "":
		return m.setFilter("")
	case m.atTop() && quit:
		return m, tea.Quit
	case m.atTop():
		m.setStatus("top level: q or :q quits")
		return m, nil
	}
	v := ViewOverview
	if n := len(m.prev); n > 0 {
		v, m.prev = m.prev[n-1], m.prev[:n-1]
	}
	m.view, m.detail.open = v, false
	return m, m.viewCmd()
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
	m.goTo(v)
	return m, m.viewCmd()
}

// goTo shows view v, remembering the one left (esc and q come back to it).
func (m *Model) goTo(v View) {
	if v != m.view {
		m.prev = append(m.prev, m.view)
		if len(m.prev) > 20 {
			m.prev = m.prev[1:]
		}
	}
	if v == ViewOverview {
		m.prev = nil // the top level
	}
	m.view = v
	m.detail.open = false
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
		return m.openInput(false, m.tasks.filterText)
	case key.Matches(msg, k.Mark):
		if m.opts.ReadOnly {
			return m.readOnly("marks are")
		}
		if t, ok := m.currentTask(); ok {
			if m.tasks.marks[t.ID] {
				delete(m.tasks.marks, t.ID)
			} else {
				m.tasks.marks[t.ID] = true
			}
			m.tasks.cursor = min(len(m.tasks.rows)-1, m.tasks.cursor+1)
		}
		return m, nil
	case key.Matches(msg, k.MarkAll):
		if m.opts.ReadOnly {
			return m.readOnly("marks are")
		}
		m.setStatus("marking every task matching " + m.filterDesc() + "…")
		return m, m.markAllCmd()
	case key.Matches(msg, k.ClearMarks):
		if n := len(m.tasks.marks); n > 0 {
			m.setStatus(fmt.Sprintf("cleared %s", plural(int64(n), "mark")))
		}
		m.tasks.marks = map[int64]bool{}
		return m, nil
	case key.Matches(msg, k.Open):
		if t, ok := m.currentTask(); ok {
			return m.openDetail(t.ID)
		}
		return m, nil
	case key.Matches(msg, k.Requeue):
		return m.startAction(ActionRequeue, m.taskTarget(ActionRequeue))
	case key.Matches(msg, k.Cancel):
		return m.startAction(ActionCancel, m.taskTarget(ActionCancel))
	}
	if c, ok := m.moveCursor(msg, m.tasks.cursor, len(m.tasks.rows), m.pageSize()); ok {
		m.tasks.cursor = c
	}
	return m, nil
}

func (m Model) currentTask() (store.Task, bool) { return rowAt(m.tasks.rows, m.tasks.cursor) }

// rowAt is the row under the cursor, if there is one.
func rowAt[T any](rows []T, cursor int) (T, bool) {
	if cursor < 0 || cursor >= len(rows) {
		var none T
		return none, false
	}
	return rows[cursor], true
}

// taskTarget is the marked tasks, or else the one under the cursor.
func (m Model) taskTarget(kind ActionKind) target {
	if len(m.tasks.marks) > 0 {
		ids := make([]int64, 0, len(m.tasks.marks))
		for id := range m.tasks.marks {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		label := fmt.Sprintf("%s marked tasks", num(int64(len(ids))))
		if len(ids) == 1 {
			label = fmt.Sprintf("marked task %d", ids[0])
		}
		return target{req: Request{Kind: kind, IDs: ids, Label: label}}
	}
	if t, ok := m.currentTask(); ok {
		return target{req: Request{Kind: kind, IDs: []int64{t.ID}, Label: fmt.Sprintf("task %d", t.ID)}}
	}
	return target{req: Request{Kind: kind}}
}

// readOnly says why a write key did nothing.
func (m Model) readOnly(what string) (tea.Model, tea.Cmd) {
	m.setStatus(fmt.Sprintf("read-only (--readonly): %s off", what))
	return m, nil
}

func (m Model) startAction(kind ActionKind, t target) (tea.Model, tea.Cmd) {
	t.req.Kind = kind
	if m.opts.ReadOnly {
		return m.readOnly(strings.ToLower(kind.Verb()) + " is")
	}
	if len(t.req.IDs) == 0 && len(t.req.States) == 0 && t.group == nil && kind != ActionReconcile {
		m.setStatus("nothing selected")
		return m, nil
	}
	if m.acting {
		m.setStatus("an action is still running")
		return m, nil
	}
	m.acting = true
	m.setStatus(fmt.Sprintf("planning %s…", strings.ToLower(kind.Verb())))
	return m, m.planCmd(t)
}

func (m Model) handleConfirmKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	k, c := m.keys, m.confirm
	verb := strings.ToLower(c.proposal.Request.Kind.Verb())
	switch {
	case key.Matches(msg, k.Confirm):
		return m.runConfirmed()
	case key.Matches(msg, k.Open):
		if c.yes {
			return m.runConfirmed()
		}
		m.confirm = nil
		m.setStatus(verb + ": not confirmed, nothing changed")
		return m, nil
	case key.Matches(msg, k.Deny):
		m.confirm = nil
		m.setStatus(verb + ": not confirmed, nothing changed")
		return m, nil
	case key.Matches(msg, k.SwitchButton):
		cc := *c
		cc.yes = !cc.yes
		m.confirm = &cc
		return m, nil
	case key.Matches(msg, k.ResetAttempts) && c.proposal.Request.Kind == ActionRequeue:
		cc := *c
		cc.proposal.Request.ResetAttempts = !cc.proposal.Request.ResetAttempts
		m.confirm = &cc
		return m, nil
	}
	return m, nil
}

func (m Model) runConfirmed() (tea.Model, tea.Cmd) {
	c := m.confirm
	m.confirm = nil
	m.acting = true
	m.setStatus(fmt.Sprintf("%s: working on %s…", strings.ToLower(c.proposal.Request.Kind.Verb()), plural(int64(c.proposal.Total), "task")))
	return m, m.applyCmd(c.proposal)
}

// openInput opens the filter (/) or command (:) line with text.
func (m Model) openInput(command bool, text string) (tea.Model, tea.Cmd) {
	m.filtering, m.commanding = !command, command
	m.input.Prompt = "/"
	if command {
		m.input.Prompt = ":"
	}
	m.input.SetValue(text)
	m.input.CursorEnd()
	return m, m.input.Focus()
}

func (m Model) handleInputKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	switch msg.Type {
	case tea.KeyEnter:
		command := m.commanding
		m.filtering, m.commanding = false, false
		m.input.Blur()
		if command {
			return m.runCommand(m.input.Value())
		}
		return m.setFilter(m.input.Value())
	case tea.KeyEsc:
		m.filtering, m.commanding = false, false
		m.input.Blur()
		return m, nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

// commands are what `:` takes, for the help and the error on a typo.
var commands = []string{"overview", "tasks [FILTER]", "failures", "workers", "task ID", "reconcile", "finalize", "help", "q"}

// runCommand runs a `:` command: a view (":tasks state=failed" filters it), ":task ID" opens
// a task, ":reconcile" and ":finalize" plan those fixes, ":q" quits.
func (m Model) runCommand(line string) (tea.Model, tea.Cmd) {
	name, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(name) {
	case "":
		return m, nil
	case "q", "q!", "quit", "exit":
		return m, tea.Quit
	case "overview", "o", "1":
		return m.switchView(ViewOverview)
	case "tasks", "t", "2":
		m.goTo(ViewTasks)
		return m.setFilter(rest)
	case "failures", "f", "3":
		return m.switchView(ViewFailures)
	case "workers", "w", "4":
		return m.switchView(ViewWorkers)
	case "task":
		id, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || id <= 0 {
			m.setStatus(fmt.Sprintf(":task needs a task id, e.g. :task 42 (got %q)", rest))
			return m, nil
		}
		m.goTo(ViewTasks)
		return m.openDetail(id)
	case "reconcile":
		return m.startAction(ActionReconcile, target{req: Request{Kind: ActionReconcile, Label: "RUNNING and CANCELLING tasks with a Ray job"}})
	case "finalize":
		return m.startAction(ActionCancel, target{req: Request{Kind: ActionCancel, States: []store.TaskState{store.StateCancelling},
			Label: "CANCELLING tasks whose worker is gone"}})
	case "help", "h", "?":
		m.showHelp = true
		return m, nil
	}
	m.setStatus(fmt.Sprintf("unknown command :%s; commands: :%s", name, strings.Join(commands, ", :")))
	return m, nil
}

// filterDesc names the tasks view's filter for status lines.
func (m Model) filterDesc() string {
	if m.tasks.filterText == "" {
		return "no filter (every task)"
	}
	return "/" + m.tasks.filterText
}

// setFilter parses and applies a filter to the tasks view and reloads its first page.
func (m Model) setFilter(text string) (tea.Model, tea.Cmd) {
	f, err := ParseFilter(text)
	if err != nil {
		m.setStatus("filter: " + err.Error())
		return m, nil
	}
	if strings.HasPrefix(m.status, "filter: ") {
		m.status = "" // the last filter's error no longer applies
	}
	m.tasks.filterText = strings.TrimSpace(text)
	m.tasks.filter = f
	m.tasks.markSeq = 0 // a mark-all of the old filter no longer applies
	m.tasks.pages = []int64{0}
	m.tasks.cursor = 0
	m.tasks.loaded = false
	return m, m.tasksCmd()
}

// ParseFilter reads the `/` filter (and `:tasks`'s): space-separated qualifiers, each
// KEY:VALUE or KEY=VALUE: state (comma list), queue (comma list), callable (a glob), worker,
// error, id (comma list), re (a case-insensitive regular expression over callable, queue,
// worker, Ray job id and error). Other words are a case-insensitive substring search over
// the same columns. A leading "!" inverts a word or re: ("!timeout", "!re:^app\.").
func ParseFilter(text string) (store.TaskFilter, error) {
	var f store.TaskFilter
	var words, notWords []string
	for _, tok := range strings.Fields(text) {
		neg := strings.HasPrefix(tok, "!") && len(tok) > 1
		body := strings.TrimPrefix(tok, "!")
		i := strings.IndexAny(body, ":=")
		k, v := "", ""
		if i > 0 {
			k, v = strings.ToLower(body[:i]), body[i+1:]
		}
		if k == "" || v == "" || !slices.Contains([]string{"state", "s", "queue", "q", "callable", "c", "worker", "w", "error", "e", "id", "re", "regex"}, k) {
			if neg {
				notWords = append(notWords, body)
			} else {
				words = append(words, tok)
			}
			continue
		}
		if neg && k != "re" && k != "regex" {
			return f, fmt.Errorf("! inverts words and re: only (got %q)", tok)
		}
		switch k {
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
		case "re", "regex":
			if _, err := regexp.Compile("(?i)" + v); err != nil {
				return f, fmt.Errorf("re:%s is not a regular expression: %v", v, err)
			}
			f.Regex, f.RegexNot = v, neg
		}
	}
	switch {
	case len(words) > 0 && len(notWords) > 0:
		return f, fmt.Errorf("use either words or !words, not both")
	case len(notWords) > 0:
		f.Search, f.SearchNot = strings.Join(notWords, " "), true
	default:
		f.Search = strings.Join(words, " ")
	}
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
	case key.Matches(msg, k.Requeue):
		return m.startAction(ActionRequeue, target{req: Request{IDs: []int64{m.detail.id}, Label: fmt.Sprintf("task %d", m.detail.id)}})
	case key.Matches(msg, k.Cancel):
		return m.startAction(ActionCancel, target{req: Request{IDs: []int64{m.detail.id}, Label: fmt.Sprintf("task %d", m.detail.id)}})
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
		m.goTo(ViewTasks)
		return m.setFilter("state:FAILED,LOST callable:" + g.CallablePath)
	case key.Matches(msg, k.Requeue):
		if !ok {
			return m, nil
		}
		return m.startAction(ActionRequeue, target{
			group: &g, groupP: m.failureParams(),
			req: Request{Label: fmt.Sprintf("failure group %s / %s", g.CallablePath, g.ExceptionType)},
		})
	case key.Matches(msg, k.Cancel):
		m.setStatus("cancel applies to QUEUED and RUNNING tasks; failures are finished (requeue them with R)")
		return m, nil
	case key.Matches(msg, k.Mark), key.Matches(msg, k.MarkAll):
		m.setStatus("marks are for tasks (2); here R requeues the group under the cursor")
		return m, nil
	}
	if c, ok := m.moveCursor(msg, m.failures.cursor, len(m.failures.groups), m.bodyHeight()-4); ok {
		m.failures.cursor = c
	}
	return m, nil
}

func (m Model) currentGroup() (store.FailureGroup, bool) {
	return rowAt(m.failures.groups, m.failures.cursor)
}

func (m Model) workersKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	if key.Matches(msg, m.keys.Open) {
		if m.workers.cursor < len(m.workers.rows) {
			w := m.workers.rows[m.workers.cursor]
			m.goTo(ViewTasks)
			return m.setFilter("worker:" + w.WorkerID)
		}
		return m, nil
	}
	if c, ok := m.moveCursor(msg, m.workers.cursor, len(m.workers.rows), m.bodyHeight()-2); ok {
		m.workers.cursor = c
	}
	return m, nil
}
