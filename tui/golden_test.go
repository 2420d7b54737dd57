package tui

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"
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
	}{
		{"overview", false, []step{{"", "runbook signals"}}},
		{"tasks", false, []step{{"2", "app.reports.build_daily"}, {"j ", "1 marked"}}},
		{"detail", false, []step{{"2", "app.reports.build_daily"}, {"\n", "timeline"}}},
		{"failures", false, []step{{"3", "send_email"}}},
		{"workers", false, []step{{"4", "0b7e-stale"}}},
		{"filtered", false, []step{{"2", "app.reports.build_daily"}, {"/state:failed\n", "filter: state:failed"}}},
		{"confirm", false, []step{{"3", "send_email"}, {"R", "[>No<]"}}},
		{"help", true, []step{{"?", "refresh slower"}}},
	}
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		for _, v := range views {
			t.Run(fmt.Sprintf("%s_%dx%d", v.name, size[0], size[1]), func(t *testing.T) {
				db := newFakeDB()
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
