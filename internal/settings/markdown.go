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
	p("rayworker's settings. rayctl's database and global flags are in\n")
	p("[cli.md](cli.md#database-and-global-flags); its subcommands that take the workers' settings\n")
	p("(`reconcile-jobs`, `doctor`, `tasks show`) read the same `DJANGO_RAY_*` variables ([below](#rayctl)).\n")
	p("How these names map to django-ray's `DJANGO_RAY` dict: [django.md](django.md#django-ray-settings).\n\n")
	p("## rayworker\n\n")
	p("Every setting is a flag and an environment variable (the flag wins). Flags may come in any order;\n")
	p("`--queues` takes several words like django_ray_worker's. An invalid value is refused at start\n")
	p("(exit 2) with one line naming the flag, the variable it came from and what it accepts:\n\n")
	p("```text\nrayworker: invalid --%s \"0\" (from $%s): want an integer in %s\n```\n\n",
		MaxTaskAttempts.Name, MaxTaskAttempts.Env, MaxTaskAttempts.Setting().Accepts)
	table(&b, Worker)
	p("\nWhere results too large to inline go, and the credentials s3 and gcs use:\n")
	p("[django.md](django.md#result-storage-s3-and-gcs). Exit codes: [cli.md](cli.md#rayworker-exit-codes).\n")

	p("\n## rayctl\n\n")
	p("rayctl reads the workers' settings it needs from the same flags and variables, with the\n")
	p("same defaults and ranges, so what it writes is what a worker would write:\n\n")
	p("- `rayctl reconcile-jobs` records outcomes with the workers' retry policy (%s),\n",
		flagList([]Setting{MaxTaskAttempts.Setting(), RetryBackoffSeconds.Setting(), RetryExceptionDenylist}))
	p("  %s and result storage (`--result-storage-*`).\n", flagList([]Setting{MaxResultSizeBytes.Setting()}))
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

// docNotes add to a setting's meaning in docs/configuration.md what --help cannot show: a
// link, or advice. Markdown.
var docNotes = map[string]string{
	ResultStorageBackend.Name:        "(see [Result storage](django.md#result-storage-s3-and-gcs))",
	ResultStorageFilesystemPath.Name: "(share it with Django)",
	RayEntrypointNumCPUs.Name:        "(see [deploy.md](deploy.md))",
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
	meaning := prose(s.Usage)
	if n := docNotes[s.Name]; n != "" {
		meaning += " " + n
	}
	fmt.Fprintf(b, "| `%s` | `%s` | %s | %s | %s |\n", flag, s.Env, def, cell(s.Accepts), meaning)
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

// codeWord is what reads as code in a meaning: a flag (with its ray_* value or <placeholder>),
// a call, a variable, a snake_case name, a URL scheme.
var codeWord = regexp.MustCompile(`--[a-z0-9][a-z0-9-]*(?: ray_core\b| ray_job\b| &lt;[a-z]+&gt;)?|\b[a-z_.]+\(\)|\$[A-Z_]+|~/[a-z_./]+|\b[a-z]+(?:_[a-z]+)+\b|\bray://\.\.\.|/(?:metrics|healthz|readyz)\b`)

// prose is a table cell with what reads as code in code spans.
func prose(s string) string {
	return codeWord.ReplaceAllStringFunc(cell(s), func(w string) string {
		return "`" + strings.NewReplacer("&lt;", "<", "&gt;", ">").Replace(w) + "`"
	})
}
