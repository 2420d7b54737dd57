package tui

import (
	"context"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// stopGrace bounds how long Run waits, once the program has ended, for the reads and writes
// it cancelled: long enough for a write to roll back and record its interruption in the audit
// table (recovery gives that 10 s), short enough that a call ignoring its context cannot hold
// up the exit for good.
const stopGrace = 15 * time.Second

// Interrupted is a write that was still in flight when the program ended (the operator quit,
// or a signal): what it was asked to do and what it had done when it returned. recovery's
// writes commit batch by batch, so Outcome.Applied rows changed before the cancellation; the
// batch in progress rolled back and the rest is as it was.
type Interrupted struct {
	Request Request
	Outcome Outcome
	Err     error // nil: it finished anyway
}

// Run runs m as a bubbletea program (with opts, which must not set tea.WithContext: ctx is
// the program's) until the operator quits, ctx is done or the program fails, and returns the
// program's error. Every read and write the model starts runs under ctx; when the program
// ends, Run cancels those still in flight and waits for them (at most stopGrace), so none
// runs on after Run returns, and none keeps the process from exiting. The writes that were in
// flight come back as Interrupted, for the caller to report: the screen that would have said
// what became of them is gone.
func Run(ctx context.Context, m Model, opts ...tea.ProgramOption) ([]Interrupted, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.calls = newCalls(ctx)
	p := tea.NewProgram(m, append(opts, tea.WithContext(ctx))...)
	_, err := p.Run()
	return m.calls.stop(stopGrace), err
}

// calls are the model's reads and writes in flight, shared by every copy of the model: the
// context they run under and a count Run waits on. Update takes no context, so the model
// carries this one (a service would take ctx as a parameter); only Run cancels it.
type calls struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	n     int
	ended bool
	idle  chan struct{} // closed once ended with nothing in flight
	cut   []Interrupted
}

func newCalls(parent context.Context) *calls {
	ctx, cancel := context.WithCancel(parent)
	return &calls{ctx: ctx, cancel: cancel, idle: make(chan struct{})}
}

// guard runs f as a call in flight: Run waits for it, and once the program has ended it does
// not start (bubbletea may still start a command the model returned just before the end).
func (c *calls) guard(f func() tea.Msg) tea.Cmd {
	return func() tea.Msg {
		c.mu.Lock()
		if c.ended {
			c.mu.Unlock()
			return nil
		}
		c.n++
		c.mu.Unlock()
		defer c.done()
		return f()
	}
}

func (c *calls) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.ended && c.n == 0 {
		close(c.idle)
	}
}

// wrote notes a write's result; one that returns after the program ended was in flight at
// its end. (One that returned an instant before has its outcome logged but maybe not shown.)
func (c *calls) wrote(r Request, o Outcome, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		c.cut = append(c.cut, Interrupted{Request: r, Outcome: o, Err: err})
	}
}

// stop cancels the calls in flight, waits for them at most grace, and returns the writes
// among them.
func (c *calls) stop(grace time.Duration) []Interrupted {
	c.mu.Lock()
	c.ended = true
	if c.n == 0 {
		close(c.idle)
	}
	c.mu.Unlock()
	c.cancel()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.idle:
	case <-t.C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}
