package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/termtext"
)

// Layout: header, banner, body, status line, key hints. The body gets what is left.
const chromeLines = 4

func (m Model) bodyHeight() int { return max(3, m.height-chromeLines) }

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
	lines := []string{m.headerLine(), m.bannerLine()}
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

// bannerLine names the playbook of the first runbook signal, or says all is calm.
func (m Model) bannerLine() string {
	s := m.styles
	if m.dash == nil {
		return s.Dim.Render("loading…")
	}
	if len(m.signals) == 0 {
		return s.Calm.Render("ok: no runbook signal")
	}
	sig := m.signals[0]
	text := fmt.Sprintf("!! playbook %d: %s", sig.Playbook, termtext.Line(sig.Text))
	if n := len(m.signals) - 1; n > 0 {
		more := fmt.Sprintf(" (+%d more)", n)
		text = trunc(text, m.width-ansi.StringWidth(more)) + more
	}
	return s.Banner.Render(pad(text, m.width))
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
		parts = append(parts, fmt.Sprintf("%d marked", n))
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
	if m.filtering {
		return m.styles.Dim.Render("enter apply · esc cancel · state:failed,lost queue:q callable:app.* worker:ID error:text id:1,2")
	}
	if m.confirm != nil {
		return m.styles.Dim.Render("y confirm · n/esc cancel · tab switch button · enter press the focused button")
	}
	return m.help.ShortHelpView(m.keys.hints(m.view, m.detail.open))
}

func (m Model) helpView() []string {
	s := m.styles
	lines := []string{s.Bold.Render("Keys"), ""}
	lines = append(lines, strings.Split(m.help.FullHelpView(m.keys.FullHelp()), "\n")...)
	lines = append(lines, "",
		"Filter (/): state:failed,lost queue:default callable:app.tasks.* worker:ID error:text id:1,2;",
		"other words search callable, queue, worker, Ray job id and error.",
		"Banner: the first runbook signal and its playbook; the overview lists them all.")
	if m.opts.ReadOnly {
		lines = append(lines, "Read-only (--readonly): write actions are off.")
	}
	lines = append(lines, "", s.Dim.Render("esc or ? closes this help"))
	return lines
}

// overlayDialog draws the confirmation dialog over the middle of the body.
func (m Model) overlayDialog(body []string) []string {
	c, s := m.confirm, m.styles
	width := min(m.width-4, 72)
	count := c.preview.Eligible
	noun := "tasks"
	if count == 1 {
		noun = "task"
	}
	var text []string
	text = append(text, s.Bold.Render(fmt.Sprintf("%s %d %s?", c.kind.verb(), count, noun)))
	text = append(text, "", "from "+termtext.Line(c.target.label))
	switch c.kind {
	case actRequeue:
		text = append(text, fmt.Sprintf("%d FAILED/LOST/CANCELLED → QUEUED (runs again)", count))
	case actCancel:
		text = append(text, fmt.Sprintf("%d QUEUED → CANCELLED, RUNNING → CANCELLING", count))
	}
	if c.preview.Note != "" {
		text = append(text, termtext.Line(c.preview.Note))
	}
	if c.target.truncated > 0 {
		text = append(text, fmt.Sprintf("the group has %s more tasks beyond this batch: repeat after", num(c.target.truncated)))
	}
	no, yes := s.Button.Render("[ No ]"), s.Button.Render("[ Yes ]")
	if c.yes {
		yes = s.ActiveButton.Render("[>Yes<]")
	} else {
		no = s.ActiveButton.Render("[>No<]")
	}
	text = append(text, "", no+"   "+yes+"   y confirms, n cancels")
	for i, l := range text {
		text[i] = trunc(l, width-4)
	}
	box := s.Dialog.Width(width - 2).Render(strings.Join(text, "\n"))
	boxLines := strings.Split(box, "\n")
	h := m.bodyHeight()
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
