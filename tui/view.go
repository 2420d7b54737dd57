package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/termtext"
)

// Layout: header, banner (one line, two with a signal: what and the next command), body,
// status line, key hints. The body gets what is left.
func (m Model) bodyHeight() int { return max(3, m.height-3-len(m.bannerLines())) }

// View renders the screen: exactly m.height lines, none wider than m.width.
func (m Model) View() string {
	var body []string
	switch {
	case m.showHelp:
		body = m.helpView()
	case m.view == ViewOverview:
		body = m.overviewView()
	case m.view == ViewTasks && m.detail.open:
		body = m.detailView()
	case m.view == ViewTasks:
		body = m.tasksView()
	case m.view == ViewFailures:
		body = m.failuresView()
	case m.view == ViewWorkers:
		body = m.workersView()
	}
	if m.confirm != nil {
		body = m.overlayDialog(body)
	}
	lines := append([]string{m.headerLine()}, m.bannerLines()...)
	lines = append(lines, strings.Split(fitLines(body, m.width, m.bodyHeight()), "\n")...)
	lines = append(lines, m.statusLine(), m.hintLine())
	return fitLines(lines, m.width, m.height)
}

func (m Model) headerLine() string {
	s := m.styles
	var tabs []string
	for v := ViewOverview; v < viewCount; v++ {
		label := fmt.Sprintf("%d %s", v+1, v)
		if v == m.view {
			tabs = append(tabs, s.ActiveTab.Render("["+label+"]"))
		} else {
			tabs = append(tabs, s.Tab.Render(" "+label+" "))
		}
	}
	left := s.Header.Render("rayctl top") + " " + strings.Join(tabs, "")
	if m.width < 90 {
		left = s.Header.Render("top") + " " + strings.Join(tabs, "")
	}
	state := "every " + shortDur(m.interval)
	if m.paused {
		state = "PAUSED"
	}
	right := state
	if m.width >= 100 {
		right += " " + m.opts.Clock().Format("15:04:05")
	}
	if m.opts.ReadOnly {
		right = "read-only · " + right
	}
	gap := m.width - ansi.StringWidth(left) - ansi.StringWidth(right)
	if gap < 1 {
		return left
	}
	return left + strings.Repeat(" ", gap) + right
}

// bannerLines name the most urgent runbook signal, its playbook and its next command, or say
// all is calm. Numbers from a snapshot older than the last failed read are marked stale.
func (m Model) bannerLines() []string {
	s := m.styles
	if m.dash == nil {
		return []string{s.Dim.Render("loading…")}
	}
	stale := ""
	if m.dbErr != nil {
		stale = "(stale: data from " + m.lastOK.Format("15:04:05") + ") "
	}
	if len(m.signals) == 0 {
		return []string{s.Calm.Render(stale + "ok: no runbook signal (backlog, stuck, retry storm, Ray, cancelling, results)")}
	}
	sig := m.signals[0]
	text := fmt.Sprintf("!! %s%s: %s", stale, signalTitle(sig), termtext.Line(sig.Summary))
	if n := len(m.signals) - 1; n > 0 {
		more := fmt.Sprintf(" (+%d more)", n)
		text = trunc(text, m.width-ansi.StringWidth(more)) + more
	}
	return []string{s.Banner.Render(pad(text, m.width)), s.Bold.Render(pad("   "+termtext.Line(nextLine(sig)), m.width))}
}

func (m Model) statusLine() string {
	s := m.styles
	if m.dbErr != nil {
		text := "database: " + termtext.Line(errText(m.dbErr))
		if !m.lastOK.IsZero() {
			text += fmt.Sprintf(" · data from %s", m.lastOK.Format("15:04:05"))
		}
		if m.paused {
			text += " · paused: r retries"
		} else {
			text += " · retrying every " + shortDur(m.interval)
		}
		return s.StatusError.Render(pad(text, m.width))
	}
	var parts []string
	if m.status != "" && m.opts.Clock().Sub(m.statusAt) < statusTTL {
		parts = append(parts, termtext.Line(m.status)) // may name a failure group's callable
	}
	if n := len(m.tasks.marks); n > 0 {
		parts = append(parts, num(int64(n))+" marked")
	}
	if !m.lastOK.IsZero() {
		parts = append(parts, fmt.Sprintf("updated %s (%dms)", m.lastOK.Format("15:04:05"), m.lastTook.Milliseconds()))
	}
	if m.opts.Title != "" {
		parts = append(parts, m.opts.Title)
	}
	return s.Status.Render(strings.Join(parts, " · "))
}

func (m Model) hintLine() string {
	switch {
	case m.filtering:
		return m.styles.Dim.Render("enter apply · esc cancel · state:failed queue:q callable:app.* worker:ID error:text id:1,2 re:REGEX !word")
	case m.commanding:
		return m.styles.Dim.Render("enter run · esc cancel · :tasks state=failed · :workers · :task ID · :reconcile · :finalize · :q")
	case m.confirm != nil:
		h := "y confirm · n/esc cancel · tab switch button · enter press the focused button"
		if m.confirm.proposal.Request.Kind == ActionRequeue {
			h = "y confirm · n/esc cancel · a reset attempts on/off · tab switch · enter press"
		}
		return m.styles.Dim.Render(h)
	}
	return m.help.ShortHelpView(m.keys.hints(m.view, m.detail.open, m.atTop()))
}

func (m Model) helpView() []string {
	s := m.styles
	lines := []string{s.Bold.Render("Keys") + "  esc, q: back a level (q quits from the overview); ctrl+c quits"}
	lines = append(lines, helpColumns(m.keys.FullHelp(), m.width)...)
	lines = append(lines, "",
		"Filter: state:failed,lost queue:q callable:app.* worker:ID error:text id:1,2 (or =)",
		"  re:REGEX over callable, queue, worker, job id, error; words search; !word inverts",
		"Commands: :"+strings.Join(commands, " :"),
		"~N: SUCCEEDED, CANCELLED counted every 30s; the change row says how long ago")
	if m.opts.ReadOnly {
		lines = append(lines, "Read-only (--readonly): requeue, cancel, reconcile, finalize and marks are off.")
	}
	lines = append(lines, s.Dim.Render("esc or ? closes this help"))
	return lines
}

// helpColumns lays the key groups side by side in columns that share the width; a
// description too long for its column ends in "…".
func helpColumns(groups [][]key.Binding, width int) []string {
	colW := max(20, (width-len(groups)+1)/len(groups))
	var cols [][]string
	rows := 0
	for _, g := range groups {
		var col []string
		keyW := 0
		for _, b := range g {
			keyW = max(keyW, ansi.StringWidth(b.Help().Key))
		}
		for _, b := range g {
			col = append(col, pad(pad(b.Help().Key, keyW)+" "+b.Help().Desc, colW))
		}
		cols = append(cols, col)
		rows = max(rows, len(col))
	}
	out := make([]string, rows)
	for r := range out {
		var parts []string
		for _, col := range cols {
			cell := strings.Repeat(" ", colW)
			if r < len(col) {
				cell = col[r]
			}
			parts = append(parts, cell)
		}
		out[r] = strings.TrimRight(strings.Join(parts, " "), " ")
	}
	return out
}

// overlayDialog draws the confirmation dialog over the middle of the body: what will change,
// counted by from-state -> to-state from the plan Apply carries out, what is left alone and
// why, and anything else the write does.
func (m Model) overlayDialog(body []string) []string {
	c, s := m.confirm, m.styles
	p := c.proposal
	r := p.Request
	width := min(m.width-2, 76)
	var text []string
	title := fmt.Sprintf("%s %s?", r.Kind.Verb(), plural(int64(p.Total), "task"))
	if r.Kind == ActionReconcile {
		title = fmt.Sprintf("Apply %s?", plural(int64(p.Total), "reconcile action"))
	}
	text = append(text, s.Bold.Render(title), "from "+termtext.Line(r.Label)+":")
	for _, ch := range p.Changes {
		text = append(text, "  "+termtext.Line(countLine(ch)))
	}
	if r.Kind == ActionRequeue {
		if r.ResetAttempts {
			text = append(text, "attempt_number reset to 1, as --reset-attempts: a full retry budget")
		} else {
			text = append(text, "attempt_number kept, as rayctl requeue (a: reset it to 1)")
		}
	}
	for _, l := range p.Left {
		text = append(text, "left alone: "+termtext.Line(l))
	}
	for _, n := range p.Notes {
		text = append(text, termtext.Line(n))
	}
	no, yes := s.Button.Render("[ No ]"), s.Button.Render("[ Yes ]")
	if c.yes {
		yes = s.ActiveButton.Render("[>Yes<]")
	} else {
		no = s.ActiveButton.Render("[>No<]")
	}
	keys := "y confirms, n cancels"
	if r.Kind == ActionRequeue {
		keys += ", a resets attempts"
	}
	h := m.bodyHeight()
	if max := h - 4; len(text) > max { // keep the buttons on screen
		cut := len(text) - max + 1
		text = append(text[:max-1], fmt.Sprintf("… %d more lines", cut))
	}
	text = append(text, no+"   "+yes+"   "+keys)
	for i, l := range text {
		text[i] = trunc(l, width-4)
	}
	box := s.Dialog.Width(width - 2).Render(strings.Join(text, "\n"))
	boxLines := strings.Split(box, "\n")
	out := make([]string, h)
	copy(out, body)
	top := max(0, (h-len(boxLines))/2)
	left := strings.Repeat(" ", max(0, (m.width-lipgloss.Width(box))/2))
	for i, l := range boxLines {
		if top+i < h {
			out[top+i] = left + l
		}
	}
	return out
}

// stateStyle colours a state name.
func (m Model) stateStyle(st store.TaskState) lipgloss.Style {
	switch st {
	case store.StateFailed, store.StateLost:
		return m.styles.Bad
	case store.StateCancelling, store.StateCancelled:
		return m.styles.Warn
	case store.StateSucceeded:
		return m.styles.Good
	}
	return lipgloss.NewStyle()
}
