package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/procrunner"
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
	if o.mode != "sync" {
		return usageErrorf("only --sync is available in this build: the Ray runners (--local, --cluster ADDR, and the default Ray Job mode) are not implemented yet")
	}
	log := newLogger(e.stderr, o.logJSON)
	if len(o.ignored) > 0 {
		sort.Strings(o.ignored)
		log.Warn("runtime_env keys other than env_vars are ignored with --sync", "keys", o.ignored)
	}
	if _, err := exec.LookPath(o.runner.Entrypoint[0]); err != nil {
		log.Warn("the entrypoint command was not found; tasks fail until it exists", "command", o.runner.Entrypoint[0], "error", err)
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

	runner, err := procrunner.New(o.runner)
	if err != nil {
		return err
	}
	cfg := o.cfg
	cfg.Logger = log
	w, err := worker.New(cfg, store.New(pool), runner)
	if err != nil {
		return usageErrorf("%v", err)
	}
	log.Info("configuration", "mode", o.mode, "database", store.RedactDSN(o.dsn), "entrypoint", o.runner.Entrypoint[0],
		"max_task_attempts", cfg.Policy.MaxAttempts, "retry_backoff", cfg.Policy.Backoff.String(), "denylist", cfg.Policy.Denylist,
		"stuck_after", cfg.StuckAfter.String(), "lease_ttl", cfg.LeaseTTL.String(), "heartbeat", cfg.HeartbeatInterval.String(),
		"max_result_size_bytes", cfg.Results.MaxInline, "result_storage", cfg.Results.Backend.Name(),
		"runtime_env_vars", len(o.runner.Env), "version", version)
	return w.Run(ctx)
}
