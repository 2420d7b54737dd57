package worker

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics (Prometheus text), /healthz (the loop is alive: it went round
// recently) and /readyz (the worker holds a live lease, its last database call worked, its
// runner is ready (ReadinessReporter), and it is not shutting down). Probes answer 200 or 503
// with a one-line reason.
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(w.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		last := w.lastTick.Load()
		if last == 0 {
			probe(rw, http.StatusServiceUnavailable, "not started")
			return
		}
		since := w.cfg.Clock().Sub(time.Unix(0, last))
		if limit := w.healthLimit(); since > limit {
			probe(rw, http.StatusServiceUnavailable, fmt.Sprintf("loop stalled: last iteration %s ago (limit %s)", since.Round(time.Millisecond), limit))
			return
		}
		probe(rw, http.StatusOK, "ok")
	})
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, _ *http.Request) {
		runnerErr := w.runnerReady()
		switch {
		case w.lastTick.Load() == 0:
			probe(rw, http.StatusServiceUnavailable, "not started")
		case w.stopping.Load():
			probe(rw, http.StatusServiceUnavailable, "shutting down")
		case !w.dbOK.Load():
			probe(rw, http.StatusServiceUnavailable, "database unreachable")
		case !w.leaseOK.Load():
			probe(rw, http.StatusServiceUnavailable, "no live lease")
		case runnerErr != nil:
			probe(rw, http.StatusServiceUnavailable, "runner not ready: "+runnerErr.Error())
		default:
			probe(rw, http.StatusOK, "ready")
		}
	})
	return mux
}

// healthLimit is how long the loop may go without an iteration: a few database calls at
// their timeout plus a heartbeat interval.
func (w *Worker) healthLimit() time.Duration {
	return 3*w.cfg.DBTimeout + w.cfg.HeartbeatInterval
}

func probe(rw http.ResponseWriter, code int, msg string) {
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.WriteHeader(code)
	fmt.Fprintln(rw, msg)
}
