// Package gauges is the one definition of the runbook's queue gauges, django-ray's example
// /api/metrics: their names, help and labels here, their figures from one store query
// (store.Store.Gauges). rayworker's /metrics and `rayctl metrics serve` both expose them
// through it; each decides only how often it reads the database and what a failed read shows.
package gauges

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rayctl/rayctl/store"
)

// The four gauges.
var (
	tasksTotal = prometheus.NewDesc("django_ray_tasks_total", "Tasks per state (all seven states, zeros included).", []string{"state"}, nil)
	queued     = prometheus.NewDesc("django_ray_tasks_queued", "Tasks in state QUEUED.", nil, nil)
	running    = prometheus.NewDesc("django_ray_tasks_running", "Tasks in state RUNNING.", nil, nil)
	depth      = prometheus.NewDesc("django_ray_queue_depth", "QUEUED tasks per queue (queues with any).", []string{"queue"}, nil)
	all        = []*prometheus.Desc{tasksTotal, queued, running, depth}
)

// Describe sends the gauges' descriptors (prometheus.Collector's Describe).
func Describe(ch chan<- *prometheus.Desc) {
	for _, d := range all {
		ch <- d
	}
}

// Collect sends the gauges' values for g: every state, zeros included, and the depth of each
// queue with QUEUED tasks.
func Collect(ch chan<- prometheus.Metric, g store.Gauges) {
	for _, st := range store.AllStates {
		ch <- prometheus.MustNewConstMetric(tasksTotal, prometheus.GaugeValue, float64(g.States[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(queued, prometheus.GaugeValue, float64(g.Queued))
	ch <- prometheus.MustNewConstMetric(running, prometheus.GaugeValue, float64(g.Running))
	for q, n := range g.QueueDepth {
		if n > 0 {
			ch <- prometheus.MustNewConstMetric(depth, prometheus.GaugeValue, float64(n), q)
		}
	}
}

// CollectError makes each gauge fail the scrape with err, for a collector that would rather
// fail than serve old figures.
func CollectError(ch chan<- prometheus.Metric, err error) {
	for _, d := range all {
		ch <- prometheus.NewInvalidMetric(d, err)
	}
}
