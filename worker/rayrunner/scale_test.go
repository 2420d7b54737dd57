package rayrunner_test

import (
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/rayrunner"
	"github.com/rayctl/rayctl/worker/workertest"
)

// TestWatching1000Jobs: with 1,000 jobs in flight the runner watches them with one list per
// round, never a GET per job, rounds at least the default minimum interval apart (longer when
// a list is slow): a handful of requests per second, not a thousand; a completion is still
// seen (by the next list) and costs one log read. The figures for docs/benchmarks.md come from
// bench/rayrunner; this test checks the behaviour behind them.
func TestWatching1000Jobs(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t, raytest.WithLifecycle(func(raytest.Submission) []raytest.Step {
		return []raytest.Step{{After: 0, Status: raytest.Running}}
	}))
	e := newRunner(t, srv, nil, func(c *rayrunner.Config) {
		c.MinPollInterval, c.MaxPollInterval = rayrunner.DefaultMinPollInterval, rayrunner.DefaultMaxPollInterval
		c.SubmitConcurrency = 8
		c.SessionCheck = rayrunner.DefaultSessionCheck
	})
	e.waitReady()
	const n = 1000
	tasks := make([]store.Task, n)
	for i := range tasks {
		tasks[i] = task(int64(i+1), "myapp.tasks.x", "[]", "{}")
		e.start(tasks[i])
	}
	workertest.Eventually(t, 2*time.Minute, "1,000 jobs running", func() bool {
		for _, s := range e.poll(tasks...) {
			if s.Phase != worker.Running {
				return false
			}
		}
		j, _ := srv.Job(*tasks[n-1].RayJobID)
		return len(srv.Jobs()) == n && j.Status == raytest.Running
	})

	before := counts(srv)
	const window = 5 * time.Second
	time.Sleep(window)
	d := diff(counts(srv), before)
	t.Logf("1,000 jobs in flight, %s: %v (%.2f requests/s; poll interval %.2fs)", window, d, float64(total(d))/window.Seconds(),
		metric(t, e.r, "rayworker_ray_poll_interval_seconds", nil))
	if d[raytest.Get] != 0 || d[raytest.Submit] != 0 || d[raytest.Logs] != 0 {
		t.Fatalf("per-job requests while watching: %v", d)
	}
	if max := int(window/rayrunner.DefaultMinPollInterval) + 1; d[raytest.List] > max {
		t.Fatalf("%d lists in %s: want one per round, rounds at least %s apart (at most %d)", d[raytest.List], window, rayrunner.DefaultMinPollInterval, max)
	}

	// a completion is seen in the next list and costs one log read
	before = counts(srv)
	srv.Update(t, *tasks[0].RayJobID, func(j *raytest.Job) { j.Status = raytest.Succeeded; j.Logs = envelope("1") + "\n" })
	// within the next round: at most the longest interval (a loaded machine makes the list
	// slow and the interval long; the point here is what the completion costs, not when)
	e.waitPhase(tasks[0], worker.Done, rayrunner.DefaultMaxPollInterval+30*time.Second)
	if d := diff(counts(srv), before); d[raytest.Logs] != 1 || d[raytest.Get] != 0 {
		t.Fatalf("one completion cost %v", d)
	}
}

func counts(srv *raytest.Server) map[raytest.Endpoint]int {
	out := map[raytest.Endpoint]int{}
	for _, ep := range []raytest.Endpoint{raytest.Submit, raytest.List, raytest.Get, raytest.Stop, raytest.Logs, raytest.Version, raytest.Health} {
		out[ep] = srv.Count(ep)
	}
	return out
}

func diff(a, b map[raytest.Endpoint]int) map[raytest.Endpoint]int {
	out := map[raytest.Endpoint]int{}
	for k, v := range a {
		if v-b[k] != 0 {
			out[k] = v - b[k]
		}
	}
	return out
}

func total(m map[raytest.Endpoint]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
