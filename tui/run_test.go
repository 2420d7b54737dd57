package tui

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/rayctl/rayctl/store"
)

// slowActions plans as the fake does; its Apply is a write that takes until its context ends
// (a transaction waiting on a row lock), then returns what a cancelled recovery write does.
type slowActions struct {
	fakeActions
	started  chan struct{}
	returned atomic.Bool
}

func (a *slowActions) Apply(ctx context.Context, p Proposal) (Outcome, error) {
	close(a.started)
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
	}
	a.returned.Store(true)
	return Outcome{}, ctx.Err()
}

// TestQuitCancelsWrites (issue 13): quitting while a write is in flight cancels its context
// (a write in a transaction rolls back), and Run returns only once the write has returned,
// promptly, with the write reported as Interrupted.
func TestQuitCancelsWrites(t *testing.T) {
	db := newFakeDB()
	db.reconcile = &Proposal{Request: Request{Kind: ActionReconcile, Label: "RUNNING and CANCELLING tasks with a Ray job"}, Total: 1,
		Changes: []Change{{From: store.StateRunning, To: store.StateLost, N: 1}}, Plan: fakePlan{}}
	acts := &slowActions{fakeActions: fakeActions{db}, started: make(chan struct{})}
	m := New(Options{Source: fakeSource{db}, Actions: acts, Clock: func() time.Time { return fixedNow }})

	in, keys := io.Pipe()
	type result struct {
		cut []Interrupted
		err error
	}
	done := make(chan result, 1)
	go func() {
		cut, err := Run(t.Context(), m, tea.WithInput(in), tea.WithOutput(io.Discard), tea.WithoutSignalHandler())
		done <- result{cut, err}
	}()
	defer keys.Close()
	press := func(s string) {
		if _, err := keys.Write([]byte(s)); err != nil {
			t.Fatalf("keys %q: %v", s, err)
		}
	}

	press(":reconcile\r")
	deadline := time.After(10 * time.Second)
confirm: // y confirms once the dialog is open; before, it does nothing
	for {
		select {
		case <-acts.started:
			break confirm
		case <-deadline:
			t.Fatal("the write never started")
		case <-time.After(50 * time.Millisecond):
			press("y")
		}
	}
	press("q") // the overview is the top level: q quits
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("Run: %v", r.err)
		}
		if !acts.returned.Load() {
			t.Fatal("Run returned while the write was still running")
		}
		if len(r.cut) != 1 || r.cut[0].Request.Kind != ActionReconcile || !errors.Is(r.cut[0].Err, context.Canceled) {
			t.Fatalf("interrupted writes: %+v", r.cut)
		}
	case <-time.After(stopGrace - 5*time.Second):
		t.Fatal("Run did not return: the write in flight was not cancelled at quit")
	}
}
