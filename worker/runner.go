package worker

import (
	"context"
	"sync"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
)

// Runner executes task attempts for the worker loop. Every execution mode is a Runner: the
// process runner (--sync: a subprocess per task), the Ray Job runner (HTTP submission with
// the submission id the claim wrote to ray_job_id), and later a pool of long-lived Python
// executors or a Ray Core driver. The loop never knows which one it drives.
//
// The contract:
//
//   - An execution is identified by its task row (store.Task as claimed or adopted). The loop
//     has at most one execution per task id at a time and never more than Config.Concurrency.
//   - Start begins an attempt and returns promptly; the work continues in the background. If
//     it returns an error nothing is running: a *lifecycle.FailureError says exactly how to
//     record it (a malformed row is a permanent failure), any other error is recorded as
//     RayJobFailed under the retry policy.
//   - Poll is the batch status query for many executions (one Status per task, same order).
//     The loop calls it when Events fires, every Capabilities.PollInterval, and at least every
//     second while an outcome is waiting to be written. Done is reported again on every Poll
//     until Forget, so an outcome is never lost when the database is briefly unreachable.
//     A runner that can adopt must answer Poll for executions it did not start.
//   - Events, when not nil, wakes the loop as soon as some execution may have changed (a
//     process exited) so completions are recorded without polling latency. Sends must not
//     block: a channel with a buffer of 1, dropping when full, is enough.
//   - Cancel asks an execution to stop (kill the process group, stop the Ray job) and returns
//     once that was requested. After Cancel, Poll reports Done only once the execution is
//     confirmed stopped — the process group and everything it started are gone (package
//     procgroup gives that), the Ray job is in a terminal state — with a Cancelled outcome,
//     or with the outcome the execution reached first. Until then it reports Running (or
//     Unknown while it cannot tell). The loop records a timed-out, cancelled, lost or
//     handed-back attempt only on that Done, and keeps the row RUNNING (heartbeated) until
//     then, so nothing — a retry, an operator's requeue — can start the task again while the
//     first run may still be alive. A runner that reports Done early breaks that guarantee.
//     Cancelling an unknown or finished execution is not an error. The loop uses it for
//     CANCELLING rows, timeouts, rows that moved on, and at shutdown.
//   - Unknown must be temporary. The loop never gives up on an execution it tracks: while
//     Poll says Unknown the row is not heartbeated (it shows as stuck) but neither marked
//     LOST nor stopped by its owner; when the runner knows again the row is heartbeated or
//     ended. A runner that can never learn an execution's fate (its driver and handles are
//     gone) reports Done with a Failed outcome (ExceptionType lifecycle.ExcTaskLost).
//   - Output returns at most max bytes from the end of an execution's output or logs.
//   - Forget drops what the runner holds for a task after the loop recorded its outcome (or
//     gave it up); the runner must still make sure anything it started stops eventually.
//   - Close is called last, after the loop has handed back (or, for a Detached runner, left
//     for adoption) whatever was unfinished. It releases the runner's resources; a runner
//     that is not Detached stops anything still running, a Detached one leaves its jobs be.
//
// Capabilities tell the loop what the runner needs; they are read once at start.
//
// Two optional interfaces extend the contract: a Runner that is also a prometheus.Collector
// has its metrics served on the worker's /metrics, and one that implements ReadinessReporter
// can hold the loop's claims while its backend cannot take work.
type Runner interface {
	Capabilities() Capabilities
	Start(ctx context.Context, task store.Task) error
	Poll(ctx context.Context, tasks []store.Task) ([]Status, error)
	Events() <-chan struct{}
	Cancel(ctx context.Context, task store.Task) error
	Output(ctx context.Context, task store.Task, max int) ([]byte, error)
	Forget(task store.Task)
	Close(ctx context.Context) error
}

// Wake is the channel a runner's Events returns, as the contract above asks: a buffer of one,
// so Notify never blocks and wake-ups that come while the loop is busy fold into one.
type Wake chan struct{}

// NewWake returns a Wake.
func NewWake() Wake { return make(Wake, 1) }

// Notify wakes the receiver, unless a wake-up is already pending.
func (w Wake) Notify() {
	select {
	case w <- struct{}{}:
	default:
	}
}

// WaitClosed waits until a runner's goroutines, counted by wg, have ended, or until ctx ends,
// as Close must; it reports whether they all ended.
func WaitClosed(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// ReadinessReporter is an optional Runner interface. While Ready returns an error (the Ray Jobs
// API is unreachable, or refuses the worker's credentials), the loop claims nothing, so tasks
// stay QUEUED for workers that can run them instead of being claimed into a runner that
// cannot start them, and /readyz answers 503 with the error. Executions already in flight are
// still polled, cancelled and finished. Ready is called from the loop and from HTTP handlers
// concurrently and must not block.
type ReadinessReporter interface {
	Ready() error
}

// Capabilities describe a Runner to the loop.
type Capabilities struct {
	// Name is the mode for logs and metrics ("process", "rayjob", ...).
	Name string
	// AssignJobIDs: the claim writes a deterministic Ray submission id into ray_job_id
	// (store.ClaimParams.AssignJobIDs) before Start, so a crash between claim and submission
	// can neither lose the job nor run it twice. Without it ray_job_id is cleared at claim.
	AssignJobIDs bool
	// RayAddress, when set, is written to ray_address at claim (django-ray records the
	// cluster address a job went to).
	RayAddress string
	// AdoptPrefix, when set, makes the loop look for RUNNING rows of dead workers whose
	// ray_job_id starts with it (django-ray 0.2.0 uses "raysubmit_"), Poll them, adopt the
	// ones still running (store.Adopt) and finish the ones that ended, like its own.
	AdoptPrefix string
	// PollInterval is how often the loop polls in-flight executions when no event arrives.
	// Zero means events only (plus the one-second retry while an outcome is unwritten).
	PollInterval time.Duration
	// Executors is how many Python executors the runner keeps (the pool's size; 1 for the Ray
	// Core driver; 0 for none). The lease row shows it with Name (store.LeaseHostname).
	Executors int
	// Detached: executions keep running without this process (a Ray job does), so on
	// shutdown the loop leaves unfinished ones RUNNING for another worker to adopt instead of
	// stopping them and handing their rows back to the queue.
	Detached bool
}

// Phase is where an execution is.
type Phase int

// The phases Poll reports.
const (
	// Unknown: the runner cannot tell (not started by it, status unavailable). The loop
	// keeps waiting but stops heartbeating the task, so a task that stays unknown shows as
	// stuck; its owner does not mark it LOST (it would be retried while its work may still
	// run). Other workers recover it only if its owner dies.
	Unknown Phase = iota
	// Running: pending or running.
	Running
	// Done: the attempt ended; Status.Outcome says how.
	Done
)

func (p Phase) String() string {
	switch p {
	case Running:
		return "running"
	case Done:
		return "done"
	}
	return "unknown"
}

// Status is one execution's state as Poll sees it.
type Status struct {
	Phase   Phase
	Outcome lifecycle.Outcome // when Done
	Message string            // when Unknown: why (for logs)
	// RayJobID, when set (Running or Done), is the id the execution got from its backend
	// after Start (a Ray Core task: "<ray job id>:<task ref>"). The loop records it in the
	// row's ray_job_id once, guarded by the claim, before it records an outcome.
	RayJobID string
}
