package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/internal/clidoc"
	"github.com/rayctl/rayctl/termtext"
)

// Exit codes, documented in `rayworker --help` and docs/cli.md.
const (
	exitOK      = 0   // stopped without a signal (only --help, --version)
	exitFailed  = 1   // could not start or run: database unreachable, schema missing, ...
	exitUsage   = 2   // invalid flag, environment variable or value
	exitSIGINT  = 130 // graceful shutdown after SIGINT
	exitSIGTERM = 143 // graceful shutdown after SIGTERM
)

const exitCodesHelp = `EXIT CODES:
   1    could not start or run (database unreachable, tables missing, metrics address in use)
   2    invalid flag, environment variable or value
   130  stopped by SIGINT after a graceful shutdown
   143  stopped by SIGTERM after a graceful shutdown
   A second signal during the shutdown stops the worker at once.`

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

// env is the process environment, injectable for tests.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	app := e.newApp()
	err := app.RunContext(ctx, expandNargs(args, "queues"))
	if err == nil {
		return exitOK
	}
	code := exitFailed
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	if msg := strings.TrimSpace(err.Error()); msg != "" {
		fmt.Fprintf(stderr, "rayworker: %s\n", termtext.Line(msg)) // it may echo a server's or a task's text
	}
	return code
}

func (e env) newApp() *cli.App {
	app := &cli.App{
		Name:      "rayworker",
		Usage:     "run django-ray tasks: claim them from PostgreSQL, execute them, record their outcomes",
		Version:   build.String(),
		UsageText: "rayworker [global options]",
		Description: "A drop-in replacement for django-ray 0.2.0's `manage.py django_ray_worker` over the same tables.\n" +
			"Every flag can also be set by the environment variable named in its help; a flag wins over\n" +
			"its variable. Invalid values are refused at start.\n\n" + exitCodesHelp,
		Flags:           settingFlags(),
		Writer:          e.stdout,
		ErrWriter:       e.stderr,
		HideHelpCommand: true,
		// `rayworker completion SHELL` and `rayworker man` print what the packages install
		// (hidden: the daemon's help is about running it); the scripts ask the binary for its
		// flags with --generate-bash-completion.
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			clidoc.CompletionCommand("rayworker", true, usageErrorf),
			clidoc.ManCommand("rayworker", usageErrorf),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run() maps errors to exit codes
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageErrorf("%v (see rayworker --help)", err)
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageErrorf("unexpected argument %q (see rayworker --help)", c.Args().First())
			}
			o, err := resolve(c, e.getenv)
			if err != nil {
				return err
			}
			return e.serve(c.Context, o)
		},
	}
	return app
}

// expandNargs turns `--name a b c` (argparse's nargs="+", as django_ray_worker takes
// --queues) into `--name=a,b,c`, since urfave/cli flags take one value.
func expandNargs(args []string, name string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a != "--"+name && a != "-"+name {
			out = append(out, a)
			continue
		}
		var vals []string
		for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			vals = append(vals, args[i])
		}
		if len(vals) == 0 {
			out = append(out, a) // let the parser report the missing value
			continue
		}
		out = append(out, "--"+name+"="+strings.Join(vals, ","))
	}
	return out
}
