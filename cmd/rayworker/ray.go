package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/localray"
	"github.com/rayctl/rayctl/worker/rayrunner"
)

// rayClient builds the Jobs API client from the resolved options. The token comes from
// --ray-auth-token-file, else $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; never
// from a command-line value.
func (e env) rayClient(o options) (*rayjobs.Client, error) {
	var token string
	var err error
	if o.ray.tokenFile != "" {
		token, err = rayjobs.TokenFromFile(o.ray.tokenFile)
	} else {
		token, err = rayjobs.TokenFromEnv(e.getenv)
	}
	if err != nil {
		return nil, usageErrorf("Ray auth token: %v", err)
	}
	client, err := rayjobs.New(rayjobs.Options{Address: o.ray.address, Token: token, CAFile: o.ray.caFile, UserAgent: "rayworker/" + build.Version})
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return client, nil
}

// rayRunner builds the Ray Job runner for the default mode, --cluster and --local. For
// --local with nothing answering at 127.0.0.1:8265 it starts a head with the ray CLI; stop
// stops that head (a no-op otherwise) and must be called after the worker has finished.
func (e env) rayRunner(ctx context.Context, o options, client *rayjobs.Client, log *slog.Logger) (*rayrunner.Runner, func(), error) {
	nop := func() {}
	stop := nop
	if o.mode == "local" {
		head, err := e.localHead(ctx, client, log)
		if err != nil {
			return nil, nop, err
		}
		if head != nil {
			stop = func() {
				sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := head.Stop(sctx); err != nil {
					log.Error("could not stop the local Ray head this worker started", "dir", head.Dir(), "error", err)
					return
				}
				log.Info("stopped the local Ray head this worker started", "address", head.Address)
			}
		}
	}

	r, err := rayrunner.New(rayrunner.Config{Client: client, Entrypoint: o.entryText, RuntimeEnv: o.ray.runtimeEnv,
		Resources: o.ray.resources, PendingTimeout: o.ray.pendingTimeout, Logger: log})
	if err != nil {
		stop()
		return nil, nop, err
	}
	// Start with the Jobs API's state known: the worker holds claims until it is ready anyway.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = r.WaitReady(wctx)
	cancel()
	return r, stop, nil
}

// localHead returns nil when a Jobs API answers at --local's address, else starts a head with
// the ray CLI (an error when there is none).
func (e env) localHead(ctx context.Context, c *rayjobs.Client, log *slog.Logger) (*localray.Head, error) {
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := c.Health(hctx)
	cancel()
	if err == nil || !errors.Is(err, rayjobs.ErrUnavailable) {
		// Something answers (a health error other than "unavailable" is the runner's to report).
		log.Info("using the Ray already running at --local's address", "address", c.Address())
		return nil, nil
	}
	ray, ok := localray.Available("")
	if !ok {
		return nil, fmt.Errorf("--local: nothing answers at %s (%v) and the ray CLI is not on PATH: start Ray (ray start --head) or install ray[default]", c.Address(), err)
	}
	log.Info("no Ray answers at --local's address; starting a local head (stopped when the worker exits)", "address", c.Address(), "ray", ray)
	began := time.Now()
	head, err := localray.Start(ctx, localray.Options{Ray: ray, Port: 8265, Log: &logWriter{log: log}})
	if err != nil {
		return nil, fmt.Errorf("--local: %w", err)
	}
	log.Info("local Ray head started", "address", head.Address, "took", time.Since(began).Round(time.Millisecond).String(), "dir", head.Dir())
	return head, nil
}

// logWriter turns `ray start` output into debug log lines.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	w.log.Debug("ray start", "output", string(p))
	return len(p), nil
}
