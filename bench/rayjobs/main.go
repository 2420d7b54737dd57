// Command rayjobs measures the Ray Jobs API through package rayjobs against a real Ray head:
// submit latency, Ray's own job start time, GET latency, list latency as the number of jobs
// grows, and dashboard throughput. It prints Markdown for docs/benchmarks.md.
//
//	eval "$(scripts/ray.sh start /tmp/raybench)"
//	go run ./bench/rayjobs -sizes 100,250,500,1000
//	scripts/ray.sh stop /tmp/raybench
//
// It leaves jobs behind (the list test needs them): use a throwaway Ray.
package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rayctl/rayctl/rayjobs"
)

func main() {
	addr := flag.String("address", os.Getenv("RAY_ADDRESS"), "Ray Jobs API address (default $RAY_ADDRESS)")
	pythonPath := flag.String("pythonpath", os.Getenv("RAYCTL_PYTHONPATH"), "PYTHONPATH for the django-ray jobs (default $RAYCTL_PYTHONPATH, else ./python)")
	runs := flag.Int("n", 10, "jobs per start-time measurement")
	gets := flag.Int("gets", 300, "sequential GETs per latency measurement")
	sizesFlag := flag.String("sizes", "100,250,500,1000", "numbers of jobs at which to measure list and get latency")
	flag.Parse()
	if *pythonPath == "" {
		p, _ := filepath.Abs("python")
		*pythonPath = p
	}
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad -sizes:", err)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	c, err := rayjobs.New(rayjobs.Options{Address: *addr, UserAgent: "rayctl/bench", ListTimeout: 5 * time.Minute})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer c.Close()
	if err := run(context.Background(), c, *pythonPath, *runs, *gets, sizes); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c *rayjobs.Client, pythonPath string, runs, gets int, sizes []int) error {
	v, err := c.Version(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("Ray %s (Jobs API %s) at %s\n\n", v.RayVersion, v.Version, c.Address())

	djangoRay := func() rayjobs.SubmitRequest {
		payload := base64.URLEncoding.EncodeToString([]byte(`{"callable_path":"rayctl_testapp.tasks.add","serialized_args":"[2, 3]","serialized_kwargs":"{}"}`))
		return rayjobs.SubmitRequest{
			Entrypoint: "python -m django_ray.runtime.entrypoint --payload-b64 " + payload,
			RuntimeEnv: map[string]any{"env_vars": map[string]string{"DJANGO_SETTINGS_MODULE": "rayctl_testapp.settings", "PYTHONPATH": pythonPath}},
			Metadata:   map[string]string{"django_ray_task_id": "1", "callable_path": "rayctl_testapp.tasks.add"},
		}
	}
	fmt.Println("### Job start, one job at a time (polling GET every 20 ms)")
	fmt.Println()
	fmt.Println("| entrypoint | submit (POST) | submit -> RUNNING seen | submit -> SUCCEEDED seen | Ray start_time -> end_time |")
	fmt.Println("|---|---|---|---|---|")
	var lastID string
	for _, kind := range []struct {
		name string
		req  func() rayjobs.SubmitRequest
	}{
		{"`true`", func() rayjobs.SubmitRequest { return rayjobs.SubmitRequest{Entrypoint: "true"} }},
		{"django-ray 0.2.0 entrypoint, `add(2, 3)`", djangoRay},
	} {
		var submit, toRunning, toDone, rayDur []time.Duration
		for range runs {
			t0 := time.Now()
			id, err := c.Submit(ctx, kind.req())
			if err != nil {
				return err
			}
			t1 := time.Now()
			submit = append(submit, t1.Sub(t0))
			var running time.Duration
			for {
				j, err := c.Get(ctx, id)
				if err != nil {
					return err
				}
				if running == 0 && j.Status != rayjobs.StatusPending {
					running = time.Since(t0)
				}
				if j.Status.Terminal() {
					if j.Status != rayjobs.StatusSucceeded {
						return fmt.Errorf("job %s %s: %s", id, j.Status, j.Message)
					}
					toDone = append(toDone, time.Since(t0))
					rayDur = append(rayDur, j.EndTime.Sub(j.StartTime))
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			toRunning = append(toRunning, running)
			lastID = id
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", kind.name, stats(submit), stats(toRunning), stats(toDone), stats(rayDur))
	}
	fmt.Printf("\n(n=%d each; p50 / p95 / max)\n\n", runs)

	fmt.Println("### GET /api/jobs/{id} and GET /api/jobs/ as jobs accumulate")
	fmt.Println()
	fmt.Println("Extra jobs are submitted with `entrypoint_resources: {rayctl_bench_never: 1}`: they stay PENDING")
	fmt.Println("(in flight, never scheduled), which costs Ray a KV record and a pending actor but no process.")
	fmt.Println()
	fmt.Println("| jobs in Ray | GET one job p50 / p95 / max | GET list p50 / p95 / max | list body | 8 concurrent GETs: req/s |")
	fmt.Println("|---|---|---|---|---|")
	have, err := c.List(ctx)
	if err != nil {
		return err
	}
	count := len(have)
	for _, size := range sizes {
		if size > count {
			if err := submitPending(ctx, c, size-count); err != nil {
				return err
			}
			count = size
		}
		var g []time.Duration
		for range gets {
			t0 := time.Now()
			if _, err := c.Get(ctx, lastID); err != nil {
				return err
			}
			g = append(g, time.Since(t0))
		}
		var l []time.Duration
		var n int
		for range 10 {
			t0 := time.Now()
			jobs, err := c.List(ctx)
			if err != nil {
				return err
			}
			l = append(l, time.Since(t0))
			n = len(jobs)
		}
		bodySize, err := listBytes(ctx, c)
		if err != nil {
			return err
		}
		rps, err := throughput(ctx, c, lastID, 8, 3*time.Second)
		if err != nil {
			return err
		}
		fmt.Printf("| %d | %s | %s | %.0f KiB | %.0f |\n", n, stats(g), stats(l), float64(bodySize)/1024, rps)
	}
	return nil
}

// submitPending adds n jobs that stay PENDING, 8 submits at a time.
func submitPending(ctx context.Context, c *rayjobs.Client, n int) error {
	var wg sync.WaitGroup
	var firstErr atomic.Value
	sem := make(chan struct{}, 8)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := c.Submit(ctx, rayjobs.SubmitRequest{Entrypoint: "true", EntrypointResources: map[string]float64{"rayctl_bench_never": 1}})
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// listBytes fetches the list answer raw and counts its bytes (no token: a throwaway Ray).
func listBytes(ctx context.Context, c *rayjobs.Client) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Address()+"/api/jobs/", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "rayctl/bench")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}

// throughput runs workers goroutines doing GETs for d and returns requests per second.
func throughput(ctx context.Context, c *rayjobs.Client, id string, workers int, d time.Duration) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if _, err := c.Get(ctx, id); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(n.Load()) / d.Seconds(), nil
}

func stats(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("%s / %s / %s", round(q(0.5)), round(q(0.95)), round(s[len(s)-1]))
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(10 * time.Microsecond).String()
	}
}
