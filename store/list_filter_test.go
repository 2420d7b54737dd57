package store_test

import (
	"slices"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestInverseAndRegexFilters: rayctl top's `/!text` and `/re:PATTERN` filters, and the ids
// of everything a filter matches (select-all-matching).
func TestInverseAndRegexFilters(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	a := storetest.Insert(t, s, store.Task{CallablePath: "app.billing.charge", ErrorMessage: storetest.Ptr("card declined")})
	b := storetest.Insert(t, s, store.Task{CallablePath: "app.mail.send"})
	c := storetest.Insert(t, s, store.Task{CallablePath: "etl.load", QueueName: "batch"})
	ids := func(f store.TaskFilter) []int64 {
		t.Helper()
		got, total, err := s.ListTaskIDs(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if f.Limit == 0 && int64(len(got)) != total {
			t.Fatalf("%d ids, total %d", len(got), total)
		}
		slices.Sort(got)
		return got
	}
	for _, tc := range []struct {
		name string
		f    store.TaskFilter
		want []int64
	}{
		{"search", store.TaskFilter{Search: "DECLINED"}, []int64{a.ID}},
		{"inverse search (NULL columns included)", store.TaskFilter{Search: "declined", SearchNot: true}, []int64{b.ID, c.ID}},
		{"regex", store.TaskFilter{Regex: `^app\.(mail|billing)\.`}, []int64{a.ID, b.ID}},
		{"inverse regex", store.TaskFilter{Regex: `^app\.`, RegexNot: true}, []int64{c.ID}},
		{"regex and state", store.TaskFilter{Regex: "load$", States: []store.TaskState{store.StateQueued}}, []int64{c.ID}},
	} {
		if got := ids(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	got, total, err := s.ListTaskIDs(ctx, store.TaskFilter{Limit: 2})
	if err != nil || total != 3 || len(got) != 2 || got[0] != c.ID {
		t.Fatalf("limited: %v of %d, %v", got, total, err)
	}
	if _, _, err := s.ListTaskIDs(ctx, store.TaskFilter{Regex: "("}); err == nil {
		t.Fatal("an invalid regex passed")
	}
}
