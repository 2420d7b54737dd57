package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/resultstore"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/procrunner"
	"github.com/rayctl/rayctl/worker/pyexec"
)

func newLogger(w io.Writer, json bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve connects, builds the runner and runs the worker until ctx ends.
func (e env) serve(ctx context.Context, o options) error {
	log := newLogger(e.stderr, o.logJSON)
	if o.mode == "sync" {
		if len(o.ignored) > 0 {
			sort.Strings(o.ignored)
			log.Warn("runtime_env keys other than env_vars are ignored with --sync", "keys", o.ignored)
		}
		if o.exec.runner == runnerProcess {
			if _, err := exec.LookPath(o.runner.Entrypoint[0]); err != nil {
				log.Warn("the entrypoint command was not found; tasks fail until it exists", "command", o.runner.Entrypoint[0], "error", err)
			}
		}
	}
	var python string
	if o.exec.runner == runnerPool || o.exec.runner == runnerRayCore {
		var err error
		if python, err = pyexec.ResolvePython(o.exec.python, e.getenv); err != nil {
			return usageErrorf("%v", err)
		}
	}

	var client *rayjobs.Client
	if o.exec.runner == runnerRayJob {
		var err error
		if client, err = e.rayClient(o); err != nil { // a bad address, token file or CA: exit 2 before anything starts
			return err
		}
		defer client.Close()
	}

	pool, err := store.Open(ctx, o.dsn, func(c *pgxpool.Config) {
		c.MaxConns = 4
		c.ConnConfig.RuntimeParams["application_name"] = "rayworker"
	})
	if err != nil {
		if o.dsn == "" && e.getenv("PGHOST") == "" {
			return fmt.Errorf("%v (set --database-url or DATABASE_URL)", err)
		}
		return err
	}
	defer pool.Close()

	var runner worker.Runner
	switch o.exec.runner {
	case runnerProcess:
		if runner, err = procrunner.New(o.runner); err != nil {
			return err
		}
	case runnerPool:
		if runner, err = e.poolRunner(ctx, o, python, log); err != nil {
			return err
		}
	case runnerRayCore:
		if runner, err = e.rayCoreRunner(ctx, o, python, log); err != nil {
			return err
		}
	default:
		rr, stop, err := e.rayRunner(ctx, o, client, log)
		if err != nil {
			return err
		}
		defer stop()
		runner = rr
	}
	cfg := o.cfg
	cfg.Logger = log
	defer resultstore.Close(cfg.Results.Backend)
	w, err := worker.New(cfg, store.New(pool), runner)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = runner.Close(cctx)
		return usageErrorf("%v", err)
	}
	attrs := []any{"mode", o.mode, "runner", o.exec.runner, "database", store.RedactDSN(o.dsn)}
	switch o.exec.runner {
	case runnerProcess, runnerRayJob:
		attrs = append(attrs, "entrypoint", o.entryText)
	case runnerPool:
		attrs = append(attrs, "python", python, "executors", cfg.Concurrency, "max_tasks_per_executor", o.exec.maxTasks,
			"executor_max_rss_mb", o.exec.maxRSS>>20)
	case runnerRayCore:
		attrs = append(attrs, "python", python, "ray_address", coreAddressText(o.exec.coreAddress), "ray_address_from", o.exec.coreAddressSrc)
	}
	attrs = append(attrs,
		"max_task_attempts", cfg.Policy.MaxAttempts, "retry_backoff", cfg.Policy.Backoff.String(), "denylist", cfg.Policy.Denylist,
		"stuck_after", cfg.StuckAfter.String(), "lease_ttl", cfg.LeaseTTL.String(), "heartbeat", cfg.HeartbeatInterval.String(),
		"max_result_size_bytes", cfg.Results.MaxInline, "result_storage", resultstore.Describe(cfg.Results.Backend))
	if o.mode == "sync" || o.exec.runner == runnerRayCore {
		attrs = append(attrs, "runtime_env_vars", len(o.runner.Env))
	} else {
		attrs = append(attrs, "ray_address", o.ray.address, "ray_address_from", o.ray.addressSource, "runtime_env_keys", mapKeys(o.ray.runtimeEnv),
			"runtime_env_vars", len(o.runner.Env), "ray_pending_timeout", o.ray.pendingTimeout.String())
		if res := o.ray.resources; res.NumCPUs > 0 || res.NumGPUs > 0 || res.Memory > 0 || len(res.Custom) > 0 {
			attrs = append(attrs, "entrypoint_num_cpus", res.NumCPUs, "entrypoint_num_gpus", res.NumGPUs,
				"entrypoint_memory_mb", res.Memory>>20, "entrypoint_resources", res.Custom)
		}
	}
	log.Info("configuration", append(attrs, "version", build.Version, "commit", build.Commit)...)
	if b, ok := cfg.Results.Backend.(*resultstore.Bucket); ok {
		// a missing credential is worth knowing now, not at the first oversized result
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		src, err := b.Credentials(cctx)
		cancel()
		if err != nil {
			log.Warn("result storage has no usable credentials yet; results over max_result_size_bytes get digest references until it has",
				"result_storage", b.Location(), "error", err)
		} else {
			log.Info("result storage credentials", "result_storage", b.Location(), "credentials", src)
		}
	}
	stopNotify := notifySystemd(ctx, e.getenv, w.Handler(), log)
	defer stopNotify()
	if err := w.Run(ctx); err != nil {
		// The worker never ran (no lease, metrics address in use): stop what the runner
		// started (executors, a Ray driver) before exiting.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = runner.Close(cctx)
		return err
	}
	return nil
}

func mapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
