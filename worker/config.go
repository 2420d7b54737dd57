// Package worker is rayworker's daemon: the claim loop, worker leases, heartbeats, the
// stuck/timeout/cancellation sweeps, graceful shutdown, metrics and health endpoints, and the
// Runner interface every execution mode implements. It is a drop-in replacement for
// django-ray 0.2.0's django_ray_worker over the same tables; every state change goes through
// a guarded store call, and every attempt ends through package lifecycle.
//
// The loop is one goroutine. It claims only free slots, in batches, and polls for work
// adaptively: every IdlePollMin (100 ms) while work keeps coming (and for two seconds after it
// last found work or finished a task), then doubling up to IdlePollMax (1 s) while the queue
// stays empty, and at once when a slot frees. A task enqueued while the worker has
// a free slot is therefore claimed within IdlePollMax plus one claim query.
package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/lifecycle"
)

// Config configures a Worker. Zero values take the documented defaults (django-ray's where
// it has one).
type Config struct {
	// WorkerID identifies this process in leases and claimed_by_worker; default a new uuid4,
	// as django-ray does per process start.
	WorkerID string
	// Hostname and PID go into the lease row; defaults os.Hostname() and os.Getpid().
	Hostname string
	PID      int
	// Queues to claim from; empty means every queue.
	Queues []string
	// Concurrency is how many attempts run at once (DEFAULT_CONCURRENCY, default 10, 1..1000).
	Concurrency int

	// Policy is the retry policy (MAX_TASK_ATTEMPTS 3, RETRY_BACKOFF_SECONDS 60,
	// RETRY_EXCEPTION_DENYLIST). A zero Policy means lifecycle.DefaultPolicy().
	Policy lifecycle.Policy
	// Results decides inline results and references (MAX_RESULT_SIZE_BYTES 1 MiB, digest).
	Results lifecycle.Results

	// StuckAfter: a RUNNING task without a heartbeat this long is LOST
	// (STUCK_TASK_TIMEOUT_SECONDS, default 300 s).
	StuckAfter time.Duration
	// LeaseTTL: a worker whose lease heartbeat is older is dead (WORKER_LEASE_SECONDS, 60 s).
	LeaseTTL time.Duration
	// HeartbeatInterval paces the lease heartbeat, the batched heartbeat of the worker's
	// RUNNING tasks, and the maintenance sweeps (WORKER_HEARTBEAT_SECONDS, default 15 s).
	// It must be shorter than LeaseTTL and StuckAfter.
	HeartbeatInterval time.Duration
	// ShutdownTimeout is how long in-flight tasks may finish after a shutdown signal before
	// they are stopped and handed back to the queue (default 30 s; a negative value means
	// stop them at once).
	ShutdownTimeout time.Duration

	// IdlePollMin and IdlePollMax bound the adaptive claim poll (defaults 100 ms and 1 s).
	IdlePollMin time.Duration
	IdlePollMax time.Duration
	// CancelCheckInterval is how often CANCELLING rows are looked for (default 1 s).
	CancelCheckInterval time.Duration
	// StatsTTL is how long the queue gauges computed from the store are reused between
	// scrapes (default 10 s): the count query runs at most that often, whatever scrapes.
	StatsTTL time.Duration
	// DBTimeout bounds each database call of the loop (default 10 s).
	DBTimeout time.Duration
	// StopWait is how long stopped executions get to exit at shutdown. What is not confirmed
	// stopped by then is left RUNNING or CANCELLING under the (deactivated) lease for other
	// workers to recover, never handed back while it may still run (default 15 s).
	StopWait time.Duration

	// MetricsAddr, when set, serves /metrics, /healthz and /readyz there (host:port).
	MetricsAddr string

	Logger *slog.Logger
	// Clock is the time source for the loop's own timers (default time.Now); task times
	// come from the database.
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = settings.DefaultConcurrency
	}
	if c.Policy.MaxAttempts == 0 && c.Policy.Backoff == 0 && len(c.Policy.Denylist) == 0 {
		c.Policy = lifecycle.DefaultPolicy()
	}
	if c.Results.MaxInline == 0 {
		c.Results.MaxInline = lifecycle.DefaultMaxInline
	}
	if c.Results.Backend == nil {
		c.Results.Backend = lifecycle.DigestBackend{}
	}
	// Only zero takes the default here (not settings.Default's "zero or negative"): a
	// negative ShutdownTimeout means "stop at once", and Validate refuses a negative heartbeat,
	// lease, stuck timeout or idle poll rather than hiding it behind a default.
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.StuckAfter, settings.DefaultStuckTaskTimeout)
	def(&c.LeaseTTL, settings.DefaultWorkerLease)
	def(&c.HeartbeatInterval, settings.DefaultWorkerHeartbeat)
	def(&c.ShutdownTimeout, settings.DefaultShutdownTimeout)
	def(&c.IdlePollMin, 100*time.Millisecond)
	def(&c.IdlePollMax, time.Second)
	def(&c.CancelCheckInterval, time.Second)
	def(&c.StatsTTL, 10*time.Second)
	def(&c.DBTimeout, 10*time.Second)
	def(&c.StopWait, 15*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate checks the settings an operator chooses (after defaults).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	// the limits of rayworker's flags (settings' ranges)
	if n, s := int64(c.Concurrency), settings.Concurrency; n < s.Min || n > s.Max {
		bad("concurrency %d is out of range %d..%d", n, s.Min, s.Max)
	}
	if n, s := int64(c.Policy.MaxAttempts), settings.MaxTaskAttempts; n < s.Min || n > s.Max {
		bad("max task attempts %d is out of range %d..%d", n, s.Min, s.Max)
	}
	if c.Policy.Backoff < 0 {
		bad("retry backoff must not be negative")
	}
	if n, s := c.Results.MaxInline, settings.MaxResultSizeBytes; n < s.Min || n > s.Max {
		bad("max result size %d is out of range %d..%d", n, s.Min, s.Max)
	}
	if c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.LeaseTTL {
		bad("heartbeat interval %s must be positive and shorter than the lease %s", c.HeartbeatInterval, c.LeaseTTL)
	}
	if c.HeartbeatInterval >= c.StuckAfter {
		bad("heartbeat interval %s must be shorter than the stuck-task timeout %s", c.HeartbeatInterval, c.StuckAfter)
	}
	if c.IdlePollMin <= 0 || c.IdlePollMax < c.IdlePollMin {
		bad("idle poll bounds %s..%s are invalid", c.IdlePollMin, c.IdlePollMax)
	}
	return errors.Join(errs...)
}
