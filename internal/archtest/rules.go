package archtest

// Module is this module's path.
const Module = "github.com/rayctl/rayctl"

const (
	pgx   = "github.com/jackc/pgx/v5/..."
	prom  = "github.com/prometheus/client_golang/..."
	cli   = "github.com/urfave/cli/v2/..."
	charm = "github.com/charmbracelet/..."
)

// Project is docs/architecture.md's rule set, one Rule per line there.
var Project = Rules{
	Module: Module,
	Packages: []Rule{
		{Package: "store", Allow: []string{Std, pgx, "store/internal/rawdb"}},
		{Package: "store/internal/rawdb", Allow: []string{Std}, OnlyFor: []string{"store", "store/storetest"}},
		{Package: "store/storetest", Allow: []string{Std, pgx, "store", "store/internal/rawdb", "migrations"}, TestsOnly: true},
		{Package: "migrations", Allow: []string{Std, pgx}},
		{Package: "worker", Allow: []string{Std, "store", "lifecycle", "gauges", prom}},
		{Package: "gauges", Allow: []string{Std, "store", prom}},
		{Package: "worker/pyexec", Allow: []string{Std, prom, "worker/procgroup"}},
		{Package: "worker/procgroup", Allow: []string{Std, "golang.org/x/sys/..."}},
		{Package: "worker/procrunner", Allow: []string{Std, "worker", "lifecycle", "store", "pyjson", "worker/procgroup"}},
		{Package: "worker/poolrunner", Allow: []string{Std, "worker", "lifecycle", "store", "worker/pyexec", "worker/procrunner", prom}},
		{Package: "worker/raycore", Allow: []string{Std, "worker", "lifecycle", "store", "worker/pyexec", prom}},
		{Package: "worker/rayrunner", Allow: []string{Std, "worker", "lifecycle", "store", "rayjobs", prom}},
		{Package: "worker/workertest", Allow: []string{Std, "store", "worker"}, TestsOnly: true},
		{Package: "lifecycle", Allow: []string{Std, "store", "pyjson"}},
		{Package: "pyjson", Allow: []string{Std}},
		{Package: "termtext", Allow: []string{Std}},
		{Package: "resultstore", Allow: []string{Std, "lifecycle", "github.com/aws/aws-sdk-go-v2/...", "github.com/aws/smithy-go/...",
			"google.golang.org/api/...", "cloud.google.com/go/auth/...", "github.com/googleapis/gax-go/..."}},
		{Package: "resultstore/cloudtest", Allow: []string{Std, "github.com/aws/aws-sdk-go-v2/...", "google.golang.org/api/..."}, TestsOnly: true},
		{Package: "rayjobs", Allow: []string{Std}},
		// the fake Ray Jobs server: for tests, and for the benchmarks that need a Ray
		{Package: "rayjobs/raytest", Allow: []string{Std, "rayjobs"}, OnlyFor: []string{"bench/..."}},
		{Package: "rayjobs/localray", Allow: []string{Std}},
		{Package: "recovery", Allow: []string{Std, "store", "migrations", "lifecycle", "rayjobs"}},
		{Package: "interop", Allow: []string{Std}, TestsOnly: true},
		{Package: "scripts", Allow: []string{Std}, TestsOnly: true},
		{Package: "tui", Allow: []string{Std, "store", "recovery", "termtext", charm}},
		{Package: "cmd/rayctl/internal/termquery", Allow: []string{"syscall"}},
		{Package: "internal/buildinfo", Allow: []string{Std, cli}, OnlyFor: []string{"cmd/..."}},
		{Package: "internal/clidoc", Allow: []string{Std, cli}, OnlyFor: []string{"cmd/..."}},
		{Package: "internal/settings", Allow: []string{Std}},
		{Package: "internal/settings/gendoc", Allow: []string{Std, "internal/settings"}},
		{Package: "internal/archtest", Allow: []string{Std}, TestsOnly: true},
		{Package: "internal/logkey", Allow: []string{Std}, TestsOnly: true},
		{Package: "docs", Allow: []string{Std}, TestsOnly: true},
		{Package: "cmd/...", Allow: []string{Any}},
		{Package: "bench/...", Allow: []string{Any}},
	},
	// django-ray's settings: any package may take a default or a limit from the table
	Shared: []string{"internal/settings"},
	Only: []Only{
		{Import: pgx, By: []string{"store", "store/storetest", "migrations", "cmd/...", "bench/..."},
			Why: "only store and migrations (and the mains) import pgx: everything else goes through store"},
		{Import: cli, By: []string{"cmd/...", "internal/clidoc", "internal/buildinfo"},
			Why: "only cmd/* (and its helpers internal/clidoc, internal/buildinfo) use urfave/cli"},
		{Import: charm, By: []string{"tui", "cmd/..."}, Why: "only tui and cmd/* draw on a terminal"},
		{Import: prom, By: []string{"worker/...", "gauges", "cmd/...", "bench/..."}, Why: "metrics are the worker's, the gauges' and the mains'"},
	},
}
