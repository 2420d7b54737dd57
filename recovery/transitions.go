package recovery

import (
	"slices"

	"github.com/rayctl/rayctl/store"
)

// To is the state action a moves a row in state from to; "" when it does not apply. Apply
// makes exactly these moves (each through the store's conditional transition), so a preview
// built from a Plan's Transitions says what Apply will do to each row still as planned.
func (a Action) To(from store.TaskState) store.TaskState {
	switch {
	case a == ActionRequeue && (from == store.StateFailed || from == store.StateLost || from == store.StateCancelled):
		return store.StateQueued
	case a == ActionCancel && from == store.StateQueued:
		return store.StateCancelled
	case a == ActionCancel && from == store.StateRunning:
		return store.StateCancelling
	case a == ActionCancel && from == store.StateCancelling:
		return store.StateCancelled
	}
	return ""
}

// Transition counts the planned rows moving from one state to another.
type Transition struct {
	From store.TaskState `json:"from"`
	To   store.TaskState `json:"to"`
	N    int             `json:"n"`
}

// Transitions are the plan's targets counted by from-state -> to-state, in state order.
func (p Plan) Transitions() []Transition {
	n := map[store.TaskState]int{}
	for _, t := range p.Targets {
		n[t.State]++
	}
	var out []Transition
	for _, st := range store.AllStates {
		if n[st] > 0 {
			out = append(out, Transition{From: st, To: p.Action.To(st), N: n[st]})
		}
	}
	return out
}

// Left counts named rows a plan leaves alone, by state, with why.
type Left struct {
	State store.TaskState `json:"state"`
	N     int             `json:"n"`
	Why   string          `json:"why"`
}

// LeftAlone are the plan's Unmatched rows counted by state, each with why the action leaves
// them and what applies instead.
func (p Plan) LeftAlone() []Left {
	n := map[store.TaskState]int{}
	for _, u := range p.Unmatched {
		n[u.State]++
	}
	var out []Left
	for _, st := range store.AllStates {
		if n[st] > 0 {
			out = append(out, Left{State: st, N: n[st], Why: WhyLeft(p.Action, st, slices.Contains(p.Selection.States, st))})
		}
	}
	return out
}

// WhyLeft says why action a leaves a row in state st alone; selected says st was among the
// states asked for (then another filter, or for CANCELLING a live owner, excluded the row).
func WhyLeft(a Action, st store.TaskState, selected bool) string {
	switch {
	case a == ActionCancel && st == store.StateCancelling:
		return "its worker is live and finalizes it (if it stays CANCELLING, restart that worker)"
	case selected:
		return "it no longer matches"
	case a == ActionRequeue && st == store.StateRunning:
		return "a worker owns it: cancel it, or reconcile it with Ray (a stuck one becomes LOST, then requeue it)"
	case a == ActionRequeue && st == store.StateCancelling:
		return "it is being cancelled: finalize it once its worker is gone"
	case a == ActionRequeue && st == store.StateQueued:
		return "it is queued already"
	case a == ActionRequeue && st == store.StateSucceeded:
		return "it succeeded (requeue takes FAILED, LOST and CANCELLED)"
	case a == ActionCancel && st.Terminal():
		return "it is finished already"
	}
	return "the action does not apply to " + string(st)
}
