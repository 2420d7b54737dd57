package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
)

func (e env) tasksCommand() *cli.Command {
	return &cli.Command{
		Name:  "tasks",
		Usage: "list, count and show tasks",
		Subcommands: []*cli.Command{
			{
				Name:  "ls",
				Usage: "list tasks, newest first, one page at a time",
				Description: "Filters combine with AND; --state, --queue and --id may be repeated. AGE is the time since\n" +
					"the task's last activity (finished, started or created), by the database clock; RUN AFTER is\n" +
					"when a deferred or retried task may run (\"in 2m\"), \"-\" when it may run now. Pages are\n" +
					"keyset-paged: the footer prints the --before value of the next page.\n\n" +
					"Examples:\n" +
					"   rayctl tasks ls --state FAILED --exception builtins.ValueError --newer-than 15m\n" +
					"   rayctl tasks ls --result-ref --state SUCCEEDED      (results stored by reference, not inline)\n\n" +
					"EXIT CODES:\n   0  listed (also when nothing matches)\n   1  error\n   2  usage error",
				Flags: append(taskFilterFlags(),
					&cli.IntFlag{Name: "limit", Value: recovery.DefaultListLimit, Usage: fmt.Sprintf("tasks per page (1..%d)", recovery.MaxLimit)},
					&cli.Int64Flag{Name: "before", Usage: "the page of tasks with ids below this (from the previous page)"}),
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageErrorf("tasks ls: unexpected argument %q (to show one task: rayctl tasks show %s)", c.Args().First(), c.Args().First())
					}
					f, err := parseTaskFilter(c, "tasks ls")
					if err != nil {
						return err
					}
					opts := recovery.ListOptions{Filter: f, Limit: c.Int("limit"), BeforeID: c.Int64("before")}
					if opts.Limit < 1 || opts.Limit > recovery.MaxLimit {
						return usageErrorf("tasks ls: invalid --limit %d (want 1..%d)", opts.Limit, recovery.MaxLimit)
					}
					if opts.BeforeID < 0 {
						return usageErrorf("tasks ls: invalid --before %d", opts.BeforeID)
					}
					return e.withDB(c, func(r *runCtx) error { return tasksLs(r, opts) })
				},
			},
			{
				Name:      "show",
				Usage:     "everything about one task: args, error, traceback, result or reference, timeline, Ray job, owner",
				ArgsUsage: "ID",
				Description: "Result references are explained: oversize:// is a digest only (the result was not stored),\n" +
					"resultfs:// names a file under RESULT_STORAGE_FILESYSTEM_PATH (resolved and checked when\n" +
					"--result-dir, $" + settings.ResultStorageFilesystemPath.Env + " (rayworker's name) or\n" +
					"$" + settings.FilesystemPathDjangoEnv + " (django-ray's) is set, in that order), s3:// and gs:// name objects.\n" +
					objectHelp + "\n\n" +
					"EXIT CODES:\n   0  shown\n   1  error\n   2  usage error\n   3  no task has that id",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "result-dir", Aliases: []string{settings.ResultStorageFilesystemPath.Name}, Usage: "RESULT_STORAGE_FILESYSTEM_PATH, to resolve resultfs:// references (default: $" +
						settings.ResultStorageFilesystemPath.Env + ", else $" + settings.FilesystemPathDjangoEnv + ")"},
					leaseTTLFlag("an owner lease without a heartbeat for this long is stale"),
					&cli.StringFlag{Name: settings.ResultStorageS3Region.Name, Usage: "RESULT_STORAGE_S3_REGION, to read s3:// results (default: $" + settings.ResultStorageS3Region.Env + ", else the AWS configuration's)"},
					&cli.StringFlag{Name: settings.ResultStorageS3EndpointURL.Name, Usage: "RESULT_STORAGE_S3_ENDPOINT_URL, to read s3:// results from an S3-compatible service (default: $" + settings.ResultStorageS3EndpointURL.Env + ")"},
					&cli.Int64Flag{Name: "fetch-bytes", Value: recovery.DefaultFetchLimit, Usage: fmt.Sprintf("read at most this much of an s3:// or gs:// result (1..%d)", recovery.MaxFetchLimit)},
					&cli.BoolFlag{Name: "no-fetch", Usage: "explain s3:// and gs:// references without reading them"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageErrorf("tasks show: want exactly one task ID, got %d arguments", c.NArg())
					}
					id, err := strconv.ParseInt(c.Args().First(), 10, 64)
					if err != nil || id <= 0 {
						return usageErrorf("tasks show: invalid task ID %q (want the row id, a positive integer)", c.Args().First())
					}
					opts := recovery.DetailOptions{LeaseTTL: c.Duration("lease-ttl"), ResultDir: e.resultDir(c)}
					if opts.LeaseTTL <= 0 {
						return usageErrorf("tasks show: invalid --lease-ttl %s (want more than 0)", opts.LeaseTTL)
					}
					if err := e.objectOptions(c, &opts); err != nil {
						return err
					}
					return e.withDB(c, func(r *runCtx) error { return tasksShow(r, id, opts) })
				},
			},
			{
				Name:  "count",
				Usage: "count tasks per callable, queue, state, worker, exception or error (find what dominates)",
				Description: "--by exception groups failures by exception type as the retry policy saw it, one row per\n" +
					"type however its messages vary (--by error groups by the message's first line): derived as\n" +
					"django-ray's get_result does (the text before ':' on the traceback's last line, builtins.\n" +
					"prefixed without a dot), and for the failures workers record themselves by their messages:\n" +
					"TaskLost, TaskTimedOut, RayJobFailed, RayConnectionError, InvalidTask, UnstorableOutcome.\n" +
					"Tasks without an error count under \"-\".\n\n" +
					"Example (retry storm triage):\n" +
					"   rayctl tasks count --by callable --state FAILED --state LOST --newer-than 15m\n" +
					"   rayctl tasks count --by exception --callable app.tasks.charge --state FAILED\n" +
					"   rayctl requeue --exception TaskLost --newer-than 1h --dry-run\n\n" +
					"EXIT CODES:\n   0  counted\n   1  error\n   2  usage error",
				Flags: append(taskFilterFlags(),
					&cli.StringFlag{Name: "by", Value: "callable", Usage: "group by callable, queue, state, worker, exception (type, as the retry policy saw it) or error (first line)"},
					&cli.IntFlag{Name: "limit", Value: 20, Usage: "at most this many groups, largest first (1..10000)"}),
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageErrorf("tasks count: unexpected argument %q", c.Args().First())
					}
					f, err := parseTaskFilter(c, "tasks count")
					if err != nil {
						return err
					}
					by := store.GroupBy(c.String("by"))
					switch by {
					case store.ByCallable, store.ByQueue, store.ByState, store.ByWorker, store.ByError, store.ByException:
					default:
						return usageErrorf("tasks count: invalid --by %q (want callable, queue, state, worker, exception or error)", by)
					}
					limit := c.Int("limit")
					if limit < 1 || limit > recovery.MaxLimit {
						return usageErrorf("tasks count: invalid --limit %d (want 1..%d)", limit, recovery.MaxLimit)
					}
					return e.withDB(c, func(r *runCtx) error { return tasksCount(r, f, by, limit) })
				},
			},
		},
	}
}

// resultDir is RESULT_STORAGE_FILESYSTEM_PATH for reading results: --result-dir, else the
// workers' $DJANGO_RAY_RESULT_STORAGE_FILESYSTEM_PATH, else django-ray's own
// $RESULT_STORAGE_FILESYSTEM_PATH; "" when none is set.
func (e env) resultDir(c *cli.Context) string {
	if d := strings.TrimSpace(c.String("result-dir")); d != "" {
		return d
	}
	for _, name := range []string{settings.ResultStorageFilesystemPath.Env, settings.FilesystemPathDjangoEnv} {
		if d := strings.TrimSpace(e.getenv(name)); d != "" {
			return d
		}
	}
	return ""
}

func taskFilterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "state", Usage: "only tasks in this state (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, CANCELLING, LOST)"},
		&cli.StringSliceFlag{Name: "queue", Aliases: []string{"q"}, Usage: "only tasks in this queue"},
		&cli.StringFlag{Name: "callable", Usage: "only tasks of this callable path, or glob (app.tasks.*)"},
		&cli.StringFlag{Name: "error-contains", Usage: "only tasks whose error_message contains this text (any case)"},
		&cli.StringFlag{Name: "older-than", Usage: "only tasks idle longer than this (90s, 10m, 2h, 3d)"},
		&cli.StringFlag{Name: "newer-than", Usage: "only tasks active within this (15m)"},
		&cli.StringFlag{Name: "worker", Usage: "only tasks claimed by this worker id"},
		&cli.StringFlag{Name: "task-id", Usage: "only the task with this Django task id (uuid)"},
		&cli.StringFlag{Name: "search", Usage: "text in callable, queue, worker, Ray job id or error"},
		&cli.StringFlag{Name: "exception", Usage: exceptionUsage},
		&cli.BoolFlag{Name: "result-ref", Aliases: []string{"has-reference"}, Usage: "only tasks whose result is stored by reference (oversize://, resultfs://, s3://, gs://), not inline"},
		&cli.Int64SliceFlag{Name: "id", Usage: "only these row ids"},
	}
}

func parseTaskFilter(c *cli.Context, cmd string) (store.TaskFilter, error) {
	var f store.TaskFilter
	var err error
	if f.States, err = statesFlag(c, cmd); err != nil {
		return f, err
	}
	if f.OlderThan, err = durationFlag(c, "older-than"); err != nil {
		return f, err
	}
	if f.NewerThan, err = durationFlag(c, "newer-than"); err != nil {
		return f, err
	}
	f.Queues, f.Callable, f.ErrorContains = c.StringSlice("queue"), c.String("callable"), c.String("error-contains")
	f.Worker, f.TaskID, f.Search, f.IDs = c.String("worker"), c.String("task-id"), c.String("search"), c.Int64Slice("id")
	f.Exception, f.ResultReference = strings.TrimSpace(c.String("exception")), c.Bool("result-ref")
	return f, nil
}

func tasksLs(r *runCtx, opts recovery.ListOptions) error {
	page, err := recovery.ListTasks(r.ctx, r.store, opts)
	if err != nil {
		return selectionErr("tasks ls", err)
	}
	switch r.o.output {
	case "json":
		return writeJSON(r.stdout, r.o, page)
	case "jsonl":
		for _, t := range page.Tasks {
			if err := writeJSON(r.stdout, r.o, t); err != nil {
				return err
			}
		}
		return nil
	}
	if len(page.Tasks) == 0 {
		return noTasks(r, opts.Filter)
	}
	now, err := r.store.Now(r.ctx)
	if err != nil {
		return err
	}
	if err := writeTaskTable(r.stdout, page.Tasks, now); err != nil {
		return err
	}
	footer := fmt.Sprintf("%d of %d shown", len(page.Tasks), page.Total)
	if page.NextBeforeID != nil {
		footer += fmt.Sprintf("; next page: --before %d", *page.NextBeforeID)
	}
	_, err = fmt.Fprintln(r.stdout, footer)
	return err
}

func tasksCount(r *runCtx, f store.TaskFilter, by store.GroupBy, limit int) error {
	groups, err := r.store.CountBy(r.ctx, f, by, limit)
	if err != nil {
		return err
	}
	if groups == nil {
		groups = []store.GroupCount{}
	}
	switch r.o.output {
	case "json":
		return writeJSON(r.stdout, r.o, map[string]any{"by": by, "groups": groups})
	case "jsonl":
		for _, g := range groups {
			if err := writeJSON(r.stdout, r.o, g); err != nil {
				return err
			}
		}
		return nil
	}
	if len(groups) == 0 {
		return noTasks(r, f)
	}
	tw := table(r.stdout)
	fmt.Fprintf(tw, "%s\tTASKS\n", strings.ToUpper(string(by)))
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%d\n", dash(clip(g.Key, 100)), g.Count)
	}
	return tw.Flush()
}

// noTasks says that nothing matched f, with the near names of values no task has.
func noTasks(r *runCtx, f store.TaskFilter) error {
	if _, err := fmt.Fprintln(r.stdout, "no tasks match"); err != nil {
		return err
	}
	hints, err := recovery.NameHints(r.ctx, r.store, f)
	if err != nil {
		return err
	}
	printHints(r.stdout, hints)
	return nil
}

// maxInline is how much of a JSON payload tasks show prints in text mode.
const maxInline = 4096

func tasksShow(r *runCtx, id int64, opts recovery.DetailOptions) error {
	d, err := recovery.TaskDetail(r.ctx, r.store, id, opts)
	if errors.Is(err, store.ErrNotFound) {
		return &exitError{code: exitNoMatch, msg: fmt.Sprintf("tasks show: no task with id %d", id)}
	}
	if err != nil {
		return err
	}
	if r.o.json() {
		return writeJSON(r.stdout, r.o, d)
	}
	t := d.Task
	w := r.stdout
	fmt.Fprintf(w, "task %d  %s  (attempt %d)\n", t.ID, t.State, t.AttemptNumber)
	tw := table(w)
	fmt.Fprintf(tw, "  task_id\t%s\n", t.TaskID)
	fmt.Fprintf(tw, "  callable\t%s\n", t.CallablePath)
	fmt.Fprintf(tw, "  queue\t%s\n", t.QueueName)
	fmt.Fprintf(tw, "  ray job\t%s\n", dash(deref(t.RayJobID)))
	fmt.Fprintf(tw, "  ray address\t%s\n", dash(deref(t.RayAddress)))
	if t.TimeoutSeconds != nil {
		fmt.Fprintf(tw, "  timeout\t%ds\n", *t.TimeoutSeconds)
	}
	switch o := d.Owner; {
	case o == nil:
		fmt.Fprintf(tw, "  worker\t-\n")
	case o.Lease == nil:
		fmt.Fprintf(tw, "  worker\t%s: unknown (no lease row)\n", o.WorkerID)
	default:
		fmt.Fprintf(tw, "  worker\t%s on %s pid %d: lease %s, heartbeat %s ago\n", o.WorkerID, o.Lease.Hostname, o.Lease.PID, o.Verdict, age(o.HeartbeatAgeSeconds, true))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "timeline (database clock %s)\n", d.Now.UTC().Format(time.RFC3339))
	tw = table(w)
	for _, ev := range d.Timeline {
		rel := age(ev.AgoSeconds, true) + " ago"
		if ev.AgoSeconds < 0 {
			rel = "in " + age(-ev.AgoSeconds, true)
		}
		at := ev.At.UTC().Format(time.RFC3339)
		if name, ok := store.InfiniteTime(ev.At); ok { // a poison row: show what the database holds
			at, rel = name, ""
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", strings.ReplaceAll(ev.Name, "_", " "), at, rel)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "args\n%s\n", indentJSON(t.ArgsJSON))
	fmt.Fprintf(w, "kwargs\n%s\n", indentJSON(t.KwargsJSON))
	switch d.Result.Kind {
	case "inline":
		fmt.Fprintf(w, "result (inline, %d bytes)\n%s\n", d.Result.Bytes, indentJSON(*t.ResultData))
	case "reference":
		fmt.Fprintf(w, "result (reference)\n  %s\n", *t.ResultReference)
		if ref := d.Result.Reference; ref != nil {
			fmt.Fprintf(w, "  %s\n", ref.Explanation)
			if ref.Path != "" {
				state := "missing"
				if ref.FileExists != nil && *ref.FileExists {
					state = fmt.Sprintf("present, %d bytes", *ref.FileBytes)
				}
				if ref.FileProblem != "" {
					state = ref.FileProblem
				}
				fmt.Fprintf(w, "  on this machine: %s (%s)\n", ref.Path, state)
			}
			writeObject(w, ref)
		} else {
			fmt.Fprintf(w, "  not understood: %s\n", d.Result.ReferenceError)
		}
	default:
		fmt.Fprintln(w, "result: none")
	}
	if t.ErrorMessage != nil {
		fmt.Fprintf(w, "error\n%s\n", indent(*t.ErrorMessage))
	}
	if t.ErrorTraceback != nil {
		fmt.Fprintf(w, "traceback\n%s\n", indent(*t.ErrorTraceback))
	}
	return nil
}

// indentJSON pretty-prints JSON text (as is when it is not JSON), indented and cut at
// maxInline bytes.
func indentJSON(s string) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(s), "", "  "); err == nil {
		s = buf.String()
	}
	return indent(cut(s))
}

func cut(s string) string {
	if len(s) <= maxInline {
		return s
	}
	return s[:maxInline] + fmt.Sprintf("\n... (%d more bytes; -o json shows everything)", len(s)-maxInline)
}

func indent(s string) string {
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("  " + line)
	}
	return b.String()
}
