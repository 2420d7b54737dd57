package pyexec

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the executor metrics both executor runners (pool and Ray Core) serve on the
// worker's /metrics. The live view (executors by state, their memory) is read from the runner
// at scrape time through the functions it gives NewMetrics.
type Metrics struct {
	Restarts      *prometheus.CounterVec // reason
	StartFailures prometheus.Counter
	StartSeconds  prometheus.Histogram
	Tasks         prometheus.Counter

	states    func() map[string]int
	rss       func() int64
	stateDesc *prometheus.Desc
	rssDesc   *prometheus.Desc
}

// ExecutorStates are the values of the state label of rayworker_executors.
var ExecutorStates = []string{"idle", "busy", "starting", "stopping"}

// NewMetrics returns the executor metrics; states reports how many executors are in each of
// ExecutorStates, rss their total resident memory in bytes.
func NewMetrics(states func() map[string]int, rss func() int64) *Metrics {
	return &Metrics{
		Restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rayworker_executor_restarts_total",
			Help: "Python executors replaced, by reason: crashed (died running a task: segfault, os._exit, OOM kill, kill -9), " +
				"killed (stopped for a timeout or a cancel), exited (a task raised SystemExit), recycled_tasks " +
				"(--max-tasks-per-executor), recycled_rss (--executor-max-rss-mb), died_idle, disconnected (Ray Core: the cluster stopped answering)."},
			[]string{"reason"}),
		StartFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "rayworker_executor_start_failures_total",
			Help: "Python executor starts that failed after the worker had started (retried with a backoff; claims are held while none runs)."}),
		StartSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rayworker_executor_start_seconds",
			Help:    "Time for a Python executor to become ready (interpreter start, django.setup(); ray.init() in Ray Core mode).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		Tasks: prometheus.NewCounter(prometheus.CounterOpts{Name: "rayworker_executor_tasks_total",
			Help: "Task attempts handed to Python executors."}),
		states: states,
		rss:    rss,
		stateDesc: prometheus.NewDesc("rayworker_executors", "Python executors by state: idle, busy (running a task; "+
			"in Ray Core mode the driver is busy while tasks are in flight), starting, stopping.", []string{"state"}, nil),
		rssDesc: prometheus.NewDesc("rayworker_executor_rss_bytes", "Resident memory of the live Python executors, summed.", nil, nil),
	}
}

// Start starts an executor (Start) and records how long it took to become ready
// (rayworker_executor_start_seconds); a failed start is the caller's to count.
func (m *Metrics) Start(ctx context.Context, cfg Config) (*Executor, error) {
	began := time.Now()
	ex, err := Start(ctx, cfg)
	if err == nil {
		m.StartSeconds.Observe(time.Since(began).Seconds())
	}
	return ex, err
}

// Backoff paces KeepStarting: it waits First before its first try, then after each failed
// start twice its last wait, at least Min and at most Max.
type Backoff struct{ First, Min, Max time.Duration }

// KeepStarting starts an executor with cfg() until one starts, and returns it; it returns
// false, having stopped any executor it started meanwhile, when ctx ends. Each failed start
// is counted (rayworker_executor_start_failures_total) and given to failed with the wait
// before the next try: the runners' restart after an executor died.
func (m *Metrics) KeepStarting(ctx context.Context, cfg func() Config, b Backoff, failed func(err error, retryIn time.Duration)) (*Executor, bool) {
	wait := b.First
	for {
		if wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, false
			}
		}
		if ctx.Err() != nil {
			return nil, false
		}
		ex, err := m.Start(ctx, cfg())
		if ctx.Err() != nil {
			if err == nil {
				ex.Discard()
			}
			return nil, false
		}
		if err == nil {
			return ex, true
		}
		m.StartFailures.Inc()
		wait = min(max(2*wait, b.Min), b.Max)
		failed(err, wait)
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.Restarts.Describe(ch)
	m.StartFailures.Describe(ch)
	m.StartSeconds.Describe(ch)
	m.Tasks.Describe(ch)
	ch <- m.stateDesc
	ch <- m.rssDesc
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.Restarts.Collect(ch)
	m.StartFailures.Collect(ch)
	m.StartSeconds.Collect(ch)
	m.Tasks.Collect(ch)
	states := m.states()
	for _, s := range ExecutorStates {
		ch <- prometheus.MustNewConstMetric(m.stateDesc, prometheus.GaugeValue, float64(states[s]), s)
	}
	ch <- prometheus.MustNewConstMetric(m.rssDesc, prometheus.GaugeValue, float64(m.rss()))
}
