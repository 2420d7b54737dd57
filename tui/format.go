package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/termtext"
)

// num formats n with thousands separators: 1,234,567.
func num(n int64) string { return recovery.Thousands(n) }

// delta formats a change: +3, -2, or 0.
func delta(n int64) string {
	if n > 0 {
		return "+" + num(n)
	}
	return num(n)
}

// shortDur formats a duration compactly: 45s, 12m, 3h5m, 4d2h.
func shortDur(d time.Duration) string { return recovery.Age(d) }

// ago is the age of t at now, or "-" for nil.
func ago(now time.Time, t *time.Time) string {
	if t == nil {
		return "-"
	}
	if name, ok := store.InfiniteTime(*t); ok {
		return name
	}
	return shortDur(now.Sub(*t))
}

// trunc shortens s to width cells, ending with "…" when cut.
func trunc(s string, width int) string {
	if width <= 0 {
		return ""
	}
	if ansi.StringWidth(s) <= width {
		return s
	}
	return ansi.Truncate(s, width, "…")
}

// pad fits s to exactly width cells, left-aligned.
func pad(s string, width int) string {
	s = trunc(s, width)
	if w := ansi.StringWidth(s); w < width {
		s += strings.Repeat(" ", width-w)
	}
	return s
}

// padLeft fits s to exactly width cells, right-aligned.
func padLeft(s string, width int) string {
	s = trunc(s, width)
	if w := ansi.StringWidth(s); w < width {
		s = strings.Repeat(" ", width-w) + s
	}
	return s
}

// oneLine flattens whitespace so multi-line error text fits a table cell.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

var sparkChars = []rune("▁▂▃▄▅▆▇█")

// sparkline draws values as block characters scaled to the largest; zeros are spaces so
// an idle queue reads as empty.
func sparkline(values []int64) string {
	var top int64
	for _, v := range values {
		top = max(top, v)
	}
	var b strings.Builder
	for _, v := range values {
		switch {
		case v <= 0:
			b.WriteRune(' ')
		default:
			b.WriteRune(sparkChars[int(v*int64(len(sparkChars)-1)/top)])
		}
	}
	return b.String()
}

// column is one table column. Columns that do not fit are dropped by priority: the highest
// prio number first; prio 0 is never dropped. A flex column takes the room left (at least
// min, growing first to its width when it has one); a column with min < width shrinks down
// to min before any column is dropped.
type column struct {
	title string
	width int
	right bool
	prio  int
	min   int
	flex  bool
}

// table is a set of columns laid out for one width: the columns kept, and whether any were
// dropped (the header then ends in "…").
type table struct {
	cols    []column
	keep    []int // indexes into cols, in order
	width   map[int]int
	dropped bool
}

// layout fits cols into total cells, one space between columns.
func layout(cols []column, total int) table {
	t := table{cols: cols, width: map[int]int{}}
	minOf := func(c column) int {
		if c.min > 0 {
			return c.min
		}
		return c.width
	}
	alive := make([]bool, len(cols))
	for i := range alive {
		alive[i] = true
	}
	need := func() int {
		n, k := 0, 0
		for i, c := range cols {
			if alive[i] {
				n += minOf(c)
				k++
			}
		}
		n += max(0, k-1)
		if t.dropped {
			n += 2 // " …"
		}
		return n
	}
	for need() > total {
		worst := -1
		for i, c := range cols {
			if alive[i] && c.prio > 0 && (worst < 0 || c.prio > cols[worst].prio) {
				worst = i
			}
		}
		if worst < 0 {
			break
		}
		alive[worst], t.dropped = false, true
	}
	extra := total - need()
	for i, c := range cols {
		if alive[i] {
			t.keep = append(t.keep, i)
			t.width[i] = minOf(c)
		}
	}
	// grow the flex column to its width (when it has one), then shrunk columns toward theirs,
	// most important first, then the flex column takes the rest
	for _, i := range t.keep {
		if c := cols[i]; c.flex && c.width > t.width[i] && extra > 0 {
			g := min(extra, c.width-t.width[i])
			t.width[i] += g
			extra -= g
		}
	}
	for p := 0; p <= 100 && extra > 0; p++ {
		for _, i := range t.keep {
			c := cols[i]
			if c.prio == p && !c.flex && t.width[i] < c.width {
				g := min(extra, c.width-t.width[i])
				t.width[i] += g
				extra -= g
			}
		}
	}
	for _, i := range t.keep {
		if cols[i].flex && extra > 0 {
			t.width[i] += extra
			extra = 0
		}
	}
	return t
}

// row renders cells (one per column of the original list) in the kept columns. Cells are
// plain text, often a task's (queue, callable, worker, error): each is made safe for the
// terminal (termtext.Line) here, so no table can draw an escape sequence it was handed.
func (t table) row(cells ...string) string {
	parts := make([]string, 0, len(t.keep))
	for _, i := range t.keep {
		cell := ""
		if i < len(cells) {
			cell = termtext.Line(cells[i])
		}
		if t.cols[i].right {
			parts = append(parts, padLeft(cell, t.width[i]))
		} else {
			parts = append(parts, pad(cell, t.width[i]))
		}
	}
	return strings.Join(parts, " ")
}

// header renders the column titles in style; "…" at the end says columns were dropped.
func (t table) header(style lipgloss.Style) string {
	titles := make([]string, len(t.cols))
	for i, c := range t.cols {
		titles[i] = c.title
	}
	h := t.row(titles...)
	if t.dropped {
		h += " …"
	}
	return style.Render(h)
}

// has reports whether the column at index i was kept.
// fitLines pads or cuts lines to exactly height lines, each at most width cells wide; a cut
// line ends in "…".
func fitLines(lines []string, width, height int) string {
	if height < 0 {
		height = 0
	}
	out := make([]string, height)
	for i := range out {
		if i < len(lines) {
			out[i] = trunc(lines[i], width)
		}
	}
	return strings.Join(out, "\n")
}

// countLine is "3 QUEUED → CANCELLED".
func countLine(c Change) string {
	s := fmt.Sprintf("%s %s", num(int64(c.N)), c.From)
	if c.To != "" && c.To != c.From {
		s += " → " + string(c.To)
	}
	if c.Note != "" {
		s += " (" + c.Note + ")"
	}
	return s
}
