package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rayctl/rayctl/store"
)

// Applier performs the store transition for an Outcome. It is safe for concurrent use.
type Applier struct {
	Store   *store.Store
	Policy  Policy
	Results Results
	// WorkerID, LeaseTTL and StuckAfter fence Lost outcomes (store.LostParams): a row is
	// marked LOST only while it is still stale and its owner is WorkerID, nobody, or a worker
	// without a live lease.
	WorkerID   string
	LeaseTTL   time.Duration
	StuckAfter time.Duration
}

// Transition is what Apply did.
type Transition struct {
	TaskID  int64
	Attempt int32 // the attempt the outcome belongs to (attempt_number as read)
	Queue   string
	Outcome Kind
	From    store.TaskState // the state the caller read
	// To is the state written: SUCCEEDED, FAILED, QUEUED (a retry), LOST or CANCELLED. It is
	// empty when nothing was written because the row had moved on.
	To      store.TaskState
	Applied bool
	// Current is the row's state when it had moved on (read back; empty if not read).
	Current store.TaskState
	// CancelWon: the row was cancelled while the attempt ended, so it was finalized
	// CANCELLED instead of recording the outcome (django-ray prefers the cancellation).
	CancelWon bool

	RetryDelay    time.Duration // when To is QUEUED
	NoRetry       string        // why a failure was not retried
	ErrorMessage  string        // error_message written for a failure
	ExceptionType string

	Stored Stored // where a result went, for Succeeded

	// Refused is PostgreSQL's refusal of the outcome's own write (store.ErrInvalid: a value
	// it cannot hold, which writing again would not change). The attempt was then ended
	// with the UnstorableOutcome failure instead (To FAILED, ErrorMessage saying so).
	Refused error
}

// ExcUnstorable is the exception type of the failure that ends an attempt whose outcome
// PostgreSQL refused to store (see Apply). It is never retried.
const ExcUnstorable = "UnstorableOutcome"

// ErrUnstorable: neither the outcome nor the failure that replaces it could be written;
// PostgreSQL refuses both for what they are. It wraps store.ErrInvalid. The row is left as
// it was (RUNNING, unless it moved on) for stuck-task recovery; the caller must still free
// the attempt's slot, since writing again would be refused again.
var ErrUnstorable = fmt.Errorf("the attempt's outcome cannot be stored: %w", store.ErrInvalid)

// Predict returns the transition Apply would make for task and o, without writing anything
// or storing a result: To, RetryDelay, NoRetry, ErrorMessage and ExceptionType as Apply
// would set them (Applied false, Stored empty). A row read in CANCELLING predicts CANCELLED.
// Apply itself decides through Predict, so a plan made with it (rayctl reconcile-jobs) shows
// exactly what Apply then does, unless the row moves on meanwhile.
func (a *Applier) Predict(task store.Task, o Outcome) Transition {
	tr := Transition{TaskID: task.ID, Attempt: task.AttemptNumber, Queue: task.QueueName, Outcome: o.Kind, From: task.State}
	if task.State == store.StateCancelling {
		tr.To = store.StateCancelled
		return tr
	}
	switch o.Kind {
	case Succeeded:
		tr.To = store.StateSucceeded
	case Failed:
		f := o.Failure
		tr.ErrorMessage, tr.ExceptionType = f.Message, f.ExceptionType
		d := Decision{Reason: "permanent failure"}
		if !f.Permanent {
			d = a.Policy.Decide(task.AttemptNumber, f.ExceptionType)
		}
		if d.Retry {
			tr.To, tr.RetryDelay = store.StateQueued, d.Delay
		} else {
			tr.To, tr.NoRetry = store.StateFailed, d.Reason
		}
	case Lost:
		tr.ErrorMessage, tr.ExceptionType = store.LostMessage, ExcTaskLost
		if d := a.Policy.Decide(task.AttemptNumber, ExcTaskLost); d.Retry {
			tr.To, tr.RetryDelay = store.StateQueued, d.Delay
		} else {
			tr.To, tr.NoRetry = store.StateLost, d.Reason
		}
	case TimedOut:
		if task.TimeoutSeconds != nil {
			tr.ErrorMessage = fmt.Sprintf("Task timed out after %d seconds", *task.TimeoutSeconds)
		}
		tr.NoRetry = "timeouts are not retried"
		tr.To = store.StateFailed
	case Cancelled:
		tr.To = store.StateCancelled
	}
	return tr
}

// Apply performs the one guarded transition that ends the attempt of task (the row as the
// caller read it; its Guard fences the write) with outcome o:
//
//	Succeeded  -> SUCCEEDED with the result inline or as a reference (errors of earlier
//	              attempts cleared)
//	Failed     -> QUEUED for a retry (attempt+1, run_after = now + backoff) or FAILED
//	              (max attempts, denylisted type, or a permanent failure)
//	Lost       -> LOST, or straight back to QUEUED under the policy for TaskLost
//	TimedOut   -> FAILED "Task timed out after N seconds", never retried
//	Cancelled  -> CANCELLED
//
// A row read in CANCELLING is finalized CANCELLED whatever the outcome. If the write does not
// apply because the row was cancelled meanwhile by the same claim, the row is finalized
// CANCELLED (CancelWon). Any other row that moved on is left alone (Applied false).
//
// Every value is stored through store.StorableText, so what a task prints is stored. If
// PostgreSQL still refuses the write for what it holds (store.ErrInvalid), writing it again
// cannot help: the attempt ends FAILED with an UnstorableOutcome failure naming the refusal
// (never retried; Transition.Refused holds it), so the row does not stay RUNNING and its
// slot is freed. If even that is refused, Apply returns an error wrapping ErrUnstorable.
// Any other error means the database could not be reached; nothing was written and the
// caller may retry.
func (a *Applier) Apply(ctx context.Context, task store.Task, o Outcome) (Transition, error) {
	tr := a.Predict(task, o)
	if task.State == store.StateCancelling {
		tr.To = ""
		return a.finalizeCancel(ctx, task, tr)
	}
	var applied bool
	var err error
	g := task.Guard()
	switch o.Kind {
	case Succeeded:
		tr.Stored = a.Results.Place(ctx, o.Result)
		applied, err = a.Store.Succeed(ctx, g, tr.Stored.Row)
	case Failed:
		info := store.ErrorInfo{Message: o.Failure.Message}
		if tb := o.Failure.Traceback; tb != "" {
			info.Traceback = &tb
		}
		if tr.To == store.StateQueued {
			applied, err = a.Store.Retry(ctx, g, tr.RetryDelay, info)
		} else {
			applied, err = a.Store.Fail(ctx, g, info)
		}
	case Lost:
		p := store.LostParams{Self: a.WorkerID, StuckAfter: a.StuckAfter, LeaseTTL: a.LeaseTTL}
		if tr.To == store.StateQueued {
			d := tr.RetryDelay
			p.RetryDelay = &d
		}
		applied, err = a.Store.MarkLost(ctx, g, p)
	case TimedOut:
		applied, err = a.Store.MarkTimedOut(ctx, g)
	case Cancelled:
		applied, err = a.Store.MarkCancelled(ctx, g)
	default:
		return tr, fmt.Errorf("lifecycle: unknown outcome kind %d", o.Kind)
	}
	if errors.Is(err, store.ErrInvalid) {
		// PostgreSQL refused the outcome itself, not the connection: end the attempt with a
		// failure that says so, which holds nothing the task wrote.
		tr = unstorable(tr, err)
		applied, err = a.Store.Fail(ctx, g, store.ErrorInfo{Message: tr.ErrorMessage})
		if errors.Is(err, store.ErrInvalid) {
			err = fmt.Errorf("%w (%v; then %v)", ErrUnstorable, tr.Refused, err)
		}
	}
	if err != nil {
		tr.To = ""
		return tr, err
	}
	if applied {
		tr.Applied = true
		return tr, nil
	}
	tr.To = ""
	// The row moved on. If it was cancelled under this same claim, the cancellation wins.
	cur, err := a.Store.GetTask(ctx, task.ID)
	if errors.Is(err, store.ErrNotFound) {
		return tr, nil
	}
	if err != nil {
		return tr, err
	}
	tr.Current = cur.State
	if o.Kind != Lost && o.Kind != TimedOut && cur.State == store.StateCancelling && sameClaim(task, cur) {
		tr.CancelWon = true
		return a.finalizeCancel(ctx, cur, tr)
	}
	return tr, nil
}

// unstorable is the transition that replaces one whose write PostgreSQL refused.
func unstorable(tr Transition, refused error) Transition {
	tr.Refused = refused
	tr.To, tr.RetryDelay, tr.Stored = store.StateFailed, 0, Stored{}
	tr.ExceptionType, tr.NoRetry = ExcUnstorable, "PostgreSQL refused the outcome: storing it again cannot succeed"
	tr.ErrorMessage = fmt.Sprintf("The attempt ended (%s), but its outcome could not be stored: PostgreSQL refused it: %v",
		tr.Outcome, strings.TrimPrefix(refused.Error(), store.ErrInvalid.Error()+": "))
	return tr
}

func (a *Applier) finalizeCancel(ctx context.Context, task store.Task, tr Transition) (Transition, error) {
	applied, err := a.Store.FinalizeCancel(ctx, task.Guard())
	if err != nil {
		return tr, err
	}
	tr.Applied = applied
	if applied {
		tr.To = store.StateCancelled
	}
	return tr, nil
}

// sameClaim reports whether cur is still the claim a (same owner, job and start).
func sameClaim(a, cur store.Task) bool {
	return eqPtr(a.ClaimedByWorker, cur.ClaimedByWorker) && eqPtr(a.RayJobID, cur.RayJobID) &&
		((a.StartedAt == nil && cur.StartedAt == nil) || (a.StartedAt != nil && cur.StartedAt != nil && a.StartedAt.Equal(*cur.StartedAt)))
}

func eqPtr(a, b *string) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}
