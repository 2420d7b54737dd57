package recovery

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/migrations"
	"github.com/rayctl/rayctl/store"
)

// Status is a check's verdict.
type Status string

// Check verdicts. Only StatusFail makes a report unhealthy (and StatusWarn, when strict).
const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
	StatusSkip Status = "skip" // not checked; the summary says why
)

// CheckResult is one check's finding.
type CheckResult struct {
	Name    string   `json:"name"`
	Status  Status   `json:"status"`
	Summary string   `json:"summary"`
	Details []string `json:"details"`
	// Hint is the next command to run, when something is wrong.
	Hint string `json:"hint,omitempty"`
}

// Check is one doctor check. The built-in checks read the database; others plug in through
// DoctorConfig.Checks (the Ray check: RayCheck).
type Check interface {
	Name() string
	Run(ctx context.Context) CheckResult
}

// DoctorConfig tunes Doctor. Zero durations get the defaults noted.
type DoctorConfig struct {
	// Connect opens the database. Doctor closes the pool when it is done.
	Connect func(ctx context.Context) (*pgxpool.Pool, error)
	// LeaseTTL is WORKER_LEASE_SECONDS (60 s).
	LeaseTTL time.Duration
	// StuckAfter is STUCK_TASK_TIMEOUT_SECONDS (300 s): a RUNNING row without a heartbeat
	// for this long is stuck.
	StuckAfter time.Duration
	// MaxQueueAge is how long the oldest runnable QUEUED task may wait (5 min).
	MaxQueueAge time.Duration
	// MaxClockSkew fails the clock check (15 s: WORKER_HEARTBEAT_SECONDS; django-ray 0.2.0
	// workers write heartbeats with their host clock, so a larger skew misjudges leases).
	// Skew above a second warns.
	MaxClockSkew time.Duration
	// FailureWindow and MaxFailures: more FAILED or LOST tasks than this within the window
	// is a retry-storm signal (5 min, 10).
	FailureWindow time.Duration
	MaxFailures   int64
	// Clock is this host's clock (time.Now).
	Clock func() time.Time
	// Checks run after the built-in ones.
	Checks []Check
}

func (c *DoctorConfig) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.LeaseTTL, DefaultLeaseTTL)
	def(&c.StuckAfter, 300*time.Second)
	def(&c.MaxQueueAge, 5*time.Minute)
	def(&c.MaxClockSkew, 15*time.Second)
	def(&c.FailureWindow, 5*time.Minute)
	if c.MaxFailures <= 0 {
		c.MaxFailures = 10
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Report is the doctor's findings, in check order.
type Report struct {
	OK     bool          `json:"ok"` // no check failed
	Checks []CheckResult `json:"checks"`
}

// Worst returns the worst status in the report (fail, warn, then ok).
func (r Report) Worst() Status {
	worst := StatusOK
	for _, c := range r.Checks {
		switch {
		case c.Status == StatusFail:
			return StatusFail
		case c.Status == StatusWarn:
			worst = StatusWarn
		}
	}
	return worst
}

// Doctor runs the health checks: database reachable, schema version and drift, clock skew
// between this host and the database, lease health, queue backlog, stuck and orphaned rows,
// stuck cancellations and failure bursts — the runbook's triage checklist — then
// cfg.Checks. A check that needs something an earlier one found missing is skipped, with
// the reason.
func Doctor(ctx context.Context, cfg DoctorConfig) Report {
	cfg.defaults()
	d := &doctor{cfg: cfg}
	var rep Report
	add := func(r CheckResult) {
		if r.Details == nil {
			r.Details = []string{}
		}
		rep.Checks = append(rep.Checks, r)
	}
	add(d.database(ctx))
	if d.pool != nil {
		defer d.pool.Close()
	}
	for _, c := range []func(context.Context) CheckResult{d.schema, d.clock, d.onTables("leases", d.leases), d.onTables("backlog", d.backlog), d.onTables("claims", d.claims),
		d.onTables("stuck", d.stuck), d.onTables("cancelling", d.cancelling), d.onTables("failures", d.failures)} {
		add(c(ctx))
	}
	for _, c := range cfg.Checks {
		r := c.Run(ctx)
		if r.Name == "" {
			r.Name = c.Name()
		}
		add(r)
	}
	rep.OK = rep.Worst() != StatusFail
	return rep
}

type doctor struct {
	cfg      DoctorConfig
	pool     *pgxpool.Pool
	s        *store.Store
	tables   bool // the django-ray tables exist
	noTables bool // ... and are usable
	stats    *store.Stats
	health   *store.Health
}

func skip(name, why string) CheckResult {
	return CheckResult{Name: name, Status: StatusSkip, Summary: "not checked: " + why}
}

// onTables runs a check that reads the django-ray tables: skipped (with the reason) when the
// database or the tables are missing; a read error fails it.
func (d *doctor) onTables(name string, check func(context.Context, *CheckResult) error) func(context.Context) CheckResult {
	return func(ctx context.Context) CheckResult {
		if res, ok := d.ready(name); !ok {
			return res
		}
		r := CheckResult{Name: name}
		if err := check(ctx, &r); err != nil {
			return CheckResult{Name: name, Status: StatusFail, Summary: err.Error()}
		}
		return r
	}
}

// ready returns a skip result when the database or tables are missing.
func (d *doctor) ready(name string) (CheckResult, bool) {
	switch {
	case d.s == nil:
		return skip(name, "the database is unreachable"), false
	case d.noTables:
		return skip(name, "the django-ray tables do not exist"), false
	}
	return CheckResult{}, true
}

func (d *doctor) database(ctx context.Context) CheckResult {
	r := CheckResult{Name: "database"}
	if d.cfg.Connect == nil {
		r.Status, r.Summary = StatusFail, "no database configured"
		return r
	}
	t0 := time.Now()
	pool, err := d.cfg.Connect(ctx)
	if err != nil {
		r.Status, r.Summary = StatusFail, err.Error()
		r.Hint = "check --database-url / DATABASE_URL and that PostgreSQL is up"
		return r
	}
	d.pool = pool
	info, err := store.New(pool).Server(ctx)
	if err != nil {
		r.Status, r.Summary = StatusFail, "connected, but a query failed: "+err.Error()
		return r
	}
	d.s, d.tables = store.New(pool), info.Tables
	r.Status = StatusOK
	r.Summary = fmt.Sprintf("reachable: PostgreSQL %s, connected in %s", info.Version, time.Since(t0).Round(time.Millisecond))
	return r
}

func (d *doctor) schema(ctx context.Context) CheckResult {
	r := CheckResult{Name: "schema"}
	if d.s == nil {
		return skip(r.Name, "the database is unreachable")
	}
	rep, err := migrations.Validate(ctx, d.pool)
	if err != nil {
		r.Status, r.Summary = StatusFail, "cannot read the schema: "+err.Error()
		return r
	}
	r.Details = append(r.Details, rep.Problems...)
	r.Details = append(r.Details, rep.Warnings...)
	for _, p := range rep.Pending {
		r.Details = append(r.Details, "pending migration "+p)
	}
	switch {
	case !d.tables:
		d.noTables = true
		r.Status, r.Summary, r.Hint = StatusFail, "the django-ray tables do not exist here", "rayctl migrate up (or manage.py migrate django_ray)"
	case len(rep.Problems) > 0:
		r.Status, r.Summary, r.Hint = StatusFail, fmt.Sprintf("schema drift: %d problem(s)", len(rep.Problems)), "rayctl migrate validate"
	case len(rep.Pending) > 0:
		r.Status = StatusWarn
		r.Summary = fmt.Sprintf("rayctl migrations pending (%s)", strings.Join(rep.Pending, ", "))
		r.Hint = "rayctl migrate up"
	case len(rep.NotEnabled) > 0:
		// a database Django migrated, used as it is: the audit tables are optional
		r.Status = StatusOK
		r.Summary = "matches django-ray 0.2.0; audit trail off (optional: requeue, cancel and reconcile-jobs keep no record)"
		r.Hint = "rayctl migrate up --audit, where you must be able to tell who changed a task and why"
	default:
		r.Status = StatusOK
		r.Summary = fmt.Sprintf("current (%d migrations), matches django-ray 0.2.0", len(migrations.All()))
	}
	return r
}

func (d *doctor) clock(ctx context.Context) CheckResult {
	r := CheckResult{Name: "clock"}
	if d.s == nil {
		return skip(r.Name, "the database is unreachable")
	}
	t0 := d.cfg.Clock()
	info, err := d.s.Server(ctx)
	if err != nil {
		r.Status, r.Summary = StatusFail, "cannot read the database clock: "+err.Error()
		return r
	}
	dbNow := info.Clock
	t1 := d.cfg.Clock()
	rtt := t1.Sub(t0)
	skew := dbNow.Sub(t0.Add(rtt / 2))
	abs := skew.Abs()
	side := map[bool]string{true: "behind", false: "ahead of"}[skew > 0]
	desc := fmt.Sprintf("this host is %s %s the database (measured ±%s)", abs.Round(time.Millisecond), side, (rtt / 2).Round(time.Millisecond))
	if abs < time.Millisecond {
		desc = fmt.Sprintf("this host and the database agree within 1ms (measured ±%s)", (rtt / 2).Round(100*time.Microsecond))
	}
	switch {
	case abs > d.cfg.MaxClockSkew:
		r.Status = StatusFail
		r.Summary = desc + fmt.Sprintf(": more than %s, so heartbeat ages written with host clocks are misjudged", d.cfg.MaxClockSkew)
		r.Hint = "fix NTP on this host and on the worker hosts"
	case abs > time.Second:
		r.Status, r.Summary = StatusWarn, desc
	default:
		r.Status, r.Summary = StatusOK, desc
	}
	return r
}

// loadHealth reads the stuck/orphan counts once for the checks that share them.
func (d *doctor) loadHealth(ctx context.Context) (*store.Health, error) {
	if d.health == nil {
		h, err := d.s.HealthCounts(ctx, d.cfg.LeaseTTL, d.cfg.StuckAfter)
		if err != nil {
			return nil, err
		}
		d.health = &h
	}
	return d.health, nil
}

func (d *doctor) loadStats(ctx context.Context) (*store.Stats, error) {
	if d.stats == nil {
		st, err := d.s.Stats(ctx, d.cfg.LeaseTTL)
		if err != nil {
			return nil, err
		}
		d.stats = &st
	}
	return d.stats, nil
}

func (d *doctor) leases(ctx context.Context, r *CheckResult) error {
	st, err := d.loadStats(ctx)
	if err != nil {
		return err
	}
	l := st.Leases
	counts := fmt.Sprintf("%d live, %d stale, %d inactive (lease TTL %s)", l.Live, l.Stale, l.Inactive, d.cfg.LeaseTTL)
	switch {
	case l.Live == 0 && l.Stale == 0 && l.Inactive == 0:
		r.Status, r.Summary = StatusWarn, "no worker has registered a lease"
	case l.Live == 0:
		r.Status, r.Summary, r.Hint = StatusWarn, "no live worker: "+counts, "rayctl inspect-leases"
	case l.Stale > 0:
		r.Status, r.Summary, r.Hint = StatusWarn, counts+": stale workers are hung, dead or cut off", "rayctl inspect-leases --stale-only"
	default:
		r.Status, r.Summary = StatusOK, counts
	}
	return nil
}

func (d *doctor) backlog(ctx context.Context, r *CheckResult) error {
	st, err := d.loadStats(ctx)
	if err != nil {
		return err
	}
	leases, err := d.s.ListLeases(ctx)
	if err != nil {
		return err
	}
	var live []string
	for _, l := range leases {
		if LeaseVerdict(l, st.Now, d.cfg.LeaseTTL) == VerdictFresh {
			live = append(live, l.QueueName)
		}
	}
	var runnable, deferred int64
	var uncovered []string
	for _, q := range st.Queues {
		runnable += q.Depth - q.Deferred
		deferred += q.Deferred
		if q.Depth-q.Deferred > 0 && len(live) > 0 && !slices.ContainsFunc(live, func(label string) bool { return LeaseCovers(label, q.Name) }) {
			uncovered = append(uncovered, fmt.Sprintf("%s (%d runnable)", q.Name, q.Depth-q.Deferred))
		}
	}
	oldest, waited := time.Duration(math.MaxInt64), "since -infinity (a row's created_at or run_after)"
	if st.OldestQueuedAt == nil || !st.OldestQueuedAt.Equal(store.NegInfinity) {
		oldest = time.Duration(st.OldestQueued * float64(time.Second)).Round(time.Second)
		waited = oldest.String()
	}
	summary := fmt.Sprintf("%d runnable, %d deferred, %d running; oldest runnable waited %s", runnable, deferred, st.Running, waited)
	if deferred > 0 {
		r.Details = append(r.Details, fmt.Sprintf("%d QUEUED tasks wait for their run_after (retry backoff or deferral): check run_after before forcing retries", deferred))
	}
	switch {
	case runnable > 0 && len(live) == 0:
		r.Status, r.Summary = StatusFail, summary+", and no live worker"
		r.Hint = "start or restart workers (rayctl inspect-leases)"
	case len(uncovered) > 0:
		r.Status = StatusFail
		r.Summary = "no live worker polls " + strings.Join(uncovered, ", ") + "; live workers poll: " + strings.Join(live, " | ")
		r.Hint = "match the workers' --queue flags to the enqueue queue names"
	case runnable > 0 && oldest > d.cfg.MaxQueueAge && st.Running == 0:
		r.Status = StatusFail
		r.Summary = summary + fmt.Sprintf(": queued waits longer than %s while nothing runs", d.cfg.MaxQueueAge)
		r.Hint = "check worker logs and Ray connectivity (rayctl inspect-leases)"
	case runnable > 0 && oldest > d.cfg.MaxQueueAge:
		r.Status, r.Summary = StatusWarn, summary+fmt.Sprintf(": longer than %s", d.cfg.MaxQueueAge)
		r.Hint = "workers are behind: add workers or concurrency"
	default:
		r.Status, r.Summary = StatusOK, summary
	}
	return nil
}

// claimIndexBacklog is the QUEUED count above which claims without rayctl_claim_order_idx
// cost more than ~10 ms each (they sort every QUEUED row; docs/benchmarks.md).
const claimIndexBacklog = 10000

// claims checks that claims stay cheap: with a large backlog and no claim-order index, every
// claim by every worker (Go or Python) sorts all QUEUED rows.
func (d *doctor) claims(ctx context.Context, r *CheckResult) error {
	st, err := d.loadStats(ctx)
	if err != nil {
		return err
	}
	idx, err := migrations.InspectOptional(ctx, d.pool)
	if err != nil {
		return err
	}
	indexed := len(idx) > 0 && idx[0].Present && idx[0].Valid
	switch {
	case indexed:
		r.Status, r.Summary = StatusOK, fmt.Sprintf("%d QUEUED; claims read rayctl_claim_order_idx", st.Queued)
	case st.Queued >= claimIndexBacklog:
		r.Status = StatusWarn
		r.Summary = fmt.Sprintf("%d QUEUED and no claim-order index: every claim sorts all of them", st.Queued)
		r.Hint = "rayctl migrate indexes --apply (CREATE INDEX CONCURRENTLY; the table stays writable)"
	default:
		r.Status, r.Summary = StatusOK, fmt.Sprintf("%d QUEUED: claims are cheap at this size (before a large backlog: rayctl migrate indexes --apply)", st.Queued)
	}
	return nil
}

func (d *doctor) stuck(ctx context.Context, r *CheckResult) error {
	h, err := d.loadHealth(ctx)
	if err != nil {
		return err
	}
	switch {
	case h.StuckRunning > 0 || h.OrphanedRunning > 0:
		r.Status = StatusWarn
		r.Summary = fmt.Sprintf("%d RUNNING without a heartbeat for %s, %d RUNNING owned by no live worker", h.StuckRunning, d.cfg.StuckAfter, h.OrphanedRunning)
		r.Details = append(r.Details, "a live worker's stuck-task sweep marks them LOST and retries them; with no live worker nothing will")
		r.Hint = "rayctl inspect-leases"
	default:
		r.Status, r.Summary = StatusOK, "no stuck or orphaned RUNNING tasks"
	}
	return nil
}

func (d *doctor) cancelling(ctx context.Context, r *CheckResult) error {
	h, err := d.loadHealth(ctx)
	if err != nil {
		return err
	}
	if h.OrphanedCancelling > 0 {
		r.Status = StatusWarn
		r.Summary = fmt.Sprintf("%d CANCELLING owned by no live worker: no django-ray 0.2.0 worker will finalize them", h.OrphanedCancelling)
		r.Hint = "rayctl cancel --state CANCELLING --dry-run"
		return nil
	}
	r.Status, r.Summary = StatusOK, "no orphaned cancellations"
	return nil
}

func (d *doctor) failures(ctx context.Context, r *CheckResult) error {
	f := store.TaskFilter{States: []store.TaskState{store.StateFailed, store.StateLost}, NewerThan: d.cfg.FailureWindow}
	groups, err := d.s.CountBy(ctx, f, store.ByCallable, 3)
	if err != nil {
		return err
	}
	total, err := d.s.CountTasks(ctx, f)
	if err != nil {
		return err
	}
	for _, g := range groups {
		r.Details = append(r.Details, fmt.Sprintf("%s: %d", g.Key, g.Count))
	}
	summary := fmt.Sprintf("%d FAILED or LOST in the last %s", total, d.cfg.FailureWindow)
	if total > d.cfg.MaxFailures {
		r.Status = StatusWarn
		r.Summary = summary + fmt.Sprintf(", most from %s: retry storm signal", groups[0].Key)
		r.Hint = fmt.Sprintf("rayctl tasks count --by error --state FAILED --state LOST --newer-than %s --callable %s", d.cfg.FailureWindow, groups[0].Key)
		return nil
	}
	r.Status, r.Summary = StatusOK, summary
	return nil
}

// RayInfo is what a Ray probe reports.
type RayInfo struct {
	Address  string // the dashboard / Jobs API address probed
	Version  string // Ray's version (GET /api/version)
	AuthMode string // how rayctl authenticates: none, token, ...
}

// RayProber reaches a Ray cluster: JobsProber over the Ray Jobs client (rayctl doctor wires
// it when a Ray address is given).
type RayProber interface {
	ProbeRay(ctx context.Context) (RayInfo, error)
}

// RayCheck is the doctor's Ray check: reachable, with version and auth mode.
type RayCheck struct {
	Address string    // --ray-address / RAY_ADDRESS; empty: not checked
	Prober  RayProber // nil: rayctl cannot talk to Ray, so not checked
}

// Name implements Check.
func (RayCheck) Name() string { return "ray" }

// Run implements Check.
func (c RayCheck) Run(ctx context.Context) CheckResult {
	r := CheckResult{Name: "ray"}
	switch {
	case c.Address == "":
		return skip(r.Name, "no --ray-address or RAY_ADDRESS given")
	case c.Prober == nil:
		return skip(r.Name, fmt.Sprintf("this rayctl has no Ray client yet (address %s); check the Ray dashboard directly", c.Address))
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := c.Prober.ProbeRay(pctx)
	if err != nil {
		r.Status, r.Summary = StatusFail, fmt.Sprintf("Ray at %s: %v", c.Address, err)
		r.Hint = "verify RAY_ADDRESS, network reachability and the Ray head's health"
		return r
	}
	r.Status = StatusOK
	r.Summary = fmt.Sprintf("Ray %s reachable at %s (auth: %s)", info.Version, info.Address, info.AuthMode)
	return r
}
