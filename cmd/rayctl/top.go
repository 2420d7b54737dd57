package main

import (
	"errors"
	"fmt"
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
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/tui"
)

func (e env) topCommand() *cli.Command {
	return &cli.Command{
		Name:  "top",
		Usage: "live dashboard for incidents: states, queues, failures, workers; requeue and cancel with confirmation",
		Description: "Views: 1 overview (counts, queues, workers, runbook signals), 2 tasks (/ filter, space marks,\n" +
			"enter details), 3 failures (FAILED and LOST by callable and exception type), 4 workers (leases).\n" +
			"R requeues and X cancels the selected or marked tasks or a failure group, after a confirmation\n" +
			"that states the count. ? lists every key; q quits. Needs a terminal (80x24 or larger).",
		Flags: append([]cli.Flag{
			&cli.DurationFlag{Name: "refresh", Value: tui.DefaultRefresh, Usage: fmt.Sprintf("refresh interval (at least %s; + and - change it, p pauses)", tui.MinRefresh)},
			&cli.BoolFlag{Name: "readonly", Usage: "no write actions: requeue, cancel and marks are off"},
			&cli.DurationFlag{Name: "lease-ttl", Value: 60 * time.Second, Usage: "a lease without a heartbeat for this long is stale (WORKER_LEASE_SECONDS)"},
			&cli.DurationFlag{Name: "stuck-after", Value: store.DefaultStuckAfter, Usage: "RUNNING or CANCELLING tasks without a heartbeat for this long are stale"},
			&cli.StringFlag{Name: "log-file", Value: defaultTopLog(), Usage: "where rayctl top logs while it runs (actions, database trouble); \"\" for none"},
		}, rayFlags()...),
		Action: func(c *cli.Context) error {
			o := topOptions{refresh: c.Duration("refresh"), readOnly: c.Bool("readonly"), leaseTTL: c.Duration("lease-ttl"),
				stuckAfter: c.Duration("stuck-after"), logFile: c.String("log-file")}
			if o.refresh < tui.MinRefresh {
				return usageErrorf("top: invalid --refresh %s (want at least %s)", o.refresh, tui.MinRefresh)
			}
			if o.leaseTTL <= 0 || o.stuckAfter <= 0 {
				return usageErrorf("top: --lease-ttl and --stuck-after must be more than 0")
			}
			if !e.stdoutIsTTY() || !e.stdinIsTTY() {
				return usageErrorf("top: needs a terminal on stdin and stdout (for scripts use rayctl stats -o json)")
			}
			if !strings.EqualFold(e.rayAddress(c), "auto") || c.IsSet("ray-address") {
				ray, err := e.rayClient(c, "top")
				if err != nil {
					return err
				}
				defer ray.close()
				o.ray = ray
			}
			return e.withDB(c, func(r *runCtx) error { return top(r, o) })
		},
	}
}

type topOptions struct {
	refresh, leaseTTL, stuckAfter time.Duration
	readOnly                      bool
	logFile                       string
	ray                           *rayConn // requeue ends tasks' old Ray jobs first; nil: not checked
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
		LeaseTTL:   o.leaseTTL,
		StuckAfter: o.stuckAfter,
		Color:      !r.o.noColor,
		Title:      title,
		Logger:     logger,
	}
	if !o.readOnly {
		var ray recovery.RayJobs
		if o.ray != nil {
			ray = o.ray.client
		}
		opts.Actions = newTopActions(r.store, r.env.actor(), ray)
	}
	p := tea.NewProgram(tui.New(opts), tea.WithAltScreen(), tea.WithContext(r.ctx),
		tea.WithInput(r.env.stdin), tea.WithOutput(r.env.term))
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && r.ctx.Err() != nil {
		logger.Info("top stopped by signal")
		return nil
	}
	if err != nil {
		logger.Error("top failed", "err", err)
		return fmt.Errorf("top: %w", err)
	}
	logger.Info("top quit")
	return nil
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
