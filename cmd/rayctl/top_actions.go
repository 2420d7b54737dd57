package main

// TEMPORARY ADAPTER — the lead replaces this file when the recovery package lands.
//
// rayctl top writes only through tui.Actions. Until `recovery` exists, this adapter implements
// tui.Actions over the store's guarded writes (store.Requeue and store.RequestCancel: one
// conditional UPDATE per batch, applied only to rows still in an eligible state), so the
// command works end to end and is tested. Replace newTopActions with an implementation that
// calls recovery's requeue and cancel (the code behind `rayctl requeue` and `rayctl cancel`),
// keeping the same eligibility: requeue FAILED, LOST and CANCELLED; cancel QUEUED and RUNNING.

import (
	"context"
	"fmt"
	"strings"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/tui"
)

// topActionBatch is how many rows one UPDATE touches.
const topActionBatch = 500

var (
	requeueFrom = []store.TaskState{store.StateFailed, store.StateLost, store.StateCancelled}
	cancelFrom  = []store.TaskState{store.StateQueued, store.StateRunning}
)

// storeActions is the temporary tui.Actions adapter (see the file comment).
type storeActions struct{ s *store.Store }

func newTopActions(s *store.Store) tui.Actions { return storeActions{s: s} }

func (a storeActions) preview(ctx context.Context, ids []int64, from []store.TaskState) (tui.Preview, error) {
	p := tui.Preview{Chosen: len(ids)}
	if len(ids) == 0 {
		return p, nil
	}
	exist, err := a.s.CountTasks(ctx, store.TaskFilter{IDs: ids})
	if err != nil {
		return p, err
	}
	eligible, err := a.s.CountTasks(ctx, store.TaskFilter{IDs: ids, States: from})
	if err != nil {
		return p, err
	}
	p.Eligible = int(eligible)
	var notes []string
	if other := exist - eligible; other > 0 {
		notes = append(notes, fmt.Sprintf("%d in other states will be left alone", other))
	}
	if gone := int64(len(ids)) - exist; gone > 0 {
		notes = append(notes, fmt.Sprintf("%d no longer exist", gone))
	}
	p.Note = strings.Join(notes, "; ")
	return p, nil
}

func (a storeActions) PreviewRequeue(ctx context.Context, ids []int64) (tui.Preview, error) {
	return a.preview(ctx, ids, requeueFrom)
}

func (a storeActions) PreviewCancel(ctx context.Context, ids []int64) (tui.Preview, error) {
	return a.preview(ctx, ids, cancelFrom)
}

// Requeue resets attempts, as django-ray's admin "Retry selected tasks" does, so a task that
// had exhausted its retries gets its full budget again.
func (a storeActions) Requeue(ctx context.Context, ids []int64) (tui.Outcome, error) {
	var o tui.Outcome
	for start := 0; start < len(ids); start += topActionBatch {
		batch := ids[start:min(len(ids), start+topActionBatch)]
		applied, err := a.s.Requeue(ctx, batch, requeueFrom, store.RequeueOptions{ResetAttempts: true})
		if err != nil {
			return o, err
		}
		o.Applied += len(applied)
		o.Skipped += len(batch) - len(applied)
	}
	return o, nil
}

func (a storeActions) Cancel(ctx context.Context, ids []int64) (tui.Outcome, error) {
	var o tui.Outcome
	by := map[store.TaskState]int{}
	for start := 0; start < len(ids); start += topActionBatch {
		batch := ids[start:min(len(ids), start+topActionBatch)]
		res, err := a.s.RequestCancel(ctx, batch, cancelFrom)
		if err != nil {
			return o, err
		}
		for _, r := range res {
			by[r.State]++
		}
		o.Applied += len(res)
		o.Skipped += len(batch) - len(res)
	}
	o.Detail = fmt.Sprintf("%d CANCELLED, %d CANCELLING", by[store.StateCancelled], by[store.StateCancelling])
	return o, nil
}
