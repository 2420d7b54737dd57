package tui

import (
	"reflect"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
)

func TestDetectSignals(t *testing.T) {
	params := store.DashboardParams{LeaseTTL: time.Minute, StuckAfter: 10 * time.Minute, FailureWindow: 5 * time.Minute}
	calm := func() store.Dashboard {
		return store.Dashboard{Now: fixedNow, Params: params, Leases: store.LeaseCounts{Live: 2},
			States: map[store.TaskState]int64{store.StateQueued: 5, store.StateRunning: 4},
			Queues: []store.QueueActivity{{Name: "default", Queued: 5, Running: 4, OldestQueuedAt: at(10 * time.Second)}}}
	}
	tests := []struct {
		name    string
		edit    func(*store.Dashboard)
		history []sample
		want    []int
	}{
		{"steady state", func(*store.Dashboard) {}, nil, nil},
		{"backlog: waiting long, nothing running", func(d *store.Dashboard) {
			d.States[store.StateRunning], d.Queues[0].Running = 0, 0
			d.Queues[0].OldestQueuedAt = at(3 * time.Minute)
		}, nil, []int{1}},
		{"backlog: queued rising, nothing running", func(d *store.Dashboard) {
			d.States[store.StateRunning], d.Queues[0].Running = 0, 0
		}, []sample{{at: fixedNow.Add(-90 * time.Second), queued: 1}}, []int{1}},
		{"no backlog: queued rising but tasks running", func(*store.Dashboard) {}, []sample{{at: fixedNow.Add(-90 * time.Second), queued: 1}}, nil},
		{"no backlog: only deferred tasks", func(d *store.Dashboard) {
			d.States[store.StateRunning], d.Queues[0].Running, d.Queues[0].Deferred = 0, 0, 5
			d.Queues[0].OldestQueuedAt = nil
		}, nil, nil},
		{"backlog: no live worker", func(d *store.Dashboard) {
			d.States[store.StateRunning], d.Queues[0].Running, d.Leases.Live = 0, 0, 0
		}, nil, []int{1}},
		{"running not draining", func(d *store.Dashboard) { d.StaleRunning = 3 }, nil, []int{2}},
		{"orphaned running", func(d *store.Dashboard) { d.OrphanedRunning = 1 }, nil, []int{2}},
		{"stale lease", func(d *store.Dashboard) { d.Leases.Stale = 1 }, nil, []int{2}},
		{"retry storm: one callable dominates", func(d *store.Dashboard) {
			d.RecentFailures = []store.CallableFailures{{CallablePath: "a", Failed: 6, Retrying: 6}, {CallablePath: "b", Failed: 3}}
		}, nil, []int{3}},
		{"no storm: failures spread out", func(d *store.Dashboard) {
			d.RecentFailures = []store.CallableFailures{{CallablePath: "a", Failed: 10}, {CallablePath: "b", Failed: 9}, {CallablePath: "c", Failed: 8}}
		}, nil, nil},
		{"no storm: too few", func(d *store.Dashboard) {
			d.RecentFailures = []store.CallableFailures{{CallablePath: "a", Failed: 9}}
		}, nil, nil},
		{"cancelling stuck", func(d *store.Dashboard) { d.StuckCancelling = 2 }, nil, []int{5}},
	}
	for _, tt := range tests {
		d := calm()
		tt.edit(&d)
		var got []int
		for _, s := range detectSignals(d, tt.history, DefaultThresholds()) {
			got = append(got, s.Playbook)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: playbooks %v, want %v", tt.name, got, tt.want)
		}
	}
	d := calm()
	d.States[store.StateRunning], d.Queues[0].Running, d.States[store.StateQueued] = 0, 0, 50
	sigs := detectSignals(d, []sample{{at: fixedNow.Add(-70 * time.Second), queued: 20}, {at: fixedNow.Add(-2 * time.Second), queued: 49}}, DefaultThresholds())
	if len(sigs) != 1 || sigs[0].Text != "backlog: 50 queued, 0 running, +30 queued in 1m10s, oldest 10s, 2 live workers" {
		t.Errorf("backlog text: %+v", sigs)
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := num(in); got != want {
			t.Errorf("num(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{3 * time.Second: "3s", 90 * time.Second: "1m30s", 12 * time.Minute: "12m",
		3*time.Hour + 5*time.Minute: "3h5m", 50 * time.Hour: "2d2h", -time.Second: "0s"} {
		if got := shortDur(in); got != want {
			t.Errorf("shortDur(%v) = %q, want %q", in, got, want)
		}
	}
	if got := sparkline([]int64{0, 1, 4, 8}); got != " ▁▄█" {
		t.Errorf("sparkline = %q", got)
	}
	if got := trunc("app.tasks.charge_card", 10); got != "app.tasks…" {
		t.Errorf("trunc = %q", got)
	}
}
