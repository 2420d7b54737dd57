package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/resultstore"
	"github.com/rayctl/rayctl/tui"
)

func (e env) topCommand() *cli.Command {
	return &cli.Command{
		Name:  "top",
		Usage: "live dashboard for incidents: runbook signals with their next command, states, queues, failures, workers; fixes with confirmation",
		Description: "Views: 1 overview (counts, queues, workers, runbook signals), 2 tasks (/ filter, space marks,\n" +
			"A marks all matching, enter details), 3 failures (FAILED and LOST by callable and exception type),\n" +
			"4 workers (leases, queues, last claim). The banner names the most urgent runbook signal, its\n" +
			"playbook and its next command (the definitions rayctl doctor checks). R requeues, X cancels\n" +
			"(finalizing CANCELLING tasks whose worker is gone); :reconcile compares RUNNING and CANCELLING\n" +
			"tasks with Ray and :finalize finalizes orphaned CANCELLING ones, each after a dialog that\n" +
			"counts what will change by from-state -> to-state. : runs commands (:tasks state=failed,\n" +
			":workers, :task ID, :q). esc and q go back a level; q quits from the overview. ? lists every\n" +
			"key. Needs a terminal (80x24 or larger).\n\n" + signalHelp,
		Flags: append(append(append([]cli.Flag{
			&cli.DurationFlag{Name: "refresh", Value: tui.DefaultRefresh, Usage: fmt.Sprintf("refresh interval (at least %s; + and - change it, p pauses)", tui.MinRefresh)},
			&cli.BoolFlag{Name: "readonly", Usage: "no write actions: requeue, cancel, reconcile, finalize and marks are off"},
			&cli.StringFlag{Name: "log-file", Value: defaultTopLog(), Usage: "where rayctl top logs while it runs (actions, database trouble); \"\" for none"},
		}, signalFlags()...), rayFlags()...), policyFlags()...),
		Action: func(c *cli.Context) error {
			o := topOptions{refresh: c.Duration("refresh"), readOnly: c.Bool("readonly"), logFile: c.String("log-file")}
			if o.refresh < tui.MinRefresh {
				return usageErrorf("top: invalid --refresh %s (want at least %s)", o.refresh, tui.MinRefresh)
			}
			th, err := signalThresholds(c, "top")
			if err != nil {
				return err
			}
			o.thresholds = th
			o.reconcile = recovery.ReconcileOptions{LeaseTTL: th.LeaseTTL, Clock: e.clock}
			if o.reconcile.Policy, o.reconcile.Results, err = e.policy(c, "top"); err != nil {
				return err
			}
			defer resultstore.Close(o.reconcile.Results.Backend)
			if !e.stdoutIsTTY() || !e.stdinIsTTY() {
				return usageErrorf("top: needs a terminal on stdin and stdout (for scripts use rayctl stats -o json, rayctl doctor)")
			}
			if !strings.EqualFold(e.rayAddress(c), "auto") || c.IsSet("ray-address") {
				ray, err := e.rayClient(c, "top")
				if err != nil {
					return err
				}
				if ray != nil {
					defer ray.close()
					o.ray = ray
					o.reconcile.Address = ray.address
				}
			}
			return e.withDB(c, func(r *runCtx) error { return top(r, o) })
		},
	}
}

type topOptions struct {
	refresh    time.Duration
	thresholds recovery.Thresholds
	readOnly   bool
	logFile    string
	ray        *rayConn // requeue ends tasks' old Ray jobs first, reconcile asks it; nil: no Ray address
	reconcile  recovery.ReconcileOptions
}

func defaultTopLog() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "rayctl", "top.log")
}

func (e env) stdoutIsTTY() bool {
	f, ok := e.term.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func top(r *runCtx, o topOptions) error {
	logger := slog.New(slog.DiscardHandler)
	if o.logFile != "" {
		if err := os.MkdirAll(filepath.Dir(o.logFile), 0o750); err != nil {
			return fmt.Errorf("top: log file: %w", err)
		}
		f, err := os.OpenFile(o.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("top: log file: %w", err)
		}
		defer f.Close()
		logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	title := describePool(r)
	logger.Info("top started", "db", title, "readonly", o.readOnly, "refresh", o.refresh.String())
	opts := tui.Options{
		Source:     r.store,
		ReadOnly:   o.readOnly,
		Refresh:    o.refresh,
		Thresholds: o.thresholds,
		RayAddress: o.reconcile.Address,
		Color:      !r.o.noColor,
		Title:      title,
		Logger:     logger,
	}
	if !o.readOnly {
		var ray recovery.RayJobs
		if o.ray != nil {
			ray = o.ray.client
		}
		opts.Actions = newTopActions(r.store, r.env.actor(), ray, o.reconcile)
	}
	// tui.Run cancels the reads and writes still in flight when the program ends, and waits
	// for them, so nothing runs on after top returns and closes the pool
	cut, err := tui.Run(r.ctx, tui.New(opts), tea.WithAltScreen(), tea.WithInput(r.env.stdin), tea.WithOutput(r.env.term))
	reportInterrupted(r.stderr, logger, cut)
	if errors.Is(err, tea.ErrProgramKilled) && r.ctx.Err() != nil {
		logger.Info("top stopped by signal")
		return nil
	}
	if err != nil {
		logger.Error("top failed", "error", err)
		return fmt.Errorf("top: %w", err)
	}
	logger.Info("top quit")
	return nil
}

// reportInterrupted says on stderr, once the screen is gone, what became of each write that
// was still in flight when top ended (the operator quit, or a signal): top cancelled it, so it
// stopped where it was. recovery commits batch by batch: what committed before stays, the
// batch in progress rolled back, and the rest is as it was, so planning it again finishes it.
func reportInterrupted(w io.Writer, log *slog.Logger, cut []tui.Interrupted) {
	for _, c := range cut {
		verb, o := strings.ToLower(c.Request.Kind.Verb()), c.Outcome
		what := fmt.Sprintf("the %s of %s", verb, c.Request.Label)
		var s string
		switch {
		case c.Err == nil:
			s = fmt.Sprintf("%s finished as top ended: %d changed", what, o.Applied)
			if o.Detail != "" {
				s += " (" + o.Detail + ")"
			}
		case errors.Is(c.Err, recovery.ErrInterrupted) || errors.Is(c.Err, context.Canceled):
			s = fmt.Sprintf("%s was cancelled as top ended: %d changed before it, the rest is as it was "+
				"(the batch in progress rolled back); %s again to finish it", what, o.Applied, verb)
		default:
			s = fmt.Sprintf("%s failed as top ended (%d changed before it): %v", what, o.Applied, c.Err)
		}
		attrs := []any{"action", c.Request.Kind.Verb(), "target", c.Request.Label, "applied", o.Applied}
		if c.Err != nil {
			attrs = append(attrs, "error", c.Err)
		}
		log.Warn("write in flight when top ended", attrs...)
		fmt.Fprintln(w, "rayctl top: "+s)
	}
}

// describePool names the database without secrets: host:port/dbname.
func describePool(r *runCtx) string {
	c := r.pool.Config().ConnConfig
	host := c.Host
	if strings.HasPrefix(host, "/") {
		host = "socket " + host
	} else {
		host = net.JoinHostPort(host, fmt.Sprint(c.Port))
	}
	return "db " + host + "/" + c.Database
}
