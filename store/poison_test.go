package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// poison stages a row with column values nobody should write but anyone can: infinite and
// out-of-range timestamps, a state django-ray does not define, args that are not JSON.
func poison(t *testing.T, s *store.Store, set string) store.Task {
	t.Helper()
	row := storetest.Insert(t, s, store.Task{})
	if _, err := storetest.DB(s).Exec(t.Context(), `UPDATE django_ray_raytaskexecution SET `+set+` WHERE id = $1`, row.ID); err != nil {
		t.Fatalf("stage poison %q: %v", set, err)
	}
	return row
}

func TestPoisonTimestampsAreRead(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	cases := []struct {
		set  string
		pick func(store.Task) *time.Time
		want time.Time
	}{
		{`run_after = '-infinity'`, func(t store.Task) *time.Time { return t.RunAfter }, store.NegInfinity},
		{`run_after = 'infinity'`, func(t store.Task) *time.Time { return t.RunAfter }, store.Infinity},
		{`created_at = '-infinity'`, func(t store.Task) *time.Time { return &t.CreatedAt }, store.NegInfinity},
		{`created_at = '20000-01-01'`, func(t store.Task) *time.Time { return &t.CreatedAt }, store.Infinity},
		{`created_at = '0100-01-01 BC'`, func(t store.Task) *time.Time { return &t.CreatedAt }, store.NegInfinity},
		{`finished_at = 'infinity', state = 'FAILED'`, func(t store.Task) *time.Time { return t.FinishedAt }, store.Infinity},
	}
	for _, c := range cases {
		row := poison(t, s, c.set)
		got, err := s.GetTask(ctx, row.ID)
		if err != nil {
			t.Fatalf("%s: GetTask: %v", c.set, err)
		}
		if at := c.pick(got); at == nil || !at.Equal(c.want) {
			t.Errorf("%s: read %v, want %v", c.set, at, c.want)
		}
		if _, err := json.Marshal(got); err != nil {
			t.Errorf("%s: the row cannot be printed as JSON: %v", c.set, err)
		}
	}
	poison(t, s, `state = 'weird', args_json = '[1,'`)

	// every read of the queue works with those rows in it
	if tasks, err := s.ListTasks(ctx, store.TaskFilter{}); err != nil || len(tasks) != len(cases)+1 {
		t.Fatalf("ListTasks: %d rows, %v", len(tasks), err)
	}
	st, err := s.Stats(ctx, time.Minute)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.States["weird"] != 1 || st.Total != int64(len(cases)+1) {
		t.Errorf("Stats does not count every row: %+v", st.States)
	}
	if _, err := json.Marshal(st); err != nil {
		t.Errorf("Stats cannot be printed as JSON: %v", err)
	}
	if _, err := s.Dashboard(ctx, testThresholds); err != nil {
		t.Errorf("Dashboard: %v", err)
	}
	if _, err := s.FailureGroups(ctx, store.FailureParams{}); err != nil {
		t.Errorf("FailureGroups: %v", err)
	}
	if _, err := s.CountBy(ctx, store.TaskFilter{}, store.ByState, 10); err != nil {
		t.Errorf("CountBy: %v", err)
	}
}

func TestPoisonRowDoesNotTakeItsClaimBatchDown(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	before := storetest.Insert(t, s, store.Task{})
	bad := poison(t, s, `run_after = '-infinity', created_at = '-infinity'`)
	after := storetest.Insert(t, s, store.Task{})
	never := poison(t, s, `run_after = 'infinity'`)

	claimed, err := s.Claim(ctx, store.ClaimParams{WorkerID: "w1", Limit: 10})
	if err != nil {
		t.Fatalf("claim with a poison row in the batch: %v", err)
	}
	got := map[int64]store.Task{}
	for _, c := range claimed {
		got[c.ID] = c
	}
	for _, id := range []int64{before.ID, bad.ID, after.ID} {
		if _, ok := got[id]; !ok {
			t.Errorf("row %d was not handed to the worker (claimed: %v)", id, claimed)
		}
	}
	if _, ok := got[never.ID]; ok || len(claimed) != 3 {
		t.Errorf("claimed %d rows, including run_after = infinity: %v", len(claimed), claimed)
	}
	// the poison row's guard still fences writes: its outcome is recorded
	ok, err := s.Fail(ctx, got[bad.ID].Guard(), store.ErrorInfo{Message: "boom"})
	if err != nil || !ok {
		t.Fatalf("Fail on the poison row: applied %v, %v", ok, err)
	}
}

func TestInfiniteGuardMatchesItsRow(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	row := poison(t, s, `state = 'RUNNING', claimed_by_worker = 'w', started_at = '-infinity'`)
	read, err := s.GetTask(ctx, row.ID)
	if err != nil {
		t.Fatal(err)
	}
	if read.StartedAt == nil || !read.StartedAt.Equal(store.NegInfinity) {
		t.Fatalf("started_at read as %v", read.StartedAt)
	}
	ok, err := s.Fail(ctx, read.Guard(), store.ErrorInfo{Message: "boom"})
	if err != nil || !ok {
		t.Fatalf("a guard holding -infinity must match its row: applied %v, %v", ok, err)
	}
	// the batch completion sends its guards as a timestamptz[]: the same holds there
	other := poison(t, s, `state = 'RUNNING', claimed_by_worker = 'w', started_at = 'infinity'`)
	if read, err = s.GetTask(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	data := "1"
	if ids, err := s.SucceedMany(ctx, []store.Completion{{Guard: read.Guard(), Result: store.Result{Data: &data}}}); err != nil || len(ids) != 1 {
		t.Fatalf("SucceedMany with an infinite guard: %v, %v", ids, err)
	}
}
