package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/gauges"
	"github.com/rayctl/rayctl/store"
)

func (e env) metricsCommand() *cli.Command {
	return &cli.Command{
		Name:  "metrics",
		Usage: "Prometheus metrics",
		Subcommands: []*cli.Command{{
			Name:  "serve",
			Usage: "serve the runbook's /api/metrics gauges for a Prometheus scrape, and /healthz",
			Description: "GET /metrics serves, in the Prometheus text format, the gauges of django-ray's example\n" +
				"/api/metrics that the runbook watches:\n" +
				"   django_ray_tasks_total{state}   tasks per state, all 7 states, zeros included\n" +
				"   django_ray_tasks_queued         QUEUED tasks\n" +
				"   django_ray_tasks_running        RUNNING tasks\n" +
				"   django_ray_queue_depth{queue}   QUEUED tasks per queue (queues with any)\n" +
				"They come from one grouped COUNT query, run at most once per --min-interval however often\n" +
				"Prometheus scrapes; when the database cannot be read the scrape fails (HTTP 500) rather\n" +
				"than serve old figures. GET /healthz answers 200 when the database answers a ping within\n" +
				"2 s, else 503. SIGINT or SIGTERM shut the server down gracefully.\n\n" +
				"EXIT CODES:\n   0  stopped by a signal\n   1  error (database unreachable at start, address in use)\n   2  usage error",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "addr", Value: ":9090", Usage: "listen address"},
				&cli.DurationFlag{Name: "min-interval", Value: 5 * time.Second, Usage: "query the database at most this often"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return usageErrorf("metrics serve: unexpected argument %q", c.Args().First())
				}
				interval := c.Duration("min-interval")
				if interval < 0 {
					return usageErrorf("metrics serve: invalid --min-interval %s", interval)
				}
				addr := c.String("addr")
				_, port, err := net.SplitHostPort(addr)
				if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
					return usageErrorf("metrics serve: invalid --addr %q (want host:port or :port)", addr)
				}
				return e.withDB(c, func(r *runCtx) error { return serveMetrics(r, addr, interval) })
			},
		}},
	}
}

// gaugeCollector exposes the runbook's gauges (package gauges), read at most once per
// minInterval; a failed read fails the scrape.
type gaugeCollector struct {
	s           *store.Store
	ctx         context.Context
	minInterval time.Duration

	mu        sync.Mutex
	at        time.Time
	cached    store.Gauges
	refreshes int
}

func newGaugeCollector(ctx context.Context, s *store.Store, minInterval time.Duration) *gaugeCollector {
	return &gaugeCollector{s: s, ctx: ctx, minInterval: minInterval}
}

// Describe implements prometheus.Collector.
func (g *gaugeCollector) Describe(ch chan<- *prometheus.Desc) { gauges.Describe(ch) }

func (g *gaugeCollector) read() (store.Gauges, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refreshes > 0 && time.Since(g.at) < g.minInterval {
		return g.cached, nil
	}
	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	defer cancel()
	v, err := g.s.Gauges(ctx)
	if err != nil {
		return v, err
	}
	g.cached, g.at = v, time.Now()
	g.refreshes++
	return v, nil
}

// Collect implements prometheus.Collector.
func (g *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	v, err := g.read()
	if err != nil {
		gauges.CollectError(ch, fmt.Errorf("read the task counts: %w", err))
		return
	}
	gauges.Collect(ch, v)
}

// metricsHandler is the HTTP side of metrics serve: /metrics and /healthz.
func metricsHandler(r *runCtx, c *gaugeCollector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, req *http.Request) {
		pctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
		defer cancel()
		if err := r.pool.Ping(pctx); err != nil {
			http.Error(w, "database unreachable: "+store.ConnErrorReason(err, r.o.dsn), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

func serveMetrics(r *runCtx, addr string, minInterval time.Duration) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics serve: %w", err)
	}
	col := newGaugeCollector(r.ctx, r.store, minInterval)
	srv := &http.Server{Handler: metricsHandler(r, col), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	fmt.Fprintf(r.stdout, "rayctl metrics: serving http://%s/metrics and /healthz (database read at most every %s)\n", l.Addr(), minInterval)
	select {
	case err := <-served:
		return fmt.Errorf("metrics serve: %w", err)
	case <-r.ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("metrics serve: shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics serve: %w", err)
	}
	fmt.Fprintln(r.stdout, "rayctl metrics: stopped")
	return nil
}
