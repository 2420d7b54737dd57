package recovery

import (
	"context"
	"slices"
	"sort"
	"strings"

	"github.com/rayctl/rayctl/store"
)

// Bounds of NameHints' reads: the names it compares with come from the newest NameScanRows
// tasks (in the selection's states) and the queue index; at most NameListLimit of each.
const (
	NameScanRows  = 50000
	NameListLimit = 2000
	maxNear       = 5
)

// NameHint is a filter value that names nothing the database holds, with the names near it:
// a typo's likely fix. For a callable that is a module of existing callables (app.tasks for
// app.tasks.charge), Glob is the glob that selects them (app.tasks.*).
type NameHint struct {
	Flag  string   `json:"flag"` // queue, callable or worker
	Value string   `json:"value"`
	Near  []string `json:"near"` // nearest first
	Glob  string   `json:"glob,omitempty"`
}

// NameHints explains a filter that matched nothing: for each queue, exact callable and
// worker it names that no task has (among the newest NameScanRows in its states, for
// callables and workers; queues are read from their index), the existing names near it.
// Values that exist, globs and values with nothing near them give no hint. It reads a
// bounded amount whatever the table's size.
func NameHints(ctx context.Context, s *store.Store, f store.TaskFilter) ([]NameHint, error) {
	var out []NameHint
	if len(f.Queues) > 0 {
		queues, err := s.DistinctQueues(ctx, NameListLimit)
		if err != nil {
			return nil, err
		}
		for _, q := range f.Queues {
			if h, ok := hint("queue", q, queues, false); ok {
				out = append(out, h)
			}
		}
	}
	if f.Callable != "" && !strings.ContainsAny(f.Callable, "*?") {
		callables, err := s.RecentCallables(ctx, f.States, NameScanRows, NameListLimit)
		if err != nil {
			return nil, err
		}
		if h, ok := hint("callable", f.Callable, callables, true); ok {
			out = append(out, h)
		}
	}
	if f.Worker != "" {
		workers, err := s.RecentWorkers(ctx, f.States, NameScanRows, NameListLimit)
		if err != nil {
			return nil, err
		}
		if h, ok := hint("worker", f.Worker, workers, false); ok {
			out = append(out, h)
		}
	}
	return out, nil
}

func hint(flag, value string, names []string, dotted bool) (NameHint, bool) {
	if slices.Contains(names, value) {
		return NameHint{}, false
	}
	h := NameHint{Flag: flag, Value: value, Near: Near(value, names, dotted)}
	if dotted {
		prefix := strings.TrimSuffix(value, ".") + "."
		var under []string
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				under = append(under, n)
			}
		}
		if len(under) > 0 {
			h.Glob = prefix + "*"
			sort.Strings(under)
			seen := map[string]bool{}
			var near []string
			for _, n := range append(under, h.Near...) {
				if !seen[n] && len(near) < maxNear {
					seen[n] = true
					near = append(near, n)
				}
			}
			h.Near = near
		}
	}
	return h, len(h.Near) > 0
}

// Near returns the names near value, nearest first (at most 5): the same ignoring case and
// the characters - _ and ., or within a small edit distance (insertions, deletions,
// substitutions and swaps of neighbours: 1 for values shorter than 4 characters, 2 below 10,
// else 3); with dotted, also names whose last dotted part equals value's.
func Near(value string, names []string, dotted bool) []string {
	v := strings.ToLower(value)
	maxDist := 3
	switch n := len([]rune(v)); {
	case n < 4:
		maxDist = 1
	case n < 10:
		maxDist = 2
	}
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	for _, n := range names {
		d := -1
		ln := strings.ToLower(n)
		switch {
		case n == value:
			continue
		case squash(ln) == squash(v):
			d = 0
		default:
			if e := editDistance(v, ln, maxDist); e <= maxDist {
				d = e
			} else if dotted && lastPart(ln) == lastPart(v) && strings.Contains(v, ".") == strings.Contains(ln, ".") {
				d = maxDist + 1
			} else if dotted && !strings.Contains(v, ".") && lastPart(ln) == v {
				d = maxDist + 1
			}
		}
		if d >= 0 {
			cs = append(cs, cand{n, d})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].d != cs[j].d {
			return cs[i].d < cs[j].d
		}
		return cs[i].name < cs[j].name
	})
	out := make([]string, 0, min(len(cs), maxNear))
	for _, c := range cs[:min(len(cs), maxNear)] {
		out = append(out, c.name)
	}
	return out
}

func squash(s string) string {
	return strings.NewReplacer("-", "", "_", "", ".", "").Replace(s)
}

func lastPart(s string) string {
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// editDistance is the optimal-string-alignment distance between a and b in runes (edits:
// insert, delete, substitute, swap two neighbours), or limit+1 once it must exceed limit.
// Names longer than 256 runes are not compared.
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 256 || len(rb) > 256 || abs(len(ra)-len(rb)) > limit {
		return limit + 1
	}
	pprev := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		best := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], pprev[j-2]+1)
			}
			best = min(best, cur[j])
		}
		if best > limit {
			return limit + 1
		}
		pprev, prev, cur = prev, cur, pprev
	}
	return prev[len(rb)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
