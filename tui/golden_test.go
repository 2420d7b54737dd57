package tui

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/rayctl/rayctl/store"
)

// TestGolden runs the real bubbletea program over the fixture at 80x24 and 120x40, drives it
// to each view with keys, and compares the final model's View() with testdata/TestGolden/*.
// Regenerate with: go test ./tui -run TestGolden -update
func TestGolden(t *testing.T) {
	type step struct {
		keys    string // typed one rune at a time; "\n" is enter
		waitFor string // then wait until the screen shows this
	}
	views := []struct {
		name     string
		readOnly bool
		steps    []step
		edit     func(*fakeDB) // the fixture's incident, changed
	}{
		{"overview", false, []step{{"", "runbook signals"}}, nil},
		{"tasks", false, []step{{"2", "app.reports.build_daily"}, {"j ", "1 marked"}}, nil},
		{"detail", false, []step{{"2", "app.reports.build_daily"}, {"\n", "timeline"}}, nil},
		{"failures", false, []step{{"3", "send_email"}}, nil},
		{"workers", false, []step{{"4", "0b7e-stale"}}, nil},
		{"filtered", false, []step{{"2", "app.reports.build_daily"}, {"/state:failed\n", "filter: state:failed"}}, nil},
		{"confirm", false, []step{{"3", "send_email"}, {"R", "[>No<]"}}, nil},
		{"help", true, []step{{"?", "refresh slower"}}, nil},
		{"command", false, []step{{"2", "app.reports.build_daily"}, {":tasks state=fai", ":tasks state=fai"}}, nil},
		{"requeue_a_running_task", false, []step{{"2", "app.reports.build_daily"}, {"jjjjj", "app.tasks.charge_card"}, {"R", "nothing to requeue"}}, func(db *fakeDB) {
			// task 1025 (FAILED) is RUNNING here: R says why it is left alone
			for i := range db.tasks {
				if db.tasks[i].ID == 1025 {
					db.tasks[i].State = store.StateRunning
				}
			}
		}},
		{"ray_connection_loss", false, []step{{"", "runbook signals"}}, rayLoss},
		{"ray_connection_loss_workers", false, []step{{"4", "!!stalled"}}, rayLoss},
	}
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		for _, v := range views {
			t.Run(fmt.Sprintf("%s_%dx%d", v.name, size[0], size[1]), func(t *testing.T) {
				db := newFakeDB()
				if v.edit != nil {
					v.edit(db)
				}
				m := New(Options{Source: fakeSource{db}, Actions: fakeActions{db}, ReadOnly: v.readOnly,
					Clock: func() time.Time { return fixedNow }, Title: "db 127.0.0.1:5432/app"})
				tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(size[0], size[1]))
				for _, s := range v.steps {
					for _, r := range s.keys {
						if r == '\n' {
							tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
						} else if r == ' ' {
							tm.Send(tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}})
						} else {
							tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
						}
					}
					want := []byte(s.waitFor)
					teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, want) },
						teatest.WithDuration(10*time.Second))
				}
				if err := tm.Quit(); err != nil {
					t.Fatal(err)
				}
				view := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).View()
				assertFits(t, view, size[0], size[1])
				golden.RequireEqual(t, []byte(view))
			})
		}
	}
}

// rayLoss turns the fixture into a Ray connection loss: the one live worker polls every
// queue, has claimed and finished nothing for 2m+, and its RUNNING tasks are not heartbeated.
func rayLoss(db *fakeDB) {
	d := &db.dash
	d.Leases = store.LeaseCounts{Live: 1}
	d.StuckCancelling, d.OrphanedCancelling, d.RecentFailures = 0, 0, nil
	d.States[store.StateRunning], d.States[store.StateCancelling] = 4, 0
	d.Queues[0].Running, d.Queues[0].Cancelling, d.Queues[0].OldestQueuedAt = 4, 0, at(3*time.Minute)
	for i := range d.Queues {
		d.Queues[i].Done = make([]int64, 15)
	}
	w := store.Lease{WorkerID: "9f1c-live", Hostname: store.LeaseHostname("worker-1", "rayjob", 0), PID: 4242, QueueName: "*",
		StartedAt: fixedNow.Add(-2 * time.Hour), LastHeartbeatAt: fixedNow.Add(-3 * time.Second), IsActive: true}
	d.Workers = []store.WorkerActivity{{Lease: w, Live: true, Running: 4}}
	db.workers = []store.WorkerSummary{{WorkerID: w.WorkerID, Status: store.LeaseLive, Running: 4, Lease: &w}}
}
