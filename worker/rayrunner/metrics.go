package rayrunner

import "github.com/prometheus/client_golang/prometheus"

// metrics are the runner's own; the worker serves them on its /metrics (the Runner is a
// prometheus.Collector).
type metrics struct {
	submissions     *prometheus.CounterVec // result
	submitLatency   prometheus.Histogram
	requests        *prometheus.CounterVec // endpoint, result
	rounds          *prometheus.CounterVec // mode
	interval        prometheus.Gauge
	watched         prometheus.Gauge
	up              prometheus.Gauge
	outages         prometheus.Counter
	authFailures    prometheus.Counter
	orphans         *prometheus.CounterVec // result
	lost            prometheus.Counter
	pendingTimeouts prometheus.Counter
	all             []prometheus.Collector
}

func newMetrics() *metrics {
	m := &metrics{
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rayworker_ray_submissions_total",
			Help: "Ray job submissions (POSTs) by result: accepted, duplicate (Ray had the id already: no second run), unknown (timeout or 5xx: the id is looked up before another POST), refused (401/403), rejected (the attempt fails)."},
			[]string{"result"}),
		submitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rayworker_ray_submit_duration_seconds",
			Help:    "Latency of one Ray job submission (POST /api/jobs/).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rayworker_ray_requests_total",
			Help: "Requests to the Ray Jobs API by endpoint (submit, get, list, stop, logs, health, version) and result."},
			[]string{"endpoint", "result"}),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rayworker_ray_poll_rounds_total",
			Help: "Status rounds over the watched jobs, by mode: list (one GET /api/jobs/) or get (one GET per job)."},
			[]string{"mode"}),
		interval: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rayworker_ray_poll_interval_seconds",
			Help: "The monitor's current interval between status rounds (10x the last round's cost, clamped)."}),
		watched: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rayworker_ray_jobs_watched",
			Help: "Ray jobs the runner tracks (in flight, finishing, or offered for adoption)."}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rayworker_ray_api_up",
			Help: "1 while the Ray Jobs API answers and accepts this worker, else 0."}),
		outages: prometheus.NewCounter(prometheus.CounterOpts{Name: "rayworker_ray_outages_total",
			Help: "Times the Ray Jobs API became unreachable (one per outage, not per request)."}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "rayworker_ray_config_errors_total",
			Help: "Times the Ray Jobs API started refusing this worker: HTTP 401/403 (auth token), an untrusted TLS certificate, or not a Ray Jobs API."}),
		orphans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rayworker_ray_orphan_checks_total",
			Help: "Dead workers' jobs looked up for adoption, by what Ray said: running, finished, not_found; and for not_found what followed: resubmitted (Ray never had it), lost (TaskLost), foreign (another cluster's)."},
			[]string{"result"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "rayworker_ray_jobs_lost_total",
			Help: "Jobs Ray had and then no longer knew (404): retried as TaskLost."}),
		pendingTimeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: "rayworker_ray_pending_timeouts_total",
			Help: "Jobs stopped for staying PENDING longer than the limit."}),
	}
	m.all = []prometheus.Collector{m.submissions, m.submitLatency, m.requests, m.rounds, m.interval, m.watched, m.up,
		m.outages, m.authFailures, m.orphans, m.lost, m.pendingTimeouts}
	return m
}

// Describe implements prometheus.Collector.
func (r *Runner) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range r.m.all {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (r *Runner) Collect(ch chan<- prometheus.Metric) {
	for _, c := range r.m.all {
		c.Collect(ch)
	}
}
