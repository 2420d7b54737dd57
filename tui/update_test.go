package tui

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/rayctl/rayctl/store"
)

// harness drives Model.Update directly: it runs every returned command synchronously and
// feeds its message back, as the bubbletea runtime would, except ticks, which tests send.
type harness struct {
	t    *testing.T
	m    Model
	db   *fakeDB
	quit bool
}

func newHarness(t *testing.T, readOnly bool) *harness {
	t.Helper()
	db := newFakeDB()
	m := New(Options{Source: fakeSource{db}, Actions: fakeActions{db}, ReadOnly: readOnly, Clock: func() time.Time { return fixedNow }})
	m.tickFn = func(time.Duration, int) tea.Cmd { return nil }
	h := &harness{t: t, m: m, db: db}
	h.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	h.run(h.m.Init())
	return h
}

func (h *harness) send(msg tea.Msg) {
	h.t.Helper()
	m, cmd := h.m.Update(msg)
	h.m = m.(Model)
	h.run(cmd)
}

func (h *harness) run(cmd tea.Cmd) {
	h.t.Helper()
	if cmd == nil {
		return
	}
	switch msg := cmd().(type) {
	case nil:
	case tea.BatchMsg:
		for _, c := range msg {
			h.run(c)
		}
	case tea.QuitMsg:
		h.quit = true
	default:
		h.send(msg)
	}
}

// keys sends key presses: named keys ("enter", "esc", "tab", "shift+tab", "space", "pgdown",
// "pgup", "ctrl+\\") or, for anything else, its runes one by one.
func (h *harness) keys(keys ...string) {
	h.t.Helper()
	named := map[string]tea.KeyType{"enter": tea.KeyEnter, "esc": tea.KeyEsc, "tab": tea.KeyTab, "shift+tab": tea.KeyShiftTab,
		"pgdown": tea.KeyPgDown, "pgup": tea.KeyPgUp, "ctrl+\\": tea.KeyCtrlBackslash, "ctrl+c": tea.KeyCtrlC}
	for _, k := range keys {
		switch {
		case k == "space":
			h.send(tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}})
		case named[k] != 0 || k == "ctrl+\\":
			h.send(tea.KeyMsg{Type: named[k]})
		default:
			for _, r := range k {
				h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
			}
		}
	}
}

func (h *harness) lastFilter() store.TaskFilter {
	h.db.mu.Lock()
	defer h.db.mu.Unlock()
	if len(h.db.filters) == 0 {
		h.t.Fatal("the tasks view never listed tasks")
	}
	return h.db.filters[len(h.db.filters)-1]
}

func ids(rows []store.Task) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

func TestInitLoadsSnapshotAndSignals(t *testing.T) {
	h := newHarness(t, false)
	if h.m.dash == nil || h.m.dash.States[store.StateSucceeded] != 90112 {
		t.Fatalf("first snapshot must include the totals: %+v", h.m.dash)
	}
	var playbooks []int
	for _, s := range h.m.Signals() {
		playbooks = append(playbooks, s.Playbook)
	}
	// backlog (fail: no live worker polls default or emails), then the warnings by playbook:
	// stale lease (the checklist's worker health, no playbook), retry storm (3), orphaned
	// CANCELLING (5)
	if want := []int{1, 0, 3, 5}; !reflect.DeepEqual(playbooks, want) {
		t.Fatalf("signals %v, want playbooks %v: %+v", playbooks, want, h.m.Signals())
	}
	// finding 2: the banner names the playbook and the next command
	v := h.m.View()
	for _, want := range []string{"!! playbook 1 queue backlog: no live worker polls default (980 runnable)", "next: rayctl inspect-leases"} {
		if !strings.Contains(v, want) {
			t.Errorf("banner lacks %q:\n%s", want, v)
		}
	}
}

func TestNavigation(t *testing.T) {
	h := newHarness(t, false)
	if h.m.CurrentView() != ViewOverview {
		t.Fatalf("starts on %v", h.m.CurrentView())
	}
	h.keys("2")
	if h.m.CurrentView() != ViewTasks || !h.m.tasks.loaded {
		t.Fatalf("2: view %v loaded %v", h.m.CurrentView(), h.m.tasks.loaded)
	}
	page := h.m.pageSize()
	if page != 17 || len(h.m.tasks.rows) != page || !h.m.tasks.hasMore || h.m.tasks.rows[0].ID != 1030 {
		t.Fatalf("first page: size %d, %d rows, more %v, first %d", page, len(h.m.tasks.rows), h.m.tasks.hasMore, h.m.tasks.rows[0].ID)
	}
	h.keys("j", "j", "j", "k")
	if h.m.tasks.cursor != 2 {
		t.Errorf("cursor after j j j k = %d, want 2", h.m.tasks.cursor)
	}
	h.keys("G")
	if h.m.tasks.cursor != page-1 {
		t.Errorf("G: cursor %d", h.m.tasks.cursor)
	}
	h.keys("g")
	if h.m.tasks.cursor != 0 {
		t.Errorf("g: cursor %d", h.m.tasks.cursor)
	}
	h.keys("pgdown")
	if f := h.lastFilter(); f.BeforeID != 1014 || f.Limit != page+1 {
		t.Errorf("next page asked for %+v, want ids below 1014, limit %d", f, page+1)
	}
	if got := ids(h.m.tasks.rows); len(got) != 13 || got[0] != 1013 || h.m.tasks.hasMore {
		t.Errorf("second page %v more %v", got, h.m.tasks.hasMore)
	}
	h.keys("pgdown") // no more pages: stays
	if len(h.m.tasks.pages) != 2 {
		t.Errorf("paged past the end: %v", h.m.tasks.pages)
	}
	h.keys("pgup")
	if h.m.tasks.rows[0].ID != 1030 || len(h.m.tasks.pages) != 1 {
		t.Errorf("pgup did not return to the first page: %v", ids(h.m.tasks.rows))
	}
	h.keys("tab")
	if h.m.CurrentView() != ViewFailures || !h.m.failures.loaded {
		t.Errorf("tab: %v", h.m.CurrentView())
	}
	h.keys("shift+tab", "shift+tab")
	if h.m.CurrentView() != ViewOverview {
		t.Errorf("shift+tab twice: %v", h.m.CurrentView())
	}
	h.keys("4", "enter")
	if h.m.CurrentView() != ViewTasks || h.lastFilter().Worker != "0b7e-stale" || h.m.tasks.filterText != "worker:0b7e-stale" {
		t.Errorf("enter on a worker: view %v filter %+v", h.m.CurrentView(), h.lastFilter())
	}
	for _, r := range h.m.tasks.rows {
		if r.ClaimedByWorker == nil || *r.ClaimedByWorker != "0b7e-stale" {
			t.Errorf("worker filter shows task %d of %v", r.ID, r.ClaimedByWorker)
		}
	}
	h.keys("3", "j", "enter")
	if f := h.lastFilter(); h.m.CurrentView() != ViewTasks || f.Callable != "app.tasks.send_email" ||
		!reflect.DeepEqual(f.States, []store.TaskState{store.StateFailed, store.StateLost}) {
		t.Errorf("enter on a failure group: %+v", f)
	}
	h.keys("?")
	if !h.m.showHelp || !strings.Contains(h.m.View(), "refresh slower") {
		t.Errorf("? shows no full help")
	}
	h.keys("esc")
	if h.m.showHelp {
		t.Error("esc does not close help")
	}
	h.keys("1", "q")
	if !h.quit {
		t.Error("q does not quit from the overview")
	}
	h.quit = false
	h.keys("3", "R", "ctrl+c")
	if !h.quit || len(h.db.applied) != 0 {
		t.Errorf("ctrl+c in the dialog: quit %v, applied %v", h.quit, h.db.applied)
	}
}

// TestBackALevel (finding 7): esc and q go back a level — the detail to its list, a view to
// the one before — and q quits only from the top level; esc there says how to quit.
func TestBackALevel(t *testing.T) {
	h := newHarness(t, false)
	h.keys("4", "3", "2", "enter")
	if !h.m.detail.open {
		t.Fatal("no detail")
	}
	steps := []struct {
		key    string
		view   View
		detail bool
	}{{"q", ViewTasks, false}, {"q", ViewFailures, false}, {"esc", ViewWorkers, false}, {"q", ViewOverview, false}}
	for _, st := range steps {
		h.keys(st.key)
		if h.quit || h.m.CurrentView() != st.view || h.m.detail.open != st.detail {
			t.Fatalf("%s: quit %v view %v detail %v, want view %v", st.key, h.quit, h.m.CurrentView(), h.m.detail.open, st.view)
		}
	}
	h.keys("esc")
	if h.quit || !strings.Contains(h.m.status, "q or :q quits") {
		t.Fatalf("esc at the top level: quit %v status %q", h.quit, h.m.status)
	}
	// esc clears a filter before it leaves the view; q leaves with the filter kept
	h.keys("2", "/", "state:failed", "enter", "esc")
	if h.m.CurrentView() != ViewTasks || h.m.tasks.filterText != "" {
		t.Fatalf("esc with a filter: view %v filter %q", h.m.CurrentView(), h.m.tasks.filterText)
	}
	h.keys("q")
	if h.m.CurrentView() != ViewOverview || h.quit {
		t.Fatalf("q in tasks: view %v quit %v", h.m.CurrentView(), h.quit)
	}
	h.keys("q")
	if !h.quit {
		t.Fatal("q at the top level does not quit")
	}
}

// TestCommandMode (finding 7): `:` runs commands: views, a filtered tasks view, a task, :q.
func TestCommandMode(t *testing.T) {
	h := newHarness(t, false)
	h.keys(":", "tasks state=failed queue=default", "enter")
	f := h.lastFilter()
	if h.m.CurrentView() != ViewTasks || !reflect.DeepEqual(f.States, []store.TaskState{store.StateFailed}) || !reflect.DeepEqual(f.Queues, []string{"default"}) {
		t.Fatalf(":tasks state=failed: view %v filter %+v", h.m.CurrentView(), f)
	}
	if !strings.Contains(h.m.View(), "filter: state=failed queue=default") {
		t.Errorf("filter line:\n%s", h.m.View())
	}
	h.keys(":", "workers", "enter")
	if h.m.CurrentView() != ViewWorkers {
		t.Fatalf(":workers: %v", h.m.CurrentView())
	}
	h.keys(":", "task 1012", "enter")
	if !h.m.detail.open || h.m.detail.id != 1012 || h.m.CurrentView() != ViewTasks {
		t.Fatalf(":task 1012: %+v", h.m.detail)
	}
	h.keys(":", "bogus", "enter")
	if !strings.Contains(h.m.status, "unknown command :bogus; commands: :overview, :tasks [FILTER]") {
		t.Fatalf("unknown command: %q", h.m.status)
	}
	h.keys(":", "q", "enter")
	if !h.quit {
		t.Fatal(":q does not quit")
	}
}

func TestFilter(t *testing.T) {
	h := newHarness(t, false)
	h.keys("2", "/")
	if !h.m.filtering {
		t.Fatal("/ does not open the filter")
	}
	h.keys("state:failed callable:app.tasks.*")
	if !h.m.filtering || h.m.input.Value() != "state:failed callable:app.tasks.*" {
		t.Fatalf("typing went elsewhere: filtering %v, input %q", h.m.filtering, h.m.input.Value())
	}
	h.keys("enter")
	f := h.lastFilter()
	if h.m.filtering || !reflect.DeepEqual(f.States, []store.TaskState{store.StateFailed}) || f.Callable != "app.tasks.*" {
		t.Fatalf("applied filter %+v", f)
	}
	if len(h.m.tasks.rows) == 0 {
		t.Fatal("no failed tasks shown")
	}
	for _, r := range h.m.tasks.rows {
		if r.State != store.StateFailed || !strings.HasPrefix(r.CallablePath, "app.tasks.") {
			t.Errorf("row %d %s %s does not match", r.ID, r.State, r.CallablePath)
		}
	}
	if !strings.Contains(h.m.View(), "filter: state:failed callable:app.tasks.*") {
		t.Errorf("filter line missing:\n%s", h.m.View())
	}
	// a bad filter is refused and the old one kept
	h.keys("/", "q") // q inside the input is text, not quit
	if h.quit || h.m.input.Value() != "state:failed callable:app.tasks.*q" {
		t.Fatalf("q in the filter input: quit %v, input %q", h.quit, h.m.input.Value())
	}
	h.keys("esc", "/")
	h.m.input.SetValue("state:bogus")
	h.keys("enter")
	if !strings.Contains(h.m.status, `unknown state "bogus"`) || h.m.tasks.filterText != "state:failed callable:app.tasks.*" {
		t.Errorf("bad filter: status %q, filter %q", h.m.status, h.m.tasks.filterText)
	}
	// finding 4: a valid filter clears the last one's error
	h.keys("/")
	h.m.input.SetValue("state:failed")
	h.keys("enter")
	if strings.Contains(h.m.View(), "bogus") {
		t.Errorf("a stale filter error stays:\n%s", h.m.View())
	}
	h.keys("esc")
	if h.m.tasks.filterText != "" || !h.lastFilter().Empty() {
		t.Errorf("esc did not clear the filter: %q %+v", h.m.tasks.filterText, h.lastFilter())
	}
}

func TestCoalescedKeys(t *testing.T) {
	h := newHarness(t, false)
	// what a slow link delivers: several keys in one read, so one message
	h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("32")})
	if h.m.CurrentView() != ViewTasks || !h.m.failures.loaded {
		t.Fatalf("32: view %v, failures loaded on the way %v", h.m.CurrentView(), h.m.failures.loaded)
	}
	h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("jjjk")})
	if h.m.tasks.cursor != 2 {
		t.Fatalf("jjjk: cursor %d", h.m.tasks.cursor)
	}
	h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/state:failed")})
	if !h.m.filtering || h.m.input.Value() != "state:failed" {
		t.Fatalf("/state:failed: filtering %v input %q", h.m.filtering, h.m.input.Value())
	}
	h.keys("enter")
	if f := h.lastFilter(); !reflect.DeepEqual(f.States, []store.TaskState{store.StateFailed}) {
		t.Errorf("filter %+v", f)
	}
	// a paste into the filter stays one piece of text
	h.keys("/")
	h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(" queue:default"), Paste: true})
	if h.m.input.Value() != "state:failed queue:default" {
		t.Errorf("paste: %q", h.m.input.Value())
	}
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		in   string
		want store.TaskFilter
		err  bool
	}{
		{"", store.TaskFilter{}, false},
		{"state:failed,lost queue:default,emails", store.TaskFilter{States: []store.TaskState{store.StateFailed, store.StateLost}, Queues: []string{"default", "emails"}}, false},
		{"callable:app.* worker:w1 error:timeout", store.TaskFilter{Callable: "app.*", Worker: "w1", ErrorContains: "timeout"}, false},
		{"id:4,5 charge card", store.TaskFilter{IDs: []int64{4, 5}, Search: "charge card"}, false},
		{"http://x", store.TaskFilter{Search: "http://x"}, false},
		{"s:QUEUED q:batch c:x w:y e:z", store.TaskFilter{States: []store.TaskState{store.StateQueued}, Queues: []string{"batch"}, Callable: "x", Worker: "y", ErrorContains: "z"}, false},
		{"state=failed queue=default", store.TaskFilter{States: []store.TaskState{store.StateFailed}, Queues: []string{"default"}}, false},
		{"!timeout", store.TaskFilter{Search: "timeout", SearchNot: true}, false},
		{`re:^app\.(mail|billing)`, store.TaskFilter{Regex: `^app\.(mail|billing)`}, false},
		{`state:failed !re:charge_card$`, store.TaskFilter{States: []store.TaskState{store.StateFailed}, Regex: "charge_card$", RegexNot: true}, false},
		{"re:(", store.TaskFilter{}, true},
		{"!state:failed", store.TaskFilter{}, true},
		{"a !b", store.TaskFilter{}, true},
		{"state:nope", store.TaskFilter{}, true},
		{"id:x", store.TaskFilter{}, true},
	}
	for _, tt := range tests {
		got, err := ParseFilter(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseFilter(%q) error %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if !tt.err && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseFilter(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestMarking(t *testing.T) {
	h := newHarness(t, false)
	h.keys("2", "space", "space")
	if want := map[int64]bool{1030: true, 1029: true}; !reflect.DeepEqual(h.m.Marked(), want) || h.m.tasks.cursor != 2 {
		t.Fatalf("marks %v cursor %d", h.m.Marked(), h.m.tasks.cursor)
	}
	h.keys("k", "space") // unmark 1029
	if want := map[int64]bool{1030: true}; !reflect.DeepEqual(h.m.Marked(), want) {
		t.Fatalf("toggle: %v", h.m.Marked())
	}
	if v := h.m.View(); !strings.Contains(v, "1 marked") || !regexp.MustCompile(`(?m)^ \* +1030 FAILED`).MatchString(v) {
		t.Errorf("marks not shown:\n%s", h.m.View())
	}
	h.keys("pgdown", "space") // marks survive paging
	if len(h.m.Marked()) != 2 || !h.m.Marked()[1013] {
		t.Errorf("marks across pages: %v", h.m.Marked())
	}
	h.keys("ctrl+\\")
	if len(h.m.Marked()) != 0 {
		t.Errorf("ctrl+\\ left marks %v", h.m.Marked())
	}
	h.keys("space", "u")
	if len(h.m.Marked()) != 0 {
		t.Errorf("u left marks %v", h.m.Marked())
	}
	// finding 7: select all matching the filter, with the count shown
	h.keys("/", "state:failed", "enter", "A")
	var failed int
	for _, r := range h.db.tasks {
		if r.State == store.StateFailed {
			failed++
		}
	}
	if len(h.m.Marked()) != failed || failed <= h.m.pageSize()/3 {
		t.Fatalf("A marked %d, want every FAILED task (%d)", len(h.m.Marked()), failed)
	}
	if want := fmt.Sprintf("marked %d tasks matching /state:failed", failed); h.m.status != want || !strings.Contains(h.m.View(), fmt.Sprintf("%d marked", failed)) {
		t.Errorf("status %q, want %q", h.m.status, want)
	}
}

func TestRequeueNeedsConfirmation(t *testing.T) {
	h := newHarness(t, false)
	// 1030 and 1025 are FAILED, 1029 SUCCEEDED
	h.keys("2", "space", "space", "j", "j", "j", "space")
	if want := map[int64]bool{1030: true, 1029: true, 1025: true}; !reflect.DeepEqual(h.m.Marked(), want) {
		t.Fatalf("marks %v", h.m.Marked())
	}
	h.keys("R")
	if h.m.confirm == nil || h.m.confirm.proposal.Total != 2 || h.m.confirm.proposal.Request.Kind != ActionRequeue {
		t.Fatalf("R opened no dialog with the count: %+v", h.m.confirm)
	}
	// findings 4 and 5: the dialog says exactly what will change, and that attempts are kept
	v := h.m.View()
	for _, want := range []string{"Requeue 2 tasks?", "from 3 marked tasks:", "2 FAILED → QUEUED", "left alone: 1 SUCCEEDED",
		"attempt_number kept, as rayctl requeue (a: reset it to 1)"} {
		if !strings.Contains(v, want) {
			t.Errorf("dialog lacks %q:\n%s", want, v)
		}
	}
	if len(h.db.applied) != 0 {
		t.Fatal("requeued before confirmation")
	}
	h.keys("n")
	if h.m.confirm != nil || len(h.db.applied) != 0 || !strings.Contains(h.m.status, "nothing changed") {
		t.Fatalf("n: dialog %v, applied %v, status %q", h.m.confirm, h.db.applied, h.m.status)
	}
	h.keys("R", "enter") // enter presses the focused button, No by default
	if h.m.confirm != nil || len(h.db.applied) != 0 {
		t.Fatalf("enter on No applied: %v", h.db.applied)
	}
	h.keys("R", "y")
	if h.m.confirm != nil || len(h.db.applied) != 1 || h.db.applied[0].Request.ResetAttempts {
		t.Fatalf("y: applied %+v", h.db.applied)
	}
	if h.m.status != "requeued 2 of 3 marked tasks" || len(h.m.Marked()) != 0 {
		t.Errorf("after requeue: status %q marks %v", h.m.status, h.m.Marked())
	}
	if h.m.tasks.rows[0].State != store.StateQueued || h.m.tasks.rows[0].AttemptNumber != 3 {
		t.Errorf("task 1030 is %s at attempt %d", h.m.tasks.rows[0].State, h.m.tasks.rows[0].AttemptNumber)
	}
	// nothing eligible: no dialog, a status line that says why
	h.keys("g", "R")
	if h.m.confirm != nil || !strings.Contains(h.m.status, "nothing to requeue in task 1030: 1 QUEUED: not requeueable") {
		t.Errorf("ineligible: dialog %v status %q", h.m.confirm, h.m.status)
	}
	// tab moves the focus to Yes; enter then confirms. Cancel a QUEUED task this way: the
	// dialog names the move it makes.
	h.keys("X")
	if v := h.m.View(); !strings.Contains(v, "1 QUEUED → CANCELLED") || strings.Contains(v, "RUNNING") {
		t.Errorf("cancel dialog:\n%s", v)
	}
	h.keys("tab", "enter")
	if len(h.db.applied) != 2 || h.db.applied[1].Request.Kind != ActionCancel || !reflect.DeepEqual(h.db.applied[1].Request.IDs, []int64{1030}) {
		t.Errorf("cancel via tab+enter: %+v", h.db.applied)
	}
}

// TestRequeueResetAttempts (finding 5): the requeue dialog's a resets attempt_number, as
// --reset-attempts, and says so.
func TestRequeueResetAttempts(t *testing.T) {
	h := newHarness(t, false)
	h.keys("2", "R", "a")
	if v := h.m.View(); !strings.Contains(v, "attempt_number reset to 1, as --reset-attempts: a full retry budget") {
		t.Fatalf("a:\n%s", v)
	}
	h.keys("y")
	if len(h.db.applied) != 1 || !h.db.applied[0].Request.ResetAttempts || h.m.tasks.rows[0].AttemptNumber != 1 {
		t.Fatalf("applied %+v, attempt %d", h.db.applied, h.m.tasks.rows[0].AttemptNumber)
	}
}

// TestCancelFinalizesOrphanedCancelling (finding 3): X on a CANCELLING task whose worker is
// gone finalizes it, and :finalize finalizes every such task, each after a dialog.
func TestCancelFinalizesOrphanedCancelling(t *testing.T) {
	h := newHarness(t, false)
	h.keys(":", "tasks state:cancelling", "enter", "X")
	if h.m.confirm == nil {
		t.Fatalf("X on CANCELLING: %q", h.m.status)
	}
	if v := h.m.View(); !strings.Contains(v, "Cancel 1 task?") || !strings.Contains(v, "1 CANCELLING → CANCELLED") {
		t.Errorf("dialog:\n%s", v)
	}
	h.keys("n", ":", "finalize", "enter")
	c := h.m.confirm
	if c == nil || !reflect.DeepEqual(c.proposal.Request.States, []store.TaskState{store.StateCancelling}) || c.proposal.Total != 1 {
		t.Fatalf(":finalize: %+v (%q)", c, h.m.status)
	}
	h.keys("y")
	for _, r := range h.db.tasks {
		if r.State == store.StateCancelling {
			t.Errorf("task %d still CANCELLING", r.ID)
		}
	}
}

// TestReconcile (finding 3): :reconcile shows the plan's moves and applies that plan after a
// confirmation; without Ray it says how to get one.
func TestReconcile(t *testing.T) {
	h := newHarness(t, false)
	h.keys(":", "reconcile", "enter")
	if h.m.confirm != nil || !strings.Contains(h.m.status, "start rayctl top with --ray-address") {
		t.Fatalf("no Ray: %q", h.m.status)
	}
	h.db.reconcile = &Proposal{Request: Request{Kind: ActionReconcile, Label: "RUNNING and CANCELLING tasks with a Ray job"}, Total: 3,
		Changes: []Change{{From: store.StateRunning, To: store.StateLost, N: 2, Note: "unknown to Ray, owner dead"}, {From: store.StateRunning, To: store.StateSucceeded, N: 1}},
		Left:    []string{"4 owner_dead"}, Plan: fakePlan{}}
	h.keys(":", "reconcile", "enter")
	v := h.m.View()
	for _, want := range []string{"Apply 3 reconcile actions?", "2 RUNNING → LOST (unknown to Ray, owner dead)", "1 RUNNING → SUCCEEDED", "left alone: 4 owner_dead"} {
		if !strings.Contains(v, want) {
			t.Errorf("reconcile dialog lacks %q:\n%s", want, v)
		}
	}
	h.keys("y")
	if len(h.db.applied) != 1 || h.db.applied[0].Request.Kind != ActionReconcile {
		t.Fatalf("applied %+v", h.db.applied)
	}
}

func TestFailureGroupRequeue(t *testing.T) {
	h := newHarness(t, false)
	h.keys("3", "R")
	c := h.m.confirm
	if c == nil {
		t.Fatalf("no dialog; status %q", h.m.status)
	}
	var want []int64
	for _, r := range h.db.tasks {
		if r.State == store.StateFailed && r.CallablePath == "app.tasks.charge_card" {
			want = append(want, r.ID)
		}
	}
	if !reflect.DeepEqual(c.target.req.IDs, want) || c.proposal.Total != len(want) {
		t.Fatalf("group resolved to %v (total %d), want %v", c.target.req.IDs, c.proposal.Total, want)
	}
	if v := h.m.View(); !strings.Contains(v, "failure group app.tasks.charge_card / builtins.ValueError") {
		t.Errorf("dialog does not name the group:\n%s", v)
	}
	h.keys("y")
	if len(h.db.applied) != 1 || !reflect.DeepEqual(h.db.applied[0].Request.IDs, want) {
		t.Errorf("applied %+v", h.db.applied)
	}
	h.keys("X")
	if h.m.confirm != nil || !strings.Contains(h.m.status, "cancel applies to QUEUED and RUNNING") {
		t.Errorf("cancel on a failure group: %v %q", h.m.confirm, h.m.status)
	}
}

// TestReadOnly (finding 7): under --readonly nothing writes, and every write key says why.
func TestReadOnly(t *testing.T) {
	h := newHarness(t, true)
	for _, k := range []string{"space", "A", "R", "X"} {
		h.keys("2", k)
		if !strings.Contains(h.m.status, "read-only (--readonly)") {
			t.Errorf("%s under --readonly: status %q", k, h.m.status)
		}
	}
	if h.m.confirm != nil || len(h.m.Marked()) != 0 || h.db.previews != 0 || h.m.acting {
		t.Fatalf("read-only acted: confirm %v marks %v previews %d", h.m.confirm, h.m.Marked(), h.db.previews)
	}
	h.keys("3", "R", "2", "enter", "R", "X", ":", "reconcile", "enter", ":", "finalize", "enter")
	if h.m.confirm != nil || h.db.previews != 0 || len(h.db.applied) != 0 {
		t.Fatalf("read-only acted in failures, detail or a command")
	}
	h.keys("esc")
	if v := h.m.View(); !strings.Contains(v, "read-only") || !strings.Contains(v, "(off)") {
		t.Errorf("read-only view:\n%s", v)
	}
	h.keys("?")
	if v := h.m.View(); !strings.Contains(v, "requeue (off)") || !strings.Contains(v, "Read-only (--readonly): requeue, cancel, reconcile, finalize and marks are off.") {
		t.Errorf("read-only help:\n%s", v)
	}
	// without Actions the TUI is read-only whatever the flag says
	m := New(Options{Source: fakeSource{newFakeDB()}})
	if !m.ReadOnly() {
		t.Error("no Actions but not read-only")
	}
}

func TestDetail(t *testing.T) {
	h := newHarness(t, false)
	h.keys("2", "enter")
	if !h.m.detail.open || h.m.detail.task == nil || h.m.detail.task.ID != 1030 {
		t.Fatalf("enter did not open task 1030: %+v", h.m.detail)
	}
	v := h.m.View()
	for _, want := range []string{"task 1030", "FAILED", "raysubmit_t1030_a3_5f2a", "timeline", "created", "exception   builtins.ValueError"} {
		if !strings.Contains(v, want) {
			t.Errorf("detail lacks %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "ValueError: invalid amount: -5") {
		t.Fatal("the traceback's last line fits the first screen; the scroll test needs a longer one")
	}
	h.keys("G")
	if !strings.Contains(h.m.View(), "ValueError: invalid amount: -5") {
		t.Errorf("scrolling to the end does not show the traceback's last line:\n%s", h.m.View())
	}
	h.keys("g", "j")
	if h.m.detail.vp.YOffset != 1 {
		t.Errorf("j scrolled to %d", h.m.detail.vp.YOffset)
	}
	h.keys("esc")
	if h.m.detail.open || h.m.CurrentView() != ViewTasks {
		t.Error("esc did not go back to the list")
	}
	// a task with a result
	h.m.tasks.cursor = slices.IndexFunc(h.m.tasks.rows, func(t store.Task) bool { return t.State == store.StateSucceeded })
	succeeded := h.m.tasks.rows[h.m.tasks.cursor].ID
	h.keys("enter")
	if v := h.m.View(); !strings.Contains(v, `result      {"charged": 1250, "currency": "EUR"}`) {
		t.Errorf("result not shown:\n%s", v)
	}
	// the task vanished meanwhile
	h.db.mu.Lock()
	h.db.tasks = slices.DeleteFunc(h.db.tasks, func(t store.Task) bool { return t.ID == succeeded })
	h.db.mu.Unlock()
	h.keys("r")
	if !strings.Contains(h.m.View(), fmt.Sprintf("task %d no longer exists", succeeded)) {
		t.Errorf("missing task:\n%s", h.m.View())
	}
}

func TestAllTimeFailuresReloadOnlyByHand(t *testing.T) {
	h := newHarness(t, false)
	h.keys("3")
	seq := h.m.failures.seq
	h.send(tickMsg{gen: h.m.tickGen})
	if h.m.failures.seq == seq {
		t.Fatal("a tick did not reload the 24h failures")
	}
	h.keys("w", "w") // 7d, then all time
	if failureWindows[h.m.failures.window] != 0 || !h.m.failures.loaded {
		t.Fatalf("window %v loaded %v", failureWindows[h.m.failures.window], h.m.failures.loaded)
	}
	seq = h.m.failures.seq
	h.send(tickMsg{gen: h.m.tickGen})
	if h.m.failures.seq != seq {
		t.Error("a tick re-ran the all-time failure scan")
	}
	h.keys("r")
	if h.m.failures.seq == seq {
		t.Error("r did not reload the all-time failures")
	}
	if !strings.Contains(h.m.View(), "all time (r reloads)") {
		t.Errorf("title:\n%s", h.m.View())
	}
}

func TestTickWaitsForSlowReads(t *testing.T) {
	h := newHarness(t, false)
	h.keys("2")
	calls := len(h.db.filters)
	// a tick while the last view read has not answered yet: no second read
	m, cmd := h.m.Update(tickMsg{gen: h.m.tickGen})
	h.m = m.(Model)
	if h.m.viewPending != 1 || !h.m.dashLoading {
		t.Fatalf("pending %d, snapshot loading %v", h.m.viewPending, h.m.dashLoading)
	}
	m, _ = h.m.Update(tickMsg{gen: h.m.tickGen})
	h.m = m.(Model)
	if h.m.viewPending != 1 {
		t.Fatalf("a tick stacked a second read: %d pending", h.m.viewPending)
	}
	h.run(cmd)
	if h.m.viewPending != 0 || len(h.db.filters) != calls+1 || h.m.dashLoading {
		t.Errorf("after the answer: pending %d, reads %d (want %d), loading %v", h.m.viewPending, len(h.db.filters), calls+1, h.m.dashLoading)
	}
}

func TestDatabaseTroubleKeepsData(t *testing.T) {
	h := newHarness(t, false)
	h.keys("2")
	rows := len(h.m.tasks.rows)
	h.db.mu.Lock()
	h.db.err = errConnRefused
	h.db.mu.Unlock()
	h.send(tickMsg{gen: h.m.tickGen})
	if h.m.dbErr == nil || h.m.dash == nil || len(h.m.tasks.rows) != rows {
		t.Fatalf("after a failed refresh: err %v, snapshot kept %v, rows %d (had %d)", h.m.dbErr, h.m.dash != nil, len(h.m.tasks.rows), rows)
	}
	v := h.m.View()
	if !strings.Contains(v, "database: connection refused · data from 15:04:05 · retrying every 2s") ||
		!strings.Contains(v, "app.tasks.charg") || !strings.Contains(v, "(stale: data from 15:04:05)") {
		t.Errorf("status line, stale mark or data missing:\n%s", v)
	}
	h.db.mu.Lock()
	h.db.err = nil
	h.db.mu.Unlock()
	h.send(tickMsg{gen: h.m.tickGen})
	if h.m.dbErr != nil || h.m.status != "database reachable again" {
		t.Errorf("no recovery: %v %q", h.m.dbErr, h.m.status)
	}
}

func TestPauseAndInterval(t *testing.T) {
	h := newHarness(t, false)
	calls := func() int {
		h.db.mu.Lock()
		defer h.db.mu.Unlock()
		return len(h.db.filters)
	}
	h.keys("2")
	before := calls()
	h.send(tickMsg{gen: h.m.tickGen})
	if calls() != before+1 {
		t.Fatalf("a tick did not refresh the tasks view")
	}
	gen := h.m.tickGen
	h.keys("p")
	if !h.m.Paused() || !strings.Contains(h.m.View(), "PAUSED") {
		t.Fatal("p did not pause")
	}
	h.send(tickMsg{gen: gen})
	h.send(tickMsg{gen: h.m.tickGen})
	if calls() != before+1 {
		t.Errorf("ticks refreshed while paused")
	}
	h.keys("r")
	if calls() != before+2 {
		t.Errorf("r did not refresh while paused")
	}
	h.keys("p")
	if h.m.Paused() || calls() != before+3 {
		t.Errorf("p did not resume with a refresh")
	}
	h.send(tickMsg{gen: gen}) // a tick from before the pause is stale
	if calls() != before+3 {
		t.Errorf("a stale tick refreshed")
	}
	steps := []struct {
		key  string
		want time.Duration
	}{{"+", time.Second}, {"+", time.Second}, {"-", 2 * time.Second}, {"-", 5 * time.Second}, {"-", 10 * time.Second}}
	for _, s := range steps {
		h.keys(s.key)
		if h.m.Interval() != s.want {
			t.Errorf("%s: interval %v, want %v", s.key, h.m.Interval(), s.want)
		}
	}
	m := New(Options{Source: fakeSource{newFakeDB()}, Refresh: 3 * time.Second})
	m.stepInterval(false)
	if m.interval != 5*time.Second {
		t.Errorf("slower from 3s: %v", m.interval)
	}
	if m := New(Options{Source: fakeSource{newFakeDB()}, Refresh: time.Millisecond}); m.Interval() != MinRefresh {
		t.Errorf("floor: %v", m.Interval())
	}
}

func TestResize(t *testing.T) {
	h := newHarness(t, false)
	for _, view := range []string{"1", "2", "3", "4"} {
		h.keys(view)
		for _, size := range [][2]int{{80, 24}, {120, 40}, {100, 30}, {60, 15}} {
			h.send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
			assertFits(t, h.m.View(), size[0], size[1])
		}
	}
	h.send(tea.WindowSizeMsg{Width: 80, Height: 40})
	h.keys("2")
	if len(h.m.tasks.rows) != 30 {
		t.Errorf("a taller terminal shows %d rows, want all 30", len(h.m.tasks.rows))
	}
}

// assertFits checks a view has exactly height lines, none wider than width.
func assertFits(t *testing.T, view string, width, height int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != height {
		t.Errorf("%dx%d: %d lines", width, height, len(lines))
	}
	for i, l := range lines {
		if w := lipglossWidth(l); w > width {
			t.Errorf("%dx%d: line %d is %d wide: %q", width, height, i, w, l)
		}
	}
}

// TestLayoutKeepsDiagnosingColumns (finding 8): at 80x24 every view keeps the columns that
// diagnose its playbooks, drops others by priority and says so with "…"; at 60x18 too.
func TestLayoutKeepsDiagnosingColumns(t *testing.T) {
	h := newHarness(t, false)
	header := func(view string, line int) string {
		t.Helper()
		lines := strings.Split(h.m.View(), "\n")
		for _, l := range lines {
			if lipglossWidth(l) > h.m.width {
				t.Fatalf("%s: a line wider than %d: %q", view, h.m.width, l)
			}
		}
		return lines[line]
	}
	checks := []struct {
		key, view string
		line      int // the table header's line on screen
		want      []string
		dropped   bool
	}{
		{"1", "overview", 7, []string{"QUEUE", "QUEUED", "DEFERRED", "RUN", "CANCELLING", "FAILED", "LOST", "OLDEST"}, false},
		{"2", "tasks", 4, []string{"ID", "STATE", "QUEUE", "CALLABLE", "WORKER", "ERROR"}, true},
		{"3", "failures", 4, []string{"COUNT", "LOST", "CALLABLE", "EXCEPTION", "LATEST"}, true},
		{"4", "workers", 4, []string{"WORKER", "STATUS", "QUEUES", "CLAIMED", "BEAT"}, true},
	}
	for _, c := range checks {
		h.keys(c.key)
		hd := header(c.view, c.line)
		for _, w := range c.want {
			if !strings.Contains(hd, w) {
				t.Errorf("80x24 %s header %q lacks %s", c.view, hd, w)
			}
		}
		if strings.HasSuffix(strings.TrimSpace(hd), "…") != c.dropped {
			t.Errorf("80x24 %s header %q: dropped columns marked %v, want %v", c.view, hd, !c.dropped, c.dropped)
		}
	}
	// 60x18: the overview drops the sparkline, LAST and CANCELLING, keeps LOST, and says so
	h.send(tea.WindowSizeMsg{Width: 60, Height: 18})
	h.keys("1")
	hd := header("overview", 7)
	if !strings.Contains(hd, "LOST") || strings.Contains(hd, "CANCELLING") || !strings.HasSuffix(strings.TrimSpace(hd), "…") {
		t.Errorf("60x18 overview header %q", hd)
	}
	// a line cut at the edge ends in "…"
	if v := h.m.View(); !strings.Contains(strings.Split(v, "\n")[1], "…") {
		t.Errorf("the cut banner has no ellipsis:\n%s", v)
	}
}

// TestStaleTotalsMarked (finding 4): SUCCEEDED and CANCELLED, counted every 30 s, are marked
// "~" with their age once older than a refresh, instead of passing for current.
func TestStaleTotalsMarked(t *testing.T) {
	now := fixedNow
	db := newFakeDB()
	m := New(Options{Source: fakeSource{db}, Actions: fakeActions{db}, Clock: func() time.Time { return now }})
	m.tickFn = func(time.Duration, int) tea.Cmd { return nil }
	h := &harness{t: t, m: m, db: db}
	h.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	h.run(h.m.Init())
	if v := h.m.View(); strings.Contains(v, "~90,112") {
		t.Fatalf("fresh totals marked stale:\n%s", v)
	}
	now = now.Add(12 * time.Second)
	h.send(tickMsg{gen: h.m.tickGen}) // a refresh without totals
	v := h.m.View()
	if !strings.Contains(v, "~90,112") || !strings.Contains(v, "12s ago") {
		t.Fatalf("stale totals not marked:\n%s", v)
	}
}

// TestDialogThousands (finding 4): counts read the same everywhere: "Requeue 3,755 tasks?".
func TestDialogThousands(t *testing.T) {
	h := newHarness(t, false)
	h.m.confirm = &confirmState{proposal: Proposal{Request: Request{Kind: ActionRequeue, Label: "3,755 marked tasks"}, Total: 3755,
		Changes: []Change{{From: store.StateFailed, To: store.StateQueued, N: 3755}}}}
	v := h.m.View()
	if !strings.Contains(v, "Requeue 3,755 tasks?") || !strings.Contains(v, "3,755 FAILED → QUEUED") {
		t.Fatalf("dialog:\n%s", v)
	}
}

// TestMarkAllSurvivesARefresh: a refresh while select-all reads does not drop its answer;
// a new filter does (the marks would be the old filter's).
func TestMarkAllSurvivesARefresh(t *testing.T) {
	h := newHarness(t, false)
	h.keys("2", "/", "state:failed", "enter")
	m, cmd := h.m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'A'}})
	h.m = m.(Model)
	h.send(tickMsg{gen: h.m.tickGen}) // a refresh lands before the ids do
	h.run(cmd)
	if len(h.m.Marked()) == 0 {
		t.Fatal("the refresh dropped the mark-all")
	}
	h.keys("u")
	if len(h.m.Marked()) != 0 {
		t.Fatalf("u left %d marks", len(h.m.Marked()))
	}
	m, cmd = h.m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'A'}})
	h.m = m.(Model)
	h.keys(":", "tasks state:queued", "enter")
	if h.m.tasks.filterText != "state:queued" {
		t.Fatalf("filter %q, filtering %v, input %q, status %q", h.m.tasks.filterText, h.m.filtering, h.m.input.Value(), h.m.status)
	}
	h.run(cmd)
	if len(h.m.Marked()) != 0 {
		t.Fatalf("marks of the old filter applied after the filter changed: %d (%q, filter %q)", len(h.m.Marked()), h.m.status, h.m.tasks.filterText)
	}
}
