package main

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/termtext"
)

// tableWriter aligns columns; call Flush when done. Cells are sanitized (termtext) before
// they are measured, so a row holding control characters stays aligned.
type tableWriter struct {
	*termtext.Writer
	tw *tabwriter.Writer
}

// Flush writes the aligned table.
func (t tableWriter) Flush() error { return t.tw.Flush() }

// table returns an aligned-column writer; call Flush when done.
func table(w io.Writer) tableWriter {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	return tableWriter{Writer: termtext.NewWriter(tw), tw: tw}
}

// clip shortens s to its first line and at most n characters, marking a cut with "…".
func clip(s string, n int) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i] + " …"
	}
	s = strings.ReplaceAll(s, "\t", " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago formats the time from t to now compactly ("5m3s"), or "-" for nil.
func ago(now time.Time, t *time.Time) string {
	if t == nil {
		return "-"
	}
	if name, ok := store.InfiniteTime(*t); ok {
		return name
	}
	d := now.Sub(*t).Seconds()
	if d < 0 {
		return "in " + age(-d, true)
	}
	return age(d, true)
}

// writeTaskTable prints tasks as an aligned table. AGE is the time since the task's last
// activity (finished, started, created), RUN AFTER when it may run (see runAfter), both
// measured with the database clock now.
func writeTaskTable(w io.Writer, tasks []recovery.TaskSummary, now time.Time) error {
	tw := table(w)
	fmt.Fprintln(tw, "ID\tSTATE\tQUEUE\tCALLABLE\tATTEMPT\tAGE\tRUN AFTER\tWORKER\tERROR")
	for _, t := range tasks {
		last := t.LastActivity()
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", t.ID, t.State, clip(t.QueueName, 20), clip(t.CallablePath, 48),
			t.AttemptNumber, ago(now, &last), runAfter(now, t.RunAfter), dash(clip(deref(t.ClaimedByWorker), 12)), dash(clip(deref(t.ErrorMessage), 60)))
	}
	return tw.Flush()
}

// runAfter is when a task may run, relative to now: "in 2m" while it is deferred (a retry's
// backoff, a --run-after), "2m ago" once due, "-" without one.
func runAfter(now time.Time, t *time.Time) string {
	if t == nil {
		return "-"
	}
	if name, ok := store.InfiniteTime(*t); ok {
		return name
	}
	if t.After(now) {
		return "in " + age(t.Sub(now).Seconds(), true)
	}
	return age(now.Sub(*t).Seconds(), true) + " ago"
}

var daysRe = regexp.MustCompile(`^(\d+)d(.*)$`)

// parseAge parses a positive duration: Go syntax (90s, 10m, 1h30m) plus days (2d, 1d12h).
func parseAge(flag, s string) (time.Duration, error) {
	bad := fmt.Errorf("invalid --%s %q: want a duration such as 90s, 10m, 2h or 3d", flag, s)
	var d time.Duration
	rest := strings.TrimSpace(s)
	if m := daysRe.FindStringSubmatch(rest); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100000 {
			return 0, bad
		}
		d, rest = time.Duration(n)*24*time.Hour, m[2]
	}
	if rest != "" {
		x, err := time.ParseDuration(rest)
		if err != nil {
			return 0, bad
		}
		d += x
	}
	if d <= 0 {
		return 0, bad
	}
	return d, nil
}

// durationFlag reads a duration flag given as text (see parseAge); zero when unset.
func durationFlag(c *cli.Context, name string) (time.Duration, error) {
	if !c.IsSet(name) {
		return 0, nil
	}
	d, err := parseAge(name, c.String(name))
	if err != nil {
		return 0, usageErrorf("%s: %v", c.Command.Name, err)
	}
	return d, nil
}

// statesFlag parses a repeatable --state flag.
func statesFlag(c *cli.Context, cmd string) ([]store.TaskState, error) {
	var out []store.TaskState
	for _, s := range c.StringSlice("state") {
		st, err := store.ParseState(s)
		if err != nil {
			return nil, usageErrorf("%s: %v", cmd, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// actor names who runs a write, for the audit trail: user@host.
func (e env) actor() string {
	name := e.getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return dash(name) + "@" + host
}

// plural returns "1 task" or "3 tasks".
func plural(n int64, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	if strings.HasSuffix(word, "ch") || strings.HasSuffix(word, "s") {
		return fmt.Sprintf("%d %ses", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
