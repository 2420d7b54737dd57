package recovery

import (
	"context"

	"github.com/rayctl/rayctl/store"
)

// Gauges are the runbook's /api/metrics figures (django-ray's example project):
// django_ray_tasks_total{state} for all seven states (zeros included),
// django_ray_tasks_queued, django_ray_tasks_running and django_ray_queue_depth{queue} for each
// queue with QUEUED rows.
type Gauges struct {
	States     map[store.TaskState]int64 `json:"states"`
	Queued     int64                     `json:"queued"`
	Running    int64                     `json:"running"`
	QueueDepth map[string]int64          `json:"queue_depth"`
}

// ReadGauges computes the gauges in one grouped query.
func ReadGauges(ctx context.Context, s *store.Store) (Gauges, error) {
	g := Gauges{States: map[store.TaskState]int64{}, QueueDepth: map[string]int64{}}
	for _, st := range store.AllStates {
		g.States[st] = 0
	}
	counts, err := s.CountByQueueState(ctx)
	if err != nil {
		return g, err
	}
	for _, c := range counts {
		g.States[c.State] += c.Count
		if c.State == store.StateQueued {
			g.QueueDepth[c.Queue] += c.Count
		}
	}
	g.Queued, g.Running = g.States[store.StateQueued], g.States[store.StateRunning]
	return g, nil
}
