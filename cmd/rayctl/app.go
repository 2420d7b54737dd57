package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/termtext"
)

// Exit codes, stable and documented in `rayctl --help` and docs/cli.md.
const (
	exitOK        = 0 // success
	exitFailed    = 1 // the command failed (database down, bad data, ...)
	exitUsage     = 2 // wrong flags or arguments
	exitNoMatch   = 3 // a filter matched nothing
	exitDeclined  = 4 // confirmation declined, or refused without --yes
	exitPartial   = 5 // some rows were skipped or failed
	exitUnhealthy = 6 // doctor or migrate validate found a problem
)

const exitCodesHelp = `EXIT CODES:
   0  success
   1  error (database unreachable, bad data, ...)
   2  usage error (unknown flag or command, invalid value)
   3  nothing matched the filter
   4  declined at the confirmation prompt, refused without --yes, or stdout was
      closed before a change started; nothing written
   5  partial: some rows were skipped or failed, or the run was interrupted (Ctrl-C,
      or stdout closed during a change: it stops before its next batch)
   6  unhealthy: doctor or migrate validate found a problem`

// env is the process environment, injectable for tests.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// term is stdout as given, for rayctl top (which draws the terminal itself) and TTY
	// checks; run wraps stdout and stderr in termtext writers (see text).
	term io.Writer
	// text is the sanitizing writer around stdout: text output shows task data's control
	// characters instead of obeying them; JSON output switches it to pass through unchanged.
	text   *termtext.Writer
	getenv func(string) string
	// stdinIsTTY reports whether a person can answer a prompt on stdin.
	stdinIsTTY func() bool
	// clock is this host's clock (doctor's skew check); nil means time.Now.
	clock func() time.Time
	// hooks watch (and in tests interfere with) requeue and cancel between transactions.
	hooks recovery.Hooks
	// args is the command line as given, to quote flags in errors as they were typed.
	args []string
	// out is stdout, which notices when its reader goes away (a closed pipe).
	out *outWriter
	// paceNow and paceSleep pace requeue/cancel --rps (nil: the real clock and timer).
	paceNow   func() time.Time
	paceSleep func(context.Context, time.Duration) error
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, stdinIsTTY: func() bool {
		f, ok := stdin.(*os.File)
		return ok && term.IsTerminal(int(f.Fd()))
	}}
	return e.run(ctx, args)
}

// exitError carries an exit code and a one-line message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) ExitCode() int { return e.code }

func usageErrorf(format string, a ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, a...)}
}

func (e env) run(ctx context.Context, args []string) int {
	if e.term == nil {
		e.term = e.stdout
	}
	e.out = &outWriter{w: e.stdout}
	e.text = termtext.NewWriter(e.out)
	e.stdout, e.stderr = e.text, termtext.NewWriter(e.stderr)
	e.args = args
	app := e.newApp()
	if n := len(args); n == 0 || args[n-1] != "--generate-bash-completion" {
		args = intersperse(app, args)
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	code := exitFailed
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	if msg := strings.TrimSpace(err.Error()); msg != "" {
		fmt.Fprintf(e.stderr, "rayctl: %s\n", msg)
	}
	return code
}

// globalFlags are accepted before or after the subcommand.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "database-url", Usage: "PostgreSQL URL or key=value DSN (default: $DATABASE_URL, else the libpq PG* variables)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "output format: text, json or jsonl"},
		&cli.BoolFlag{Name: "no-color", Usage: "no colour in output (also NO_COLOR)"},
		&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask for confirmation (required for writes when stdin is not a terminal or output is JSON)"},
	}
}

func (e env) newApp() *cli.App {
	app := &cli.App{
		Name:    "rayctl",
		Usage:   "operate django-ray task queues: inspect, requeue, cancel, reconcile, migrate",
		Version: build.String(),
		Description: "rayctl works on the django-ray 0.2.0 tables in PostgreSQL, beside Python django_ray_worker\n" +
			"and Go rayworker processes. Global flags may come before or after the subcommand.\n\n" + exitCodesHelp,
		Flags:                globalFlags(),
		Reader:               e.stdin,
		Writer:               e.stdout,
		ErrWriter:            e.stderr,
		HideHelpCommand:      true,
		Suggest:              true,
		EnableBashCompletion: true,
		ExitErrHandler:       func(*cli.Context, error) {}, // run() maps errors to exit codes
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageErrorf("%s (see rayctl --help)", e.flagError("rayctl", globalFlags(), err))
		},
		Commands: []*cli.Command{
			e.migrateCommand(),
			e.enqueueCommand(),
			e.statsCommand(),
			e.tasksCommand(),
			e.requeueCommand(),
			e.cancelCommand(),
			e.inspectLeasesCommand(),
			e.reconcileCommand(),
			e.doctorCommand(),
			e.metricsCommand(),
			e.auditCommand(),
			e.completionCommand(),
			e.manCommand(),
			e.topCommand(),
			e.versionCommand(),
		},
	}
	// urfave/cli runs the app's action for an unknown command name.
	app.Action = func(c *cli.Context) error {
		if c.Args().Present() {
			return usageErrorf("unknown command %q (see rayctl --help)", c.Args().First())
		}
		return cli.ShowAppHelp(c)
	}
	for _, cmd := range app.Commands {
		e.prepare(cmd, "")
	}
	return app
}

// prepare gives every command the global flags and usage-error handling. parent is the
// full name of the command above ("" at the top).
func (e env) prepare(cmd *cli.Command, parent string) {
	full := strings.TrimSpace(parent + " " + cmd.Name)
	cmd.OnUsageError = func(c *cli.Context, err error, _ bool) error {
		return usageErrorf("%s: %s (see rayctl %s --help)", full, e.flagError(full, cmd.Flags, err), full)
	}
	if len(cmd.Subcommands) > 0 {
		for _, sub := range cmd.Subcommands {
			e.prepare(sub, full)
		}
		if cmd.Action == nil {
			cmd.Action = func(c *cli.Context) error {
				if c.Args().Present() {
					return usageErrorf("%s: unknown subcommand %q (see rayctl %s --help)", full, c.Args().First(), full)
				}
				return cli.ShowSubcommandHelp(c)
			}
		}
		return
	}
	cmd.Flags = append(cmd.Flags, globalFlags()...)
}

// opts are the resolved global flags.
type opts struct {
	dsn     string
	output  string
	noColor bool
	yes     bool
}

func (o opts) json() bool { return o.output == "json" || o.output == "jsonl" }

// lookup returns a global flag's value from the innermost command that set it.
func lookup[T any](c *cli.Context, name string, get func(*cli.Context, string) T) (T, bool) {
	for _, cc := range c.Lineage() {
		if cc.Command != nil || cc.App != nil {
			if cc.IsSet(name) {
				return get(cc, name), true
			}
		}
	}
	var zero T
	return zero, false
}

func (e env) opts(c *cli.Context) (opts, error) {
	var o opts
	o.dsn, _ = lookup(c, "database-url", (*cli.Context).String)
	if o.dsn == "" {
		o.dsn = e.getenv("DATABASE_URL")
	}
	o.output = "text"
	if v, ok := lookup(c, "output", (*cli.Context).String); ok {
		o.output = v
	}
	switch o.output {
	case "text":
	case "json", "jsonl":
		if e.text != nil {
			e.text.Passthrough() // JSON carries the values unchanged; writeJSON escapes what encoding/json leaves raw
		}
	default:
		return o, usageErrorf("invalid --output %q (want text, json or jsonl)", o.output)
	}
	o.noColor, _ = lookup(c, "no-color", (*cli.Context).Bool)
	if e.getenv("NO_COLOR") != "" {
		o.noColor = true
	}
	o.yes, _ = lookup(c, "yes", (*cli.Context).Bool)
	return o, nil
}

// open connects to the database named by the global flags.
func (e env) open(ctx context.Context, o opts) (*pgxpool.Pool, error) {
	pool, err := store.Open(ctx, o.dsn, func(c *pgxpool.Config) {
		c.MaxConns = 4
		c.ConnConfig.RuntimeParams["application_name"] = "rayctl"
	})
	if err != nil {
		if o.dsn == "" && e.getenv("PGHOST") == "" {
			return nil, fmt.Errorf("%v (set --database-url or DATABASE_URL)", err)
		}
		return nil, err
	}
	return pool, nil
}

// writeJSON writes v as indented JSON (json) or one compact line (jsonl).
func writeJSON(w io.Writer, o opts, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if o.output == "json" {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return err
	}
	// the same value, with what a terminal would act on escaped (stdout passes JSON through)
	_, err := w.Write(termtext.JSON(buf.Bytes()))
	return err
}

// intersperse lets flags follow positional arguments (rayctl enqueue f --args '[1]'), which
// urfave/cli v2 does not: it walks the command path, keeps flags (with their values) in
// place, and moves the leaf command's positional arguments after a "--".
func intersperse(app *cli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	out := []string{args[0]}
	flags, cmds := app.Flags, app.Commands
	var pos []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			out = append(out, a)
			if !strings.Contains(a, "=") && takesValue(flags, strings.TrimLeft(a, "-")) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
			continue
		}
		if len(pos) == 0 {
			if cmd := findCommand(cmds, a); cmd != nil {
				out = append(out, a)
				flags, cmds = cmd.Flags, cmd.Subcommands
				continue
			}
		}
		pos = append(pos, a)
	}
	if len(pos) > 0 {
		out = append(append(out, "--"), pos...)
	}
	return out
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether the named flag consumes the next argument.
func takesValue(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}
