package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rayctl/rayctl/store"
)

// DefaultSampleSize is how many selected rows a plan shows in full.
const DefaultSampleSize = 10

// ErrInterrupted: the context ended between or during batches. The Outcome says what was
// done before.
var ErrInterrupted = errors.New("interrupted")

// TaskSummary is a task without its payloads (args, kwargs, result, traceback): what lists
// and samples show. Field names are the column names.
type TaskSummary struct {
	ID              int64           `json:"id"`
	TaskID          string          `json:"task_id"`
	State           store.TaskState `json:"state"`
	QueueName       string          `json:"queue_name"`
	CallablePath    string          `json:"callable_path"`
	AttemptNumber   int32           `json:"attempt_number"`
	CreatedAt       time.Time       `json:"created_at"`
	RunAfter        *time.Time      `json:"run_after"`
	StartedAt       *time.Time      `json:"started_at"`
	FinishedAt      *time.Time      `json:"finished_at"`
	LastHeartbeatAt *time.Time      `json:"last_heartbeat_at"`
	ClaimedByWorker *string         `json:"claimed_by_worker"`
	RayJobID        *string         `json:"ray_job_id"`
	ErrorMessage    *string         `json:"error_message"`
}

// Summarize drops a task's payloads.
func Summarize(t store.Task) TaskSummary {
	return TaskSummary{ID: t.ID, TaskID: t.TaskID, State: t.State, QueueName: t.QueueName, CallablePath: t.CallablePath,
		AttemptNumber: t.AttemptNumber, CreatedAt: t.CreatedAt, RunAfter: t.RunAfter, StartedAt: t.StartedAt,
		FinishedAt: t.FinishedAt, LastHeartbeatAt: t.LastHeartbeatAt, ClaimedByWorker: t.ClaimedByWorker,
		RayJobID: t.RayJobID, ErrorMessage: t.ErrorMessage}
}

// LastActivity is when the task last did something: finished, else started, else created.
func (t TaskSummary) LastActivity() time.Time {
	switch {
	case t.FinishedAt != nil:
		return *t.FinishedAt
	case t.StartedAt != nil:
		return *t.StartedAt
	}
	return t.CreatedAt
}

// Plan is what a bulk action will do, read before anything is written.
type Plan struct {
	Action    Action
	Selection Selection // normalized
	PlannedAt time.Time // the database clock
	// Matched counts every row the filter matches, ignoring the limit.
	Matched int64
	// Targets are the rows the action will try, at most Selection.Limit, lowest id first,
	// with the state each was seen in. Each row is changed only if it is still in that state.
	Targets []store.TaskRef
	// Sample is the first targets in full, for people to check.
	Sample []TaskSummary
	// MissingIDs are named ids (Selection.IDs) with no row; Unmatched are named ids whose row
	// does not match the rest of the selection (most often: another state).
	MissingIDs []int64
	Unmatched  []store.TaskRef
	// Audited says the audit tables exist, so Apply will record the action.
	Audited bool
	// RayJobs are the targets whose rows name a Ray Jobs submission that may still run and
	// that the action moves away from it: every requeue target, and the CANCELLING rows a
	// cancel finalizes. With ApplyOptions.Ray each job is confirmed ended (stopped first)
	// before its row changes; without it nobody checks them, and the caller must say so.
	RayJobs []JobRef
}

// Remaining is how many matching rows the limit left out.
func (p Plan) Remaining() int64 { return max(0, p.Matched-int64(len(p.Targets))) }

// PlanJSON is the stable JSON form of a Plan.
type PlanJSON struct {
	Action     Action           `json:"action"`
	Selection  SelectionJSON    `json:"selection"`
	PlannedAt  time.Time        `json:"planned_at"`
	Matched    int64            `json:"matched"`
	Selected   int              `json:"selected"`
	Remaining  int64            `json:"remaining"`
	IDs        []int64          `json:"ids"`
	Sample     []TaskSummary    `json:"sample"`
	MissingIDs []int64          `json:"missing_ids"`
	Unmatched  []store.TaskRef  `json:"unmatched"`
	Audited    bool             `json:"audited"`
	ByState    map[string]int64 `json:"selected_by_state"`
	RayJobs    []JobRef         `json:"ray_jobs"`
}

// MarshalJSON writes PlanJSON.
func (p Plan) MarshalJSON() ([]byte, error) {
	j := PlanJSON{Action: p.Action, Selection: p.Selection.JSON(), PlannedAt: p.PlannedAt, Matched: p.Matched,
		Selected: len(p.Targets), Remaining: p.Remaining(), IDs: make([]int64, len(p.Targets)), Sample: nonNil(p.Sample),
		MissingIDs: nonNil(p.MissingIDs), Unmatched: nonNil(p.Unmatched), Audited: p.Audited, ByState: map[string]int64{},
		RayJobs: nonNil(p.RayJobs)}
	for i, t := range p.Targets {
		j.IDs[i] = t.ID
		j.ByState[string(t.State)]++
	}
	return json.Marshal(j)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// PlanOptions tune PlanAction.
type PlanOptions struct {
	SampleSize int // default DefaultSampleSize
}

// PlanAction normalizes the selection for action a and reads what the action would change.
// It writes nothing. A selection error wraps ErrBadSelection.
func PlanAction(ctx context.Context, s *store.Store, a Action, sel Selection, opts PlanOptions) (Plan, error) {
	sel, err := sel.Normalize(a)
	if err != nil {
		return Plan{}, err
	}
	if opts.SampleSize <= 0 {
		opts.SampleSize = DefaultSampleSize
	}
	p := Plan{Action: a, Selection: sel}
	if p.PlannedAt, err = s.Now(ctx); err != nil {
		return p, err
	}
	if len(sel.IDs) > 0 {
		// Every named id that matches, so the ones that do not can be reported.
		all, err := s.SelectRefs(ctx, sel.refQuery(a, 0))
		if err != nil {
			return p, err
		}
		p.Matched = int64(len(all))
		p.Targets = all[:min(len(all), sel.Limit)]
		matched := make(map[int64]bool, len(all))
		for _, r := range all {
			matched[r.ID] = true
		}
		var rest []int64
		for _, id := range sel.IDs {
			if !matched[id] {
				rest = append(rest, id)
			}
		}
		found, err := s.TaskStates(ctx, rest)
		if err != nil {
			return p, err
		}
		p.Unmatched = found
		exists := make(map[int64]bool, len(found))
		for _, r := range found {
			exists[r.ID] = true
		}
		for _, id := range rest {
			if !exists[id] {
				p.MissingIDs = append(p.MissingIDs, id)
			}
		}
	} else {
		if p.Matched, err = s.CountRefs(ctx, sel.refQuery(a, 0)); err != nil {
			return p, err
		}
		if p.Targets, err = s.SelectRefs(ctx, sel.refQuery(a, sel.Limit)); err != nil {
			return p, err
		}
		// rows inserted between the count and the select
		p.Matched = max(p.Matched, int64(len(p.Targets)))
	}
	if len(p.Targets) > 0 {
		sample := make([]int64, 0, opts.SampleSize)
		for _, t := range p.Targets[:min(len(p.Targets), opts.SampleSize)] {
			sample = append(sample, t.ID)
		}
		tasks, err := s.TasksByIDs(ctx, sample)
		if err != nil {
			return p, err
		}
		for _, t := range tasks {
			p.Sample = append(p.Sample, Summarize(t))
		}
	}
	if p.RayJobs, err = movedJobs(ctx, s, a, p.Targets); err != nil {
		return p, err
	}
	if p.Audited, err = s.AuditAvailable(ctx); err != nil {
		return p, err
	}
	return p, nil
}

// movedJobs are the Ray jobs of the targets that action a moves away from their job (see
// Plan.RayJobs), in target order.
func movedJobs(ctx context.Context, s *store.Store, a Action, targets []store.TaskRef) ([]JobRef, error) {
	var ids []int64
	for _, t := range targets {
		if a == ActionRequeue || t.State == store.StateCancelling {
			ids = append(ids, t.ID)
		}
	}
	jobs, err := s.RayJobIDs(ctx, ids, store.RaySubmissionPrefix)
	if err != nil {
		return nil, err
	}
	var out []JobRef
	for _, id := range ids {
		if job, ok := jobs[id]; ok {
			out = append(out, JobRef{ID: id, RayJobID: job})
		}
	}
	return out, nil
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	Batch int // rows per transaction; 0 = DefaultBatch, at most MaxBatch
	// ResetAttempts (requeue) sets attempt_number back to 1, django-ray's value for a new
	// task, so the task gets MAX_TASK_ATTEMPTS tries again. Without it the count is kept, as
	// the runbook's manual action does.
	ResetAttempts bool
	Reason        string // recorded in the audit trail; needs the audit tables
	Actor         string // who ran it (user@host), for the audit trail
	Hooks         Hooks
	// Ray, when set, is asked to end the jobs of Plan.RayJobs before their rows change
	// (EndJobs: stop, then wait for a terminal state): a requeued or finalized row must not
	// have its old job run on beside whatever runs next. A row whose job cannot be confirmed
	// ended is left as it is (Outcome.NotEnded). Nil leaves the jobs unchecked.
	Ray RayJobs
	// EndWait bounds the wait for each stopped job (0: DefaultEndWait).
	EndWait time.Duration
	// RowsPerSecond, when above 0, paces the batches so that on average no more than this
	// many rows are tried per second (a long change spread out, so the workers' claims and
	// the database keep up); the wait comes before a batch, and an interrupt during it ends
	// the run like one between batches. 0: as fast as the batches go.
	RowsPerSecond float64
	// Now and Sleep are the clock and the wait the pacing uses (nil: the real ones); tests
	// replace them.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// sleep waits d or until ctx ends (its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Hooks let callers watch or (in tests) interfere with Apply between transactions.
type Hooks struct {
	// BeforeBatch runs before batch n's transaction begins, with the ids it will try. An
	// error stops Apply before that batch.
	BeforeBatch func(ctx context.Context, n int, ids []int64) error
	// AfterBatch runs after batch n committed.
	AfterBatch func(ctx context.Context, b BatchStat)
	// BeforeJob runs before ApplyReconcile acts on an entry. An error stops it there.
	BeforeJob func(ctx context.Context, e JobEntry) error
}

// BatchStat is one committed batch.
type BatchStat struct {
	N        int           // 0-based
	Size     int           // rows tried
	Changed  int           // rows changed
	Duration time.Duration // from BEGIN to COMMIT
}

// Outcome is what Apply did.
type Outcome struct {
	Changed  int64                     // rows changed
	Skipped  int64                     // rows that left the state they were selected in before their batch ran
	ToStates map[store.TaskState]int64 // changed rows by the state they were moved to
	// ChangedIDs and SkippedIDs list the rows, in id order.
	ChangedIDs []int64
	SkippedIDs []int64
	// UnstoppedJobs are the Ray job ids of the rows cancel changed (RUNNING -> CANCELLING,
	// orphaned CANCELLING -> CANCELLED): recovery does not stop Ray jobs (yet), and a
	// django-ray 0.2.0 worker does not stop them when it finalizes, so these may still run.
	UnstoppedJobs []string
	// Jobs pairs those Ray jobs with their tasks, in the order changed (for StopJobs).
	Jobs []JobRef
	// Ended are the jobs of Plan.RayJobs confirmed over before their rows changed (with
	// ApplyOptions.Ray); NotEnded those that could not be, whose rows were left unchanged
	// (counted as skipped).
	Ended        []StopResult
	NotEnded     []StopResult
	Batches      int
	LongestBatch time.Duration // the longest transaction
	Elapsed      time.Duration
	AuditID      *int64 // the rayctl_audit entry; nil when the audit tables are missing
	Interrupted  bool   // the context ended before every batch ran
}

// RowsPerSecond is the rate of rows tried.
func (o Outcome) RowsPerSecond() float64 {
	if o.Elapsed <= 0 {
		return 0
	}
	return float64(o.Changed+o.Skipped) / o.Elapsed.Seconds()
}

// OutcomeJSON is the stable JSON form of an Outcome.
type OutcomeJSON struct {
	Changed             int64            `json:"changed"`
	Skipped             int64            `json:"skipped"`
	ToStates            map[string]int64 `json:"to_states"`
	ChangedIDs          []int64          `json:"changed_ids"`
	SkippedIDs          []int64          `json:"skipped_ids"`
	UnstoppedJobs       []string         `json:"unstopped_ray_jobs"`
	Jobs                []JobRef         `json:"ray_jobs"`
	Ended               []StopResult     `json:"ray_jobs_ended"`
	NotEnded            []StopResult     `json:"ray_jobs_not_ended"`
	Batches             int              `json:"batches"`
	LongestBatchSeconds float64          `json:"longest_batch_seconds"`
	ElapsedSeconds      float64          `json:"elapsed_seconds"`
	RowsPerSecond       float64          `json:"rows_per_second"`
	AuditID             *int64           `json:"audit_id"`
	Interrupted         bool             `json:"interrupted"`
}

// MarshalJSON writes OutcomeJSON.
func (o Outcome) MarshalJSON() ([]byte, error) {
	j := OutcomeJSON{Changed: o.Changed, Skipped: o.Skipped, ToStates: map[string]int64{}, ChangedIDs: nonNil(o.ChangedIDs),
		SkippedIDs: nonNil(o.SkippedIDs), UnstoppedJobs: nonNil(o.UnstoppedJobs), Jobs: nonNil(o.Jobs),
		Ended: nonNil(o.Ended), NotEnded: nonNil(o.NotEnded), Batches: o.Batches,
		LongestBatchSeconds: o.LongestBatch.Seconds(), ElapsedSeconds: o.Elapsed.Seconds(), RowsPerSecond: o.RowsPerSecond(),
		AuditID: o.AuditID, Interrupted: o.Interrupted}
	for st, n := range o.ToStates {
		j.ToStates[string(st)] = n
	}
	return json.Marshal(j)
}

// Apply carries out a plan in transactions of opts.Batch rows. Each row changes only if it is
// still in the state the plan saw (and, for CANCELLING rows, its owner is still not live);
// the rest are skipped and counted. When the audit tables exist, the action and every
// changed row are recorded (the rows in the same transaction as their change). With a
// Reason but no audit tables it refuses before writing anything.
//
// On an error or interruption the Outcome reports what committed before it.
func Apply(ctx context.Context, s *store.Store, p Plan, opts ApplyOptions) (Outcome, error) {
	out := Outcome{ToStates: map[store.TaskState]int64{}}
	switch {
	case opts.Batch == 0:
		opts.Batch = DefaultBatch
	case opts.Batch < 0 || opts.Batch > MaxBatch:
		return out, badf("invalid batch size %d (want 1..%d)", opts.Batch, MaxBatch)
	}
	if opts.RowsPerSecond < 0 {
		return out, badf("invalid rate %g rows/s (want more than 0, or 0 for no limit)", opts.RowsPerSecond)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if _, _, err := p.Action.check(); err != nil {
		return out, err
	}
	if len(p.Targets) == 0 {
		return out, nil
	}
	start := time.Now()
	var reason *string
	if opts.Reason != "" {
		reason = &opts.Reason
	}
	sel, _ := json.Marshal(p.Selection.JSON())
	o, _ := json.Marshal(map[string]any{"batch": opts.Batch, "reset_attempts": opts.ResetAttempts, "rows_per_second": opts.RowsPerSecond})
	auditID, err := startAudit(ctx, s, store.AuditEntry{Action: string(p.Action), Actor: opts.Actor, Reason: reason,
		Selection: sel, Options: o, Matched: p.Matched, Selected: int64(len(p.Targets))})
	if err != nil {
		return out, err
	}
	out.AuditID = auditID

	runErr := applyBatches(ctx, s, p, opts, &out)
	out.Elapsed = time.Since(start)
	slices.Sort(out.ChangedIDs)
	slices.Sort(out.SkippedIDs)
	return out, finishAudit(ctx, s, out.AuditID, out.Changed, out.Skipped, runErr)
}

func applyBatches(ctx context.Context, s *store.Store, p Plan, opts ApplyOptions, out *Outcome) error {
	paced := opts.Now()
	batches := (len(p.Targets) + opts.Batch - 1) / opts.Batch
	for n, i := 0, 0; i < len(p.Targets); n, i = n+1, i+opts.Batch {
		chunk := p.Targets[i:min(i+opts.Batch, len(p.Targets))]
		if opts.RowsPerSecond > 0 && i > 0 {
			// the i rows tried so far may take no less than i/rps seconds
			due := paced.Add(time.Duration(float64(i) / opts.RowsPerSecond * float64(time.Second)))
			if d := due.Sub(opts.Now()); d > 0 {
				if err := opts.Sleep(ctx, d); err != nil && ctx.Err() != nil {
					out.Interrupted = true
					return fmt.Errorf("%w after %d of %d batches (while pacing to %g rows/s)", ErrInterrupted, n, batches, opts.RowsPerSecond)
				}
			}
		}
		if ctx.Err() != nil {
			out.Interrupted = true
			return fmt.Errorf("%w after %d of %d batches", ErrInterrupted, n, batches)
		}
		ids := make([]int64, len(chunk))
		for j, r := range chunk {
			ids[j] = r.ID
		}
		if h := opts.Hooks.BeforeBatch; h != nil {
			if err := h(ctx, n, ids); err != nil {
				return err
			}
		}
		ended := map[int64]bool{}
		if opts.Ray != nil {
			chunk, ended = endBatchJobs(ctx, p, chunk, opts, out)
		}
		t0 := time.Now()
		var changes []store.AuditChange
		var unstopped []JobRef
		err := s.InTx(ctx, func(ts *store.Store) error {
			var err error
			changes, unstopped, err = applyBatch(ctx, ts, p, chunk, opts, ended)
			if err != nil || out.AuditID == nil {
				return err
			}
			return ts.RecordAuditChanges(ctx, *out.AuditID, changes)
		})
		d := time.Since(t0)
		if err != nil {
			if ctx.Err() != nil {
				out.Interrupted = true
				return fmt.Errorf("%w during batch %d (rolled back)", ErrInterrupted, n+1)
			}
			return fmt.Errorf("batch %d: %w", n+1, err)
		}
		changed := make(map[int64]bool, len(changes))
		for _, c := range changes {
			changed[c.ID] = true
			out.ChangedIDs = append(out.ChangedIDs, c.ID)
			out.ToStates[c.To]++
		}
		for _, id := range ids {
			if !changed[id] {
				out.SkippedIDs = append(out.SkippedIDs, id)
			}
		}
		for _, j := range unstopped {
			out.UnstoppedJobs = append(out.UnstoppedJobs, j.RayJobID)
			out.Jobs = append(out.Jobs, j)
		}
		out.Changed += int64(len(changes))
		out.Skipped += int64(len(ids) - len(changes))
		out.Batches++
		out.LongestBatch = max(out.LongestBatch, d)
		if h := opts.Hooks.AfterBatch; h != nil {
			h(ctx, BatchStat{N: n, Size: len(ids), Changed: len(changes), Duration: d})
		}
	}
	return nil
}

// endBatchJobs confirms the Ray jobs of a batch's rows ended (EndJobs) before the batch's
// transaction; it returns the rows that may change (those without a job to end, and those
// whose job ended) and the ids whose jobs ended. Rows whose job did not are left out.
func endBatchJobs(ctx context.Context, p Plan, chunk []store.TaskRef, opts ApplyOptions, out *Outcome) ([]store.TaskRef, map[int64]bool) {
	inChunk := make(map[int64]bool, len(chunk))
	for _, r := range chunk {
		inChunk[r.ID] = true
	}
	var jobs []JobRef
	for _, j := range p.RayJobs {
		if inChunk[j.ID] {
			jobs = append(jobs, j)
		}
	}
	ended := map[int64]bool{}
	if len(jobs) == 0 {
		return chunk, ended
	}
	blocked := map[int64]bool{}
	for _, r := range EndJobs(ctx, opts.Ray, jobs, opts.EndWait, 0) {
		if r.Ended {
			ended[r.ID] = true
			out.Ended = append(out.Ended, r)
		} else {
			blocked[r.ID] = true
			out.NotEnded = append(out.NotEnded, r)
		}
	}
	kept := make([]store.TaskRef, 0, len(chunk))
	for _, r := range chunk {
		if !blocked[r.ID] {
			kept = append(kept, r)
		}
	}
	return kept, ended
}

// applyBatch changes one batch inside a transaction: rows grouped by the state they were
// seen in, each group conditional on still being in that state. ended names rows whose Ray
// job was confirmed over beforehand (not reported as unstopped).
func applyBatch(ctx context.Context, ts *store.Store, p Plan, chunk []store.TaskRef, opts ApplyOptions, ended map[int64]bool) ([]store.AuditChange, []JobRef, error) {
	groups := map[store.TaskState][]int64{}
	for _, r := range chunk {
		groups[r.State] = append(groups[r.State], r.ID)
	}
	var changes []store.AuditChange
	var unstopped []JobRef
	for _, st := range store.AllStates {
		ids := groups[st]
		if len(ids) == 0 {
			continue
		}
		switch {
		case p.Action == ActionRequeue:
			applied, err := ts.Requeue(ctx, ids, []store.TaskState{st}, store.RequeueOptions{ResetAttempts: opts.ResetAttempts})
			if err != nil {
				return nil, nil, err
			}
			for _, id := range applied {
				changes = append(changes, store.AuditChange{ID: id, From: st, To: store.StateQueued})
			}
		case p.Action == ActionCancel && st == store.StateCancelling:
			applied, err := ts.FinalizeOrphanedCancels(ctx, ids, p.Selection.LeaseTTL)
			if err != nil {
				return nil, nil, err
			}
			for _, f := range applied {
				changes = append(changes, store.AuditChange{ID: f.ID, From: st, To: store.StateCancelled})
				if f.RayJobID != nil && !ended[f.ID] {
					unstopped = append(unstopped, JobRef{ID: f.ID, RayJobID: *f.RayJobID})
				}
			}
		case p.Action == ActionCancel:
			applied, err := ts.RequestCancel(ctx, ids, []store.TaskState{st})
			if err != nil {
				return nil, nil, err
			}
			var running []int64
			for _, o := range applied {
				changes = append(changes, store.AuditChange{ID: o.ID, From: st, To: o.State})
				if o.State == store.StateCancelling {
					running = append(running, o.ID)
				}
			}
			// the Ray jobs of what was RUNNING (read in the same transaction)
			tasks, err := ts.TasksByIDs(ctx, running)
			if err != nil {
				return nil, nil, err
			}
			for _, t := range tasks {
				if t.RayJobID != nil {
					unstopped = append(unstopped, JobRef{ID: t.ID, RayJobID: *t.RayJobID})
				}
			}
		}
	}
	return changes, unstopped, nil
}

func (a Action) check() ([]store.TaskState, []store.TaskState, error) {
	e, d := a.States()
	if e == nil {
		return nil, nil, badf("unknown action %q", a)
	}
	return e, d, nil
}
