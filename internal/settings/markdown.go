package settings

import (
	"fmt"
	"regexp"
	"strings"
)

// Markdown is docs/configuration.md: the table as people read it. go generate writes it;
// TestConfigurationDoc fails when the file differs.
func Markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Configuration\n\n")
	p("<!-- Generated from internal/settings by `go generate ./internal/settings`; do not edit. -->\n\n")
	p("rayworker keeps django-ray 0.2.0's setting names and defaults. Every setting is a flag and an\n")
	p("environment variable (the flag wins); flags may come in any order, and `--queues` takes several\n")
	p("words like django_ray_worker's. An invalid value is refused at start with exit code 2 and one\n")
	p("line naming the flag, the variable it came from and what it accepts, e.g.\n\n")
	p("```text\nrayworker: invalid --%s \"0\" (from $%s): want an integer in %s\n```\n\n",
		MaxTaskAttempts.Name, MaxTaskAttempts.Env, MaxTaskAttempts.Setting().Accepts)
	p("Exit codes: 1 could not start or run; 2 invalid flag, variable or value; 130 / 143 stopped\n")
	p("gracefully by SIGINT / SIGTERM.\n\n")
	p("## rayworker\n\n")
	table(&b, Worker)

	p("\n## The database\n\n")
	p("Both binaries read the database from `--%s`, else `%s`, else the libpq variables\n", DatabaseURL.Name, DatabaseURL.Env)
	p("(`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, ...). A URL\n")
	p("(`postgres://...`) or a key=value DSN (`host=db user=app dbname=app`) both work. Passwords never\n")
	p("appear in output or errors (in a URL, write an `@` in the password as `%%40`).\n")

	p("\n## rayctl\n\n")
	p("rayctl reads the workers' settings it needs from the same flags and variables, with the\n")
	p("same defaults and ranges, so what it writes is what a worker would write:\n\n")
	p("- `rayctl reconcile-jobs` records outcomes with the workers' retry policy (%s), %s\n",
		flagList([]Setting{MaxTaskAttempts.Setting(), RetryBackoffSeconds.Setting(), RetryExceptionDenylist}), flagList([]Setting{MaxResultSizeBytes.Setting()}))
	p("  and result storage (`--result-storage-*`).\n")
	p("- `rayctl doctor` checks the result storage they name (`--result-storage-*`).\n")
	p("- `rayctl tasks show` reads `s3://` results with %s, and `resultfs://`\n",
		flagList([]Setting{ResultStorageS3Region, ResultStorageS3EndpointURL}))
	p("  ones under `--result-dir`, else `$%s`, else django-ray's own `$%s`.\n",
		ResultStorageFilesystemPath.Env, FilesystemPathDjangoEnv)
	p("- `--lease-ttl` defaults to %s's default (%d s) and `--stuck-after` (top, doctor) to\n",
		WorkerLeaseSeconds.Setting().DjangoName(), WorkerLeaseSeconds.Default)
	p("  %s's (%d s): set them to your workers' values.\n",
		StuckTaskTimeoutSeconds.Setting().DjangoName(), StuckTaskTimeoutSeconds.Default)
	return b.String()
}

func table(b *strings.Builder, rows []Setting) {
	b.WriteString("| flag | environment | default | accepts | meaning |\n|---|---|---|---|---|\n")
	for _, s := range rows {
		row(b, s)
	}
}

// row is one setting's table row; README rows that name a setting must agree with it
// (flag, `ENV`, `default` or —, accepts).
func row(b *strings.Builder, s Setting) {
	flag := "--" + s.Name
	if s.Arg != "" {
		flag += " " + s.Arg
	}
	def := "—"
	if s.Default != "" {
		def = "`" + s.Default + "`"
	}
	fmt.Fprintf(b, "| `%s` | `%s` | %s | %s | %s |\n", flag, s.Env, def, cell(s.Accepts), prose(s.Usage))
}

func flagList(rows []Setting) string {
	names := make([]string, len(rows))
	for i, s := range rows {
		names[i] = "`--" + s.Name + "`"
	}
	return strings.Join(names, ", ")
}

// cell makes text safe in a table cell: no column break, no HTML.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

var flagWord = regexp.MustCompile(`--[a-z0-9][a-z0-9-]*( ray_core\b| ray_job\b)?`)

// prose is a table cell with its flags as code.
func prose(s string) string {
	return flagWord.ReplaceAllStringFunc(cell(s), func(f string) string { return "`" + f + "`" })
}
