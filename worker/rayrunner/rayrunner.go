// Package rayrunner is rayworker's default execution mode: each task attempt runs as a Ray Job
// submitted over the Ray Jobs REST API (package rayjobs), with django-ray 0.2.0's contract —
// entrypoint `python -m django_ray.runtime.entrypoint --payload-b64 <payload>`, runtime_env from
// configuration, metadata {django_ray_task_id, callable_path}, the result as the last line of
// the job's log — so Python 0.2.0 workers and this one share a database and adopt each other's
// jobs.
//
// # Submission ids and crash safety
//
// The worker's claim writes the attempt's submission id into ray_job_id before anything is
// sent to Ray (store.JobIDFormat: raysubmit_t<row>_a<attempt>_<claim µs>; the "raysubmit_"
// prefix is what 0.2.0 workers adopt). The runner submits under that id, so every crash
// window is covered by Ray's own duplicate check (a second POST of an existing id starts
// nothing and answers "Please use a different submission_id"):
//
//   - crash after the claim, before the POST: the row is an orphan whose job Ray does not
//     know (404). See "404" below.
//   - crash after the POST, before anything else: the job exists under the recorded id; the
//     next worker adopts it.
//   - a POST that times out or breaks off: the job may or may not exist. The runner GETs the id
//     before it POSTs again; a duplicate answer counts as accepted.
//
// A manual requeue never collides with an old job: every claim makes a new id.
//
// # 404
//
// What Ray's 404 for a submission id means depends on what this process knows:
//
//   - a job this process submitted but never got an answer for: it was never created; POST it
//     again under the same id (Ray deduplicates, so this cannot start a second run).
//   - a job seen before (accepted, or observed PENDING/RUNNING): Ray forgot it — the head
//     restarted without GCS fault tolerance, or someone deleted it. It may have completed; its
//     result is gone. The attempt fails as TaskLost under the retry policy (a new claim, a new
//     id) rather than being re-run silently under the same attempt.
//   - a dead worker's job this process never saw: submitted again under the same id only when
//     the runner can prove Ray never had it — the id's claim time (DB clock) is after this
//     process first saw the current Ray session (minus ClockSkew), and a session check made
//     after the 404 still shows that session, so the head has not restarted since the claim.
//     Otherwise (a 0.2.0 id, which carries no claim time, or an older claim) it is TaskLost.
//
// # Monitoring
//
// Poll answers from a cache; a background monitor keeps the cache fresh with the measured
// strategy of docs/benchmarks.md: per round either one GET /api/jobs/ (the list: cost grows
// with every job Ray keeps) or one GET per watched job (at most GetConcurrency at once, at
// most MaxGetRate per second), whichever costs the dashboard less by the latencies just
// measured; rounds repeat every 10x their cost (so watching takes at most ~10% of the
// dashboard), clamped to MinPollInterval..MaxPollInterval. A job missing from a list is
// confirmed with a GET. Logs are read once per job, on completion, as a bounded tail.
//
// # Outages
//
// A request that finds the API unavailable triggers a health check (GET /api/gcs_healthz,
// then /api/version); if it fails the runner is in an outage: one log line and one metric
// increment, no requests but health checks (backoff 1 s to 10 s, jittered), Ready fails so the
// worker claims nothing, and every job reports Unknown (not heartbeated, shown as stuck, but
// never a false FAILED and never re-run: the worker waits for the API). Recovery needs no
// restart. An API that answers 200 with something that is not Ray's (a proxy's login page) is
// an outage too: the health check wants Ray's "success" and the version its JSON.
// HTTP 401/403 (or an untrusted TLS certificate) is a configuration error: logged once, counted,
// Ready fails with the reason, and only one check a minute is made until it is fixed.
package rayrunner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
)

// Defaults for Config.
const (
	DefaultPendingTimeout    = settings.DefaultRayPendingTimeout
	DefaultMinPollInterval   = 500 * time.Millisecond
	DefaultMaxPollInterval   = 30 * time.Second
	DefaultGetConcurrency    = 4
	DefaultSubmitConcurrency = 4
	DefaultMaxGetRate        = 50
	DefaultClockSkew         = time.Minute
	DefaultStopGrace         = time.Minute
	DefaultSessionCheck      = 30 * time.Second
	DefaultRefusedRetry      = time.Minute
	DefaultEvictAfter        = 2 * time.Minute
	DefaultFailedLogsTimeout = 5 * time.Second
	DefaultLogPatience       = 2 * time.Minute

	// AdoptPrefix is the submission id prefix django-ray 0.2.0 workers adopt, and this one.
	AdoptPrefix = "raysubmit_"
	// logAttempts: a SUCCEEDED job whose logs cannot be read after this many tries (counted
	// only while the API otherwise answers) and Config.LogPatience fails the attempt.
	logAttempts = 5
	// pollBudget bounds how long Poll waits for the first look at jobs it did not know.
	pollBudget = 5 * time.Second
	// outageProbeMax caps the backoff of health checks during an outage: one cheap GET every
	// ~10 s at most, so work resumes within ~10 s of the API answering again.
	outageProbeMax = 10 * time.Second
)

// Config configures a Runner.
type Config struct {
	// Client talks to the Ray Jobs API (required). Its address is written to ray_address.
	Client *rayjobs.Client
	// Entrypoint is the job's command; " --payload-b64 <payload>" is appended. Default
	// lifecycle.DefaultEntrypoint ("python -m django_ray.runtime.entrypoint"). Ray runs it
	// with /bin/sh -c on the head (or wherever the entrypoint resources place it).
	Entrypoint string
	// RuntimeEnv is every job's runtime_env (django-ray's RAY_RUNTIME_ENV), sent as given.
	RuntimeEnv map[string]any
	// Resources are entrypoint resources (none by default: Ray runs the driver on the head).
	Resources Resources

	// PendingTimeout bounds how long a job may stay PENDING (Ray's own limit, 900 s, is not
	// always honoured): the job is stopped and the attempt fails as RayJobFailed. Default
	// DefaultPendingTimeout.
	PendingTimeout time.Duration
	// StopGrace: a job stopped for PENDING too long that is still PENDING this long after the
	// stop is given up on (the attempt fails anyway). Default DefaultStopGrace.
	StopGrace time.Duration
	// MinPollInterval and MaxPollInterval bound the monitor's adaptive interval.
	MinPollInterval time.Duration
	MaxPollInterval time.Duration
	// GetConcurrency bounds concurrent GETs (status, logs, stops); SubmitConcurrency
	// concurrent submissions. MaxGetRate caps status GETs per second.
	GetConcurrency    int
	SubmitConcurrency int
	MaxGetRate        float64
	// ClockSkew is the largest difference assumed between the database's clock (claim times
	// in submission ids) and this host's, for the 404 rule (see the package comment).
	ClockSkew time.Duration
	// SessionCheck is how often /api/version is read to notice a head restart.
	SessionCheck time.Duration
	// RefusedRetry is how often a refused configuration (401/403, TLS) is checked again.
	RefusedRetry time.Duration
	// EvictAfter drops jobs the worker has stopped asking about (a dead worker's job another
	// worker adopted first).
	EvictAfter time.Duration
	// FailedLogsTimeout bounds the log read of a FAILED job (its message carries the log's
	// tail; a dead node's logs cannot be served and the read would hang until the client's
	// LogsTimeout). Default DefaultFailedLogsTimeout.
	FailedLogsTimeout time.Duration
	// LogPatience: a job that ended whose log cannot be read while the Jobs API otherwise
	// answers (its node is gone) fails the attempt only after this long and five tries.
	// While the API as a whole is out, no time or try counts. Default DefaultLogPatience.
	LogPatience time.Duration

	Logger *slog.Logger
}

// Resources are a job's entrypoint resources (Ray >= 2.2; Memory >= 2.8).
type Resources struct {
	NumCPUs float64
	NumGPUs float64
	Memory  int64
	Custom  map[string]float64
}

func (c *Config) setDefaults() {
	if c.Entrypoint == "" {
		c.Entrypoint = lifecycle.DefaultEntrypoint
	}
	def := settings.Default[time.Duration]
	def(&c.PendingTimeout, DefaultPendingTimeout)
	def(&c.StopGrace, DefaultStopGrace)
	def(&c.MinPollInterval, DefaultMinPollInterval)
	def(&c.MaxPollInterval, DefaultMaxPollInterval)
	def(&c.ClockSkew, DefaultClockSkew)
	def(&c.SessionCheck, DefaultSessionCheck)
	def(&c.RefusedRetry, DefaultRefusedRetry)
	def(&c.EvictAfter, DefaultEvictAfter)
	def(&c.FailedLogsTimeout, DefaultFailedLogsTimeout)
	def(&c.LogPatience, DefaultLogPatience)
	if c.MaxPollInterval < c.MinPollInterval {
		c.MaxPollInterval = c.MinPollInterval
	}
	settings.Default(&c.GetConcurrency, DefaultGetConcurrency)
	settings.Default(&c.SubmitConcurrency, DefaultSubmitConcurrency)
	settings.Default(&c.MaxGetRate, DefaultMaxGetRate)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Runner runs task attempts as Ray Jobs. It implements worker.Runner,
// worker.ReadinessReporter and prometheus.Collector. New starts its monitor; Close stops it.
type Runner struct {
	cfg     Config
	c       *rayjobs.Client
	log     *slog.Logger
	m       *metrics
	events  worker.Wake
	wake    worker.Wake
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	getSem  chan struct{}
	subSem  chan struct{}
	limiter *limiter
	monDone chan struct{}

	mu       sync.Mutex
	jobs     map[string]*job // by submission id
	conn     conn
	round    round
	closing  bool
	getCost  time.Duration // EWMA of one status GET
	listCost time.Duration // EWMA of one list; 0 until measured
}

var _ worker.Runner = (*Runner)(nil)
var _ worker.ReadinessReporter = (*Runner)(nil)

// New returns a Runner and starts its monitor. Close must be called.
func New(cfg Config) (*Runner, error) {
	if cfg.Client == nil {
		return nil, errors.New("rayrunner: no Ray Jobs client")
	}
	cfg.setDefaults()
	if strings.TrimSpace(cfg.Entrypoint) == "" {
		return nil, errors.New("rayrunner: empty entrypoint")
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{
		cfg: cfg, c: cfg.Client, log: cfg.Logger, m: newMetrics(),
		events: worker.NewWake(), wake: worker.NewWake(),
		ctx: ctx, cancel: cancel,
		getSem: make(chan struct{}, cfg.GetConcurrency), subSem: make(chan struct{}, cfg.SubmitConcurrency),
		limiter: newLimiter(cfg.MaxGetRate, cfg.GetConcurrency),
		monDone: make(chan struct{}),
		jobs:    map[string]*job{},
		getCost: 5 * time.Millisecond,
	}
	r.conn.state = connUnchecked
	r.m.up.Set(0)
	go r.monitor()
	return r, nil
}

// Address is the Jobs API address jobs go to (written to ray_address at claim).
func (r *Runner) Address() string { return r.c.Address() }

// Capabilities implements worker.Runner: submission ids assigned at claim, adoption of
// "raysubmit_" jobs (0.2.0's and ours), status by polling (plus an event when an outcome is
// ready), and jobs that outlive the worker: at shutdown they are left for adoption.
func (r *Runner) Capabilities() worker.Capabilities {
	return worker.Capabilities{
		Name:         "rayjob",
		AssignJobIDs: true,
		RayAddress:   r.c.Address(),
		AdoptPrefix:  AdoptPrefix,
		PollInterval: time.Second, // Poll reads the cache; the monitor paces the requests
		Detached:     true,
	}
}

// Events implements worker.Runner: it fires when some job's outcome is ready.
func (r *Runner) Events() <-chan struct{} { return r.events }

// Ready implements worker.ReadinessReporter: nil while the Jobs API answers and accepts this
// worker's credentials.
func (r *Runner) Ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn.readyErr(r.c.Address())
}

// WaitReady waits until the first health check has an answer (ready, unreachable or refused)
// or ctx ends, and returns Ready's verdict. Callers use it to start the worker once the Jobs
// API's state is known, rather than with claims held for a moment.
func (r *Runner) WaitReady(ctx context.Context) error {
	for {
		r.mu.Lock()
		checked := r.conn.state != connUnchecked
		err := r.conn.readyErr(r.c.Address())
		r.mu.Unlock()
		if checked {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-r.monDone:
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// request builds the submit request for a task.
func (r *Runner) request(t store.Task, id string) (rayjobs.SubmitRequest, error) {
	payload, err := lifecycle.Payload(t)
	if err != nil {
		return rayjobs.SubmitRequest{}, err
	}
	entry := r.cfg.Entrypoint + " " + lifecycle.PayloadFlag + " " + payload
	// Ray starts the entrypoint as /bin/sh -c "<entrypoint>": the whole command is one
	// process argument, limited like any other.
	if len(entry) > lifecycle.MaxPayloadArg {
		return rayjobs.SubmitRequest{}, lifecycle.InvalidRow("the Ray job entrypoint would be %d bytes, more than the %d bytes one process argument can hold",
			len(entry), lifecycle.MaxPayloadArg)
	}
	return rayjobs.SubmitRequest{
		Entrypoint:          entry,
		SubmissionID:        id,
		RuntimeEnv:          r.cfg.RuntimeEnv,
		Metadata:            map[string]string{"django_ray_task_id": strconv.FormatInt(t.ID, 10), "callable_path": t.CallablePath},
		EntrypointNumCPUs:   r.cfg.Resources.NumCPUs,
		EntrypointNumGPUs:   r.cfg.Resources.NumGPUs,
		EntrypointMemory:    r.cfg.Resources.Memory,
		EntrypointResources: r.cfg.Resources.Custom,
	}, nil
}

// Start implements worker.Runner: it checks the row, queues the submission under the id the
// claim wrote, and returns; the monitor submits it. A row that cannot become a job is a
// *lifecycle.FailureError.
func (r *Runner) Start(_ context.Context, t store.Task) error {
	if t.RayJobID == nil || !strings.HasPrefix(*t.RayJobID, AdoptPrefix) {
		return errors.New("rayrunner: the claim assigned no Ray submission id (the worker must claim with AssignJobIDs)")
	}
	id := *t.RayJobID
	req, err := r.request(t, id)
	if err != nil {
		return err
	}
	now := time.Now()
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return errors.New("rayrunner: closed")
	}
	if old := r.jobs[id]; old != nil && !old.done {
		// The same claim started twice cannot happen in the loop; keep the first.
		r.mu.Unlock()
		return nil
	}
	r.jobs[id] = &job{id: id, task: t, own: true, req: &req, submitAt: now, polledAt: now, since: now}
	r.m.watched.Set(float64(len(r.jobs)))
	r.mu.Unlock()
	r.wake.Notify()
	return nil
}

// Poll implements worker.Runner. Jobs the runner knows are answered from its cache. Jobs it
// does not know (a dead worker's, offered for adoption) are looked up at once — GET, and the
// logs of one that ended — for up to a few seconds; what is not known by then is Unknown and
// keeps being looked up for the next Poll.
func (r *Runner) Poll(ctx context.Context, tasks []store.Task) ([]worker.Status, error) {
	now := time.Now()
	out := make([]worker.Status, len(tasks))
	var fresh []*job
	r.mu.Lock()
	for _, t := range tasks {
		if t.RayJobID == nil || !strings.HasPrefix(*t.RayJobID, AdoptPrefix) {
			continue
		}
		j := r.jobs[*t.RayJobID]
		if j == nil && !r.closing {
			j = &job{id: *t.RayJobID, task: t, look: true, since: now}
			r.jobs[j.id] = j
			fresh = append(fresh, j)
		}
		if j != nil {
			j.polledAt = now
			j.task = t // the latest row (an adoption changes its owner)
		}
	}
	r.m.watched.Set(float64(len(r.jobs)))
	r.mu.Unlock()

	if len(fresh) > 0 {
		r.wake.Notify()
		r.waitFirstLook(ctx, fresh)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range tasks {
		switch {
		case t.RayJobID == nil:
			out[i] = worker.Status{Phase: worker.Unknown, Message: "no Ray job id"}
		case !strings.HasPrefix(*t.RayJobID, AdoptPrefix):
			out[i] = worker.Status{Phase: worker.Unknown, Message: "not a Ray Jobs submission id: " + *t.RayJobID}
		default:
			j := r.jobs[*t.RayJobID]
			if j == nil {
				out[i] = worker.Status{Phase: worker.Unknown, Message: "runner closed"}
				continue
			}
			out[i] = r.status(j, now)
		}
	}
	return out, nil
}

// waitFirstLook waits until the monitor has looked at every job in js (or gave up on it
// for now), for at most pollBudget.
func (r *Runner) waitFirstLook(ctx context.Context, js []*job) {
	ctx, cancel := context.WithTimeout(ctx, pollBudget)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		r.mu.Lock()
		pending := false
		for _, j := range js {
			if j.settling() {
				pending = true
				break
			}
		}
		down := r.conn.state != connUp
		r.mu.Unlock()
		if !pending || down {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-r.monDone:
			return
		case <-tick.C:
		}
	}
}

// status is what Poll reports for a job. Called with mu held.
func (r *Runner) status(j *job, now time.Time) worker.Status {
	switch {
	case j.done:
		return worker.Status{Phase: worker.Done, Outcome: j.outcome}
	case r.conn.state != connUp:
		return worker.Status{Phase: worker.Unknown, Message: r.conn.readyErr(r.c.Address()).Error()}
	case j.terminal != nil:
		return worker.Status{Phase: worker.Running} // ended in Ray; its logs are being read
	case !j.acked && j.own:
		return worker.Status{Phase: worker.Running} // being submitted
	case !j.acked:
		msg := "not looked up yet"
		if j.note != "" {
			msg = j.note
		}
		return worker.Status{Phase: worker.Unknown, Message: msg}
	}
	if stale := r.staleAfter(); now.Sub(j.seenAt) > stale {
		msg := fmt.Sprintf("status of Ray job %s not read for %s", j.id, now.Sub(j.seenAt).Round(time.Second))
		if j.note != "" {
			msg += ": " + j.note
		}
		return worker.Status{Phase: worker.Unknown, Message: msg}
	}
	switch j.status {
	case rayjobs.StatusPending, rayjobs.StatusRunning:
		return worker.Status{Phase: worker.Running}
	}
	return worker.Status{Phase: worker.Unknown, Message: fmt.Sprintf("Ray reports status %q for job %s", j.rawStatus, j.id)}
}

// staleAfter is how old a job's last observation may be for it to count as known: a few
// rounds. Called with mu held.
func (r *Runner) staleAfter() time.Duration {
	return max(30*time.Second, 3*r.round.interval)
}

// Cancel implements worker.Runner: it asks Ray to stop the job and returns; Poll then reports
// Cancelled once Ray says STOPPED (or the job's own outcome if it ended first). A job the
// runner does not track (a dead worker's) is stopped synchronously; an error means the stop
// did not reach Ray and should be tried again.
func (r *Runner) Cancel(ctx context.Context, t store.Task) error {
	if t.RayJobID == nil || !strings.HasPrefix(*t.RayJobID, AdoptPrefix) {
		return nil
	}
	id := *t.RayJobID
	r.mu.Lock()
	if j := r.jobs[id]; j != nil {
		if !j.done && j.stop == stopNone {
			j.stop = stopCancel
			j.stopAsked = time.Now()
		}
		r.mu.Unlock()
		r.wake.Notify()
		return nil
	}
	if r.conn.state != connUp {
		err := r.conn.readyErr(r.c.Address())
		r.mu.Unlock()
		return fmt.Errorf("cannot stop Ray job %s now: %w", id, err)
	}
	r.mu.Unlock()
	_, err := r.stopJob(ctx, id)
	if errors.Is(err, rayjobs.ErrNotFound) {
		return nil // nothing to stop
	}
	return err
}

// Output implements worker.Runner: the last max bytes of the job's log (read now).
func (r *Runner) Output(ctx context.Context, t store.Task, max int) ([]byte, error) {
	if t.RayJobID == nil {
		return nil, fmt.Errorf("task %d has no Ray job", t.ID)
	}
	logs, err := r.logsOf(ctx, *t.RayJobID)
	if err != nil {
		return nil, err
	}
	b := []byte(logs.Text)
	if max >= 0 && len(b) > max {
		b = b[len(b)-max:]
	}
	return b, nil
}

// Forget implements worker.Runner. A job being stopped keeps being stopped in the background.
func (r *Runner) Forget(t store.Task) {
	if t.RayJobID == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[*t.RayJobID]
	if j == nil {
		return
	}
	if j.done || (j.stop == stopNone && !j.busy) {
		delete(r.jobs, j.id)
		r.m.watched.Set(float64(len(r.jobs)))
		return
	}
	j.forgotten = true
}

// Close implements worker.Runner. Jobs keep running in Ray (the worker leaves them for
// adoption); submissions and stops still queued are sent first, while ctx allows, so the
// next worker finds every job the rows name. Then the monitor stops.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	r.wake.Notify()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var left int
wait:
	for {
		r.mu.Lock()
		left = r.unflushed()
		r.mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			break wait
		case <-tick.C:
		}
	}
	r.cancel()
	<-r.monDone
	r.wg.Wait()
	r.c.Close()
	if left > 0 {
		return fmt.Errorf("rayrunner: %d submission(s) or stop(s) not sent before shutdown: %w", left, ctx.Err())
	}
	return nil
}

// unflushed counts jobs with a submission or a stop not yet through. Called with mu held.
func (r *Runner) unflushed() int {
	if r.conn.state != connUp {
		return 0 // nothing gets through now; the next worker sorts it out (see "404")
	}
	n := 0
	for _, j := range r.jobs {
		if j.done {
			continue
		}
		if (j.own && !j.acked && j.stop == stopNone) || (j.stop != stopNone && j.stopSent.IsZero() && (j.acked || j.own)) || j.busy {
			n++
		}
	}
	return n
}

// jitter spreads d by ±20%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
