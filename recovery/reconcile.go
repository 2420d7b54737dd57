package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/store"
)

// RayJobs is what reconciliation and cancel's stop need of the Ray Jobs API; *rayjobs.Client
// implements it.
type RayJobs interface {
	Version(ctx context.Context) (rayjobs.VersionInfo, error)
	Get(ctx context.Context, id string) (*rayjobs.JobDetails, error)
	List(ctx context.Context) ([]rayjobs.JobDetails, error)
	Logs(ctx context.Context, id string) (rayjobs.Logs, error)
	Stop(ctx context.Context, id string) (bool, error)
}

// ErrRayUnavailable wraps every reason Ray as a whole could not be asked (unreachable, a
// timeout, 5xx, a refused token, an untrusted certificate, an answer that is not Ray's).
// Reconciliation plans nothing and writes nothing then.
var ErrRayUnavailable = errors.New("cannot ask Ray")

// Reconciliation defaults.
const (
	DefaultReconcileLimit = 1000
	// DefaultReconcileGrace is how long after a job ended in Ray its row is left to a live
	// owner to record (django-ray 0.2.0 reconciles every 30 s).
	DefaultReconcileGrace = time.Minute
	// DefaultListThreshold: with this many rows or more, Ray's view comes from one list call
	// instead of one GET per job.
	DefaultListThreshold = 32
	// DefaultRayConcurrency bounds the GETs, log reads and stops in flight at once.
	DefaultRayConcurrency = 8
)

// JobClass is how a row with a Ray job compares with Ray's view of that job.
type JobClass string

// The classes, one per row.
const (
	// ClassConsistent: RUNNING here, PENDING or RUNNING in Ray, owner live. Counted.
	ClassConsistent JobClass = "consistent"
	// ClassFinished: RUNNING here, but the job ended in Ray (SUCCEEDED, FAILED, STOPPED).
	ClassFinished JobClass = "finished_in_ray"
	// ClassMissing: RUNNING here, unknown to Ray (404: never submitted, deleted, or a head
	// restart without GCS fault tolerance forgot it).
	ClassMissing JobClass = "missing_in_ray"
	// ClassOrphaned: RUNNING here, owner dead (no live lease), the job still PENDING or
	// RUNNING in Ray. rayctl is not a worker: a live worker adopts it.
	ClassOrphaned JobClass = "owner_dead"
	// ClassCancelRunning: CANCELLING here, the job still PENDING or RUNNING in Ray.
	ClassCancelRunning JobClass = "cancelling_job_running"
	// ClassCancelEnded: CANCELLING here, the job ended in Ray or is unknown to it.
	ClassCancelEnded JobClass = "cancelling_job_ended"
	// ClassUnknown: Ray could not tell (a status it does not define, an error for this job,
	// an unreadable log). Left alone, as a worker does.
	ClassUnknown JobClass = "unknown"
	// ClassOtherCluster: the row's ray_address names another cluster than the one asked.
	ClassOtherCluster JobClass = "other_cluster"
)

// JobClasses lists the classes in report order.
var JobClasses = []JobClass{ClassFinished, ClassMissing, ClassOrphaned, ClassCancelRunning, ClassCancelEnded,
	ClassUnknown, ClassOtherCluster, ClassConsistent}

// JobAction is what applying a plan does to one row.
type JobAction string

// The actions.
const (
	ActNone JobAction = "none"
	// ActRecord records the attempt's end as a worker does (lifecycle.Applier): SUCCEEDED
	// with the result, QUEUED for a retry, FAILED, or CANCELLED for a STOPPED job.
	ActRecord JobAction = "record"
	// ActMarkLost marks the row LOST (or straight back to QUEUED under the TaskLost retry
	// policy), as a worker's stuck sweep does.
	ActMarkLost JobAction = "mark_lost"
	// ActStop asks Ray to stop the job; the live owner finalizes the row.
	ActStop JobAction = "stop"
	// ActStopFinalize asks Ray to stop the job, then finalizes the row CANCELLED (its owner is
	// dead).
	ActStopFinalize JobAction = "stop_finalize"
	// ActFinalize finalizes the CANCELLING row CANCELLED (its job ended; its owner is dead).
	ActFinalize JobAction = "finalize"
)

// ReconcileOptions tune PlanReconcile. Zero values get the defaults noted.
type ReconcileOptions struct {
	// Address is the Ray Jobs API asked (for the plan, and to tell rows of other clusters).
	Address string
	// Limit is how many rows are compared, oldest activity first (DefaultReconcileLimit, at
	// most MaxLimit).
	Limit int
	// LeaseTTL is WORKER_LEASE_SECONDS (DefaultLeaseTTL): an owner without a heartbeat for
	// this long is dead. A row missing in Ray is marked LOST only when its owner is dead and
	// it has had no heartbeat for this long either.
	LeaseTTL time.Duration
	// Grace (DefaultReconcileGrace): a job that ended less than this ago is left to its live
	// owner to record; negative means none.
	Grace time.Duration
	// AllAddresses compares every row, whatever cluster its ray_address names.
	AllAddresses bool
	// Policy and Results must be the workers' (MAX_TASK_ATTEMPTS, RETRY_BACKOFF_SECONDS,
	// RETRY_EXCEPTION_DENYLIST; MAX_RESULT_SIZE_BYTES, RESULT_STORAGE_*): applying records
	// outcomes exactly as a worker with these settings would. A zero Policy is
	// lifecycle.DefaultPolicy; a zero Results.MaxInline is lifecycle.DefaultMaxInline.
	Policy  lifecycle.Policy
	Results lifecycle.Results
	// ListThreshold: with this many rows or more, one list call gives Ray's view (jobs absent
	// from it are confirmed with a GET); below it, one GET per job. 0 means
	// DefaultListThreshold; negative means never list.
	ListThreshold int
	// Concurrency bounds Ray requests in flight (DefaultRayConcurrency).
	Concurrency int
	// Clock is this host's clock (time.Now), compared with Ray's job end times.
	Clock func() time.Time
}

func (o *ReconcileOptions) normalize() error {
	switch {
	case o.Limit == 0:
		o.Limit = DefaultReconcileLimit
	case o.Limit < 0 || o.Limit > MaxLimit:
		return badf("invalid limit %d (want 1..%d)", o.Limit, MaxLimit)
	}
	switch {
	case o.LeaseTTL == 0:
		o.LeaseTTL = DefaultLeaseTTL
	case o.LeaseTTL < 0:
		return badf("invalid lease TTL %s (want a positive duration)", o.LeaseTTL)
	}
	switch {
	case o.Grace == 0:
		o.Grace = DefaultReconcileGrace
	case o.Grace < 0:
		o.Grace = 0
	}
	if o.Policy.MaxAttempts == 0 {
		d := lifecycle.DefaultPolicy()
		o.Policy.MaxAttempts = d.MaxAttempts
		if o.Policy.Backoff == 0 {
			o.Policy.Backoff = d.Backoff
		}
	}
	if o.Policy.MaxAttempts < 0 || o.Policy.Backoff < 0 {
		return badf("invalid retry policy (max attempts %d, backoff %s)", o.Policy.MaxAttempts, o.Policy.Backoff)
	}
	if o.Results.MaxInline == 0 {
		o.Results.MaxInline = lifecycle.DefaultMaxInline
	}
	if o.ListThreshold == 0 {
		o.ListThreshold = DefaultListThreshold
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultRayConcurrency
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return nil
}

func (o ReconcileOptions) applier(s *store.Store) *lifecycle.Applier {
	// rayctl owns no row: WorkerID "" matches nobody, so MarkLost needs the owner dead. The
	// stuck threshold is the lease TTL: Ray has said the job does not exist.
	return &lifecycle.Applier{Store: s, Policy: o.Policy, Results: o.Results, LeaseTTL: o.LeaseTTL, StuckAfter: o.LeaseTTL}
}

// JobEntry is one row compared with Ray.
type JobEntry struct {
	Task  store.Task        // the row as read: every write is conditional on it (store.Guard)
	Owner store.OwnerStatus // owner_live, or why the owner cannot be relied on
	Idle  time.Duration     // since the row's last heartbeat (else start), database clock
	// Ray's view: the job's status (MISSING for a 404), message, end time.
	RayStatus  string
	RayMessage string
	RayEndTime time.Time
	Class      JobClass
	Action     JobAction
	// To is the state the action writes (empty for none and stop); RetryDelay, NoRetry and
	// ExceptionType say why, for failures.
	To            store.TaskState
	RetryDelay    time.Duration
	NoRetry       string
	ExceptionType string
	// Detail says what was found and why the action (or none) in one line.
	Detail string
}

// RayMissing is JobEntry.RayStatus for a job Ray does not know (404).
const RayMissing = "MISSING"

// JobEntryJSON is the stable JSON form of a JobEntry (-o json / jsonl).
type JobEntryJSON struct {
	ID                int64           `json:"id"`
	TaskID            string          `json:"task_id"`
	CallablePath      string          `json:"callable_path"`
	QueueName         string          `json:"queue_name"`
	State             store.TaskState `json:"state"`
	AttemptNumber     int32           `json:"attempt_number"`
	ClaimedByWorker   *string         `json:"claimed_by_worker"`
	Owner             string          `json:"owner"`
	IdleSeconds       float64         `json:"idle_seconds"`
	RayJobID          string          `json:"ray_job_id"`
	RayAddress        *string         `json:"ray_address"`
	RayStatus         string          `json:"ray_status"`
	RayMessage        string          `json:"ray_message"`
	RayEndTime        *time.Time      `json:"ray_end_time"`
	Class             JobClass        `json:"class"`
	Action            JobAction       `json:"action"`
	ToState           store.TaskState `json:"to_state"`
	RetryDelaySeconds float64         `json:"retry_delay_seconds"`
	ExceptionType     string          `json:"exception_type"`
	Detail            string          `json:"detail"`
}

// JSON returns the entry's stable JSON form.
func (e JobEntry) JSON() JobEntryJSON {
	j := JobEntryJSON{ID: e.Task.ID, TaskID: e.Task.TaskID, CallablePath: e.Task.CallablePath, QueueName: e.Task.QueueName,
		State: e.Task.State, AttemptNumber: e.Task.AttemptNumber, ClaimedByWorker: e.Task.ClaimedByWorker, Owner: string(e.Owner),
		IdleSeconds: e.Idle.Seconds(), RayJobID: e.JobID(), RayAddress: e.Task.RayAddress, RayStatus: e.RayStatus,
		RayMessage: firstLine(e.RayMessage, 300), Class: e.Class, Action: e.Action, ToState: e.To,
		RetryDelaySeconds: e.RetryDelay.Seconds(), ExceptionType: e.ExceptionType, Detail: e.Detail}
	if !e.RayEndTime.IsZero() {
		t := e.RayEndTime
		j.RayEndTime = &t
	}
	return j
}

// MarshalJSON writes JobEntryJSON.
func (e JobEntry) MarshalJSON() ([]byte, error) { return json.Marshal(e.JSON()) }

// JobID is the row's ray_job_id.
func (e JobEntry) JobID() string {
	if e.Task.RayJobID == nil {
		return ""
	}
	return *e.Task.RayJobID
}

// ReconcilePlan is Ray's view of the RUNNING and CANCELLING rows that have a Ray job, each
// row classified with the action applying the plan takes. Making it writes nothing.
type ReconcilePlan struct {
	Options    ReconcileOptions // normalized
	RayVersion string           // Ray's version ("" if it did not say)
	PlannedAt  time.Time        // the database clock
	// Candidates counts every RUNNING or CANCELLING row with a Ray job; Entries are the
	// Options.Limit of them with the oldest activity.
	Candidates int64
	Entries    []JobEntry
	// RayView is "list" (one list call) or "get" (one GET per job), and RayRequests how
	// many requests the plan sent to Ray.
	RayView     string
	RayRequests int
	LiveWorkers int64 // workers holding a live lease
	Audited     bool  // the audit tables exist
}

// Remaining is how many candidate rows the limit left out.
func (p ReconcilePlan) Remaining() int64 { return max(0, p.Candidates-int64(len(p.Entries))) }

// Actionable returns the entries whose action is not none, lowest id first.
func (p ReconcilePlan) Actionable() []JobEntry {
	var out []JobEntry
	for _, e := range p.Entries {
		if e.Action != ActNone {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b JobEntry) int { return int(a.Task.ID - b.Task.ID) })
	return out
}

// Counts returns how many entries fall in each class.
func (p ReconcilePlan) Counts() map[JobClass]int {
	m := map[JobClass]int{}
	for _, e := range p.Entries {
		m[e.Class]++
	}
	return m
}

// ReconcilePlanJSON is the stable JSON form of a plan.
type ReconcilePlanJSON struct {
	Address         string           `json:"ray_address"`
	RayVersion      string           `json:"ray_version"`
	PlannedAt       time.Time        `json:"planned_at"`
	Candidates      int64            `json:"candidates"`
	Examined        int              `json:"examined"`
	Remaining       int64            `json:"remaining"`
	Limit           int              `json:"limit"`
	LeaseTTLSeconds float64          `json:"lease_ttl_seconds"`
	GraceSeconds    float64          `json:"grace_seconds"`
	RayView         string           `json:"ray_view"`
	RayRequests     int              `json:"ray_requests"`
	LiveWorkers     int64            `json:"live_workers"`
	Audited         bool             `json:"audited"`
	ByClass         map[string]int   `json:"by_class"`
	ByAction        map[string]int   `json:"by_action"`
	Entries         []JobEntryJSON   `json:"entries"`
	Policy          ReconcilePolicyJ `json:"policy"`
}

// ReconcilePolicyJ is the retry policy and result settings a plan was made with.
type ReconcilePolicyJ struct {
	MaxTaskAttempts     int      `json:"max_task_attempts"`
	RetryBackoffSeconds float64  `json:"retry_backoff_seconds"`
	Denylist            []string `json:"retry_exception_denylist"`
	MaxResultSizeBytes  int64    `json:"max_result_size_bytes"`
	ResultBackend       string   `json:"result_storage_backend"`
}

// MarshalJSON writes ReconcilePlanJSON.
func (p ReconcilePlan) MarshalJSON() ([]byte, error) {
	j := ReconcilePlanJSON{Address: p.Options.Address, RayVersion: p.RayVersion, PlannedAt: p.PlannedAt, Candidates: p.Candidates,
		Examined: len(p.Entries), Remaining: p.Remaining(), Limit: p.Options.Limit, LeaseTTLSeconds: p.Options.LeaseTTL.Seconds(),
		GraceSeconds: p.Options.Grace.Seconds(), RayView: p.RayView, RayRequests: p.RayRequests, LiveWorkers: p.LiveWorkers,
		Audited: p.Audited, ByClass: map[string]int{}, ByAction: map[string]int{}, Entries: make([]JobEntryJSON, len(p.Entries)),
		Policy: ReconcilePolicyJ{MaxTaskAttempts: p.Options.Policy.MaxAttempts, RetryBackoffSeconds: p.Options.Policy.Backoff.Seconds(),
			Denylist: nonNil(p.Options.Policy.Denylist), MaxResultSizeBytes: p.Options.Results.MaxInline, ResultBackend: backendName(p.Options.Results)}}
	for i, e := range p.Entries {
		j.Entries[i] = e.JSON()
		j.ByClass[string(e.Class)]++
		j.ByAction[string(e.Action)]++
	}
	return json.Marshal(j)
}

func backendName(r lifecycle.Results) string {
	if r.Backend == nil {
		return "digest"
	}
	return r.Backend.Name()
}

// rayView is Ray's answer about one job: the job, or the error asking for it.
type rayView struct {
	job *rayjobs.JobDetails
	err error
}

// fatalRay reports whether a Ray error means Ray as a whole cannot be asked (rather than
// something about one job).
func fatalRay(err error) bool {
	return errors.Is(err, rayjobs.ErrUnavailable) || errors.Is(err, rayjobs.ErrUnauthorized) ||
		errors.Is(err, rayjobs.ErrCertificate) || errors.Is(err, rayjobs.ErrBadResponse)
}

func rayErr(addr string, err error) error {
	return fmt.Errorf("%w at %s: %w", ErrRayUnavailable, addr, err)
}

// PlanReconcile compares the RUNNING and CANCELLING rows that have a Ray job (at most
// opts.Limit, oldest activity first) with Ray's view of their jobs and classifies each. It
// writes nothing. Ray is asked for its version first, so an unreachable Ray, a refused token
// or an untrusted certificate is an error wrapping ErrRayUnavailable before anything else;
// so is Ray failing midway. A bad option wraps ErrBadSelection.
func PlanReconcile(ctx context.Context, s *store.Store, ray RayJobs, opts ReconcileOptions) (ReconcilePlan, error) {
	if err := opts.normalize(); err != nil {
		return ReconcilePlan{}, err
	}
	p := ReconcilePlan{Options: opts}
	v, err := ray.Version(ctx)
	p.RayRequests++
	switch {
	case err == nil:
		p.RayVersion = v.RayVersion
	case errors.Is(err, rayjobs.ErrNotFound): // Ray < 1.9 has no /api/version
	case ctx.Err() != nil:
		return p, ctx.Err()
	default:
		return p, rayErr(opts.Address, err)
	}
	rows, total, now, err := s.RayJobRows(ctx, opts.LeaseTTL, opts.Limit)
	if err != nil {
		return p, err
	}
	p.PlannedAt, p.Candidates = now, total
	if p.LiveWorkers, err = s.CountLiveLeases(ctx, opts.LeaseTTL); err != nil {
		return p, err
	}
	if p.Audited, err = s.AuditAvailable(ctx); err != nil {
		return p, err
	}
	views, err := p.askRay(ctx, ray, rows)
	if err != nil {
		return p, err
	}
	ap := opts.applier(s)
	hostNow := opts.Clock()
	var needLogs []int
	for _, r := range rows {
		e := classify(r, views[*r.Task.RayJobID], opts, hostNow, p.LiveWorkers)
		if e.Action == ActRecord && e.RayStatus == lifecycle.RaySucceeded {
			needLogs = append(needLogs, len(p.Entries)) // the result decides the transition
		} else if e.Action == ActRecord {
			o, _ := lifecycle.RayJobEnded(lifecycle.RayJob{Status: e.RayStatus, Message: e.RayMessage})
			predict(ap, &e, o)
		} else if e.Action == ActMarkLost {
			tr := ap.Predict(e.Task, lifecycle.Outcome{Kind: lifecycle.Lost})
			e.To, e.RetryDelay, e.NoRetry, e.ExceptionType = tr.To, tr.RetryDelay, tr.NoRetry, tr.ExceptionType
			if tr.To == store.StateQueued {
				e.Detail += fmt.Sprintf(", then retry (TaskLost) as attempt %d in %s", e.Task.AttemptNumber+1, tr.RetryDelay)
			} else {
				e.Detail += " (" + tr.NoRetry + ")"
			}
		}
		p.Entries = append(p.Entries, e)
	}
	// Read the logs of SUCCEEDED jobs: their last line says whether the task succeeded.
	var mu sync.Mutex
	var fatal error
	forEach(ctx, opts.Concurrency, needLogs, func(i int) {
		e := &p.Entries[i]
		o, err := jobOutcome(ctx, ray, e.JobID(), e.RayStatus, e.RayMessage)
		mu.Lock()
		defer mu.Unlock()
		p.RayRequests++
		switch {
		case err != nil && (errors.Is(err, rayjobs.ErrUnauthorized) || errors.Is(err, rayjobs.ErrCertificate)):
			fatal = err
		case err != nil:
			e.Class, e.Action, e.Detail = ClassUnknown, ActNone, "SUCCEEDED in Ray, but its log (the result) cannot be read: "+firstLine(err.Error(), 200)
		default:
			predict(ap, e, o)
		}
	})
	if ctx.Err() != nil {
		return p, ctx.Err()
	}
	if fatal != nil {
		return p, rayErr(opts.Address, fatal)
	}
	return p, nil
}

// askRay returns Ray's view of every row's job, by one list call or one GET per job.
func (p *ReconcilePlan) askRay(ctx context.Context, ray RayJobs, rows []store.JobRow) (map[string]rayView, error) {
	views := map[string]rayView{}
	var ids []string
	for _, r := range rows {
		id := *r.Task.RayJobID
		if _, dup := views[id]; !dup {
			views[id] = rayView{}
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		p.RayView = "none"
		return views, nil
	}
	toGet := ids
	p.RayView = "get"
	if p.Options.ListThreshold > 0 && len(ids) >= p.Options.ListThreshold {
		p.RayView = "list"
		jobs, err := ray.List(ctx)
		p.RayRequests++
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, rayErr(p.Options.Address, err)
		}
		byID := make(map[string]*rayjobs.JobDetails, len(jobs))
		for i := range jobs {
			if jobs[i].SubmissionID != "" {
				byID[jobs[i].SubmissionID] = &jobs[i]
			}
		}
		toGet = nil
		for _, id := range ids {
			if j, ok := byID[id]; ok {
				views[id] = rayView{job: j}
			} else {
				toGet = append(toGet, id) // confirm a job absent from the list with a GET
			}
		}
	}
	var mu sync.Mutex
	var fatal error
	forEach(ctx, p.Options.Concurrency, toGet, func(id string) {
		j, err := ray.Get(ctx, id)
		mu.Lock()
		defer mu.Unlock()
		p.RayRequests++
		if err != nil && fatalRay(err) {
			fatal = err
		}
		views[id] = rayView{job: j, err: err}
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if fatal != nil {
		return nil, rayErr(p.Options.Address, fatal)
	}
	return views, nil
}

// forEach runs f over items with at most n at once, and stops starting new ones when ctx
// ends.
func forEach[T any](ctx context.Context, n int, items []T, f func(T)) {
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(it)
		}()
	}
	wg.Wait()
}

// jobOutcome reads what a terminal job's log needs and returns its lifecycle Outcome.
func jobOutcome(ctx context.Context, ray RayJobs, id, status, message string) (lifecycle.Outcome, error) {
	rj := lifecycle.RayJob{ID: id, Status: status, Message: message}
	if lifecycle.NeedsLog(status) {
		logs, err := ray.Logs(ctx, id)
		if err != nil {
			return lifecycle.Outcome{}, err
		}
		rj.Log, rj.LogTruncated = []byte(logs.Text), logs.Truncated
	}
	o, ok := lifecycle.RayJobEnded(rj)
	if !ok {
		return o, fmt.Errorf("job %s is %s, not ended", id, status)
	}
	return o, nil
}

// predict fills the entry's target state from the transition the applier would make.
func predict(ap *lifecycle.Applier, e *JobEntry, o lifecycle.Outcome) {
	tr := ap.Predict(e.Task, o)
	e.To, e.RetryDelay, e.NoRetry, e.ExceptionType = tr.To, tr.RetryDelay, tr.NoRetry, tr.ExceptionType
	switch {
	case e.To == store.StateSucceeded:
		size := o.Result.Size()
		where := "inline"
		if !ap.Results.Inline(o.Result) {
			where = "as a " + backendName(ap.Results) + " reference"
		}
		e.Detail = fmt.Sprintf("SUCCEEDED in Ray: record the %d-byte result %s", size, where)
	case e.To == store.StateQueued:
		e.Detail = fmt.Sprintf("%s in Ray (%s): retry attempt %d in %s", e.RayStatus, failureDesc(tr), e.Task.AttemptNumber+1, tr.RetryDelay)
	case e.To == store.StateFailed:
		e.Detail = fmt.Sprintf("%s in Ray (%s): FAILED, %s", e.RayStatus, failureDesc(tr), tr.NoRetry)
	case e.To == store.StateCancelled:
		e.Detail = "STOPPED in Ray: record CANCELLED"
	}
}

func failureDesc(tr lifecycle.Transition) string {
	if tr.ExceptionType == "" {
		return firstLine(tr.ErrorMessage, 80)
	}
	return tr.ExceptionType + ": " + firstLine(tr.ErrorMessage, 80)
}

// classify compares one row with Ray's view of its job.
func classify(r store.JobRow, v rayView, opts ReconcileOptions, hostNow time.Time, liveWorkers int64) JobEntry {
	e := JobEntry{Task: r.Task, Owner: r.Owner, Idle: r.Idle, Action: ActNone}
	live := r.Owner == store.OwnerLive
	if !opts.AllAddresses && r.Task.RayAddress != nil && otherCluster(*r.Task.RayAddress, opts.Address) {
		e.Class = ClassOtherCluster
		e.Detail = fmt.Sprintf("submitted to %s, not %s: not compared (--all-addresses compares it)", *r.Task.RayAddress, opts.Address)
		return e
	}
	switch {
	case v.err != nil && errors.Is(v.err, rayjobs.ErrNotFound):
		e.RayStatus = RayMissing
	case v.err != nil:
		e.Class, e.Detail = ClassUnknown, "Ray could not say: "+firstLine(v.err.Error(), 200)
		return e
	case v.job == nil:
		e.Class, e.Detail = ClassUnknown, "Ray did not answer for this job"
		return e
	default:
		e.RayStatus, e.RayMessage, e.RayEndTime = string(v.job.Status), v.job.Message, v.job.EndTime
		if v.job.Status == rayjobs.StatusUnknown {
			e.RayStatus = v.job.RawStatus
			e.Class, e.Detail = ClassUnknown, fmt.Sprintf("Ray reports status %q, which rayctl does not know: left alone", v.job.RawStatus)
			return e
		}
	}
	ended := e.RayStatus == lifecycle.RaySucceeded || e.RayStatus == lifecycle.RayFailed || e.RayStatus == lifecycle.RayStopped
	active := e.RayStatus == lifecycle.RayPending || e.RayStatus == lifecycle.RayRunning
	// settled: a live owner has had time to record the end itself.
	settled := !live || (ended && !e.RayEndTime.IsZero() && hostNow.Sub(e.RayEndTime) >= opts.Grace) ||
		((!ended || e.RayEndTime.IsZero()) && r.Idle >= opts.Grace)
	ownerDesc := ownerPhrase(r.Owner)

	if r.Task.State == store.StateCancelling {
		switch {
		case active && live:
			e.Class, e.Action = ClassCancelRunning, ActStop
			e.Detail = fmt.Sprintf("job still %s in Ray: stop it (the live owner then finalizes)", e.RayStatus)
		case active:
			e.Class, e.Action, e.To = ClassCancelRunning, ActStopFinalize, store.StateCancelled
			e.Detail = fmt.Sprintf("job still %s in Ray, %s: stop it, then finalize CANCELLED", e.RayStatus, ownerDesc)
		case live:
			e.Class = ClassCancelEnded
			e.Detail = fmt.Sprintf("job %s in Ray; the live owner finalizes the row", e.RayStatus)
		default:
			e.Class, e.Action, e.To = ClassCancelEnded, ActFinalize, store.StateCancelled
			e.Detail = fmt.Sprintf("job %s in Ray, %s: finalize CANCELLED", e.RayStatus, ownerDesc)
		}
		return e
	}
	switch {
	case ended && !settled:
		e.Class = ClassFinished
		e.Detail = fmt.Sprintf("%s in Ray less than %s ago: left to its live owner to record", e.RayStatus, opts.Grace)
	case ended:
		e.Class, e.Action = ClassFinished, ActRecord // To: predict
	case e.RayStatus == RayMissing && live:
		e.Class = ClassMissing
		e.Detail = "unknown to Ray; its live owner decides (it may be submitting it now)"
	case e.RayStatus == RayMissing && r.Idle < opts.LeaseTTL:
		e.Class = ClassMissing
		e.Detail = fmt.Sprintf("unknown to Ray, %s, but a heartbeat %s ago: another worker may be watching it", ownerDesc, r.Idle.Round(time.Second))
	case e.RayStatus == RayMissing:
		e.Class, e.Action = ClassMissing, ActMarkLost
		e.Detail = fmt.Sprintf("unknown to Ray, %s: mark LOST", ownerDesc)
	case live:
		e.Class = ClassConsistent
		e.Detail = fmt.Sprintf("%s in Ray, owner live", e.RayStatus)
	default:
		e.Class = ClassOrphaned
		e.Detail = fmt.Sprintf("%s in Ray, %s: left for a live worker to adopt", e.RayStatus, ownerDesc)
		switch {
		case !strings.HasPrefix(e.JobID(), "raysubmit_"):
			e.Detail += " (django-ray 0.2.0 workers adopt only raysubmit_ jobs)"
		case liveWorkers == 0:
			e.Detail += "; no worker is live: start one"
		}
	}
	return e
}

func ownerPhrase(o store.OwnerStatus) string {
	switch o {
	case store.OwnerNone:
		return "no owner"
	case store.OwnerUnknown:
		return "owner has no lease"
	case store.OwnerInactive:
		return "owner's lease inactive"
	case store.OwnerStale:
		return "owner's lease stale"
	}
	return "owner live"
}

// otherCluster reports whether a row's ray_address names another host than the Jobs API
// asked. Values that name no host (django-ray's default "auto", empty) never differ; ports
// are ignored (a row may record the Ray Client or GCS port of the same head).
func otherCluster(rowAddr, asked string) bool {
	a, b := hostOf(rowAddr), hostOf(asked)
	return a != "" && b != "" && a != b
}

func hostOf(addr string) string {
	addr = strings.TrimSpace(addr)
	if addr == "" || strings.EqualFold(addr, "auto") {
		return ""
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return ""
	}
	h := strings.ToLower(u.Hostname())
	if h == "localhost" || h == "::1" {
		return "127.0.0.1"
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return "127.0.0.1"
	}
	return h
}

func firstLine(s string, n int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i] + " …"
	}
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// ReconcileApplyOptions tune ApplyReconcile.
type ReconcileApplyOptions struct {
	Reason string // recorded in the audit trail; needs the audit tables
	Actor  string // who ran it (user@host)
	// Hooks.BeforeJob runs before each actionable entry (tests use it to move rows on).
	Hooks Hooks
}

// JobResult is what applying did to one entry.
type JobResult struct {
	ID       int64           `json:"id"`
	RayJobID string          `json:"ray_job_id"`
	Action   JobAction       `json:"action"`
	Applied  bool            `json:"applied"`  // the planned write (and stop) happened
	ToState  store.TaskState `json:"to_state"` // the state written, when one was
	// Stopped is Ray's answer to the stop: true when it stopped the job, false when there was
	// nothing left to stop; nil when no stop was asked.
	Stopped *bool `json:"stopped"`
	// Skipped says why nothing was written: the row moved on since the plan, or Ray's view of
	// the job changed.
	Skipped string `json:"skipped,omitempty"`
	// Error is a Ray request that failed for this job (a stop, a log read).
	Error string `json:"error,omitempty"`
	// Result is where a SUCCEEDED task's result went; Fallback, when its storage failed and
	// the digest reference was recorded instead.
	Result   string `json:"result,omitempty"`
	Fallback string `json:"result_fallback,omitempty"`
	// CancelWon: the row was cancelled under the same claim meanwhile, so it was finalized
	// CANCELLED instead (the worker's rule).
	CancelWon bool `json:"cancel_won,omitempty"`
}

// ReconcileOutcome is what ApplyReconcile did.
type ReconcileOutcome struct {
	Results []JobResult `json:"results"` // one per actionable entry reached, in id order
	Applied int         `json:"applied"`
	Skipped int         `json:"skipped"` // the row or Ray moved on since the plan
	Failed  int         `json:"failed"`  // a Ray request failed
	// ToStates counts the rows written by the state they were moved to.
	ToStates    map[store.TaskState]int `json:"to_states"`
	Stops       int                     `json:"stops"` // stop requests Ray accepted
	AuditID     *int64                  `json:"audit_id"`
	Interrupted bool                    `json:"interrupted"`
	Elapsed     time.Duration           `json:"-"`
}

// ApplyReconcile carries out a plan's actions, one entry at a time in id order, each
// conditional on what the plan observed: the row must still be as read (store.Guard: state,
// owner, Ray job, claim start), or it is skipped and counted; finished jobs are recorded by
// the same lifecycle.Applier the worker uses (a SUCCEEDED job's log is read again and must
// give the planned transition); a missing job is checked missing again before the row is
// marked LOST; a stop is asked only while the row is still the CANCELLING row the plan saw.
// When the audit tables exist, the run and every row it changed or stopped are recorded (a
// row's record in the same transaction as its change; a stop-only row as CANCELLING ->
// CANCELLING). A database error ends the run (the outcome says what was done before it); a
// Ray error for one job is counted as failed and the run goes on.
func ApplyReconcile(ctx context.Context, s *store.Store, ray RayJobs, p ReconcilePlan, opts ReconcileApplyOptions) (ReconcileOutcome, error) {
	out := ReconcileOutcome{Results: []JobResult{}, ToStates: map[store.TaskState]int{}}
	todo := p.Actionable()
	if len(todo) == 0 {
		return out, nil
	}
	start := time.Now()
	var reason *string
	if opts.Reason != "" {
		reason = &opts.Reason
	}
	sel, _ := json.Marshal(map[string]any{"ray_address": p.Options.Address, "limit": p.Options.Limit,
		"lease_ttl_seconds": p.Options.LeaseTTL.Seconds(), "grace_seconds": p.Options.Grace.Seconds(), "all_addresses": p.Options.AllAddresses})
	byAction := map[JobAction]int{}
	for _, e := range todo {
		byAction[e.Action]++
	}
	o, _ := json.Marshal(map[string]any{"actions": byAction, "max_task_attempts": p.Options.Policy.MaxAttempts,
		"retry_backoff_seconds": p.Options.Policy.Backoff.Seconds(), "retry_exception_denylist": nonNil(p.Options.Policy.Denylist)})
	auditID, err := startAudit(ctx, s, store.AuditEntry{Action: "reconcile-jobs", Actor: opts.Actor, Reason: reason,
		Selection: sel, Options: o, Matched: p.Candidates, Selected: int64(len(todo))})
	if err != nil {
		return out, err
	}
	out.AuditID = auditID
	runErr := applyEntries(ctx, s, ray, p, todo, opts, &out)
	out.Elapsed = time.Since(start)
	return out, finishAudit(ctx, s, out.AuditID, int64(out.Applied), int64(out.Skipped+out.Failed), runErr)
}

func applyEntries(ctx context.Context, s *store.Store, ray RayJobs, p ReconcilePlan, todo []JobEntry, opts ReconcileApplyOptions, out *ReconcileOutcome) error {
	for i, e := range todo {
		if ctx.Err() != nil {
			out.Interrupted = true
			return fmt.Errorf("%w after %d of %d tasks", ErrInterrupted, i, len(todo))
		}
		if h := opts.Hooks.BeforeJob; h != nil {
			if err := h(ctx, e); err != nil {
				return err
			}
		}
		res, err := applyEntry(ctx, s, ray, p, e, out.AuditID)
		if err != nil {
			if ctx.Err() != nil {
				out.Interrupted = true
				return fmt.Errorf("%w at task %d (%d of %d)", ErrInterrupted, e.Task.ID, i+1, len(todo))
			}
			return fmt.Errorf("task %d: %w", e.Task.ID, err)
		}
		out.Results = append(out.Results, res)
		switch {
		case res.Applied:
			out.Applied++
			if res.ToState != "" {
				out.ToStates[res.ToState]++
			}
		case res.Error != "":
			out.Failed++
		default:
			out.Skipped++
		}
		if res.Stopped != nil && res.Error == "" {
			out.Stops++
		}
	}
	return nil
}

// applyEntry performs one entry's action. An error is the database's (or the context's).
func applyEntry(ctx context.Context, s *store.Store, ray RayJobs, p ReconcilePlan, e JobEntry, auditID *int64) (JobResult, error) {
	res := JobResult{ID: e.Task.ID, RayJobID: e.JobID(), Action: e.Action}
	// write runs one lifecycle transition in a transaction with its audit record.
	write := func(o lifecycle.Outcome) error {
		return s.InTx(ctx, func(ts *store.Store) error {
			tr, err := p.Options.applier(ts).Apply(ctx, e.Task, o)
			if err != nil {
				return err
			}
			if !tr.Applied {
				res.Skipped = movedOn(tr.Current)
				return nil
			}
			res.Applied, res.ToState, res.CancelWon = true, tr.To, tr.CancelWon
			if tr.Stored.Inline {
				res.Result = fmt.Sprintf("inline, %d bytes", tr.Stored.Bytes)
			} else if tr.Stored.Reference != "" {
				res.Result = tr.Stored.Reference
			}
			if tr.Stored.Fallback != nil {
				res.Fallback = tr.Stored.Fallback.Error()
			}
			if auditID == nil {
				return nil
			}
			return ts.RecordAuditChanges(ctx, *auditID, []store.AuditChange{{ID: e.Task.ID, From: e.Task.State, To: tr.To}})
		})
	}
	// unchanged checks the row is still exactly as the plan read it.
	unchanged := func() (bool, error) {
		cur, err := s.GetTask(ctx, e.Task.ID)
		if errors.Is(err, store.ErrNotFound) {
			res.Skipped = "the row was deleted"
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !sameGuard(cur.Guard(), e.Task.Guard()) {
			res.Skipped = movedOn(cur.State)
			return false, nil
		}
		return true, nil
	}
	switch e.Action {
	case ActRecord:
		o, err := jobOutcome(ctx, ray, e.JobID(), e.RayStatus, e.RayMessage)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			res.Error = "reading the job's log: " + firstLine(err.Error(), 300)
			return res, nil
		}
		if tr := p.Options.applier(s).Predict(e.Task, o); tr.To != e.To {
			res.Skipped = fmt.Sprintf("Ray's view changed since the plan (now: %s, planned %s)", tr.To, e.To)
			return res, nil
		}
		return res, write(o)
	case ActMarkLost:
		switch _, err := ray.Get(ctx, e.JobID()); {
		case err == nil:
			res.Skipped = "Ray knows the job now"
			return res, nil
		case ctx.Err() != nil:
			return res, ctx.Err()
		case !errors.Is(err, rayjobs.ErrNotFound):
			res.Error = "checking the job again: " + firstLine(err.Error(), 300)
			return res, nil
		}
		return res, write(lifecycle.Outcome{Kind: lifecycle.Lost})
	case ActFinalize:
		return res, write(lifecycle.Outcome{Kind: lifecycle.Cancelled})
	case ActStop, ActStopFinalize:
		ok, err := unchanged()
		if err != nil || !ok {
			return res, err
		}
		if e.Action == ActStopFinalize {
			// The owner is dead: finalize only once the job is confirmed over, so a requeue of
			// the CANCELLED row can never run beside it.
			r := endJob(ctx, ray, JobRef{ID: e.Task.ID, RayJobID: e.JobID()}, DefaultEndWait)
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			res.Stopped = &r.Stopped
			if !r.Ended {
				res.Error = r.Error
				return res, nil
			}
			return res, write(lifecycle.Outcome{Kind: lifecycle.Cancelled})
		}
		stopped, err := ray.Stop(ctx, e.JobID())
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			res.Error = "stop: " + firstLine(err.Error(), 300)
			return res, nil
		}
		res.Stopped = &stopped
		res.Applied = true
		if auditID == nil {
			return res, nil
		}
		return res, s.RecordAuditChanges(ctx, *auditID, []store.AuditChange{{ID: e.Task.ID, From: e.Task.State, To: e.Task.State}})
	}
	return res, fmt.Errorf("unknown action %q", e.Action)
}

func sameGuard(a, b store.Guard) bool {
	eq := func(x, y *string) bool { return (x == nil && y == nil) || (x != nil && y != nil && *x == *y) }
	teq := (a.StartedAt == nil && b.StartedAt == nil) || (a.StartedAt != nil && b.StartedAt != nil && a.StartedAt.Equal(*b.StartedAt))
	return a.ID == b.ID && a.State == b.State && eq(a.WorkerID, b.WorkerID) && eq(a.JobID, b.JobID) && teq
}

func movedOn(cur store.TaskState) string {
	if cur == "" {
		return "the row moved on since the plan"
	}
	return fmt.Sprintf("the row moved on since the plan (now %s)", cur)
}
