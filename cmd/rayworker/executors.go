package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/rayctl/rayctl/worker/poolrunner"
	"github.com/rayctl/rayctl/worker/pyexec"
	"github.com/rayctl/rayctl/worker/raycore"
)

// poolRunner starts --sync's executor pool (one executor per concurrency slot). A start
// error (no interpreter, django_ray not importable, DJANGO_SETTINGS_MODULE missing or broken,
// django.setup() failing) is a configuration error: exit 2 before any task is claimed.
func (e env) poolRunner(ctx context.Context, o options, python string, log *slog.Logger) (*poolrunner.Runner, error) {
	r, err := poolrunner.New(ctx, poolrunner.Config{Python: python, Size: o.cfg.Concurrency, Env: o.runner.Env,
		MaxTasksPerExecutor: o.exec.maxTasks, MaxRSS: o.exec.maxRSS, StartTimeout: o.exec.startTimeout, Logger: log})
	if err != nil {
		return nil, startError("the python executor", err)
	}
	info := r.ReadyInfo()
	log.Info("python executors starting", "executors", r.Size(), "python", python, "versions", readyVersions(info.Raw))
	return r, nil
}

// rayCoreRunner starts the Ray Core driver; ray.init and a probe task on a Ray worker must
// succeed before any task is claimed.
func (e env) rayCoreRunner(ctx context.Context, o options, python string, log *slog.Logger) (*raycore.Runner, error) {
	r, err := raycore.New(ctx, raycore.Config{Python: python, Address: o.exec.coreAddress, RuntimeEnv: o.ray.runtimeEnv,
		Env: o.runner.Env, StartTimeout: o.exec.startTimeout, Logger: log})
	if err != nil {
		return nil, startError("the Ray Core driver", err)
	}
	info := r.ReadyInfo()
	log.Info("Ray Core driver connected", "ray_address", coreAddressText(o.exec.coreAddress), "ray_job_id", info.RayJobID,
		"versions", readyVersions(info.Raw))
	return r, nil
}

// startError turns an executor start failure into the worker's exit: a configuration
// problem exits 2 with one line on stderr (the exception's last line: type, message and, for a
// syntax error, file and line); anything else exits 1.
func startError(what string, err error) error {
	var se *pyexec.StartError
	if errors.As(err, &se) {
		return usageErrorf("%s could not start: %s", what, se.Msg)
	}
	return fmt.Errorf("%s could not start: %w", what, err)
}

func coreAddressText(addr string) string {
	if addr == "" {
		return "local (ray.init() with no address)"
	}
	return addr
}

// readyVersions is the executor's ready message without its framing fields.
func readyVersions(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	return strings.NewReplacer(`"op":"ready",`, "").Replace(s)
}
