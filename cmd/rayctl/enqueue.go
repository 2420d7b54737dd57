package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/store"
)

func (e env) enqueueCommand() *cli.Command {
	return &cli.Command{
		Name:      "enqueue",
		Usage:     "add a QUEUED task, with every column Django's backend writes; prints its id",
		ArgsUsage: "CALLABLE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "queue", Aliases: []string{"q"}, Value: "default", Usage: "queue name"},
			&cli.StringFlag{Name: "args", Value: "[]", Usage: "positional arguments as a JSON array"},
			&cli.StringFlag{Name: "kwargs", Value: "{}", Usage: "keyword arguments as a JSON object"},
			&cli.StringFlag{Name: "run-after", Usage: "defer until an RFC 3339 time, or for a duration from now (90s, 10m)"},
			&cli.IntFlag{Name: "timeout", Usage: "timeout_seconds: FAILED when RUNNING longer than this (0 = none)"},
			&cli.StringFlag{Name: "task-id", Usage: "Django Tasks result id (default: a new uuid4)"},
			&cli.StringFlag{Name: "ray-address", Value: "auto", Usage: "stored in ray_address, as the Django backend's RAY_ADDRESS option"},
			&cli.IntFlag{Name: "count", Value: 1, Usage: "enqueue this many copies (1..100000), one id per line"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("enqueue: want exactly one CALLABLE (a dotted path such as myapp.tasks.send_email), got %d arguments", c.NArg())
			}
			task := store.NewTask{
				CallablePath: c.Args().First(),
				Queue:        c.String("queue"),
				ArgsJSON:     c.String("args"),
				KwargsJSON:   c.String("kwargs"),
				TaskID:       c.String("task-id"),
				RayAddress:   c.String("ray-address"),
			}
			if s := c.String("run-after"); s != "" {
				at, err := parseRunAfter(s, time.Now())
				if err != nil {
					return usageErrorf("enqueue: %v", err)
				}
				task.RunAfter = &at
			}
			if c.IsSet("timeout") {
				t := c.Int("timeout")
				if t < 0 || t > 1<<31-1 {
					return usageErrorf("enqueue: invalid --timeout %d (want seconds, 0 or more)", t)
				}
				if t > 0 {
					t32 := int32(t)
					task.TimeoutSeconds = &t32
				}
			}
			count := c.Int("count")
			if count < 1 || count > 100000 {
				return usageErrorf("enqueue: invalid --count %d (want 1..100000)", count)
			}
			if count > 1 && task.TaskID != "" {
				return usageErrorf("enqueue: --task-id cannot be combined with --count")
			}
			if err := task.Normalize(); err != nil {
				return usageErrorf("enqueue: %s", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": "))
			}
			return e.withDB(c, func(r *runCtx) error { return enqueue(r, task, count) })
		},
	}
}

// parseRunAfter accepts an RFC 3339 time or a duration from now.
func parseRunAfter(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("invalid --run-after %q: want an RFC 3339 time (2026-11-23T15:04:05Z) or a duration from now (90s, 10m, 2h)", s)
}

func enqueue(r *runCtx, task store.NewTask, count int) error {
	if count == 1 {
		t, err := r.store.Enqueue(r.ctx, task)
		if err != nil {
			return enqueueErr(err)
		}
		if r.o.json() {
			return writeJSON(r.stdout, r.o, t)
		}
		_, err = fmt.Fprintln(r.stdout, t.ID)
		return err
	}
	var ids []int64
	for start := 0; start < count; start += 1000 {
		n := min(1000, count-start)
		batch := make([]store.NewTask, n)
		for i := range batch {
			batch[i] = task
			batch[i].TaskID = ""
		}
		got, err := r.store.EnqueueMany(r.ctx, batch)
		if err != nil {
			return enqueueErr(err)
		}
		ids = append(ids, got...)
	}
	if r.o.json() {
		return writeJSON(r.stdout, r.o, map[string]any{"ids": ids})
	}
	for _, id := range ids {
		fmt.Fprintln(r.stdout, id)
	}
	return nil
}

func enqueueErr(err error) error {
	if errors.Is(err, store.ErrInvalid) {
		return usageErrorf("enqueue: %v", err)
	}
	return fmt.Errorf("enqueue: %w", err)
}
