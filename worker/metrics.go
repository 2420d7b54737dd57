package worker

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rayctl/rayctl/gauges"
	"github.com/rayctl/rayctl/store"
)

// metrics are the worker's own counters and histograms plus the runbook's queue gauges.
type metrics struct {
	reg *prometheus.Registry

	claimed       prometheus.Counter
	outcomes      *prometheus.CounterVec   // outcome
	duration      *prometheus.HistogramVec // outcome
	queueWait     prometheus.Histogram
	claimLatency  prometheus.Histogram
	inFlight      prometheus.Gauge
	concurrency   prometheus.Gauge
	dbErrors      *prometheus.CounterVec // op
	leaseRenewed  prometheus.Counter
	leasesExpired prometheus.Counter
	recovered     *prometheus.CounterVec // kind: lost, timed_out, cancelled, adopted, reclaimed
	fallbacks     prometheus.Counter
}

func newMetrics(s *store.Store, statsTTL, dbTimeout time.Duration, clock func() time.Time) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		claimed: prometheus.NewCounter(prometheus.CounterOpts{Name: "rayworker_tasks_claimed_total",
			Help: "Tasks this worker claimed (QUEUED -> RUNNING)."}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rayworker_task_outcomes_total",
			Help: "Attempts this worker ended, by what it wrote: succeeded, retried, failed, cancelled, lost, timed_out, released (handed back at shutdown), discarded (the row had moved on), unstorable (PostgreSQL refused the outcome: recorded as FAILED UnstorableOutcome, or, if even that was refused, left for stuck-task recovery)."},
			[]string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rayworker_task_duration_seconds",
			Help:    "Run time of attempts this worker ended, from start to outcome.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14)}, []string{"outcome"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rayworker_queue_wait_seconds",
			Help:    "Time from a task becoming runnable (created_at or run_after) to this worker claiming it.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14)}),
		claimLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rayworker_claim_duration_seconds",
			Help:    "Latency of the batch claim statement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rayworker_tasks_in_flight",
			Help: "Attempts this worker is running or monitoring now."}),
		concurrency: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rayworker_concurrency",
			Help: "Attempts this worker runs at most at once."}),
		dbErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rayworker_db_errors_total",
			Help: "Database calls of the loop that failed, by operation."}, []string{"op"}),
		leaseRenewed: prometheus.NewCounter(prometheus.CounterOpts{Name: "rayworker_lease_recreated_total",
			Help: "Times this worker found its lease missing or inactive and re-created it."}),
		leasesExpired: prometheus.NewCounter(prometheus.CounterOpts{Name: "rayworker_leases_expired_total",
			Help: "Other workers' leases this worker deactivated for a stale heartbeat."}),
		recovered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rayworker_tasks_recovered_total",
			Help: "Tasks of this or dead workers ended by the sweeps: lost, timed_out, cancelled (CANCELLING finalized); adopted: dead workers' running jobs taken over; reclaimed: this worker's tasks marked LOST while it could not reach the database, taken back."},
			[]string{"kind"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "rayworker_result_storage_fallbacks_total",
			Help: "Oversized results stored as a digest reference because the configured backend failed."}),
	}
	reg.MustRegister(m.claimed, m.outcomes, m.duration, m.queueWait, m.claimLatency, m.inFlight, m.concurrency,
		m.dbErrors, m.leaseRenewed, m.leasesExpired, m.recovered, m.fallbacks,
		&queueCollector{store: s, ttl: statsTTL, timeout: dbTimeout, clock: clock, errors: m.dbErrors},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// queueCollector serves the runbook's gauges (package gauges) from store.Gauges, read at most
// once per ttl however often Prometheus scrapes (the query counts the whole task table). When
// the database cannot be read the last figures are served; with none, the gauges are omitted.
type queueCollector struct {
	store   *store.Store
	ttl     time.Duration
	timeout time.Duration
	clock   func() time.Time
	errors  *prometheus.CounterVec

	mu   sync.Mutex
	at   time.Time
	last *store.Gauges
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { gauges.Describe(ch) }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	if g := c.snapshot(); g != nil {
		gauges.Collect(ch, *g)
	}
}

func (c *queueCollector) snapshot() *store.Gauges {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	if c.last != nil && now.Sub(c.at) < c.ttl {
		return c.last
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	g, err := c.store.Gauges(ctx)
	if err != nil {
		c.errors.WithLabelValues("stats").Inc() // the op's name before the gauges had their own query
		return c.last
	}
	c.last, c.at = &g, now
	return c.last
}
