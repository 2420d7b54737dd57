package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/termtext"
)

// num formats n with thousands separators: 1,234,567.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// delta formats a change: +3, -2, or 0.
func delta(n int64) string {
	if n > 0 {
		return "+" + num(n)
	}
	return num(n)
}

// shortDur formats a duration compactly: 45s, 12m, 3h5m, 4d2h.
func shortDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d >= 100*365*24*time.Hour: // measured from '-infinity' (a poison row)
		return "∞"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		if s := int(d.Seconds()) % 60; s != 0 && d < 10*time.Minute {
			return fmt.Sprintf("%dm%ds", int(d.Minutes()), s)
		}
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		if m := int(d.Minutes()) % 60; m != 0 {
			return fmt.Sprintf("%dh%dm", int(d.Hours()), m)
		}
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

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

// column is one table column: a header, a width, and right alignment for numbers.
type column struct {
	title string
	width int
	right bool
}

// flexColumns gives the column at index flex whatever width remains of total (at least min).
func flexColumns(cols []column, flex, total, min int) []column {
	out := append([]column(nil), cols...)
	used := 0
	for i, c := range out {
		if i != flex {
			used += c.width + 1
		}
	}
	out[flex].width = max(min, total-used-1)
	return out
}

// row renders cells in columns separated by one space. Cells are plain text, often a task's
// (queue, callable, worker, error): each is made safe for the terminal (termtext.Line) here,
// so no table can draw an escape sequence it was handed.
func row(cols []column, cells ...string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		cell := ""
		if i < len(cells) {
			cell = termtext.Line(cells[i])
		}
		if c.right {
			parts[i] = padLeft(cell, c.width)
		} else {
			parts[i] = pad(cell, c.width)
		}
	}
	return strings.Join(parts, " ")
}

// header renders the column titles in style.
func header(cols []column, style lipgloss.Style) string {
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	return style.Render(row(cols, titles...))
}

// fitLines pads or cuts lines to exactly height lines, each at most width cells wide.
func fitLines(lines []string, width, height int) string {
	if height < 0 {
		height = 0
	}
	out := make([]string, height)
	for i := range out {
		if i < len(lines) {
			out[i] = ansi.Truncate(lines[i], width, "")
		}
	}
	return strings.Join(out, "\n")
}
