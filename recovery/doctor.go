package recovery

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rayctl/rayctl/internal/settings"
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

// DoctorConfig tunes Doctor. Zero durations get DefaultThresholds' values: the signal
// checks (leases, backlog, stuck, cancelling, failures, workers, references) are Evaluate's,
// the same definitions `rayctl top` shows.
type DoctorConfig struct {
	// Connect opens the database. Doctor closes the pool when it is done.
	Connect func(ctx context.Context) (*store.Pool, error)
	// LeaseTTL is WORKER_LEASE_SECONDS (60 s).
	LeaseTTL time.Duration
	// StuckAfter is STUCK_TASK_TIMEOUT_SECONDS (300 s): a RUNNING row without a heartbeat
	// for this long is stuck.
	StuckAfter time.Duration
	// MaxQueueAge is how long the oldest runnable QUEUED task may wait (5 min).
	MaxQueueAge time.Duration
	// StallAfter: a live worker that claimed, finished and heartbeated nothing this long
	// while work waits for it is stalled (2 min).
	StallAfter time.Duration
	// MaxClockSkew fails the clock check (15 s: WORKER_HEARTBEAT_SECONDS; django-ray 0.2.0
	// workers write heartbeats with their host clock, so a larger skew misjudges leases).
	// Skew above a second warns.
	MaxClockSkew time.Duration
	// FailureWindow and MaxFailures: more FAILED or LOST tasks than this within the window
	// is a retry-storm signal (5 min, 10).
	FailureWindow time.Duration
	MaxFailures   int64
	// RayAddress goes into the next commands the checks print (empty: $RAY_ADDRESS).
	RayAddress string
	// Clock is this host's clock (time.Now).
	Clock func() time.Time
	// Checks run after the built-in ones.
	Checks []Check
}

// DefaultMaxClockSkew is WORKER_HEARTBEAT_SECONDS: django-ray 0.2.0 workers write heartbeats
// with their host clock, so a larger skew misjudges leases.
const DefaultMaxClockSkew = settings.DefaultWorkerHeartbeat

// Thresholds are the signal thresholds this configuration sets.
func (c DoctorConfig) Thresholds() Thresholds {
	return Thresholds{LeaseTTL: c.LeaseTTL, StuckAfter: c.StuckAfter, MaxQueueAge: c.MaxQueueAge, StallAfter: c.StallAfter,
		FailureWindow: c.FailureWindow, MaxFailures: c.MaxFailures}.WithDefaults()
}

func (c *DoctorConfig) defaults() {
	th := c.Thresholds()
	c.LeaseTTL, c.StuckAfter, c.MaxQueueAge, c.StallAfter = th.LeaseTTL, th.StuckAfter, th.MaxQueueAge, th.StallAfter
	c.FailureWindow, c.MaxFailures = th.FailureWindow, th.MaxFailures
	settings.Default(&c.MaxClockSkew, DefaultMaxClockSkew)
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
	for _, c := range []func(context.Context) CheckResult{d.schema, d.clock, d.signal("leases"), d.signal("backlog"), d.onTables("claims", d.claims),
		d.signal("stuck"), d.signal("cancelling"), d.signal("failures"), d.signal("workers"), d.signal("references")} {
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
	pool     *store.Pool
	s        *store.Store
	tables   bool               // the django-ray tables exist
	noTables bool               // ... and are usable
	snap     *store.Dashboard   // the snapshot rayctl top reads, read once
	findings map[string]Finding // Evaluate's over snap
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

// signal is the check of Evaluate's finding name: one snapshot (the one rayctl top reads)
// judged once for all of them.
func (d *doctor) signal(name string) func(context.Context) CheckResult {
	return d.onTables(name, func(ctx context.Context, r *CheckResult) error {
		if d.findings == nil {
			snap, err := d.snapshot(ctx)
			if err != nil {
				return err
			}
			d.findings = map[string]Finding{}
			for _, f := range Evaluate(*snap, d.cfg.Thresholds(), EvalOptions{RayAddress: d.cfg.RayAddress}) {
				d.findings[f.Check] = f
			}
		}
		f := d.findings[name]
		r.Status, r.Summary, r.Details, r.Hint = f.Status, f.Summary, f.Details, f.Command
		if f.Playbook != 0 && f.Status != StatusOK {
			r.Summary = fmt.Sprintf("playbook %d (%s): %s", f.Playbook, PlaybookName(f.Playbook), f.Summary)
		}
		return nil
	})
}

// snapshot reads the dashboard snapshot once; the signals and the claims check share it.
func (d *doctor) snapshot(ctx context.Context) (*store.Dashboard, error) {
	if d.snap == nil {
		snap, err := d.s.Dashboard(ctx, d.cfg.Thresholds().DashboardParams())
		if err != nil {
			return nil, err
		}
		d.snap = &snap
	}
	return d.snap, nil
}

// claimIndexBacklog is the QUEUED count above which claims without rayctl_claim_order_idx
// cost more than ~10 ms each (they sort every QUEUED row; docs/benchmarks.md).
const claimIndexBacklog = 10000

// claims checks that claims stay cheap: with a large backlog and no claim-order index, every
// claim by every worker (Go or Python) sorts all QUEUED rows.
func (d *doctor) claims(ctx context.Context, r *CheckResult) error {
	snap, err := d.snapshot(ctx)
	if err != nil {
		return err
	}
	queued := snap.States[store.StateQueued]
	idx, err := migrations.InspectOptional(ctx, d.pool)
	if err != nil {
		return err
	}
	indexed := len(idx) > 0 && idx[0].Present && idx[0].Valid
	switch {
	case indexed:
		r.Status, r.Summary = StatusOK, fmt.Sprintf("%d QUEUED; claims read rayctl_claim_order_idx", queued)
	case queued >= claimIndexBacklog:
		r.Status = StatusWarn
		r.Summary = fmt.Sprintf("%d QUEUED and no claim-order index: every claim sorts all of them", queued)
		r.Hint = "rayctl migrate indexes --apply (CREATE INDEX CONCURRENTLY; the table stays writable)"
	default:
		r.Status, r.Summary = StatusOK, fmt.Sprintf("%d QUEUED: claims are cheap at this size (before a large backlog: rayctl migrate indexes --apply)", queued)
	}
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
