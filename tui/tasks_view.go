package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/termtext"
)

// now is the database clock of the last snapshot: ages are measured against it, so a
// skewed local clock does not distort them.
func (m Model) now() time.Time {
	if m.dash != nil {
		return m.dash.Now
	}
	return m.opts.Clock()
}

// tasksView: the filter line and a page of tasks, newest first.
func (m Model) tasksView() []string {
	s := m.styles
	var top string
	switch {
	case m.filtering:
		top = m.input.View()
	case m.tasks.filterText != "":
		top = "filter: " + s.Bold.Render(termtext.Line(m.tasks.filterText)) + s.Dim.Render("  (esc clears, / edits)")
	default:
		top = s.Dim.Render("all tasks, newest first  (/ filters: state:failed queue:q callable:app.* worker:ID)")
	}
	page := fmt.Sprintf("page %d", len(m.tasks.pages))
	if m.tasks.hasMore {
		page += " · pgdn more"
	}
	top = pad(top, max(0, m.width-len(page)-1)) + " " + page
	lines := []string{top}

	cols := []column{{"", 2, false}, {"ID", 9, true}, {"STATE", 10, false}, {"QUEUE", 12, false}, {"CALLABLE", 0, false},
		{"ATT", 3, true}, {"AGE", 6, true}}
	flex := 4
	if m.width >= 100 {
		cols = append(cols, column{"WORKER", 14, false}, column{"ERROR", 24, false})
	}
	cols = flexColumns(cols, flex, m.width, 12)
	lines = append(lines, header(cols, s.TableHeader))
	if !m.tasks.loaded {
		return append(lines, s.Dim.Render("loading…"))
	}
	if len(m.tasks.rows) == 0 {
		return append(lines, s.Dim.Render("no task matches"))
	}
	now := m.now()
	for i, t := range m.tasks.rows {
		mark := " "
		if m.tasks.marks[t.ID] {
			mark = "*"
		}
		cursor := " "
		if i == m.tasks.cursor {
			cursor = ">"
		}
		last := t.CreatedAt
		if t.FinishedAt != nil {
			last = *t.FinishedAt
		} else if t.StartedAt != nil {
			last = *t.StartedAt
		}
		cells := []string{cursor + mark, fmt.Sprint(t.ID), string(t.State), t.QueueName, t.CallablePath,
			fmt.Sprint(t.AttemptNumber), shortDur(now.Sub(last))}
		if m.width >= 100 {
			cells = append(cells, deref(t.ClaimedByWorker), oneLine(deref(t.ErrorMessage)))
		}
		line := row(cols, cells...)
		switch {
		case i == m.tasks.cursor:
			line = s.Cursor.Render(line)
		case m.tasks.marks[t.ID]:
			line = s.Marked.Render(line)
		}
		lines = append(lines, line)
	}
	return lines
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// resizeDetail fits the detail viewport to the body.
func (m *Model) resizeDetail() {
	m.detail.vp.Width = m.width
	m.detail.vp.Height = max(1, m.bodyHeight()-1)
	if m.detail.task != nil || m.detail.errMsg != "" {
		m.setDetailContent()
	}
}

// setDetailContent lays out the task for the viewport.
func (m *Model) setDetailContent() {
	if m.detail.task == nil {
		m.detail.vp.SetContent(m.detail.errMsg)
		return
	}
	off := m.detail.vp.YOffset
	m.detail.vp.SetContent(m.detailContent(*m.detail.task))
	m.detail.vp.SetYOffset(off)
}

func (m Model) detailContent(t store.Task) string {
	t = terminalSafe(t)
	s := m.styles
	now := m.now()
	width := max(20, m.width)
	var b []string
	kv := func(k, v string) { b = append(b, pad(k, 11)+" "+v) }
	b = append(b, s.Bold.Render(fmt.Sprintf("task %d", t.ID))+"  "+m.stateStyle(t.State).Render(string(t.State))+
		fmt.Sprintf("  attempt %d  queue %s", t.AttemptNumber, t.QueueName))
	kv("callable", t.CallablePath)
	kv("task id", t.TaskID)
	kv("worker", orDash(deref(t.ClaimedByWorker)))
	kv("ray job", orDash(deref(t.RayJobID)))
	kv("ray addr", orDash(deref(t.RayAddress)))
	if t.TimeoutSeconds != nil {
		kv("timeout", fmt.Sprintf("%ds", *t.TimeoutSeconds))
	}

	wrap := func(text string) []string {
		return strings.Split(lipgloss.NewStyle().Width(width-12).Render(text), "\n")
	}
	block := func(k, v string) {
		for i, l := range wrap(v) {
			if i == 0 {
				kv(k, l)
			} else {
				kv("", l)
			}
		}
	}
	if t.ErrorMessage != nil || t.ErrorTraceback != nil {
		b = append(b, "", s.TableHeader.Render("error"))
		kv("exception", orDash(store.ExceptionType(t.ErrorTraceback, t.ErrorMessage)))
		block("message", deref(t.ErrorMessage))
	}
	b = append(b, "", s.TableHeader.Render("timeline"))
	type ev struct {
		name string
		at   *time.Time
	}
	created := t.CreatedAt
	for _, e := range []ev{{"created", &created}, {"run after", t.RunAfter}, {"started", t.StartedAt},
		{"heartbeat", t.LastHeartbeatAt}, {"finished", t.FinishedAt}} {
		if e.at == nil {
			kv(e.name, "-")
			continue
		}
		if name, ok := store.InfiniteTime(*e.at); ok { // a poison row: show what the database holds
			kv(e.name, name)
			continue
		}
		rel := shortDur(now.Sub(*e.at)) + " ago"
		if e.at.After(now) {
			rel = "in " + shortDur(e.at.Sub(now))
		}
		kv(e.name, e.at.UTC().Format("2006-01-02 15:04:05Z")+"  "+rel)
	}

	b = append(b, "", s.TableHeader.Render("payload"))
	block("args", t.ArgsJSON)
	block("kwargs", t.KwargsJSON)
	switch {
	case t.ResultData != nil:
		block("result", *t.ResultData)
	case t.ResultReference != nil:
		block("result ref", *t.ResultReference)
	default:
		kv("result", "-")
	}
	if t.ErrorTraceback != nil {
		b = append(b, "", s.TableHeader.Render("traceback"))
		for _, l := range strings.Split(strings.TrimRight(*t.ErrorTraceback, "\n"), "\n") {
			b = append(b, "  "+strings.ReplaceAll(l, "\t", "    "))
		}
	}
	return strings.Join(b, "\n")
}

// terminalSafe returns t with every text column made safe to draw (termtext): one-line
// columns with Line, the multi-line ones (args, kwargs, result, error, traceback) with
// Sanitize. The detail view draws only this copy.
func terminalSafe(t store.Task) store.Task {
	line := func(p *string) *string {
		if p == nil {
			return nil
		}
		s := termtext.Line(*p)
		return &s
	}
	text := func(p *string) *string {
		if p == nil {
			return nil
		}
		s := termtext.Sanitize(*p)
		return &s
	}
	t.TaskID, t.CallablePath, t.QueueName, t.State = termtext.Line(t.TaskID), termtext.Line(t.CallablePath), termtext.Line(t.QueueName), store.TaskState(termtext.Line(string(t.State)))
	t.RayJobID, t.RayAddress, t.ClaimedByWorker, t.ResultReference = line(t.RayJobID), line(t.RayAddress), line(t.ClaimedByWorker), line(t.ResultReference)
	t.ArgsJSON, t.KwargsJSON = termtext.Sanitize(t.ArgsJSON), termtext.Sanitize(t.KwargsJSON)
	t.ResultData, t.ErrorMessage, t.ErrorTraceback = text(t.ResultData), text(t.ErrorMessage), text(t.ErrorTraceback)
	return t
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (m Model) detailView() []string {
	pct := int(m.detail.vp.ScrollPercent() * 100)
	title := fmt.Sprintf("task %d · esc back · ↑↓ pgup/pgdn scroll · %d%%", m.detail.id, pct)
	if !m.opts.ReadOnly {
		title += " · R requeue · X cancel"
	}
	return append([]string{m.styles.Dim.Render(title)}, strings.Split(m.detail.vp.View(), "\n")...)
}
