package tui

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestPoisonRowsOnTheRealStore: rayctl top over rows with infinite timestamps and an unknown
// state loads every view (it used to show only the scan error) and shows what they hold.
func TestPoisonRowsOnTheRealStore(t *testing.T) {
	s, _ := storetest.New(t)
	ctx := t.Context()
	for _, set := range []string{
		`run_after = '-infinity', callable_path = 'app.minus_inf'`,
		`created_at = '-infinity', state = 'FAILED', finished_at = now(), last_heartbeat_at = now(), error_message = 'boom', callable_path = 'app.inf'`,
		`state = 'FAILED', finished_at = 'infinity', error_message = 'boom', callable_path = 'app.future'`,
		`state = 'weird', args_json = '[1,'`,
	} {
		row := storetest.Insert(t, s, store.Task{})
		if _, err := storetest.DB(s).Exec(ctx, `UPDATE django_ray_raytaskexecution SET `+set+` WHERE id = $1`, row.ID); err != nil {
			t.Fatal(err)
		}
	}
	m := New(Options{Source: s})
	m.tickFn = func(time.Duration, int) tea.Cmd { return nil }
	h := &harness{t: t, m: m}
	h.send(tea.WindowSizeMsg{Width: 120, Height: 30})
	h.run(h.m.Init())
	check := func(view string, want ...string) {
		t.Helper()
		if h.m.dbErr != nil {
			t.Fatalf("%s: database error %v", view, h.m.dbErr)
		}
		screen := h.m.View()
		for _, w := range want {
			if !strings.Contains(screen, w) {
				t.Fatalf("%s does not show %q:\n%s", view, w, screen)
			}
		}
	}
	check("overview", "QUEUED", "-infinity")
	h.keys("2")
	check("tasks", "weird", "app.minus_inf")
	h.keys("G", "enter")
	check("detail of the oldest row", "run after   -infinity")
	h.keys("esc", "3")
	check("failures", "app.inf")
	h.keys("4")
	check("workers")
}
