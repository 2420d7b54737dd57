// Command rayrunner measures rayworker's Ray Job mode (package worker/rayrunner) and prints
// Markdown for docs/benchmarks.md:
//
//   - watch: the requests per second one runner sends while N jobs are in flight, against
//     the fake Jobs API (-fake, counted by the server) or a real Ray (counted by the runner's
//     request metrics; the jobs ask for a resource no node has, so they stay PENDING: a KV
//     record and a pending actor in Ray, no process);
//
//   - overhead: per-task time through the whole worker (claim, submit, poll, logs, result
//     written) against Ray's own start_time -> end_time for the same job, one task at a time,
//     with the real django-ray entrypoint (needs DATABASE_URL; a throwaway schema is used).
//
//     go run ./bench/rayrunner -fake -n 1000 -window 60s
//     eval "$(scripts/pg.sh start /tmp/pgbench)"; eval "$(scripts/ray.sh start /tmp/raybench)"
//     go run ./bench/rayrunner -n 1000 -window 60s -overhead 20
//     scripts/ray.sh stop /tmp/raybench; scripts/pg.sh stop /tmp/pgbench
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rayctl/rayctl/bench/internal/benchdb"
	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/rayrunner"
)

func main() {
	fake := flag.Bool("fake", false, "measure against the in-process fake Jobs API instead of $RAY_ADDRESS")
	addr := flag.String("address", os.Getenv("RAY_ADDRESS"), "Ray Jobs API address (default $RAY_ADDRESS)")
	n := flag.Int("n", 1000, "jobs in flight for the watch measurement (0: skip)")
	window := flag.Duration("window", time.Minute, "how long to count requests once every job is in flight")
	overhead := flag.Int("overhead", 0, "tasks to run one at a time through the worker for the overhead measurement (real Ray and DATABASE_URL)")
	pythonPath := flag.String("pythonpath", os.Getenv("RAYCTL_PYTHONPATH"), "PYTHONPATH for the django-ray jobs (default $RAYCTL_PYTHONPATH, else ./python)")
	flag.Parse()
	if *pythonPath == "" {
		*pythonPath, _ = filepath.Abs("python")
	}
	ctx := context.Background()
	if *fake {
		srv := raytest.Start(raytest.WithLifecycle(func(raytest.Submission) []raytest.Step {
			return []raytest.Step{{After: 0, Status: raytest.Running}}
		}))
		defer srv.Close()
		*addr = srv.URL
		if *n > 0 {
			if err := watch(ctx, *addr, *n, *window, srv); err != nil {
				fail(err)
			}
		}
		return
	}
	if *n > 0 {
		if err := watch(ctx, *addr, *n, *window, nil); err != nil {
			fail(err)
		}
	}
	if *overhead > 0 {
		if err := measureOverhead(ctx, *addr, *pythonPath, *overhead); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func newRunner(addr string, mod func(*rayrunner.Config)) (*rayrunner.Runner, *rayjobs.Client, error) {
	c, err := rayjobs.New(rayjobs.Options{Address: addr, UserAgent: "rayctl/bench-rayrunner", ListTimeout: 5 * time.Minute})
	if err != nil {
		return nil, nil, err
	}
	cfg := rayrunner.Config{Client: c, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if mod != nil {
		mod(&cfg)
	}
	r, err := rayrunner.New(cfg)
	return r, c, err
}

func waitReady(r *rayrunner.Runner) error {
	deadline := time.Now().Add(time.Minute)
	for r.Ready() != nil {
		if time.Now().After(deadline) {
			return r.Ready()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// watch keeps n jobs in flight and counts the runner's requests over window.
func watch(ctx context.Context, addr string, n int, window time.Duration, srv *raytest.Server) error {
	r, c, err := newRunner(addr, func(cfg *rayrunner.Config) {
		cfg.PendingTimeout = 24 * time.Hour
		cfg.SubmitConcurrency = 8
		if srv == nil {
			cfg.Resources.Custom = map[string]float64{"rayctl_bench_never": 1} // stays PENDING
		}
	})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_ = r.Close(cctx)
	}()
	if err := waitReady(r); err != nil {
		return err
	}
	v, _ := c.Version(ctx)
	before, err := c.List(ctx)
	if err != nil {
		return err
	}
	tasks := make([]store.Task, n)
	run := randomHex(4)
	start := time.Now()
	for i := range tasks {
		id := fmt.Sprintf("raysubmit_t%d_a1_%x%s", i+1, time.Now().UnixMicro(), run)
		started := time.Now()
		tasks[i] = store.Task{ID: int64(i + 1), CallablePath: "rayctl_testapp.tasks.add", State: store.StateRunning, AttemptNumber: 1,
			RayJobID: &id, StartedAt: &started, ArgsJSON: "[2, 3]", KwargsJSON: "{}"}
		if err := r.Start(ctx, tasks[i]); err != nil {
			return err
		}
	}
	for {
		st, err := r.Poll(ctx, tasks)
		if err != nil {
			return err
		}
		// every job accepted by Ray (Poll says Running while a submission is under way too)
		if !slices.ContainsFunc(st, func(s worker.Status) bool { return s.Phase != worker.Running }) && accepted(r) >= float64(n) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return errors.New("jobs not all in flight after 10 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	submitted := time.Since(start)
	keepPolling := make(chan struct{})
	polled := make(chan struct{})
	go func() { // the worker loop polls its in-flight tasks every second
		defer close(polled)
		for {
			select {
			case <-keepPolling:
				return
			case <-time.After(time.Second):
				_, _ = r.Poll(ctx, tasks)
			}
		}
	}()
	m0 := requestCounts(r)
	var s0 map[raytest.Endpoint]int
	if srv != nil {
		s0 = serverCounts(srv)
	}
	time.Sleep(window)
	m1 := requestCounts(r)
	close(keepPolling)
	<-polled

	where := "the in-process fake Jobs API (`-fake`)"
	if srv == nil {
		where = fmt.Sprintf("Ray %s at %s (%d jobs already kept; the new ones PENDING on a resource no node has)", v.RayVersion, addr, len(before))
	}
	fmt.Printf("#### %d jobs in flight, %s\n\n", n, where)
	fmt.Printf("Submitting all %d took %s (%.0f jobs/s with 8 submissions at once).\n\n", n, submitted.Round(time.Millisecond), float64(n)/submitted.Seconds())
	fmt.Printf("| endpoint | requests in %s | requests/s |\n|---|---|---|\n", window)
	total := 0.0
	for _, ep := range []string{"list", "get", "submit", "stop", "logs", "health", "version"} {
		d := m1[ep] - m0[ep]
		total += d
		fmt.Printf("| %s | %.0f | %.2f |\n", ep, d, d/window.Seconds())
	}
	fmt.Printf("| **all** | %.0f | **%.2f** |\n\n", total, total/window.Seconds())
	if srv != nil {
		s1 := serverCounts(srv)
		all := 0
		for k, v := range s1 {
			all += v - s0[k]
		}
		fmt.Printf("The fake counted %d requests in the window (%.2f/s).\n\n", all, float64(all)/window.Seconds())
	}
	fmt.Printf("Poll interval at the end: %.2f s (10x the last round's cost, at least %s).\n\n", gauge(r, "rayworker_ray_poll_interval_seconds"), rayrunner.DefaultMinPollInterval)
	if srv == nil {
		stopped := 0
		for _, t := range tasks {
			if ok, _ := c.Stop(ctx, *t.RayJobID); ok {
				stopped++
			}
		}
		fmt.Printf("(%d jobs stopped afterwards.)\n\n", stopped)
	}
	return nil
}

func serverCounts(srv *raytest.Server) map[raytest.Endpoint]int {
	out := map[raytest.Endpoint]int{}
	for _, ep := range []raytest.Endpoint{raytest.Submit, raytest.List, raytest.Get, raytest.Stop, raytest.Logs, raytest.Version, raytest.Health} {
		out[ep] = srv.Count(ep)
	}
	return out
}

func gather(r *rayrunner.Runner) []*dto.MetricFamily {
	reg := prometheus.NewRegistry()
	reg.MustRegister(r)
	mfs, _ := reg.Gather()
	return mfs
}

// requestCounts sums rayworker_ray_requests_total by endpoint.
func requestCounts(r *rayrunner.Runner) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range gather(r) {
		if mf.GetName() != "rayworker_ray_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// accepted counts submissions Ray accepted (or already had).
func accepted(r *rayrunner.Runner) float64 {
	sum := 0.0
	for _, mf := range gather(r) {
		if mf.GetName() == "rayworker_ray_submissions_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && (l.GetValue() == "accepted" || l.GetValue() == "duplicate") {
						sum += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return sum
}

func gauge(r *rayrunner.Runner, name string) float64 {
	for _, mf := range gather(r) {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

// histogram returns a histogram's count, sum and the upper bound of the bucket holding its
// median.
func histogram(r *rayrunner.Runner, name string) (count uint64, sum float64, p50 time.Duration) {
	for _, mf := range gather(r) {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			h := mf.GetMetric()[0].GetHistogram()
			for _, b := range h.GetBucket() {
				if b.GetCumulativeCount()*2 >= h.GetSampleCount() {
					p50 = time.Duration(b.GetUpperBound() * float64(time.Second))
					break
				}
			}
			return h.GetSampleCount(), h.GetSampleSum(), p50
		}
	}
	return 0, 0, 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// measureOverhead runs tasks one at a time through a worker with the Ray runner and the real
// django-ray entrypoint, and compares each task's time in the worker with Ray's own.
func measureOverhead(ctx context.Context, addr, pythonPath string, k int) error {
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		return errors.New("-overhead needs DATABASE_URL")
	}
	db, err := benchdb.Open(ctx, dsn, func(c *pgxpool.Config) { c.MaxConns = 4 })
	if err != nil {
		return err
	}
	defer db.Close()
	s := db.Store
	r, c, err := newRunner(addr, func(cfg *rayrunner.Config) {
		cfg.RuntimeEnv = map[string]any{"env_vars": map[string]any{"DJANGO_SETTINGS_MODULE": "rayctl_testapp.settings", "PYTHONPATH": pythonPath}}
	})
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Config{Concurrency: 4, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, s, r)
	if err != nil {
		return err
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { stop(); <-done }()
	if err := waitReady(r); err != nil {
		return err
	}

	var e2e, claimWait, inWorker, rayOwn, over []time.Duration
	for i := range k {
		t, err := s.Enqueue(ctx, store.NewTask{CallablePath: "rayctl_testapp.tasks.add", ArgsJSON: fmt.Sprintf("[%d, 3]", i)})
		if err != nil {
			return err
		}
		var row store.Task
		for {
			row, err = s.GetTask(ctx, t.ID)
			if err != nil {
				return err
			}
			if row.State.Terminal() {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if row.State != store.StateSucceeded || row.StartedAt == nil || row.FinishedAt == nil {
			return fmt.Errorf("task %d ended %s: %s", t.ID, row.State, deref(row.ErrorMessage))
		}
		j, err := c.Get(ctx, deref(row.RayJobID))
		if err != nil {
			return err
		}
		own := j.EndTime.Sub(j.StartTime)
		e2e = append(e2e, row.FinishedAt.Sub(row.CreatedAt))
		claimWait = append(claimWait, row.StartedAt.Sub(row.CreatedAt))
		inWorker = append(inWorker, row.FinishedAt.Sub(*row.StartedAt))
		rayOwn = append(rayOwn, own)
		over = append(over, row.FinishedAt.Sub(*row.StartedAt)-own)
	}
	subs, sum, p50 := histogram(r, "rayworker_ray_submit_duration_seconds")
	fmt.Printf("#### Per-task overhead: %d tasks one at a time, django-ray 0.2.0 entrypoint `add(i, 3)`\n\n", k)
	fmt.Printf("| measure | p50 | p95 | max |\n|---|---|---|---|\n")
	row := func(name string, d []time.Duration) {
		p50, p95, mx := pct(d)
		fmt.Printf("| %s | %s | %s | %s |\n", name, p50, p95, mx)
	}
	row("enqueue -> SUCCEEDED written (created_at -> finished_at)", e2e)
	row("enqueue -> claimed (created_at -> started_at)", claimWait)
	row("claimed -> SUCCEEDED written (started_at -> finished_at)", inWorker)
	row("Ray's own start_time -> end_time", rayOwn)
	row("worker overhead: (started_at -> finished_at) - Ray's own", over)
	fmt.Println()
	if subs > 0 {
		fmt.Printf("Submit (POST) latency over %d: mean %s, median <= %s (histogram bucket; the first submit to a fresh head is slow).\n\n",
			subs, time.Duration(sum/float64(subs)*float64(time.Second)).Round(100*time.Microsecond), p50)
	}
	return nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func pct(d []time.Duration) (p50, p95, mx time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.5).Round(time.Millisecond), at(0.95).Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond)
}
